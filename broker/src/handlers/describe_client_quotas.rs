//! DescribeClientQuotas: the client quotas whose entities match a filter, with Kafka's match
//! types (exact name, the default, any name of a type) and its strict mode.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{
    DescribeClientQuotasRequest, DescribeClientQuotasResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;
use sluice_controller::ClientQuota;

use super::authorize_cluster;
use crate::context::Ctx;
use crate::error::BrokerError;
use crate::quota::{CLIENT_ID, IP, USER};
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation::DescribeConfigs;

const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

/// A validated filter: entity types that must have a given name (`None`: the default),
/// entity types that must be present with any name.
struct Filter {
    named: BTreeMap<String, Option<String>>,
    present: BTreeSet<String>,
    strict: bool,
}

/// Lists the entities matching the filter with their quotas.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    _header: &RequestHeader,
    req: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    if let Err(e) = authorize_cluster(ctx, scope, DescribeConfigs) {
        return DescribeClientQuotasResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(e.message()));
    }
    let filter = match Filter::parse(&req) {
        Ok(f) => f,
        Err(e) => {
            return DescribeClientQuotasResponse::default()
                .with_error_code(e.code())
                .with_error_message(Some(e.message()))
        }
    };
    let image = ctx.controller.image();
    let entries = image
        .client_quotas
        .iter()
        .filter(|q| filter.matches(q))
        .map(entry)
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

impl Filter {
    fn parse(req: &DescribeClientQuotasRequest) -> Result<Self, BrokerError> {
        let invalid = |m: String| Err(BrokerError::InvalidRequest(m));
        let mut named = BTreeMap::new();
        let mut present = BTreeSet::new();
        for c in &req.components {
            let ty = c.entity_type.to_string();
            if ty.is_empty() {
                return invalid("Invalid empty entity type.".into());
            }
            if named.contains_key(&ty) || present.contains(&ty) {
                return invalid(format!(
                    "Entity type {ty} cannot appear more than once in the filter."
                ));
            }
            if ![USER, CLIENT_ID, IP].contains(&ty.as_str()) {
                return Err(BrokerError::UnsupportedVersion(format!(
                    "Unsupported entity type {ty}"
                )));
            }
            let name = c._match.as_ref().map(|m| m.to_string());
            match (c.match_type, name) {
                (MATCH_EXACT, Some(n)) => {
                    named.insert(ty, Some(n));
                }
                (MATCH_EXACT, None) => {
                    return invalid(
                        "Request specified MATCH_TYPE_EXACT, but set match string to null.".into(),
                    )
                }
                (MATCH_DEFAULT, None) => {
                    named.insert(ty, None);
                }
                (MATCH_DEFAULT, Some(_)) => {
                    return invalid(
                        "Request specified MATCH_TYPE_DEFAULT, but also specified a match string."
                            .into(),
                    )
                }
                (MATCH_SPECIFIED, None) => {
                    present.insert(ty);
                }
                (MATCH_SPECIFIED, Some(_)) => return invalid(
                    "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string."
                        .into(),
                ),
                (other, _) => return invalid(format!("Unknown match type {other}")),
            }
        }
        let has = |ty: &str| named.contains_key(ty) || present.contains(ty);
        if has(IP) && (has(USER) || has(CLIENT_ID)) {
            return invalid(
                "Invalid entity filter component combination. IP filter component should not \
                 be used with user or clientId filter component."
                    .into(),
            );
        }
        Ok(Self {
            named,
            present,
            strict: req.strict,
        })
    }

    fn matches(&self, quota: &ClientQuota) -> bool {
        let entity = &quota.entity;
        let named = self
            .named
            .iter()
            .all(|(ty, name)| entity.get(ty) == Some(name));
        let present = self.present.iter().all(|ty| entity.contains_key(ty));
        // Strict: the entity has no type the filter does not name.
        let exact_types = !self.strict || entity.len() == self.named.len() + self.present.len();
        named && present && exact_types
    }
}

fn entry(quota: &ClientQuota) -> EntryData {
    let entity = quota
        .entity
        .iter()
        .map(|(ty, name)| {
            EntityData::default()
                .with_entity_type(StrBytes::from_string(ty.clone()))
                .with_entity_name(name.clone().map(StrBytes::from_string))
        })
        .collect();
    let values = quota
        .values
        .iter()
        .map(|(key, value)| {
            ValueData::default()
                .with_key(StrBytes::from_string(key.clone()))
                .with_value(value.0)
        })
        .collect();
    EntryData::default().with_entity(entity).with_values(values)
}
