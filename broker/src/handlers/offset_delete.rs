//! OffsetDelete: drop a group's committed offsets for some partitions.

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse, RequestHeader};

use super::{allowed, authorize_group};
use crate::context::Ctx;
use crate::error::{code_of, group_code, BrokerError, GroupError};
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation::{Delete, Read};
use crate::security::authorizer::Resource::Topic;

/// Deletes the offsets unless the group is active (then GROUP_SUBSCRIBED_TO_TOPIC).
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    _header: &RequestHeader,
    req: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let group = req.group_id.as_str();
    // DELETE on the group; READ on each topic (checked below).
    if let Err(e) = authorize_group(ctx, scope, Delete, group) {
        return OffsetDeleteResponse::default().with_error_code(e.code());
    }
    let image = ctx.controller.image();
    if req
        .topics
        .iter()
        .any(|t| !allowed(ctx, scope, &image, Read, Topic, t.name.0.as_str()))
    {
        return OffsetDeleteResponse::default()
            .with_error_code(BrokerError::TopicAuthorizationFailed.code());
    }
    if ctx.groups.describe(ctx.coordinator_io(), group).is_none() {
        return OffsetDeleteResponse::default()
            .with_error_code(group_code(Some(GroupError::GroupIdNotFound)));
    }
    let active = ctx.groups.is_active(ctx.coordinator_io(), group);
    let targets: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    let code = if active {
        group_code(Some(GroupError::GroupSubscribedToTopic))
    } else {
        code_of(
            &ctx.groups
                .delete_offsets(ctx.coordinator_io(), group, Some(&targets))
                .await,
        )
    };
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
