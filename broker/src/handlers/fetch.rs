//! Fetch: read stored batches below the high watermark (the last stable offset for
//! read_committed, with the aborted transactions in range); long-poll until min_bytes or
//! max_wait_ms; full and incremental (session) fetches. A fetch carrying a replica id is a
//! follower's: it reads up to the log end, and its fetch offset tells the leader how far the
//! follower got (which moves the high watermark). From v13 topics are named by id.
//!
//! From v11 a consumer may read from any replica (KIP-392): a follower serves it up to the
//! high watermark the leader last sent, and with `replica.selector.class` set to Kafka's
//! rack-aware selector the leader sends a consumer that names its rack to an in-sync
//! replica there (`preferred_read_replica`), as RocketMQ's consumers read from slaves.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::select_all;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, RequestHeader};
use sluice_controller::{MetadataImage, PartitionInfo, TopicInfo};
use sluice_storage::PartitionLog;
use tokio::sync::watch;

use super::{
    allowed, authorize_cluster, brokers_among, leader_hint, requested_topic, str_bytes, topic_name,
};
use crate::context::Ctx;
use crate::error::BrokerError;
use crate::fetch_session::{FetchTarget, Forgotten, PartitionMarks, SessionMode};
use crate::metrics;
use crate::quota::{throttle_ms, QuotaClient, QuotaKind};
use crate::read_ahead::Ready;
use crate::replication::LeaderPartition;
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation::{ClusterAction, Read};
use crate::security::authorizer::Resource::Topic;

/// What one partition's read produced.
struct PartitionRead {
    target: FetchTarget,
    result: Result<ReadData, BrokerError>,
}

struct ReadData {
    records: Bytes,
    high_watermark: i64,
    last_stable: i64,
    /// For read_committed: (producer id, first offset) of aborted transactions in range.
    aborted: Option<Vec<(i64, i64)>>,
    log_start: i64,
    log: Arc<PartitionLog>,
    leader_epoch: i32,
    /// The replica the consumer should read this partition from instead (KIP-392).
    preferred_read_replica: Option<i32>,
}

/// Serves a fetch, waiting up to max_wait_ms for min_bytes to be available.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    header: &RequestHeader,
    req: FetchRequest,
) -> FetchResponse {
    let by_id = header.request_api_version >= 13;
    let image = ctx.controller.image();
    let requested: Vec<FetchTarget> = req
        .topics
        .iter()
        .flat_map(|t| {
            // An id no topic has keeps an empty name: that partition answers UNKNOWN_TOPIC_ID.
            let topic = requested_topic(&image, by_id, &t.topic.0, t.topic_id)
                .map_or_else(|_| t.topic.0.to_string(), |info| info.name.clone());
            t.partitions.iter().map(move |p| FetchTarget {
                topic: topic.clone(),
                topic_id: t.topic_id,
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes,
                leader_epoch: p.current_leader_epoch,
            })
        })
        .collect();
    let forgotten: Vec<Forgotten> = req
        .forgotten_topics_data
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.topic.0.to_string(), t.topic_id, *p))
        })
        .collect();
    let (mode, targets) =
        match ctx
            .fetch_sessions
            .begin(req.session_id, req.session_epoch, requested, &forgotten)
        {
            Ok(v) => v,
            Err(e) => {
                return FetchResponse::default()
                    .with_error_code(e.code())
                    .with_session_id(0)
            }
        };

    let max_bytes = (req.max_bytes.max(0) as usize).min(ctx.config.fetch_max_bytes());
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    // A follower names itself in replica_id, from v15 in replica_state.
    let replica = [req.replica_id.0, req.replica_state.replica_id.0]
        .into_iter()
        .find(|id| *id >= 0);
    // read_committed consumers read up to the last stable offset; the read-ahead reads up
    // to the high watermark, so it serves only read_uncommitted ones.
    // Followers need CLUSTER_ACTION; consumers READ on each topic.
    if replica.is_some() {
        if let Err(e) = authorize_cluster(ctx, scope, ClusterAction) {
            return FetchResponse::default()
                .with_error_code(e.code())
                .with_session_id(0);
        }
    }
    let denied: HashSet<String> = match replica {
        Some(_) => HashSet::new(),
        None if !ctx.authorizer.enabled() => HashSet::new(),
        None => targets
            .iter()
            .map(|t| t.topic.as_str())
            .collect::<HashSet<_>>()
            .into_iter()
            .filter(|topic| !allowed(ctx, scope, &image, Read, Topic, topic))
            .map(String::from)
            .collect(),
    };
    let committed_only = req.isolation_level == 1 && replica.is_none();
    let any_replica = replica.is_none() && header.request_api_version >= 11;
    let reader = Reader {
        replica,
        committed_only,
        any_replica,
        rack: Some(req.rack_id.as_str())
            .filter(|rack| any_replica && !rack.is_empty() && ctx.config.rack_aware_reads()),
    };
    // A consumer with a quota gets at most a quota window's worth per response.
    let quota_client = QuotaClient::of(scope, header);
    let max_bytes = match replica {
        Some(_) => max_bytes,
        None => ctx
            .quotas
            .max_bytes_per_response(&image, QuotaKind::Fetch, quota_client)
            .map_or(max_bytes, |cap| max_bytes.min(cap)),
    };
    // Subscribe before reading so that data arriving in between still wakes us.
    let mut watchers = watchers(ctx, &image, &targets, reader);
    let wanted: Vec<(String, i32, i64)> = match replica {
        Some(_) => Vec::new(),
        None => targets
            .iter()
            .map(|t| (t.topic.clone(), t.partition, t.fetch_offset))
            .collect(),
    };
    let mut ready = if committed_only {
        HashMap::new()
    } else {
        scope.read_ahead().take(&wanted).await
    };
    let reads = loop {
        let reads = read_all(
            ctx, &image, &targets, &denied, max_bytes, reader, &mut ready,
        );
        let bytes: usize = reads
            .iter()
            .filter_map(|r| r.result.as_ref().ok())
            .map(|d| d.records.len())
            .sum();
        let errors = reads.iter().any(|r| r.result.is_err());
        if bytes >= req.min_bytes.max(0) as usize
            || errors
            || watchers.is_empty()
            || tokio::time::Instant::now() >= deadline
        {
            break reads;
        }
        let changed = select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    };

    // A consumer over its quota gets no records this time, only how long to wait, and the
    // bytes it did not get do not count against it (Kafka's throttled fetch response).
    if replica.is_none() {
        let bytes = reads
            .iter()
            .filter_map(|r| r.result.as_ref().ok())
            .map(|d| d.records.len())
            .sum();
        let now = Instant::now();
        let throttle = ctx
            .quotas
            .record(&image, QuotaKind::Fetch, quota_client, bytes, now);
        if !throttle.is_zero() {
            ctx.quotas
                .unrecord(&image, QuotaKind::Fetch, quota_client, bytes, now);
            scope.throttle(throttle);
            return throttled(ctx, mode, throttle);
        }
    }

    if replica.is_none() && !committed_only {
        for r in &reads {
            if let Ok(d) = &r.result {
                if d.records.len() >= READ_AHEAD_MIN {
                    let limit = (r.target.max_bytes.max(0) as usize).min(max_bytes);
                    scope.read_ahead().schedule(
                        &ctx.store,
                        &r.target.topic,
                        r.target.partition,
                        &d.log,
                        d.leader_epoch,
                        &d.records,
                        limit,
                    );
                }
            }
        }
    }
    respond(ctx, &image, scope.listener_name(), mode, reader, reads)
}

/// The answer to a throttled fetch: no partitions, and `throttle_time_ms`. A session this
/// fetch created is closed again, since the client takes an empty full response as no
/// session and starts over (KIP-219); an existing session stays as it was.
fn throttled(ctx: &Ctx, mode: SessionMode, throttle: Duration) -> FetchResponse {
    let session_id = match mode {
        SessionMode::Session { id, created: true } => {
            ctx.fetch_sessions.close(id);
            0
        }
        SessionMode::Session { id, created: false } => id,
        SessionMode::Sessionless => 0,
    };
    FetchResponse::default()
        .with_session_id(session_id)
        .with_throttle_time_ms(throttle_ms(throttle))
}

/// Partitions that returned at least this much are read ahead: consumers catching up, not
/// ones tailing the log (they are at the high watermark, with nothing to read ahead).
const READ_AHEAD_MIN: usize = 64 << 10;

fn watchers(
    ctx: &Ctx,
    image: &MetadataImage,
    targets: &[FetchTarget],
    reader: Reader,
) -> Vec<watch::Receiver<i64>> {
    targets
        .iter()
        .filter_map(|t| {
            let info = topic_of(image, t).ok()?;
            let source = source(ctx, info, t.partition, reader).ok()?;
            let mut rx = if reader.replica.is_some() {
                source.log().watch_log_end()
            } else {
                source.log().watch_high_watermark()
            };
            rx.borrow_and_update();
            Some(rx)
        })
        .collect()
}

/// Who reads: a follower (up to the log end), or a consumer (up to the high watermark, or
/// the last stable offset for read_committed).
#[derive(Clone, Copy)]
struct Reader<'a> {
    replica: Option<i32>,
    committed_only: bool,
    /// A consumer that may read from followers (v11+).
    any_replica: bool,
    /// Its rack, when the rack-aware selector may send it to a replica there.
    rack: Option<&'a str>,
}

/// The local copy a read is served from: the leader's, or a follower's for a consumer that
/// may read from any replica.
enum Source {
    Leader(LeaderPartition),
    Follower(Arc<PartitionLog>, PartitionInfo),
}

impl Source {
    fn log(&self) -> &Arc<PartitionLog> {
        match self {
            Source::Leader(led) => &led.log,
            Source::Follower(log, _) => log,
        }
    }

    fn info(&self) -> &PartitionInfo {
        match self {
            Source::Leader(led) => &led.info,
            Source::Follower(_, info) => info,
        }
    }

    /// The partition as led here, if this node leads it.
    fn led(&self) -> Option<&LeaderPartition> {
        match self {
            Source::Leader(led) => Some(led),
            Source::Follower(..) => None,
        }
    }
}

fn source(
    ctx: &Ctx,
    topic: &TopicInfo,
    partition: i32,
    reader: Reader,
) -> Result<Source, BrokerError> {
    match ctx.replicas.leader(topic, partition) {
        Ok(led) => Ok(Source::Leader(led)),
        Err(BrokerError::NotLeaderOrFollower) if reader.any_replica => {
            let (log, info) = ctx.replicas.follower(topic, partition)?;
            Ok(Source::Follower(log, info))
        }
        Err(e) => Err(e),
    }
}

fn read_all(
    ctx: &Ctx,
    image: &MetadataImage,
    targets: &[FetchTarget],
    denied: &HashSet<String>,
    max_bytes: usize,
    reader: Reader,
    ready: &mut HashMap<(String, i32), Ready>,
) -> Vec<PartitionRead> {
    let mut budget = max_bytes;
    let mut any_data = false;
    targets
        .iter()
        .map(|t| {
            let ahead = ready.remove(&(t.topic.clone(), t.partition));
            let result = if denied.contains(&t.topic) {
                Err(BrokerError::TopicAuthorizationFailed)
            } else {
                read_one(ctx, image, t, budget, !any_data, reader, ahead)
            };
            if let Ok(d) = &result {
                budget = budget.saturating_sub(d.records.len());
                any_data |= !d.records.is_empty();
            }
            PartitionRead {
                target: t.clone(),
                result,
            }
        })
        .collect()
}

fn read_one(
    ctx: &Ctx,
    image: &MetadataImage,
    t: &FetchTarget,
    budget: usize,
    first: bool,
    reader: Reader,
    ahead: Option<Ready>,
) -> Result<ReadData, BrokerError> {
    let info = topic_of(image, t)?;
    let source = source(ctx, info, t.partition, reader)?;
    ctx.replicas
        .check_leader_epoch(source.info(), t.leader_epoch)?;
    let log = source.log();
    let (log_start, high_watermark) = (log.log_start_offset(), log.high_watermark());
    let last_stable = log.last_stable_offset().min(high_watermark);
    if t.fetch_offset < log_start || t.fetch_offset > log.log_end_offset() {
        return Err(BrokerError::OffsetOutOfRange);
    }
    let epoch = source.info().leader_epoch;
    if let (Some(led), Some(rack)) = (source.led(), reader.rack) {
        let preferred = ctx
            .replicas
            .preferred_read_replica(led, image, rack, t.fetch_offset);
        if preferred.is_some() {
            return Ok(ReadData {
                records: Bytes::new(),
                high_watermark,
                last_stable,
                aborted: reader.committed_only.then(Vec::new),
                log_start,
                log: Arc::clone(log),
                leader_epoch: epoch,
                preferred_read_replica: preferred,
            });
        }
    }
    // Consumers read committed data only; followers copy everything the leader has.
    let upper = match (reader.replica, source.led()) {
        (Some(follower), Some(led)) => {
            ctx.replicas
                .on_follower_fetch(led, follower, t.fetch_offset);
            log.log_end_offset()
        }
        (Some(_), None) => return Err(BrokerError::NotLeaderOrFollower),
        (None, _) if reader.committed_only => last_stable,
        (None, _) => high_watermark,
    };
    let limit = budget.min(t.max_bytes.max(0) as usize);
    let records = if limit == 0 && !first {
        Bytes::new()
    } else if let Some(r) = ahead.and_then(|a| a.records_for(log, epoch, limit, first)) {
        r
    } else {
        ctx.store
            .read_contiguous(log, t.fetch_offset, upper, limit, first)?
    };
    let aborted = if reader.committed_only && !records.is_empty() {
        Some(ctx.store.aborted_transactions(log, t.fetch_offset, upper)?)
    } else {
        reader.committed_only.then(Vec::new)
    };
    Ok(ReadData {
        records,
        high_watermark,
        last_stable,
        aborted,
        log_start,
        log: Arc::clone(log),
        leader_epoch: epoch,
        preferred_read_replica: None,
    })
}

/// The topic of a target, which a v13+ client names by id: a topic deleted and made again
/// under the same name is not the one it asked for.
fn topic_of<'a>(image: &'a MetadataImage, t: &FetchTarget) -> Result<&'a TopicInfo, BrokerError> {
    let by_id = !t.topic_id.is_nil();
    requested_topic(image, by_id, &t.topic, t.topic_id)
}

fn respond(
    ctx: &Ctx,
    image: &MetadataImage,
    listener: &str,
    mode: SessionMode,
    reader: Reader,
    reads: Vec<PartitionRead>,
) -> FetchResponse {
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    let mut leaders_named = Vec::new();
    for r in reads {
        let (data, has_news, marks) = match r.result {
            Ok(d) => {
                if reader.replica.is_some() {
                    metrics::record_replication_fetch(&r.target.topic, d.records.len());
                } else {
                    metrics::record_fetch(&r.target.topic, d.records.len());
                }
                let marks = PartitionMarks {
                    high_watermark: d.high_watermark,
                    log_start: d.log_start,
                };
                let news = !d.records.is_empty();
                let data = PartitionData::default()
                    .with_partition_index(r.target.partition)
                    .with_high_watermark(d.high_watermark)
                    .with_last_stable_offset(d.last_stable)
                    .with_aborted_transactions(d.aborted.map(|list| {
                        list.into_iter()
                            .map(|(producer_id, first_offset)| {
                                AbortedTransaction::default()
                                    .with_producer_id(producer_id.into())
                                    .with_first_offset(first_offset)
                            })
                            .collect()
                    }))
                    .with_log_start_offset(d.log_start)
                    .with_preferred_read_replica(d.preferred_read_replica.unwrap_or(-1).into())
                    .with_records(Some(d.records));
                (data, news, marks)
            }
            Err(e) => {
                metrics::record_error(kafka_protocol::messages::ApiKey::Fetch, e.code());
                let mut data = PartitionData::default()
                    .with_partition_index(r.target.partition)
                    .with_error_code(e.code())
                    .with_high_watermark(-1)
                    .with_records(Some(Bytes::new()));
                let topic = topic_of(image, &r.target).ok();
                if let Some((leader, epoch)) = leader_hint(topic, r.target.partition, e.code()) {
                    data.current_leader = LeaderIdAndEpoch::default()
                        .with_leader_id(leader.into())
                        .with_leader_epoch(epoch);
                    leaders_named.push(leader);
                }
                (
                    data,
                    true,
                    PartitionMarks {
                        high_watermark: -1,
                        log_start: -1,
                    },
                )
            }
        };
        if let SessionMode::Session { id, created } = mode {
            let sent = ctx.fetch_sessions.note_sent(id, &r.target, marks, has_news);
            if !sent && !created {
                continue;
            }
        }
        match topics.last_mut() {
            Some(t) if t.topic.0.as_str() == r.target.topic && t.topic_id == r.target.topic_id => {
                t.partitions.push(data)
            }
            _ => topics.push(
                FetchableTopicResponse::default()
                    .with_topic(topic_name(&r.target.topic))
                    .with_topic_id(r.target.topic_id)
                    .with_partitions(vec![data]),
            ),
        }
    }
    let session_id = match mode {
        SessionMode::Session { id, .. } => id,
        SessionMode::Sessionless => 0,
    };
    FetchResponse::default()
        .with_session_id(session_id)
        .with_responses(topics)
        .with_node_endpoints(node_endpoints(image, leaders_named, listener))
}

/// The endpoints of the leaders an answer names.
fn node_endpoints(image: &MetadataImage, leaders: Vec<i32>, listener: &str) -> Vec<NodeEndpoint> {
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
