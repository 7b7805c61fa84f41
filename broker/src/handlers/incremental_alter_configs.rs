//! IncrementalAlterConfigs: set, delete, append to or subtract from topic and group configs.

use std::collections::BTreeMap;

use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, RequestHeader,
};
use sluice_controller::{
    BrokerConfigChange, Command, CommandResult, ConfigChange, GroupConfigChange,
};

use super::describe_configs::{
    authorize_config_resource, this_broker, RESOURCE_BROKER, RESOURCE_BROKER_LOGGER,
    RESOURCE_GROUP, RESOURCE_TOPIC,
};
use crate::config::{check_type, ConfigType, BROKER_CONFIGS, DYNAMIC_BROKER_CONFIGS};
use crate::connection_limits::parse_overrides;
use crate::context::Ctx;
use crate::error::BrokerError;
use crate::group_config;
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation;
use crate::topic_config::{self, ConfigDef, EffectiveConfigs};

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// Applies each resource's changes atomically (all of a resource's changes or none).
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    _header: &RequestHeader,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in &req.resources {
        let refused = authorize_config_resource(
            ctx,
            scope,
            &ctx.controller.image(),
            r.resource_type,
            r.resource_name.as_str(),
            Operation::AlterConfigs,
        );
        let result = match r.resource_type {
            _ if refused.is_err() => refused,
            RESOURCE_TOPIC => alter_topic(ctx, r, req.validate_only).await,
            RESOURCE_GROUP => alter_group(ctx, r, req.validate_only).await,
            RESOURCE_BROKER => alter_broker(ctx, r, req.validate_only).await,
            RESOURCE_BROKER_LOGGER => alter_loggers(ctx, r, req.validate_only),
            other => Err(BrokerError::InvalidRequest(format!(
                "Unsupported resource type {other}"
            ))),
        };
        let mut out = AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        if let Err(e) = result {
            out = out
                .with_error_code(e.code())
                .with_error_message(Some(e.message()));
        }
        responses.push(out);
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

async fn alter_topic(
    ctx: &Ctx,
    r: &AlterConfigsResource,
    validate_only: bool,
) -> Result<(), BrokerError> {
    let image = ctx.controller.image();
    let topic = image
        .topics
        .get(r.resource_name.as_str())
        .ok_or(BrokerError::UnknownTopicOrPartition)?;
    let effective = EffectiveConfigs::new(&topic.configs, &ctx.config);
    let (set, delete) = plan(
        r,
        "topic",
        topic_config::topic_config,
        &effective,
        topic_config::validate,
    )?;
    let change = ConfigChange {
        topic: topic.name.clone(),
        set,
        delete,
    };
    commit(ctx, Command::AlterConfigs(vec![change]), validate_only).await
}

/// A group's configs may be set before the group exists, as in Kafka; the group's
/// overrides as a whole must then respect the broker's bounds.
async fn alter_group(
    ctx: &Ctx,
    r: &AlterConfigsResource,
    validate_only: bool,
) -> Result<(), BrokerError> {
    let group = r.resource_name.to_string();
    if group.is_empty() {
        return Err(BrokerError::InvalidRequest(
            "a group config change needs a group id".into(),
        ));
    }
    let image = ctx.controller.image();
    let none = BTreeMap::new();
    let current = image.group_configs.get(&group).unwrap_or(&none);
    let effective = EffectiveConfigs::of_group(current, &ctx.config);
    let (set, delete) = plan(
        r,
        "group",
        group_config::group_config,
        &effective,
        |_, _| Ok(()),
    )?;
    let mut after = current.clone();
    for name in &delete {
        after.remove(name);
    }
    after.extend(set.clone());
    group_config::validate(&after, &ctx.config).map_err(BrokerError::InvalidConfig)?;
    let change = GroupConfigChange { group, set, delete };
    commit(ctx, Command::AlterGroupConfigs(change), validate_only).await
}

/// A broker's dynamic configs ("" names the cluster default). Removing a config Sluice does
/// not have is a no-op, as Kafka's tools clear replication throttles after a reassignment.
/// Sets or resets this node's log levels; checked all before any is changed.
fn alter_loggers(
    ctx: &Ctx,
    r: &AlterConfigsResource,
    validate_only: bool,
) -> Result<(), BrokerError> {
    this_broker(ctx, r.resource_name.as_str())?;
    for only_check in [true, false] {
        if only_check || !validate_only {
            for c in &r.configs {
                let logger = c.name.as_str();
                match c.config_operation {
                    OP_SET => {
                        let level = c.value.as_ref().map_or("", |v| v.as_str());
                        ctx.log_levels.set(logger, level, only_check)?
                    }
                    OP_DELETE => ctx.log_levels.reset(logger, only_check)?,
                    _ => {
                        return Err(BrokerError::InvalidRequest(
                            "APPEND and SUBTRACT are not supported for BROKER_LOGGER".into(),
                        ))
                    }
                }
            }
        }
    }
    Ok(())
}

async fn alter_broker(
    ctx: &Ctx,
    r: &AlterConfigsResource,
    validate_only: bool,
) -> Result<(), BrokerError> {
    let broker = broker_of(r.resource_name.as_str())?;
    let mut set = BTreeMap::new();
    let mut delete = Vec::new();
    for c in &r.configs {
        let name = c.name.to_string();
        let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
        match c.config_operation {
            OP_SET => {
                check_dynamic(&name, &value)?;
                set.insert(name, value);
            }
            OP_DELETE => {
                if DYNAMIC_BROKER_CONFIGS.contains(&name.as_str()) {
                    delete.push(name);
                }
            }
            OP_APPEND | OP_SUBTRACT => {
                return Err(BrokerError::InvalidConfig(format!(
                    "Config value append is not allowed for config key: {name}"
                )))
            }
            other => {
                return Err(BrokerError::InvalidRequest(format!(
                    "Unknown config operation {other}"
                )))
            }
        }
    }
    let change = BrokerConfigChange {
        broker,
        set,
        delete,
    };
    commit(ctx, Command::AlterBrokerConfigs(change), validate_only).await
}

/// Whose dynamic configs a BROKER resource names: a broker id, or "" for every broker.
pub fn broker_of(resource_name: &str) -> Result<String, BrokerError> {
    if resource_name.is_empty() || resource_name.parse::<i32>().is_ok() {
        Ok(resource_name.to_string())
    } else {
        Err(BrokerError::InvalidRequest(format!(
            "Unexpected broker id {resource_name}"
        )))
    }
}

/// Checks a broker config set at run time: one that may change, with a value of its type.
pub fn check_dynamic(name: &str, value: &str) -> Result<(), BrokerError> {
    if !DYNAMIC_BROKER_CONFIGS.contains(&name) {
        return Err(BrokerError::InvalidRequest(format!(
            "Cannot update these configs dynamically: Set({name})"
        )));
    }
    let ty = BROKER_CONFIGS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map_or(ConfigType::String, |(_, _, ty)| *ty);
    check_type(name, value, ty).map_err(BrokerError::InvalidConfig)?;
    if name == "max.connections.per.ip.overrides" {
        parse_overrides(value).map_err(|e| {
            BrokerError::InvalidConfig(format!("Invalid value {value} for {name}: {e}"))
        })?;
    }
    Ok(())
}

/// Stores a validated config change (of one resource) in the metadata log, unless only
/// validating; every node applies it as it follows the log.
pub async fn commit(ctx: &Ctx, change: Command, validate_only: bool) -> Result<(), BrokerError> {
    if validate_only {
        return Ok(());
    }
    match ctx.controller.execute(change).await? {
        CommandResult::PerItem(mut items) => items.pop().unwrap_or(Ok(())).map_err(Into::into),
        CommandResult::Failed(e) => Err(e.into()),
        _ => Ok(()),
    }
}

/// Turns a resource's operations into the final lists of configs to set and to delete:
/// `known` defines the resource's configs (a `kind` one), `check` validates each value set.
fn plan(
    r: &AlterConfigsResource,
    kind: &str,
    known: fn(&str) -> Option<&'static ConfigDef>,
    effective: &EffectiveConfigs,
    check: impl Fn(&str, &str) -> Result<(), String>,
) -> Result<(BTreeMap<String, String>, Vec<String>), BrokerError> {
    let mut set = BTreeMap::new();
    let mut delete = Vec::new();
    for c in &r.configs {
        let name = c.name.to_string();
        let def = known(&name).ok_or_else(|| {
            BrokerError::InvalidConfig(format!("Unknown {kind} config name: {name}"))
        })?;
        let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
        match c.config_operation {
            OP_SET => {
                check(&name, &value).map_err(BrokerError::InvalidConfig)?;
                set.insert(name, value);
            }
            OP_DELETE => delete.push(name),
            OP_APPEND | OP_SUBTRACT if def.ty == ConfigType::List => {
                let current = set
                    .get(&name)
                    .cloned()
                    .unwrap_or_else(|| effective.resolve(def).0);
                let mut items: Vec<String> = current
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                for v in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if c.config_operation == OP_APPEND {
                        if !items.iter().any(|i| i == v) {
                            items.push(v.to_string());
                        }
                    } else {
                        items.retain(|i| i != v);
                    }
                }
                let joined = items.join(",");
                check(&name, &joined).map_err(BrokerError::InvalidConfig)?;
                set.insert(name, joined);
            }
            OP_APPEND | OP_SUBTRACT => {
                return Err(BrokerError::InvalidConfig(format!(
                    "Config value append is not allowed for config key: {name}"
                )))
            }
            other => {
                return Err(BrokerError::InvalidRequest(format!(
                    "Unknown config operation {other}"
                )))
            }
        }
    }
    Ok((set, delete))
}
