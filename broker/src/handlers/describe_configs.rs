//! DescribeConfigs: every topic, group or broker config with its value, source and type, and on
//! request its synonyms (every place that could set it, highest precedence first).

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse, RequestHeader};

use super::str_bytes;
use crate::config::{ConfigSource, ConfigType, BROKER_CONFIGS, DYNAMIC_BROKER_CONFIGS};
use crate::context::Ctx;
use crate::error::BrokerError;
use crate::group_config::GROUP_CONFIGS;
use crate::request_scope::RequestScope;
use crate::security::authorizer::{Operation, Resource, CLUSTER_NAME};
use crate::topic_config::{ConfigDef, EffectiveConfigs, TOPIC_CONFIGS};

/// Resource type of a topic.
pub const RESOURCE_TOPIC: i8 = 2;
/// Resource type of a broker.
pub const RESOURCE_BROKER: i8 = 4;
/// Resource type of a broker's loggers.
pub const RESOURCE_BROKER_LOGGER: i8 = 8;
/// Resource type of a group (Kafka 4's group configs).
pub const RESOURCE_GROUP: i8 = 32;

/// Describes each resource; unknown ones get their error inside the result.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    _header: &RequestHeader,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let image = ctx.controller.image();
    let with_synonyms = req.include_synonyms;
    let entry = |name: &str, effective, synonyms, ty, read_only| {
        entry(name, effective, synonyms, ty, read_only, with_synonyms)
    };
    let results = req
        .resources
        .iter()
        .map(|r| {
            let wanted = |name: &str| {
                r.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
            };
            // The wanted ones of a topic's or group's configs.
            let described = |defs: &[ConfigDef], effective: &EffectiveConfigs| {
                defs.iter()
                    .filter(|d| wanted(d.name))
                    .map(|d| {
                        entry(
                            d.name,
                            effective.resolve(d),
                            effective.synonyms(d),
                            d.ty,
                            false,
                        )
                    })
                    .collect::<Vec<_>>()
            };
            let refused = authorize_config_resource(
                ctx,
                scope,
                &image,
                r.resource_type,
                r.resource_name.as_str(),
                Operation::DescribeConfigs,
            );
            let configs: Result<Vec<DescribeConfigsResourceResult>, BrokerError> = match r
                .resource_type
            {
                _ if refused.is_err() => refused.map(|_| Vec::new()),
                RESOURCE_TOPIC => image
                    .topics
                    .get(r.resource_name.as_str())
                    .ok_or(BrokerError::UnknownTopicOrPartition)
                    .map(|t| {
                        described(
                            TOPIC_CONFIGS,
                            &EffectiveConfigs::new(&t.configs, &ctx.config),
                        )
                    }),
                // A group has configs whether or not it has members yet.
                RESOURCE_GROUP => {
                    let none = BTreeMap::new();
                    let overrides = image
                        .group_configs
                        .get(r.resource_name.as_str())
                        .unwrap_or(&none);
                    Ok(described(
                        GROUP_CONFIGS,
                        &EffectiveConfigs::of_group(overrides, &ctx.config),
                    ))
                }
                // "": the cluster-wide dynamic defaults, as set.
                RESOURCE_BROKER if r.resource_name.is_empty() => Ok(BROKER_CONFIGS
                    .iter()
                    .filter(|(n, _, _)| wanted(n))
                    .filter_map(|(n, _, ty)| {
                        let value = image.broker_configs.get("")?.get(*n)?.clone();
                        let source = ConfigSource::DynamicDefaultBroker;
                        let synonyms = vec![(n.to_string(), value.clone(), source)];
                        Some(entry(n, (value, source), synonyms, *ty, false))
                    })
                    .collect()),
                RESOURCE_BROKER => this_broker(ctx, r.resource_name.as_str()).map(|_| {
                    BROKER_CONFIGS
                        .iter()
                        .filter(|(n, _, _)| wanted(n))
                        .map(|(n, _, ty)| {
                            let read_only = !DYNAMIC_BROKER_CONFIGS.contains(n);
                            let (value, synonyms) = (ctx.config.resolve(n), ctx.config.synonyms(n));
                            entry(n, value, synonyms, *ty, read_only)
                        })
                        .collect()
                }),
                RESOURCE_BROKER_LOGGER => this_broker(ctx, r.resource_name.as_str()).map(|_| {
                    ctx.log_levels
                        .describe()
                        .into_iter()
                        .filter(|(logger, _)| wanted(logger))
                        .map(|(logger, level)| {
                            let source = ConfigSource::DynamicBrokerLogger;
                            entry(&logger, (level, source), vec![], ConfigType::String, false)
                        })
                        .collect()
                }),
                other => Err(BrokerError::InvalidRequest(format!(
                    "Unsupported resource type {other}"
                ))),
            };
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            match configs {
                Ok(c) => result.with_configs(c),
                Err(e) => result
                    .with_error_code(e.code())
                    .with_error_message(Some(e.message())),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// One config: its effective value and where that comes from, and its synonyms if asked.
/// A broker resource must name the broker it was sent to.
pub fn this_broker(ctx: &Ctx, resource_name: &str) -> Result<(), BrokerError> {
    if resource_name == ctx.node_id.to_string() {
        Ok(())
    } else {
        Err(BrokerError::InvalidRequest(format!(
            "Unexpected broker id {resource_name}"
        )))
    }
}

fn entry(
    name: &str,
    (value, source): (String, ConfigSource),
    synonyms: Vec<(String, String, ConfigSource)>,
    ty: ConfigType,
    read_only: bool,
    with_synonyms: bool,
) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(name))
        .with_value(Some(str_bytes(value)))
        .with_config_source(source as i8)
        .with_config_type(ty as i8)
        .with_read_only(read_only)
        .with_synonyms(
            synonyms
                .into_iter()
                .filter(|_| with_synonyms)
                .map(|(name, value, source)| {
                    DescribeConfigsSynonym::default()
                        .with_name(str_bytes(name))
                        .with_value(Some(str_bytes(value)))
                        .with_source(source as i8)
                })
                .collect(),
        )
}

/// What (Incremental)AlterConfigs and DescribeConfigs check: `operation` on the topic or the
/// group, or on the cluster for broker and broker-logger resources.
pub fn authorize_config_resource(
    ctx: &Ctx,
    scope: &RequestScope,
    image: &sluice_controller::MetadataImage,
    resource_type: i8,
    name: &str,
    operation: Operation,
) -> Result<(), BrokerError> {
    let (resource, name) = match resource_type {
        RESOURCE_TOPIC => (Resource::Topic, name),
        RESOURCE_GROUP => (Resource::Group, name),
        _ => (Resource::Cluster, CLUSTER_NAME),
    };
    super::authorize(ctx, scope, image, operation, resource, name)
}
