//! Produce: validate batches, append them through the leader-append path, answer per acks.
//! A producer's first transactional write to a partition waits for its transaction
//! coordinator's word (KIP-890): from v12 (transaction version 2) the coordinator adds the
//! partition to the transaction, before that it confirms the client added it. From v13
//! topics are named by id.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::join_all;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse,
    TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;
use sluice_controller::MetadataImage;
use sluice_storage::{batch, PartitionLog, TxnGuard};

use super::{authorize, brokers_among, leader_hint, requested_topic, str_bytes};
use crate::context::Ctx;
use crate::coordinator::TxnProducer;
use crate::error::{BrokerError, TxnError};
use crate::metrics;
use crate::quota::{throttle_ms, QuotaClient, QuotaKind};
use crate::replication::{Acks, LeaderAppend};
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation::Write;
use crate::security::authorizer::Resource::{Topic, TransactionalId};
use crate::topic_config::EffectiveConfigs;

/// One partition's part of the request, once validated.
struct Accepted {
    topic: usize,
    partition: i32,
    log: Arc<PartitionLog>,
    bytes: usize,
    records: i64,
    /// The producer of its transactional batches, if any.
    txn: Option<TxnProducer>,
}

/// Appends every valid partition's batches; `None` for acks=0 (no response is sent).
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    header: &RequestHeader,
    req: ProduceRequest,
) -> Option<ProduceResponse> {
    let image = ctx.controller.image();
    // Every byte sent counts against the producer's quota, appended or not, as in Kafka. A
    // producer over it gets no pipelining: its connection reads nothing more until this
    // request is answered, and then nothing for the throttle time.
    let sent = req
        .topic_data
        .iter()
        .flat_map(|t| &t.partition_data)
        .map(|p| p.records.as_ref().map_or(0, Bytes::len))
        .sum();
    let throttle = ctx.quotas.record(
        &image,
        QuotaKind::Produce,
        QuotaClient::of(scope, header),
        sent,
        Instant::now(),
    );
    scope.throttle(throttle);
    let by_id = header.request_api_version >= 13;
    let mut responses: Vec<TopicProduceResponse> = Vec::with_capacity(req.topic_data.len());
    let mut accepted: Vec<Accepted> = Vec::new();
    let mut appends: Vec<LeaderAppend> = Vec::new();
    // Each topic's name ("" for an id no topic has).
    let mut names: Vec<String> = Vec::with_capacity(req.topic_data.len());

    // A transactional write needs WRITE on its transactional id, every write WRITE on its
    // topic.
    let txn_refused = req
        .transactional_id
        .as_ref()
        .and_then(|id| authorize(ctx, scope, &image, Write, TransactionalId, id).err());
    for (ti, topic) in req.topic_data.iter().enumerate() {
        let info = requested_topic(&image, by_id, &topic.name.0, topic.topic_id).and_then(|i| {
            if let Some(e) = &txn_refused {
                return Err(e.clone());
            }
            authorize(ctx, scope, &image, Write, Topic, &i.name).map(|_| i)
        });
        let name = info.as_ref().map_or("", |i| i.name.as_str());
        names.push(name.to_string());
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for p in &topic.partition_data {
            let prepared = info.clone().and_then(|info| {
                let leader = ctx.replicas.leader(info, p.index)?;
                ctx.disk.check_writable()?;
                let configs = EffectiveConfigs::new(&info.configs, &ctx.config);
                if leader.info.isr.len() < configs.min_insync_replicas() && req.acks == -1 {
                    return Err(BrokerError::NotEnoughReplicas);
                }
                let records = p.records.clone().unwrap_or_default();
                let compacted = configs
                    .cleanup_policy_has("compact")
                    .then_some((info.name.as_str(), p.index));
                let valid = validate(&records, configs.max_message_bytes(), compacted)?;
                Ok((leader, valid, records.len(), configs))
            });
            match prepared {
                Ok((leader, (batches, count, txn), bytes, configs)) => {
                    accepted.push(Accepted {
                        topic: ti,
                        partition: p.index,
                        log: leader.log.clone(),
                        bytes,
                        records: count,
                        txn,
                    });
                    appends.push(LeaderAppend {
                        leader,
                        batches,
                        log_append_time: configs.log_append_time(),
                        flush_messages: configs.flush_messages().max(1) as u64,
                        min_isr: configs.min_insync_replicas(),
                        txn_guard: None,
                    });
                    partitions.push(None);
                }
                Err(e) => partitions.push(Some(error_response(p.index, &e))),
            }
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name.clone())
                .with_topic_id(topic.topic_id)
                .with_partition_responses(partitions.into_iter().flatten().collect()),
        );
    }

    // Transactional writes go ahead only with their coordinator's word.
    if accepted.iter().any(|a| a.txn.is_some()) {
        let add = header.request_api_version >= 12;
        let id = req.transactional_id.as_ref().map(|id| id.as_str());
        let guards = join_all(accepted.iter().map(|a| {
            let topic = names.get(a.topic).map_or("", String::as_str);
            txn_guard(ctx, id, add, topic, a)
        }))
        .await;
        let mut kept = (Vec::new(), Vec::new());
        for ((a, mut append), guard) in accepted.into_iter().zip(appends).zip(guards) {
            match guard {
                Ok(guard) => {
                    append.txn_guard = guard;
                    kept.0.push(a);
                    kept.1.push(append);
                }
                Err(e) => {
                    if let Some(t) = responses.get_mut(a.topic) {
                        t.partition_responses.push(error_response(a.partition, &e));
                    }
                }
            }
        }
        (accepted, appends) = kept;
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
                if throttle.is_zero() {
                    scope.start_next_request()
                }
            })
            .await;
        for (a, outcome) in accepted.iter().zip(outcomes) {
            let response = match outcome {
                Ok(o) => {
                    if let Some(name) = names.get(a.topic).filter(|_| !o.duplicate) {
                        metrics::record_produce(name, a.bytes, a.records);
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
    // Leadership may have moved while the batches were appended: name today's leaders.
    let leaders = name_leaders(
        &ctx.controller.image(),
        &names,
        &mut responses,
        scope.listener_name(),
    );
    Some(
        ProduceResponse::default()
            .with_responses(responses)
            .with_node_endpoints(leaders)
            .with_throttle_time_ms(throttle_ms(throttle)),
    )
}

/// Names the current leader of every partition refused for having the wrong one, and
/// returns those leaders' endpoints (KIP-951, Produce v10+).
fn name_leaders(
    image: &MetadataImage,
    names: &[String],
    responses: &mut [TopicProduceResponse],
    listener: &str,
) -> Vec<NodeEndpoint> {
    let mut leaders = Vec::new();
    for (name, topic) in names.iter().zip(responses.iter_mut()) {
        for p in &mut topic.partition_responses {
            if let Some((leader, epoch)) =
                leader_hint(image.topics.get(name), p.index, p.error_code)
            {
                p.current_leader = LeaderIdAndEpoch::default()
                    .with_leader_id(leader.into())
                    .with_leader_epoch(epoch);
                leaders.push(leader);
            }
        }
    }
    brokers_among(image, leaders, listener)
        .map(|(b, host, port)| {
            NodeEndpoint::default()
                .with_node_id(b.id.into())
                .with_host(str_bytes(host))
                .with_port(port)
                .with_rack(b.rack.clone().map(str_bytes))
        })
        .collect()
}

/// The guard of a transactional write, once its coordinator approved it (none for other
/// writes). Refusals reach the producer as Kafka answers them: retriable trouble as
/// NOT_ENOUGH_REPLICAS, which every client retries, and a fenced producer as a stale epoch.
async fn txn_guard(
    ctx: &Ctx,
    transactional_id: Option<&str>,
    add: bool,
    topic: &str,
    a: &Accepted,
) -> Result<Option<TxnGuard>, BrokerError> {
    let Some(producer) = a.txn else {
        return Ok(None);
    };
    let id = transactional_id.ok_or_else(|| {
        BrokerError::InvalidRecord("transactional records need a transactional id".into())
    })?;
    let guard = a.log.txn_guard(producer.id, producer.epoch);
    if !guard.in_transaction {
        let partition = (topic.to_string(), a.partition);
        let io = ctx.coordinator_io();
        ctx.txns
            .enlist(io, id, producer, &partition, add)
            .await
            .map_err(|e| match e {
                BrokerError::Txn(TxnError::ProducerFenced) => BrokerError::InvalidProducerEpoch,
                BrokerError::Txn(TxnError::ConcurrentTransactions)
                | BrokerError::Txn(TxnError::Coordinator(_))
                | BrokerError::Coordinator(_)
                | BrokerError::LeaderNotAvailable => BrokerError::NotEnoughReplicas,
                other => other,
            })?;
    }
    Ok(Some(guard))
}

/// Splits and checks the request's batches; returns them as owned buffers, the record
/// count, and the producer of the transactional batches if there are any. `compacted`
/// names the partition (topic, index) when its topic is compacted (every record needs a
/// key).
fn validate(
    records: &Bytes,
    max_message_bytes: usize,
    compacted: Option<(&str, i32)>,
) -> Result<(Vec<Bytes>, i64, Option<TxnProducer>), BrokerError> {
    if records.is_empty() {
        return Err(BrokerError::InvalidRecord(
            "produce request without record batches".into(),
        ));
    }
    let parts = batch::split_batches(records)?;
    let mut out = Vec::with_capacity(parts.len());
    let mut count = 0i64;
    let mut txn = None;
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
        if h.is_transactional() && h.has_producer_id() {
            let producer = TxnProducer {
                id: h.producer_id,
                epoch: h.producer_epoch,
            };
            // The guard covers one producer: a second one in the same request is refused.
            if txn.is_some_and(|t| t != producer) {
                return Err(BrokerError::InvalidRecord(
                    "transactional batches of two producers in one partition".into(),
                ));
            }
            txn = Some(producer);
        }
        count += i64::from(h.records_count);
        out.push(bytes);
    }
    Ok((out, count, txn))
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
