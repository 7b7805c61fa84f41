//! OffsetCommit: store a group's consumed positions in `__consumer_offsets`.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, RequestHeader};

use crate::context::Ctx;
use crate::error::code_of;
use crate::group::offsets::Committed;
use crate::request_scope::RequestScope;

/// Commits every partition of the request in one write.
pub async fn handle(
    ctx: &Ctx,
    _scope: &RequestScope,
    _header: &RequestHeader,
    req: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let now = crate::clock::now_ms();
    let image = ctx.controller.image();
    let mut offsets = Vec::new();
    let mut unknown = Vec::new();
    for t in &req.topics {
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
    let code = code_of(&result);
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
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(if missing { unknown_code } else { code })
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
