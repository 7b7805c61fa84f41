//! ConsumerGroupHeartbeat (KIP-848): join, stay, leave; the broker assigns partitions of the
//! topics a member names or its regex matches.

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, RequestHeader,
};

use super::authorize;
use super::{client_identity, str_bytes};
use crate::context::Ctx;
use crate::security::authorizer::Operation::{Describe, Read};
use crate::security::authorizer::Resource::{Group, Topic};

use crate::error::group_code;
use crate::group::consumer::Heartbeat;
use crate::group_config;
use crate::request_scope::RequestScope;

/// Applies the heartbeat and answers with the member's epoch and assignment.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    header: &RequestHeader,
    req: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    // READ on the group, DESCRIBE on every topic named in the subscription.
    let image = ctx.controller.image();
    let refused = authorize(ctx, scope, &image, Read, Group, req.group_id.as_str())
        .and_then(|_| {
            req.subscribed_topic_names
                .iter()
                .flatten()
                .try_for_each(|t| authorize(ctx, scope, &image, Describe, Topic, t.0.as_str()))
        })
        .err();
    if let Some(e) = refused {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(e.message()));
    }
    let (client_id, client_host) = client_identity(scope, header);
    let hb = Heartbeat {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.as_ref().map(|s| s.to_string()),
        subscribed: req
            .subscribed_topic_names
            .as_ref()
            .map(|t| t.iter().map(|n| n.0.to_string()).collect()),
        regex: req.subscribed_topic_regex.as_ref().map(|r| r.to_string()),
        rack: req.rack_id.as_ref().map(|r| r.to_string()),
        owned: req.topic_partitions.as_ref().map(|tps| {
            tps.iter()
                .map(|tp| (tp.topic_id, tp.partitions.iter().copied().collect()))
                .collect()
        }),
        client_id,
        client_host,
    };
    let image = ctx.controller.image();
    let r = ctx
        .groups
        .consumer_heartbeat(ctx.coordinator_io(), req.group_id.as_str(), hb, &image)
        .await;
    let assignment = r.assignment.map(|a| {
        Assignment::default().with_topic_partitions(
            a.into_iter()
                .map(|(topic_id, ps)| {
                    TopicPartitions::default()
                        .with_topic_id(topic_id)
                        .with_partitions(ps.into_iter().collect())
                })
                .collect(),
        )
    });
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(group_code(r.error))
        .with_error_message(r.message.map(str_bytes))
        .with_member_id(Some(str_bytes(r.member_id)))
        .with_member_epoch(r.member_epoch)
        .with_heartbeat_interval_ms(group_config::heartbeat_interval_ms(
            image.group_configs.get(req.group_id.as_str()),
            ctx.config.consumer_heartbeat_interval_ms(),
        ))
        .with_assignment(assignment)
}
