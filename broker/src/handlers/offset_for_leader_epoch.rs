//! OffsetForLeaderEpoch (KIP-101/KIP-279): where a leader epoch ended in this log.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, RequestHeader,
};

use super::{authorize_cluster, authorized_topic};
use crate::context::Ctx;
use crate::error::BrokerError;
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation::{ClusterAction, Describe};

/// Answers each partition with the end offset of the largest epoch <= the one asked.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    _header: &RequestHeader,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let image = ctx.controller.image();
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let topic = if req.replica_id.0 >= 0 {
                // A follower truncating its log: a broker's request.
                authorize_cluster(ctx, scope, ClusterAction).and_then(|_| {
                    image
                        .topics
                        .get(t.topic.0.as_str())
                        .ok_or(BrokerError::UnknownTopicOrPartition)
                })
            } else {
                authorized_topic(ctx, scope, &image, Describe, t.topic.0.as_str())
            };
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let answer = topic
                        .clone()
                        .and_then(|topic| ctx.replicas.leader(topic, p.partition))
                        .and_then(|leader| {
                            ctx.replicas
                                .check_leader_epoch(&leader.info, p.current_leader_epoch)?;
                            Ok(leader
                                .log
                                .end_offset_for_epoch(p.leader_epoch)
                                .unwrap_or_else(|| {
                                    // Nothing written in any epoch <= the one asked, or an empty
                                    // cache: the current epoch ends at the log end.
                                    if p.leader_epoch >= leader.info.leader_epoch {
                                        (leader.info.leader_epoch, leader.log.log_end_offset())
                                    } else {
                                        (-1, -1)
                                    }
                                }))
                        });
                    let out = EpochEndOffset::default().with_partition(p.partition);
                    match answer {
                        Ok((epoch, end)) => out.with_leader_epoch(epoch).with_end_offset(end),
                        Err(e) => out
                            .with_error_code(e.code())
                            .with_leader_epoch(-1)
                            .with_end_offset(-1),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
