//! One file per Kafka API. Each `handle(ctx, header, request) -> response` is thin: it maps
//! the request onto the replica manager, storage and controller, and puts every failure
//! inside the response as a Kafka error code; none of them can fail as a whole.

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_client_quotas;
pub mod alter_configs;
pub mod alter_partition_reassignments;
pub mod alter_user_scram_credentials;
pub mod api_versions;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_acls;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_acls;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_acls;
pub mod describe_client_quotas;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_quorum;
pub mod describe_transactions;
pub mod describe_user_scram_credentials;
pub mod elect_leaders;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sasl_authenticate;
pub mod sasl_handshake;
pub mod sync_group;
pub mod txn_offset_commit;
pub mod write_txn_markers;

use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;
use sluice_controller::{BrokerInfo, MetadataImage, TopicInfo};
use uuid::Uuid;

use crate::error::BrokerError;
use crate::security::authorizer::{Operation, Resource, CLUSTER_NAME};

/// A topic name for a response.
pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// The topic a Produce or Fetch request names: by id from the version where the request
/// switched to topic ids (`by_id`), by name before.
pub fn requested_topic<'a>(
    image: &'a MetadataImage,
    by_id: bool,
    name: &str,
    id: Uuid,
) -> Result<&'a TopicInfo, BrokerError> {
    if by_id {
        image.topic_by_id(&id).ok_or(BrokerError::UnknownTopicId)
    } else {
        image
            .topics
            .get(name)
            .ok_or(BrokerError::UnknownTopicOrPartition)
    }
}

/// The partition's leader and epoch when `error` says the client has the wrong one: Fetch
/// v16 and Produce v10 answers name it (KIP-951), so the client goes there without asking
/// Metadata first.
pub fn leader_hint(
    topic: Option<&TopicInfo>,
    partition: i32,
    error_code: i16,
) -> Option<(i32, i32)> {
    let wrong_leader = [
        BrokerError::NotLeaderOrFollower.code(),
        BrokerError::FencedLeaderEpoch.code(),
    ];
    if !wrong_leader.contains(&error_code) {
        return None;
    }
    let p = topic?.partitions.get(usize::try_from(partition).ok()?)?;
    (p.leader >= 0).then_some((p.leader, p.leader_epoch))
}

/// The known brokers among `ids`, each once, with their host and port on `listener`: the
/// node endpoints of an answer's leader hints.
pub fn brokers_among<'a>(
    image: &'a MetadataImage,
    mut ids: Vec<i32>,
    listener: &'a str,
) -> impl Iterator<Item = (&'a BrokerInfo, &'a str, i32)> {
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter().filter_map(move |id| {
        let b = image.brokers.get(&id)?;
        let (host, port) = b.endpoint(listener)?;
        Some((b, host, port))
    })
}

/// A string for a response.
pub fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// The requesting client's id and host ("/ip"), as group descriptions show them.
pub fn client_identity(
    scope: &crate::request_scope::RequestScope,
    header: &kafka_protocol::messages::RequestHeader,
) -> (String, String) {
    let id = header
        .client_id
        .as_ref()
        .map(|s| s.to_string())
        .unwrap_or_default();
    (id, scope.client_host())
}

/// Takes `partitions` created or deleted from the client's `controller_mutation_rate` quota
/// (KIP-599): refused with THROTTLING_QUOTA_EXCEEDED while it is used up on the API versions
/// that know that error (`strict`); older versions always pass and are only throttled.
pub fn take_mutation_quota(
    ctx: &crate::context::Ctx,
    scope: &crate::request_scope::RequestScope,
    header: &kafka_protocol::messages::RequestHeader,
    partitions: i32,
    strict: bool,
) -> Result<(), crate::error::BrokerError> {
    let (taken, throttle) = ctx.quotas.take_mutations(
        &ctx.controller.image(),
        crate::quota::QuotaClient::of(scope, header),
        u32::try_from(partitions).unwrap_or(0),
        strict,
        std::time::Instant::now(),
    );
    scope.throttle(throttle);
    if taken {
        Ok(())
    } else {
        Err(crate::error::BrokerError::ThrottlingQuotaExceeded)
    }
}

/// Kafka's "authorized operations not requested" marker.
pub const AUTHORIZED_OPS_OMITTED: i32 = i32::MIN;

/// Whether the request's principal may do `operation` on `resource`/`name`, without
/// counting a refusal: for lists that leave out what the principal may not see.
pub fn visible(
    ctx: &crate::context::Ctx,
    scope: &crate::request_scope::RequestScope,
    image: &MetadataImage,
    operation: Operation,
    resource: Resource,
    name: &str,
) -> bool {
    ctx.authorizer
        .allows(image, scope.requester(), operation, resource, name)
}

/// Whether the request's principal may do `operation` on `resource`/`name`; a refusal is
/// counted.
pub fn allowed(
    ctx: &crate::context::Ctx,
    scope: &crate::request_scope::RequestScope,
    image: &MetadataImage,
    operation: Operation,
    resource: Resource,
    name: &str,
) -> bool {
    let allowed = visible(ctx, scope, image, operation, resource, name);
    if !allowed {
        crate::metrics::record_authorization_denied(resource.name(), operation.name());
    }
    allowed
}

/// [`allowed`], as the resource type's *_AUTHORIZATION_FAILED when refused.
pub fn authorize(
    ctx: &crate::context::Ctx,
    scope: &crate::request_scope::RequestScope,
    image: &MetadataImage,
    operation: Operation,
    resource: Resource,
    name: &str,
) -> Result<(), BrokerError> {
    if allowed(ctx, scope, image, operation, resource, name) {
        return Ok(());
    }
    Err(match resource {
        Resource::Topic => BrokerError::TopicAuthorizationFailed,
        Resource::Group => BrokerError::GroupAuthorizationFailed,
        Resource::Cluster => BrokerError::ClusterAuthorizationFailed,
        Resource::TransactionalId => BrokerError::TransactionalIdAuthorizationFailed,
    })
}

/// [`authorize`] on the cluster resource.
pub fn authorize_cluster(
    ctx: &crate::context::Ctx,
    scope: &crate::request_scope::RequestScope,
    operation: Operation,
) -> Result<(), BrokerError> {
    let image = ctx.controller.image();
    authorize(
        ctx,
        scope,
        &image,
        operation,
        Resource::Cluster,
        CLUSTER_NAME,
    )
}

/// Kafka's authorized-operations bits of a resource for the request's principal (every
/// operation of the resource type when there is no authorizer, as Kafka answers).
pub fn authorized_operations(
    ctx: &crate::context::Ctx,
    scope: &crate::request_scope::RequestScope,
    image: &MetadataImage,
    resource: Resource,
    name: &str,
) -> i32 {
    ctx.authorizer
        .authorized_operations(image, scope.requester(), resource, name)
}

/// Topic `name`, if the request's principal may do `operation` on it: refused with
/// TOPIC_AUTHORIZATION_FAILED first (whether or not it exists, so a refusal says nothing
/// about what exists), then UNKNOWN_TOPIC_OR_PARTITION.
pub fn authorized_topic<'a>(
    ctx: &crate::context::Ctx,
    scope: &crate::request_scope::RequestScope,
    image: &'a MetadataImage,
    operation: Operation,
    name: &str,
) -> Result<&'a TopicInfo, BrokerError> {
    authorize(ctx, scope, image, operation, Resource::Topic, name)?;
    image
        .topics
        .get(name)
        .ok_or(BrokerError::UnknownTopicOrPartition)
}

/// [`authorize`] on group `group`.
pub fn authorize_group(
    ctx: &crate::context::Ctx,
    scope: &crate::request_scope::RequestScope,
    operation: Operation,
    group: &str,
) -> Result<(), BrokerError> {
    let image = ctx.controller.image();
    authorize(ctx, scope, &image, operation, Resource::Group, group)
}

/// What a transaction's offsets need: WRITE on its transactional id, READ on the group
/// (AddOffsetsToTxn, TxnOffsetCommit).
pub fn authorize_txn_offsets(
    ctx: &crate::context::Ctx,
    scope: &crate::request_scope::RequestScope,
    image: &MetadataImage,
    transactional_id: &str,
    group: &str,
) -> Result<(), BrokerError> {
    authorize(
        ctx,
        scope,
        image,
        Operation::Write,
        Resource::TransactionalId,
        transactional_id,
    )?;
    authorize(ctx, scope, image, Operation::Read, Resource::Group, group)
}
