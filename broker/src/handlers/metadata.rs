//! Metadata: brokers, topics, partitions and leaders; creates topics on demand as Kafka does.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, RequestHeader};
use sluice_controller::metadata::validate_topic_name;
use sluice_controller::{MetadataImage, TopicInfo};
use uuid::Uuid;

use super::create_topics::create_with_defaults;
use super::{
    allowed, authorized_operations, str_bytes, topic_name, visible, AUTHORIZED_OPS_OMITTED,
};
use crate::context::Ctx;
use crate::error::{code_of, BrokerError};
use crate::request_scope::RequestScope;
use crate::security::authorizer::{Operation, Resource, CLUSTER_NAME};

/// Describes the requested topics (all of them when the list is null).
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    header: &RequestHeader,
    req: MetadataRequest,
) -> MetadataResponse {
    let version = header.request_api_version;
    // v0 treats an empty list as "all topics"; v1+ uses null for that.
    let all =
        req.topics.is_none() || (version == 0 && req.topics.as_ref().is_some_and(|t| t.is_empty()));
    let mut image = ctx.controller.image();
    let mut topics = Vec::new();

    // Topics the principal may not DESCRIBE are left out of "all", refused when named.
    let may_describe = |image: &MetadataImage, name: &str| {
        allowed(
            ctx,
            scope,
            image,
            Operation::Describe,
            Resource::Topic,
            name,
        )
    };
    if all {
        topics.extend(
            image
                .topics
                .values()
                .filter(|t| {
                    !ctx.authorizer.enabled()
                        || visible(
                            ctx,
                            scope,
                            &image,
                            Operation::Describe,
                            Resource::Topic,
                            &t.name,
                        )
                })
                .map(|t| describe(t, version)),
        );
    } else {
        let requested = req.topics.unwrap_or_default();
        let auto_create =
            ctx.config.auto_create_topics() && (version < 4 || req.allow_auto_topic_creation);
        // Creating a topic on demand takes CREATE on the cluster or on the topic; a missing
        // topic the principal may not create is refused.
        let mut create_refused: Vec<String> = Vec::new();
        if auto_create {
            let missing: Vec<String> = requested
                .iter()
                .filter(|t| t.topic_id.is_nil())
                .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                .filter(|n| !image.topics.contains_key(n) && validate_topic_name(n).is_ok())
                .collect();
            let cluster_create = !missing.is_empty()
                && visible(
                    ctx,
                    scope,
                    &image,
                    Operation::Create,
                    Resource::Cluster,
                    CLUSTER_NAME,
                );
            let (creatable, refused): (Vec<String>, Vec<String>) =
                missing.into_iter().partition(|n| {
                    cluster_create
                        || allowed(ctx, scope, &image, Operation::Create, Resource::Topic, n)
                });
            create_refused = refused;
            // Create what is missing first, in one command, then describe everything.
            if !creatable.is_empty() {
                let _ = create_with_defaults(ctx, &creatable).await;
                image = ctx.controller.image();
            }
        }
        for t in &requested {
            // A topic id wins over the name: Java's by-id requests leave the name at "", not
            // null, and Kafka ignores it then.
            let described = match &t.name {
                Some(name) if t.topic_id.is_nil() => describe_named(&image, &name.0, version),
                _ => describe_by_id(&image, t.topic_id, version),
            };
            let name = described.name.as_ref().map_or("", |n| n.0.as_str());
            let refused = create_refused.iter().any(|r| r == name);
            topics.push(if !refused && may_describe(&image, name) {
                described
            } else {
                MetadataResponseTopic::default()
                    .with_name(described.name.clone())
                    .with_topic_id(described.topic_id)
                    .with_error_code(BrokerError::TopicAuthorizationFailed.code())
                    .with_topic_authorized_operations(AUTHORIZED_OPS_OMITTED)
            });
        }
    }

    if req.include_topic_authorized_operations {
        for t in topics.iter_mut().filter(|t| t.error_code == 0) {
            let name = t.name.as_ref().map_or("", |n| n.0.as_str());
            t.topic_authorized_operations =
                authorized_operations(ctx, scope, &image, Resource::Topic, name);
        }
    }
    let brokers = image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .filter_map(|b| Some((b, b.endpoint(scope.listener_name())?)))
        .map(|(b, (host, port))| {
            MetadataResponseBroker::default()
                .with_node_id(b.id.into())
                .with_host(str_bytes(host))
                .with_port(port)
                .with_rack(b.rack.clone().map(str_bytes))
        })
        .collect();
    let controller = ctx
        .controller
        .status()
        .leader
        .map(|l| l as i32)
        .unwrap_or(-1);
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(&image.cluster_id)))
        .with_controller_id(controller.into())
        .with_topics(topics)
        .with_cluster_authorized_operations(AUTHORIZED_OPS_OMITTED)
}

fn describe_named(image: &MetadataImage, name: &str, version: i16) -> MetadataResponseTopic {
    if let Some(t) = image.topics.get(name) {
        return describe(t, version);
    }
    let err = match validate_topic_name(name) {
        Err(e) => BrokerError::InvalidTopic(e.to_string()),
        Ok(()) => BrokerError::UnknownTopicOrPartition,
    };
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(name)))
        .with_error_code(err.code())
        .with_topic_authorized_operations(AUTHORIZED_OPS_OMITTED)
}

fn describe_by_id(image: &MetadataImage, id: Uuid, version: i16) -> MetadataResponseTopic {
    match image.topic_by_id(&id) {
        Some(t) => describe(t, version),
        None => MetadataResponseTopic::default()
            .with_topic_id(id)
            .with_error_code(code_of::<()>(&Err(BrokerError::UnknownTopicId)))
            .with_topic_authorized_operations(AUTHORIZED_OPS_OMITTED),
    }
}

fn describe(t: &TopicInfo, _version: i16) -> MetadataResponseTopic {
    let partitions = t
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            MetadataResponsePartition::default()
                .with_partition_index(i as i32)
                .with_leader_id(p.leader.into())
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(p.replicas.iter().map(|r| (*r).into()).collect())
                .with_isr_nodes(p.isr.iter().map(|r| (*r).into()).collect())
                .with_error_code(if p.leader < 0 {
                    BrokerError::LeaderNotAvailable.code()
                } else {
                    0
                })
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&t.name)))
        .with_topic_id(t.id)
        .with_is_internal(t.name.starts_with("__"))
        .with_partitions(partitions)
        .with_topic_authorized_operations(AUTHORIZED_OPS_OMITTED)
}
