//! AlterClientQuotas: set and remove quotas of users, client ids, their pairs and client
//! addresses, validated as Kafka's controller validates them and stored in the metadata log.

use std::collections::BTreeMap;
use std::net::IpAddr;

use kafka_protocol::messages::alter_client_quotas_request::EntryData;
use kafka_protocol::messages::alter_client_quotas_response::{
    EntityData, EntryData as EntryResult,
};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, RequestHeader,
};
use sluice_controller::{Command, QuotaChange, QuotaEntity, QuotaValue};

use super::authorize_cluster;
use crate::context::Ctx;
use crate::error::BrokerError;
use crate::quota::{CLIENT_ID, IP, USER};
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation::AlterConfigs;

/// Whether a quota key takes whole numbers or any number.
#[derive(Clone, Copy, PartialEq, Eq)]
enum QuotaType {
    Long,
    Double,
}

/// The keys a user, client-id or (user, client-id) entity takes.
const CLIENT_QUOTA_KEYS: &[(&str, QuotaType)] = &[
    ("producer_byte_rate", QuotaType::Long),
    ("consumer_byte_rate", QuotaType::Long),
    ("request_percentage", QuotaType::Double),
    ("controller_mutation_rate", QuotaType::Double),
];

/// The key an ip entity takes.
const IP_QUOTA_KEYS: &[(&str, QuotaType)] = &[("connection_creation_rate", QuotaType::Long)];

/// Validates every entity's changes on its own and commits the valid ones together.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    _header: &RequestHeader,
    req: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let mut results: Vec<Result<(), BrokerError>> = Vec::with_capacity(req.entries.len());
    let mut changes = Vec::new();
    let mut seen: Vec<Vec<EntityData>> = Vec::new();
    let refused = authorize_cluster(ctx, scope, AlterConfigs);
    for e in &req.entries {
        let wire = response_entity(e);
        let result = if let Err(e) = refused.clone() {
            Err(e)
        } else if seen.contains(&wire) {
            Err(BrokerError::InvalidRequest(format!(
                "Ignoring duplicate entity {}",
                describe(e)
            )))
        } else {
            validate(e).map(|change| changes.push(change))
        };
        seen.push(wire);
        results.push(result);
    }
    // The valid changes commit together; if that fails, each of them has failed.
    let mut commit_failure = None;
    if !req.validate_only && !changes.is_empty() {
        if let Err(e) = ctx
            .controller
            .execute(Command::AlterClientQuotas(changes))
            .await
        {
            commit_failure = Some(BrokerError::from(e));
        }
    }
    let entries = req
        .entries
        .iter()
        .zip(&results)
        .map(|(e, result)| {
            let out = EntryResult::default().with_entity(response_entity(e));
            match result.as_ref().err().or(commit_failure.as_ref()) {
                None => out,
                Some(err) => out
                    .with_error_code(err.code())
                    .with_error_message(Some(err.message())),
            }
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}

/// One entity's change, checked the way Kafka's ClientQuotaControlManager checks it.
fn validate(e: &EntryData) -> Result<QuotaChange, BrokerError> {
    let invalid = |m: String| Err(BrokerError::InvalidRequest(m));
    let mut entity = QuotaEntity::new();
    if e.entity.is_empty() {
        return invalid("Invalid empty client quota entity".into());
    }
    for part in &e.entity {
        let ty = part.entity_type.to_string();
        if entity.contains_key(&ty) {
            return invalid(format!(
                "Invalid empty client quota entity, duplicate entity entry {ty}"
            ));
        }
        if ![USER, CLIENT_ID, IP].contains(&ty.as_str()) {
            return invalid(format!("Unhandled client quota entity type: {ty}"));
        }
        let name = part.entity_name.as_ref().map(|n| n.to_string());
        if name.as_deref() == Some("") {
            return invalid(format!("Empty {ty} not supported"));
        }
        entity.insert(ty, name);
    }
    let keys = match (
        entity.contains_key(USER),
        entity.contains_key(CLIENT_ID),
        entity.get(IP),
    ) {
        (true, _, None) | (false, true, None) => CLIENT_QUOTA_KEYS,
        (false, false, Some(ip)) => {
            if let Some(ip) = ip {
                if ip.parse::<IpAddr>().is_err() {
                    return invalid(format!("{ip} is not a valid IP or resolvable host."));
                }
            }
            IP_QUOTA_KEYS
        }
        _ => return invalid("Invalid empty client quota entity".into()),
    };
    let mut set = BTreeMap::new();
    let mut remove = Vec::new();
    for op in &e.ops {
        let key = op.key.to_string();
        if set.contains_key(&key) || remove.contains(&key) {
            return invalid(format!(
                "Duplicate quota key {key} not updating quota for this entity {}",
                describe(e)
            ));
        }
        if op.remove {
            remove.push(key);
            continue;
        }
        let Some(&(_, ty)) = keys.iter().find(|(k, _)| *k == key) else {
            return invalid(format!("Invalid configuration key {key}"));
        };
        if !op.value.is_finite() {
            return invalid(format!("Configuration {key} must be a number"));
        }
        if ty == QuotaType::Long && (op.value - op.value.round()).abs() > 1e-6 {
            return invalid(format!("Configuration {key} must be a Long value"));
        }
        set.insert(key, QuotaValue(op.value));
    }
    Ok(QuotaChange {
        entity,
        set,
        remove,
    })
}

fn response_entity(e: &EntryData) -> Vec<EntityData> {
    e.entity
        .iter()
        .map(|p| {
            EntityData::default()
                .with_entity_type(p.entity_type.clone())
                .with_entity_name(p.entity_name.clone())
        })
        .collect()
}

/// The entity as Kafka prints a `ClientQuotaEntity` in its messages.
fn describe(e: &EntryData) -> String {
    let parts: Vec<String> = e
        .entity
        .iter()
        .map(|p| {
            let name = p.entity_name.as_ref().map_or("<default>", |n| n.as_str());
            format!("{}={}", p.entity_type.as_str(), name)
        })
        .collect();
    format!("ClientQuotaEntity(entries={{{}}})", parts.join(", "))
}
