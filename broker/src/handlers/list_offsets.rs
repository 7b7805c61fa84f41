//! ListOffsets: earliest, latest, max-timestamp and by-timestamp offsets.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, RequestHeader};

use bytes::Bytes;
use kafka_protocol::records::{Record, RecordBatchDecoder};
use sluice_storage::batch;

use super::authorized_topic;
use crate::context::Ctx;
use crate::error::BrokerError;
use crate::replication::LeaderPartition;
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation::Describe;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

/// Answers each partition's offset query.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    header: &RequestHeader,
    req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    // leader_epoch exists from v4; the codec refuses to drop a set field silently.
    let with_epoch = header.request_api_version >= 4;
    let image = ctx.controller.image();
    let committed_only = req.isolation_level == 1;
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let info = authorized_topic(ctx, scope, &image, Describe, t.name.0.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let answer = info
                        .clone()
                        .and_then(|info| ctx.replicas.leader(info, p.partition_index))
                        .and_then(|leader| {
                            ctx.replicas
                                .check_leader_epoch(&leader.info, p.current_leader_epoch)?;
                            lookup(ctx, &leader, p.timestamp, committed_only)
                        });
                    let out = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    match answer {
                        Ok((offset, timestamp, epoch)) => out
                            .with_offset(offset)
                            .with_timestamp(timestamp)
                            .with_leader_epoch(if with_epoch { epoch } else { -1 }),
                        Err(e) => out
                            .with_error_code(e.code())
                            .with_offset(-1)
                            .with_timestamp(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// (offset, timestamp, leader epoch) for one query; offset -1 when no record qualifies.
/// read_committed (`committed_only`) sees the log up to its last stable offset.
fn lookup(
    ctx: &Ctx,
    p: &LeaderPartition,
    timestamp: i64,
    committed_only: bool,
) -> Result<(i64, i64, i32), BrokerError> {
    let log = &p.log;
    let hw = if committed_only {
        log.last_stable_offset()
    } else {
        log.high_watermark()
    };
    let epoch_at = |offset: i64| {
        log.leader_epochs()
            .iter()
            .rev()
            .find(|(_, start)| *start <= offset)
            .map(|(e, _)| *e)
            .unwrap_or(p.info.leader_epoch)
    };
    Ok(match timestamp {
        LATEST | LATEST_TIERED => (hw, -1, p.info.leader_epoch),
        EARLIEST | EARLIEST_LOCAL => (log.log_start_offset(), -1, epoch_at(log.log_start_offset())),
        MAX_TIMESTAMP => match ctx.store.batch_with_max_timestamp(log, hw)? {
            Some(batch) => {
                let (offset, ts) = pick_record(&batch, |records| {
                    let max = records.iter().map(|r| r.timestamp).max()?;
                    records.iter().find(|r| r.timestamp == max)
                });
                (offset, ts, epoch_at(offset))
            }
            None => (-1, -1, -1),
        },
        ts if ts >= 0 => match ctx.store.batch_for_timestamp(log, ts, hw)? {
            Some(batch) => {
                let (offset, found) =
                    pick_record(&batch, |records| records.iter().find(|r| r.timestamp >= ts));
                let offset = offset.max(log.log_start_offset());
                (offset, found, epoch_at(offset))
            }
            None => (-1, -1, -1),
        },
        other => {
            return Err(BrokerError::InvalidRequest(format!(
                "unknown timestamp {other}"
            )))
        }
    })
}

/// (offset, timestamp) of the record `choose` picks in a stored batch; the batch's first
/// offset and max timestamp when it uses LogAppendTime or cannot be decoded.
fn pick_record(batch: &Bytes, choose: impl Fn(&[Record]) -> Option<&Record>) -> (i64, i64) {
    let Ok(header) = batch::parse_header(batch) else {
        return (-1, -1);
    };
    let fallback = (header.base_offset, header.max_timestamp);
    if header.attributes & batch::TIMESTAMP_TYPE_BIT != 0 {
        // LogAppendTime: every record carries the batch's time.
        return fallback;
    }
    match RecordBatchDecoder::decode(&mut batch.clone()) {
        Ok(set) => choose(&set.records)
            .map(|r| (r.offset, r.timestamp))
            .unwrap_or(fallback),
        Err(_) => fallback,
    }
}
