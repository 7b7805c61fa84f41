//! The HTTP admin API (JSON): what only the controller knows (Raft status, brokers, voter
//! changes) plus this node's view of its partitions. Its paths and typed replies live in
//! `sluice_client::admin_api`, which `sluice admin` reads them with.

use std::collections::BTreeSet;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use sluice_client::admin_api::{
    BrokerEntry, Digest, DigestQuery, Done, ErrorReply, LeaderTransfer, LeaderTransferred,
    PartitionEntry, Raft, Status, TopicEntry, VotersChange,
};

use super::HttpState;

/// A typed answer, or a status with the API's error body.
type Reply<T> = Result<Json<T>, (StatusCode, Json<ErrorReply>)>;

fn failure(status: StatusCode, error: impl ToString) -> (StatusCode, Json<ErrorReply>) {
    let error = error.to_string();
    (status, Json(ErrorReply { error }))
}

fn broker(s: &HttpState) -> Result<&crate::context::Ctx, (StatusCode, Json<ErrorReply>)> {
    s.broker.get().ok_or_else(|| {
        failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "the node is still starting",
        )
    })
}

/// GET /admin/status: the controller quorum as this node sees it.
pub async fn status(State(s): State<HttpState>) -> Reply<Status> {
    let ctx = broker(&s)?;
    let r = ctx.controller.status();
    Ok(Json(Status {
        node_id: r.node_id,
        cluster_id: ctx.controller.image().cluster_id.clone(),
        wall_clock_ms: crate::clock::now_ms(),
        raft: Raft {
            term: r.term,
            leader: r.leader,
            is_leader: r.is_leader,
            last_log_index: r.last_log_index,
            applied_index: r.applied_index,
            voters: r.voters,
            learners: r.learners,
            replication: r.replication,
        },
    }))
}

/// GET /admin/brokers: registered brokers and whether they are fenced.
pub async fn brokers(State(s): State<HttpState>) -> Reply<Vec<BrokerEntry>> {
    let ctx = broker(&s)?;
    let image = ctx.controller.image();
    let brokers = image
        .brokers
        .values()
        .map(|b| BrokerEntry {
            id: b.id,
            host: b.host.clone(),
            port: b.port,
            rack: b.rack.clone(),
            fenced: b.fenced,
        })
        .collect();
    Ok(Json(brokers))
}

/// GET /admin/topics: every topic's partitions (leader, epoch, replicas, ISR), with the
/// log offsets of the replicas this node stores.
pub async fn topics(State(s): State<HttpState>) -> Reply<Vec<TopicEntry>> {
    let ctx = broker(&s)?;
    let image = ctx.controller.image();
    let topics = image
        .topics
        .values()
        .map(|t| TopicEntry {
            name: t.name.clone(),
            id: t.id,
            configs: t.configs.clone(),
            partitions: t
                .partitions
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let key = sluice_storage::PartitionKey {
                        topic_id: t.id,
                        partition: i as i32,
                    };
                    // Offsets of this node's replica (leader or follower).
                    let log = ctx.store.partition(&key);
                    PartitionEntry {
                        partition: i as i32,
                        leader: p.leader,
                        leader_epoch: p.leader_epoch,
                        replicas: p.replicas.clone(),
                        isr: p.isr.clone(),
                        log_start_offset: log.as_ref().map(|l| l.log_start_offset()),
                        log_end_offset: log.as_ref().map(|l| l.log_end_offset()),
                        high_watermark: log.as_ref().map(|l| l.high_watermark()),
                    }
                })
                .collect(),
        })
        .collect();
    Ok(Json(topics))
}

/// POST /admin/leader: moves Raft leadership to another voter.
pub async fn transfer_leader(
    State(s): State<HttpState>,
    Json(body): Json<LeaderTransfer>,
) -> Reply<LeaderTransferred> {
    let ctx = broker(&s)?;
    match ctx.controller.transfer_leader(body.to).await {
        Ok(()) => Ok(Json(LeaderTransferred {
            ok: true,
            leader: body.to,
        })),
        Err(e) => Err(failure(StatusCode::CONFLICT, e)),
    }
}

/// POST /admin/voters: makes exactly these nodes the voters; the others stay learners.
pub async fn change_voters(
    State(s): State<HttpState>,
    Json(body): Json<VotersChange>,
) -> Reply<Done> {
    let ctx = broker(&s)?;
    let voters: BTreeSet<u64> = body.voters.into_iter().collect();
    match ctx.controller.change_voters(voters).await {
        Ok(()) => Ok(Json(Done { ok: true })),
        Err(e) => Err(failure(StatusCode::CONFLICT, e)),
    }
}

/// GET /admin/digest?topic=T[&partition=P][&upto=N]: for each replica of `T` this node
/// stores, its log start/end and high watermark plus a CRC-32C over the stored bytes of the
/// batches from the log start whose last offset is below `upto` (`covered_end` says where
/// that stopped: a batch straddling `upto` is left out). Replicas store the leader's batches
/// byte for byte, so in-sync replicas must report equal digests for equal `upto`; fault
/// tests use it to detect diverged logs. Read-only.
pub async fn digest(
    State(s): State<HttpState>,
    Query(q): Query<DigestQuery>,
) -> Reply<Vec<Digest>> {
    let ctx = broker(&s)?;
    let image = ctx.controller.image();
    let Some(topic) = image.topics.get(&q.topic) else {
        let unknown = format!("unknown topic {}", q.topic);
        return Err(failure(StatusCode::NOT_FOUND, unknown));
    };
    let logs: Vec<_> = (0..topic.partitions.len() as i32)
        .filter(|p| q.partition.is_none_or(|only| only == *p))
        .filter_map(|p| {
            let key = sluice_storage::PartitionKey {
                topic_id: topic.id,
                partition: p,
            };
            ctx.store.partition(&key).map(|log| (p, log))
        })
        .collect();
    let store = ctx.store.clone();
    let upto = q.upto;
    // RocksDB reads block: keep them off the async workers.
    let digests = tokio::task::spawn_blocking(move || {
        logs.into_iter()
            .map(|(p, log)| digest_log(&store, &log, upto.unwrap_or(log.high_watermark()), p))
            .collect::<Result<Vec<Digest>, sluice_storage::StorageError>>()
    })
    .await;
    match digests {
        Ok(Ok(parts)) => Ok(Json(parts)),
        Ok(Err(e)) => Err(failure(StatusCode::INTERNAL_SERVER_ERROR, e)),
        Err(e) => Err(failure(StatusCode::INTERNAL_SERVER_ERROR, e)),
    }
}

/// One replica's digest below `upto` (see [`digest`]).
fn digest_log(
    store: &sluice_storage::Store,
    log: &sluice_storage::PartitionLog,
    upto: i64,
    partition: i32,
) -> Result<Digest, sluice_storage::StorageError> {
    let start = log.log_start_offset();
    let (mut crc, mut batches, mut bytes) = (0u32, 0u64, 0u64);
    let mut next = start;
    'read: while next < upto {
        let chunk = store.read(log, next, upto, 1 << 20, true)?;
        if chunk.is_empty() {
            break;
        }
        for batch in &chunk {
            let last = sluice_storage::batch::parse_header(batch)?.last_offset();
            if last >= upto {
                break 'read;
            }
            crc = crc32c::crc32c_append(crc, batch);
            batches += 1;
            bytes += batch.len() as u64;
            next = last + 1;
        }
    }
    Ok(Digest {
        partition,
        log_start_offset: start,
        log_end_offset: log.log_end_offset(),
        high_watermark: log.high_watermark(),
        upto,
        covered_end: next,
        batches,
        bytes,
        crc32c: crc,
    })
}
