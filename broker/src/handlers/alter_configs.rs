//! AlterConfigs, the API IncrementalAlterConfigs replaced (admin clients such as Sarama's
//! still call it): a topic's overrides, or a broker's dynamic configs, become exactly the
//! ones given; the rest return to their defaults.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, RequestHeader};
use sluice_controller::{BrokerConfigChange, Command, ConfigChange};

use super::describe_configs::{authorize_config_resource, RESOURCE_BROKER, RESOURCE_TOPIC};
use super::incremental_alter_configs::{broker_of, check_dynamic, commit};
use crate::context::Ctx;
use crate::error::BrokerError;
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation;
use crate::topic_config;

/// Replaces each resource's configs, each resource on its own.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    _header: &RequestHeader,
    req: AlterConfigsRequest,
) -> AlterConfigsResponse {
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
            RESOURCE_TOPIC => match replacement(ctx, r) {
                Ok(change) => {
                    commit(ctx, Command::AlterConfigs(vec![change]), req.validate_only).await
                }
                Err(e) => Err(e),
            },
            RESOURCE_BROKER => match broker_replacement(ctx, r) {
                Ok(change) => {
                    commit(ctx, Command::AlterBrokerConfigs(change), req.validate_only).await
                }
                Err(e) => Err(e),
            },
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
    AlterConfigsResponse::default().with_responses(responses)
}

/// The change that leaves the topic with exactly the given overrides, every value checked.
fn replacement(ctx: &Ctx, r: &AlterConfigsResource) -> Result<ConfigChange, BrokerError> {
    let image = ctx.controller.image();
    let topic = image
        .topics
        .get(r.resource_name.as_str())
        .ok_or(BrokerError::UnknownTopicOrPartition)?;
    let mut set = BTreeMap::new();
    for c in &r.configs {
        let name = c.name.to_string();
        if topic_config::topic_config(&name).is_none() {
            return Err(BrokerError::InvalidConfig(format!(
                "Unknown topic config name: {name}"
            )));
        }
        // A null value means "not overridden", as Kafka reads it.
        if let Some(value) = &c.value {
            topic_config::validate(&name, value).map_err(BrokerError::InvalidConfig)?;
            set.insert(name, value.to_string());
        }
    }
    let delete = topic
        .configs
        .keys()
        .filter(|k| !set.contains_key(*k))
        .cloned()
        .collect();
    Ok(ConfigChange {
        topic: topic.name.clone(),
        set,
        delete,
    })
}

/// The change that leaves a broker (or the cluster default) with exactly the given dynamic
/// configs.
fn broker_replacement(
    ctx: &Ctx,
    r: &AlterConfigsResource,
) -> Result<BrokerConfigChange, BrokerError> {
    let broker = broker_of(r.resource_name.as_str())?;
    let mut set = BTreeMap::new();
    for c in &r.configs {
        let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
        check_dynamic(c.name.as_str(), &value)?;
        set.insert(c.name.to_string(), value);
    }
    let image = ctx.controller.image();
    let delete = image
        .broker_configs
        .get(&broker)
        .into_iter()
        .flat_map(|current| current.keys())
        .filter(|k| !set.contains_key(*k))
        .cloned()
        .collect();
    Ok(BrokerConfigChange {
        broker,
        set,
        delete,
    })
}
