//! CreateTopics: validate names, counts and configs, then commit through the controller.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, RequestHeader};
use sluice_controller::{Command, CommandResult, NewTopic};
use uuid::Uuid;

use super::{allowed, str_bytes, take_mutation_quota, topic_name};
use crate::context::Ctx;
use crate::error::BrokerError;
use crate::quota::throttle_ms;
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation::Create;
use crate::security::authorizer::Resource::{Cluster, Topic};
use crate::security::authorizer::CLUSTER_NAME;
use crate::topic_config::{self, EffectiveConfigs, TOPIC_CONFIGS};

/// Creates the requested topics (or only checks them, with `validate_only`).
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    header: &RequestHeader,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    // v6+ clients know THROTTLING_QUOTA_EXCEEDED; older ones are only throttled.
    let strict = header.request_api_version >= 6;
    let mut results: Vec<(String, Result<NewTopic, BrokerError>)> = Vec::new();
    // CREATE on the cluster covers every topic; else each needs CREATE on itself.
    let image = ctx.controller.image();
    let cluster_create = allowed(ctx, scope, &image, Create, Cluster, CLUSTER_NAME);
    for t in &req.topics {
        let name = t.name.0.to_string();
        let duplicate = req.topics.iter().filter(|o| o.name == t.name).count() > 1;
        let result = if duplicate {
            Err(BrokerError::InvalidRequest(format!(
                "Create topics request from client contains multiple entries for topic '{name}'"
            )))
        } else if !cluster_create && !allowed(ctx, scope, &image, Create, Topic, &name) {
            Err(BrokerError::TopicAuthorizationFailed)
        } else {
            new_topic(ctx, t)
        };
        let result = match result {
            Ok(topic) if !req.validate_only => {
                let partitions = topic
                    .assignment
                    .as_ref()
                    .map_or(topic.num_partitions, |a| a.len() as i32);
                take_mutation_quota(ctx, scope, header, partitions, strict).map(|_| topic)
            }
            other => other,
        };
        results.push((name, result));
    }
    let valid: Vec<NewTopic> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok().cloned())
        .collect();
    let outcomes = if valid.is_empty() {
        Vec::new()
    } else if req.validate_only {
        dry_run(ctx, &valid)
    } else {
        commit(ctx, valid).await
    };
    let mut outcomes = outcomes.into_iter();
    let topics = results
        .into_iter()
        .map(|(name, r)| {
            let r = r.and_then(|t| {
                outcomes
                    .next()
                    .unwrap_or(Err(BrokerError::Controller("no result".into())))
                    .map(|_| t)
            });
            result_of(ctx, &name, r)
        })
        .collect();
    CreateTopicsResponse::default()
        .with_throttle_time_ms(throttle_ms(scope.throttled()))
        .with_topics(topics)
}

/// Creates topics with the broker's default partitions and replication (auto-creation).
pub async fn create_with_defaults(ctx: &Ctx, names: &[String]) -> Vec<Result<(), BrokerError>> {
    let live = ctx.controller.image().live_brokers().len().max(1) as i16;
    let topics = names
        .iter()
        .map(|n| NewTopic {
            name: n.clone(),
            id: Uuid::new_v4(),
            num_partitions: ctx.config.num_partitions(),
            replication_factor: ctx.config.default_replication_factor().min(live),
            assignment: None,
            configs: BTreeMap::new(),
        })
        .collect();
    commit(ctx, topics).await
}

fn new_topic(ctx: &Ctx, t: &CreatableTopic) -> Result<NewTopic, BrokerError> {
    let mut configs = BTreeMap::new();
    for c in &t.configs {
        let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
        topic_config::validate(&c.name, &value).map_err(BrokerError::InvalidConfig)?;
        configs.insert(c.name.to_string(), value);
    }
    let assignment = if t.assignments.is_empty() {
        None
    } else {
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return Err(BrokerError::InvalidRequest(
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
            ));
        }
        let mut a: Vec<_> = t.assignments.iter().collect();
        a.sort_by_key(|x| x.partition_index);
        if a.iter()
            .enumerate()
            .any(|(i, x)| x.partition_index != i as i32)
        {
            return Err(BrokerError::InvalidReplicaAssignment(
                "Partitions must be numbered from 0 without gaps".into(),
            ));
        }
        Some(
            a.iter()
                .map(|x| x.broker_ids.iter().map(|b| b.0).collect())
                .collect(),
        )
    };
    let num_partitions = if t.num_partitions == -1 {
        ctx.config.num_partitions()
    } else {
        t.num_partitions
    };
    let replication_factor = if t.replication_factor == -1 {
        ctx.config.default_replication_factor()
    } else {
        t.replication_factor
    };
    Ok(NewTopic {
        name: t.name.0.to_string(),
        id: Uuid::new_v4(),
        num_partitions,
        replication_factor,
        assignment,
        configs,
    })
}

/// Applies the command to a copy of the image: the same checks, nothing committed.
fn dry_run(ctx: &Ctx, topics: &[NewTopic]) -> Vec<Result<(), BrokerError>> {
    let mut image = (*ctx.controller.image()).clone();
    per_item(
        image.apply(&Command::CreateTopics(topics.to_vec())),
        topics.len(),
    )
}

async fn commit(ctx: &Ctx, topics: Vec<NewTopic>) -> Vec<Result<(), BrokerError>> {
    let n = topics.len();
    let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
    let result = match ctx.controller.execute(Command::CreateTopics(topics)).await {
        Ok(result) => result,
        Err(e) => return vec![Err(e.into()); n],
    };
    // Make the partitions servable before answering, so a produce right after works.
    let local = ctx.replicas.reconcile_topics(&ctx.controller, &names).await;
    per_item(result, n)
        .into_iter()
        .zip(local)
        .map(|(r, local)| r.and(local))
        .collect()
}

fn per_item(result: CommandResult, n: usize) -> Vec<Result<(), BrokerError>> {
    match result {
        CommandResult::PerItem(items) => items
            .into_iter()
            .map(|r| r.map_err(BrokerError::from))
            .collect(),
        CommandResult::Failed(e) => vec![Err(e.into()); n],
        other => vec![
            Err(BrokerError::Controller(format!(
                "unexpected result {other:?}"
            )));
            n
        ],
    }
}

fn result_of(ctx: &Ctx, name: &str, r: Result<NewTopic, BrokerError>) -> CreatableTopicResult {
    match r {
        Ok(t) => {
            let effective = EffectiveConfigs::new(&t.configs, &ctx.config);
            let configs = TOPIC_CONFIGS
                .iter()
                .map(|d| {
                    let (value, source) = effective.resolve(d);
                    CreatableTopicConfigs::default()
                        .with_name(str_bytes(d.name))
                        .with_value(Some(str_bytes(value)))
                        .with_config_source(source as i8)
                })
                .collect();
            let rf = t
                .assignment
                .as_ref()
                .and_then(|a| a.first())
                .map(|r| r.len() as i16)
                .unwrap_or(t.replication_factor);
            let partitions = t
                .assignment
                .as_ref()
                .map(|a| a.len() as i32)
                .unwrap_or(t.num_partitions);
            CreatableTopicResult::default()
                .with_name(topic_name(name))
                .with_topic_id(
                    ctx.controller
                        .image()
                        .topics
                        .get(name)
                        .map(|x| x.id)
                        .unwrap_or(t.id),
                )
                .with_num_partitions(partitions)
                .with_replication_factor(rf)
                .with_configs(Some(configs))
        }
        Err(e) => CreatableTopicResult::default()
            .with_name(topic_name(name))
            .with_error_code(e.code())
            .with_error_message(Some(e.message()))
            .with_num_partitions(-1)
            .with_replication_factor(-1),
    }
}
