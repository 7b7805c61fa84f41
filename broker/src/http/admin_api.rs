//! The HTTP admin API (JSON): what only the controller knows (Raft status, brokers, voter
//! changes) plus this node's view of its partitions and groups. `sluice admin` reads it.

use std::collections::BTreeSet;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::HttpState;

type Reply = (StatusCode, Json<Value>);

fn unavailable() -> Reply {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": "the node is still starting"})),
    )
}

/// GET /admin/status: the controller quorum as this node sees it.
pub async fn status(State(s): State<HttpState>) -> Reply {
    let Some(ctx) = s.broker.get() else {
        return unavailable();
    };
    let r = ctx.controller.status();
    let image = ctx.controller.image();
    (
        StatusCode::OK,
        Json(json!({
            "node_id": r.node_id,
            "cluster_id": image.cluster_id,
            "raft": {
                "term": r.term,
                "leader": r.leader,
                "is_leader": r.is_leader,
                "last_log_index": r.last_log_index,
                "applied_index": r.applied_index,
                "voters": r.voters,
                "learners": r.learners,
                "replication": r.replication,
            },
        })),
    )
}

/// GET /admin/brokers: registered brokers and whether they are fenced.
pub async fn brokers(State(s): State<HttpState>) -> Reply {
    let Some(ctx) = s.broker.get() else {
        return unavailable();
    };
    let image = ctx.controller.image();
    let brokers: Vec<Value> = image
        .brokers
        .values()
        .map(|b| json!({"id": b.id, "host": b.host, "port": b.port, "rack": b.rack, "fenced": b.fenced}))
        .collect();
    (StatusCode::OK, Json(Value::Array(brokers)))
}

/// GET /admin/topics: every topic's partitions (leader, epoch, replicas, ISR), with the
/// log offsets of the replicas this node stores.
pub async fn topics(State(s): State<HttpState>) -> Reply {
    let Some(ctx) = s.broker.get() else {
        return unavailable();
    };
    let image = ctx.controller.image();
    let topics: Vec<Value> = image
        .topics
        .values()
        .map(|t| {
            let partitions: Vec<Value> = t
                .partitions
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let mut v = json!({
                        "partition": i, "leader": p.leader, "leader_epoch": p.leader_epoch,
                        "replicas": p.replicas, "isr": p.isr,
                    });
                    let key = sluice_storage::PartitionKey {
                        topic_id: t.id,
                        partition: i as i32,
                    };
                    // Offsets of this node's replica (leader or follower).
                    if let Some(log) = ctx.store.partition(&key) {
                        v["log_start_offset"] = json!(log.log_start_offset());
                        v["log_end_offset"] = json!(log.log_end_offset());
                        v["high_watermark"] = json!(log.high_watermark());
                    }
                    v
                })
                .collect();
            json!({"name": t.name, "id": t.id, "configs": t.configs, "partitions": partitions})
        })
        .collect();
    (StatusCode::OK, Json(Value::Array(topics)))
}

/// Body of POST /admin/leader.
#[derive(Debug, Serialize, Deserialize)]
pub struct LeaderTransfer {
    /// The voter to lead.
    pub to: u64,
}

/// POST /admin/leader: moves Raft leadership to another voter.
pub async fn transfer_leader(
    State(s): State<HttpState>,
    Json(body): Json<LeaderTransfer>,
) -> Reply {
    let Some(ctx) = s.broker.get() else {
        return unavailable();
    };
    match ctx.controller.transfer_leader(body.to).await {
        Ok(()) => (StatusCode::OK, Json(json!({"ok": true, "leader": body.to}))),
        Err(e) => (StatusCode::CONFLICT, Json(json!({"error": e.to_string()}))),
    }
}

/// Body of POST /admin/voters.
#[derive(Debug, Serialize, Deserialize)]
pub struct VotersChange {
    /// The new voter set (each must already be a member of the quorum).
    pub voters: Vec<u64>,
}

/// POST /admin/voters: makes exactly these nodes the voters; the others stay learners.
pub async fn change_voters(State(s): State<HttpState>, Json(body): Json<VotersChange>) -> Reply {
    let Some(ctx) = s.broker.get() else {
        return unavailable();
    };
    let voters: BTreeSet<u64> = body.voters.into_iter().collect();
    match ctx.controller.change_voters(voters).await {
        Ok(()) => (StatusCode::OK, Json(json!({"ok": true}))),
        Err(e) => (StatusCode::CONFLICT, Json(json!({"error": e.to_string()}))),
    }
}

/// Query of GET /admin/digest.
#[derive(Debug, Deserialize)]
pub struct DigestQuery {
    /// The topic to digest.
    pub topic: String,
    /// Only this partition (default: every partition this node stores).
    pub partition: Option<i32>,
    /// Digest the batches that end below this offset (default: this replica's high
    /// watermark).
    pub upto: Option<i64>,
}

/// GET /admin/digest?topic=T[&partition=P][&upto=N]: for each replica of `T` this node
/// stores, its log start/end and high watermark plus a CRC-32C over the stored bytes of the
/// batches from the log start whose last offset is below `upto` (`covered_end` says where
/// that stopped: a batch straddling `upto` is left out). Replicas store the leader's batches
/// byte for byte, so in-sync replicas must report equal digests for equal `upto`; fault
/// tests use it to detect diverged logs. Read-only.
pub async fn digest(State(s): State<HttpState>, Query(q): Query<DigestQuery>) -> Reply {
    let Some(ctx) = s.broker.get() else {
        return unavailable();
    };
    let image = ctx.controller.image();
    let Some(topic) = image.topics.get(&q.topic) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("unknown topic {}", q.topic)})),
        );
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
            .collect::<Result<Vec<Value>, sluice_storage::StorageError>>()
    })
    .await;
    match digests {
        Ok(Ok(parts)) => (StatusCode::OK, Json(Value::Array(parts))),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": e.to_string()})),
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": e.to_string()})),
        ),
    }
}

/// One replica's digest below `upto` (see [`digest`]).
fn digest_log(
    store: &sluice_storage::Store,
    log: &sluice_storage::PartitionLog,
    upto: i64,
    partition: i32,
) -> Result<Value, sluice_storage::StorageError> {
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
    Ok(json!({
        "partition": partition,
        "log_start_offset": start,
        "log_end_offset": log.log_end_offset(),
        "high_watermark": log.high_watermark(),
        "upto": upto,
        "covered_end": next,
        "batches": batches,
        "bytes": bytes,
        "crc32c": crc,
    }))
}
