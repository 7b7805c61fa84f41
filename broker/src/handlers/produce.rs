//! Produce: validate batches, append them through the leader-append path, answer per acks.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;
use sluice_storage::{batch, PartitionLog};

use crate::context::Ctx;
use crate::error::BrokerError;
use crate::metrics;
use crate::replication::{Acks, LeaderAppend};
use crate::request_scope::RequestScope;
use crate::topic_config::TopicConfigs;

/// One partition's part of the request, once validated.
struct Accepted {
    topic: usize,
    partition: i32,
    log: Arc<PartitionLog>,
    bytes: usize,
    records: i64,
}

/// Appends every valid partition's batches; `None` for acks=0 (no response is sent).
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    _header: &RequestHeader,
    req: ProduceRequest,
) -> Option<ProduceResponse> {
    let image = ctx.controller.image();
    let mut responses: Vec<TopicProduceResponse> = Vec::with_capacity(req.topic_data.len());
    let mut accepted: Vec<Accepted> = Vec::new();
    let mut appends: Vec<LeaderAppend> = Vec::new();

    for (ti, topic) in req.topic_data.iter().enumerate() {
        let name = topic.name.0.as_str();
        let info = image.topics.get(name);
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for p in &topic.partition_data {
            let prepared = info
                .ok_or(BrokerError::UnknownTopicOrPartition)
                .and_then(|info| {
                    let leader = ctx.replicas.leader(info, p.index)?;
                    ctx.disk.check_writable()?;
                    let configs = TopicConfigs::new(&info.configs, &ctx.config);
                    if leader.info.isr.len() < configs.min_insync_replicas() && req.acks == -1 {
                        return Err(BrokerError::NotEnoughReplicas);
                    }
                    let records = p.records.clone().unwrap_or_default();
                    let compacted = configs
                        .cleanup_policy_has("compact")
                        .then_some((name, p.index));
                    let (batches, count) =
                        validate(&records, configs.max_message_bytes(), compacted)?;
                    Ok((leader, batches, count, records.len(), configs))
                });
            match prepared {
                Ok((leader, batches, count, bytes, configs)) => {
                    accepted.push(Accepted {
                        topic: ti,
                        partition: p.index,
                        log: leader.log.clone(),
                        bytes,
                        records: count,
                    });
                    appends.push(LeaderAppend {
                        leader,
                        batches,
                        log_append_time: configs.log_append_time(),
                        flush_messages: configs.flush_messages().max(1) as u64,
                        min_isr: configs.min_insync_replicas(),
                    });
                    partitions.push(None);
                }
                Err(e) => partitions.push(Some(error_response(p.index, &e))),
            }
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name.clone())
                .with_partition_responses(partitions.into_iter().flatten().collect()),
        );
    }

    if !appends.is_empty() {
        let acks = match req.acks {
            -1 => Acks::All {
                timeout: Duration::from_millis(req.timeout_ms.max(0) as u64),
            },
            _ => Acks::Leader,
        };
        // Offsets follow queue order: the connection's next produce may queue behind this
        // one while this one is written and replicated.
        let outcomes = ctx
            .replicas
            .append_as_leader(&ctx.controller, appends, acks, || {
                scope.start_next_request()
            })
            .await;
        for (a, outcome) in accepted.iter().zip(outcomes) {
            let response = match outcome {
                Ok(o) => {
                    if let Some(t) = req.topic_data.get(a.topic).filter(|_| !o.duplicate) {
                        metrics::record_produce(t.name.0.as_str(), a.bytes, a.records);
                    }
                    PartitionProduceResponse::default()
                        .with_index(a.partition)
                        .with_base_offset(o.base_offset)
                        .with_log_append_time_ms(o.log_append_time)
                        .with_log_start_offset(a.log.log_start_offset())
                }
                Err(e) => error_response(a.partition, &e),
            };
            if let Some(t) = responses.get_mut(a.topic) {
                t.partition_responses.push(response);
            }
        }
    }
    if req.acks == 0 {
        return None;
    }
    Some(ProduceResponse::default().with_responses(responses))
}

/// Splits and checks the request's batches; returns them as owned buffers and the record count.
/// `compacted` names the partition (topic, index) when its topic is compacted (every record
/// needs a key).
fn validate(
    records: &Bytes,
    max_message_bytes: usize,
    compacted: Option<(&str, i32)>,
) -> Result<(Vec<Bytes>, i64), BrokerError> {
    if records.is_empty() {
        return Err(BrokerError::InvalidRecord(
            "produce request without record batches".into(),
        ));
    }
    let parts = batch::split_batches(records)?;
    let mut out = Vec::with_capacity(parts.len());
    let mut count = 0i64;
    for (pos, h) in parts {
        if h.total_len() > max_message_bytes {
            return Err(BrokerError::MessageTooLarge);
        }
        // Markers are the transaction coordinator's to write (WriteTxnMarkers).
        if h.is_control() {
            return Err(BrokerError::InvalidRecord(
                "clients may not write control batches".into(),
            ));
        }
        let bytes = records.slice(pos..pos + h.total_len());
        // Compaction keeps the latest record per key: a record without one has no place.
        if let Some((topic, partition)) = compacted {
            let keyless: Vec<i32> = sluice_storage::records::records(&bytes)?
                .1
                .iter()
                .zip(0..)
                .filter_map(|(r, index)| r.key.is_none().then_some(index))
                .collect();
            if !keyless.is_empty() {
                return Err(BrokerError::InvalidRecords {
                    indexes: keyless,
                    reason: format!(
                        "Compacted topic cannot accept message without key in topic partition \
                         {topic}-{partition}."
                    ),
                });
            }
        }
        count += i64::from(h.records_count);
        out.push(bytes);
    }
    Ok((out, count))
}

/// Records named with their own message in `record_errors`; the rest carry only their
/// index, so a batch of a million bad records gets a small answer (the error message says
/// what is wrong with all of them).
const RECORD_ERROR_MESSAGES: usize = 3;

fn error_response(index: i32, e: &BrokerError) -> PartitionProduceResponse {
    metrics::record_error(kafka_protocol::messages::ApiKey::Produce, e.code());
    let record_errors = match e {
        BrokerError::InvalidRecords { indexes, reason } => {
            let reason = StrBytes::from_string(reason.clone());
            indexes
                .iter()
                .enumerate()
                .map(|(n, i)| {
                    BatchIndexAndErrorMessage::default()
                        .with_batch_index(*i)
                        .with_batch_index_error_message(
                            (n < RECORD_ERROR_MESSAGES).then(|| reason.clone()),
                        )
                })
                .collect()
        }
        _ => Vec::new(),
    };
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(e.code())
        .with_error_message(Some(e.message()))
        .with_record_errors(record_errors)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
}
