//! DeleteRecords (`kafka-delete-records`): moves partitions' log start offsets forward by
//! hand. Offset -1 means the high watermark; anything past it is OFFSET_OUT_OF_RANGE.

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, RequestHeader};

use super::authorized_topic;
use crate::context::Ctx;
use crate::error::BrokerError;
use crate::replication::LeaderPartition;
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation::Delete;

const HIGH_WATERMARK: i64 = -1;

/// Deletes records below each requested offset; answers each partition's new log start.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    _header: &RequestHeader,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let image = ctx.controller.image();
    let mut topics = Vec::new();
    for t in &req.topics {
        let info = authorized_topic(ctx, scope, &image, Delete, t.name.0.as_str());
        let mut partitions = Vec::new();
        for p in &t.partitions {
            let answer = info
                .clone()
                .and_then(|info| ctx.replicas.leader(info, p.partition_index))
                .and_then(|leader| delete_below(ctx, &leader, p.offset));
            let out =
                DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
            partitions.push(match answer {
                Ok(low_watermark) => out.with_low_watermark(low_watermark),
                Err(e) => out.with_error_code(e.code()).with_low_watermark(-1),
            });
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}

/// Advances one partition's log start; returns it.
fn delete_below(ctx: &Ctx, leader: &LeaderPartition, offset: i64) -> Result<i64, BrokerError> {
    let log = leader.log.clone();
    let hw = log.high_watermark();
    let target = if offset == HIGH_WATERMARK { hw } else { offset };
    if target < 0 || target > hw {
        return Err(BrokerError::OffsetOutOfRange);
    }
    if ctx.store.advance_log_start(&log, target)? {
        let store = ctx.store.clone();
        tokio::task::spawn_blocking(move || crate::retention::reclaim(&store, &[log]));
    }
    Ok(leader.log.log_start_offset())
}
