//! OffsetCommit: store a group's consumed positions in `__consumer_offsets`.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, RequestHeader};

use super::{allowed, authorize};
use crate::context::Ctx;
use crate::error::code_of;
use crate::error::BrokerError;
use crate::group::offsets::Committed;
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation::Read;
use crate::security::authorizer::Resource::{Group, Topic};

/// Commits every partition of the request in one write.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    _header: &RequestHeader,
    req: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let now = crate::clock::now_ms();
    let image = ctx.controller.image();
    let mut offsets = Vec::new();
    let mut unknown = Vec::new();
    // READ on the group (else every partition is refused), READ on each topic.
    let group_refused = authorize(ctx, scope, &image, Read, Group, req.group_id.as_str()).err();
    let mut refused_topics: Vec<&str> = Vec::new();
    for t in &req.topics {
        if group_refused.is_some() {
            break;
        }
        if !allowed(ctx, scope, &image, Read, Topic, t.name.0.as_str()) {
            refused_topics.push(t.name.0.as_str());
            continue;
        }
        for p in &t.partitions {
            let tp = (t.name.0.to_string(), p.partition_index);
            let exists = image.topics.get(&tp.0).is_some_and(|info| {
                (p.partition_index as usize) < info.partitions.len() && p.partition_index >= 0
            });
            if !exists {
                unknown.push(tp);
                continue;
            }
            let committed = Committed {
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p
                    .committed_metadata
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
                commit_ms: now,
            };
            offsets.push((tp, committed));
        }
    }
    let result = if offsets.is_empty() {
        Ok(())
    } else {
        ctx.groups
            .commit(
                ctx.coordinator_io(),
                req.group_id.as_str(),
                req.member_id.as_str(),
                req.generation_id_or_member_epoch,
                offsets,
            )
            .await
    };
    let code = match &group_refused {
        Some(e) => e.code(),
        None => code_of(&result),
    };
    let topic_refused = BrokerError::TopicAuthorizationFailed.code();
    let unknown_code = kafka_protocol::error::ResponseError::UnknownTopicOrPartition.code();
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let missing = unknown
                        .iter()
                        .any(|(n, i)| n == t.name.0.as_str() && *i == p.partition_index);
                    let error = if refused_topics.contains(&t.name.0.as_str()) {
                        topic_refused
                    } else if missing {
                        unknown_code
                    } else {
                        code
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
