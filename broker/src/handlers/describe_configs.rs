//! DescribeConfigs: every topic or broker config with its value, source and type.

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse, RequestHeader};

use super::str_bytes;
use crate::config::BROKER_CONFIGS;
use crate::context::Ctx;
use crate::error::BrokerError;
use crate::request_scope::RequestScope;
use crate::topic_config::{ConfigSource, TopicConfigs, TOPIC_CONFIGS};

/// Resource type of a topic.
pub const RESOURCE_TOPIC: i8 = 2;
/// Resource type of a broker.
pub const RESOURCE_BROKER: i8 = 4;

/// Describes each resource; unknown ones get their error inside the result.
pub async fn handle(
    ctx: &Ctx,
    _scope: &RequestScope,
    _header: &RequestHeader,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let image = ctx.controller.image();
    let results = req
        .resources
        .iter()
        .map(|r| {
            let wanted = |name: &str| {
                r.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
            };
            let configs: Result<Vec<DescribeConfigsResourceResult>, BrokerError> =
                match r.resource_type {
                    RESOURCE_TOPIC => match image.topics.get(r.resource_name.as_str()) {
                        Some(t) => {
                            let effective = TopicConfigs::new(&t.configs, &ctx.config);
                            Ok(TOPIC_CONFIGS
                                .iter()
                                .filter(|d| wanted(d.name))
                                .map(|d| {
                                    let (value, source) = effective.resolve(d);
                                    entry(d.name, value, source, d.ty as i8, false)
                                })
                                .collect())
                        }
                        None => Err(BrokerError::UnknownTopicOrPartition),
                    },
                    RESOURCE_BROKER => {
                        let own = r.resource_name.is_empty()
                            || r.resource_name.as_str() == ctx.node_id.to_string();
                        if own {
                            Ok(BROKER_CONFIGS
                                .iter()
                                .filter(|(n, _, _)| wanted(n))
                                .map(|(n, _, ty)| {
                                    let source = if ctx.config.is_overridden(n) {
                                        ConfigSource::StaticBroker
                                    } else {
                                        ConfigSource::Default
                                    };
                                    entry(
                                        n,
                                        ctx.config.get(n).unwrap_or_default().to_string(),
                                        source,
                                        *ty as i8,
                                        true,
                                    )
                                })
                                .collect())
                        } else {
                            Err(BrokerError::InvalidRequest(format!(
                                "Unexpected broker id {}",
                                r.resource_name.as_str()
                            )))
                        }
                    }
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

fn entry(
    name: &str,
    value: String,
    source: ConfigSource,
    ty: i8,
    read_only: bool,
) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(name))
        .with_value(Some(str_bytes(value)))
        .with_config_source(source as i8)
        .with_config_type(ty)
        .with_read_only(read_only)
}
