//! The coordinator runtime: how Sluice hosts a coordinator on an internal compacted topic,
//! as Kafka does for its group, transaction and share-group state coordinators.
//!
//! Each partition of the topic is a shard: a state machine (a [`CoordinatorShard`]) that this
//! node hosts while, and only while, it leads the partition. Taking leadership loads the shard
//! by replaying the partition's log from its start; losing leadership (or moving to a newer
//! leader epoch) unloads it. A request waits a bounded time for its shard to load and is
//! refused NOT_COORDINATOR where another node leads it.
//!
//! A write asks the tenant for records, appends them through the replica manager's one
//! leader-append path with acks=all, and replays them into the shard once the ISR has them:
//! the state in memory never holds what a failover could lose, and a new coordinator rebuilds
//! exactly it by replay. Writes to one shard are serialised, so records are replayed in log
//! order. `tick` drives the tenants' timers.
//!
//! The runtime reaches storage, replicas and metadata only through a [`CoordinatorIo`], never
//! the whole broker: `coordinator -> replication -> storage`, one way.

mod runtime;

pub use runtime::{CoordinatorRuntime, InternalTopic};

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use sluice_controller::{ControllerClient, MetadataImage};
use sluice_storage::{PartitionLog, Store};

use crate::error::BrokerError;
use crate::replication::ReplicaManager;

/// Java's `String.hashCode`, which Kafka uses to place keys on partitions.
pub fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The partition of a coordinator key (group id, transactional id): Kafka's
/// `abs(hashCode) % partitions`, so tools agree with Kafka on the mapping.
pub fn partition_for(key: &str, partitions: usize) -> i32 {
    ((java_hash(key) & 0x7fff_ffff) as usize % partitions.max(1)) as i32
}

/// Writes a Kafka-style (i16 length-prefixed) string into a coordinator record.
pub fn put_str(buf: &mut bytes::BytesMut, s: &str) {
    use bytes::BufMut;
    let bytes = s.as_bytes();
    let len = bytes.len().min(i16::MAX as usize);
    buf.put_i16(len as i16);
    buf.put_slice(&bytes[..len]);
}

/// Reads a string written by [`put_str`]; `None` if the record is malformed.
pub fn get_str(buf: &mut Bytes) -> Option<String> {
    use bytes::Buf;
    if buf.remaining() < 2 {
        return None;
    }
    let len = usize::try_from(buf.get_i16()).ok()?;
    if buf.remaining() < len {
        return None;
    }
    String::from_utf8(buf.split_to(len).to_vec()).ok()
}

/// One record of a coordinator's log: a key, and a value or a tombstone (`None`).
pub type CoordinatorRecord = (Bytes, Option<Bytes>);

/// The state a coordinator keeps for one partition of its internal topic.
///
/// Its state changes by `replay` (records read back at load, or just committed by a write),
/// by `tick` (timers, such as member sessions), and by what it keeps only in memory.
pub trait CoordinatorShard: Send + 'static {
    /// Applies one record of the partition's log, in log order. `producer_id` is -1, or the
    /// transactional producer that wrote it: such a record takes effect only if a commit
    /// marker of that producer follows (see `replay_marker`).
    fn replay(&mut self, producer_id: i64, key: Bytes, value: Option<Bytes>);

    /// Applies a transaction marker: the producer's pending records take effect (commit) or
    /// are dropped (abort). Tenants without transactional records ignore it.
    fn replay_marker(&mut self, _producer_id: i64, _commit: bool) {}

    /// Called once its log is replayed, before it serves requests.
    fn loaded(&mut self, _now: Instant) {}

    /// Runs the shard's timers (about every 100 ms).
    fn tick(&mut self, now: Instant, image: &MetadataImage);
}

/// What the runtime reads and writes through: the node's storage, its replicas and the
/// metadata, passed explicitly by whoever calls it.
#[derive(Clone, Copy)]
pub struct CoordinatorIo<'a> {
    /// This node's id.
    pub node_id: i32,
    /// Node storage (replay reads the logs).
    pub store: &'a Store,
    /// Local replicas (writes go through their leader-append path).
    pub replicas: &'a ReplicaManager,
    /// The metadata controller (topic creation, leadership).
    pub controller: &'a ControllerClient,
}

/// One entry of a coordinator's log, as replay sees it.
pub enum LogEntry {
    /// A record (of a transactional producer when `producer_id` >= 0).
    Record {
        /// Its producer, or -1.
        producer_id: i64,
        /// Record key.
        key: Bytes,
        /// Record value, `None` for a tombstone.
        value: Option<Bytes>,
    },
    /// A transaction marker.
    Marker {
        /// The producer whose transaction ends.
        producer_id: i64,
        /// Commit (true) or abort.
        commit: bool,
    },
}

/// Replays one entry into a shard.
pub fn replay<S: CoordinatorShard>(shard: &mut S, entry: LogEntry) {
    match entry {
        LogEntry::Record {
            producer_id,
            key,
            value,
        } => shard.replay(producer_id, key, value),
        LogEntry::Marker {
            producer_id,
            commit,
        } => shard.replay_marker(producer_id, commit),
    }
}

/// Visits every keyed record and marker of a local log in offset order.
pub fn scan_log(
    store: &Store,
    log: &PartitionLog,
    mut visit: impl FnMut(LogEntry),
) -> Result<(), BrokerError> {
    scan_records(store, log, |r| {
        let Some(key) = r.key else { return };
        if r.control {
            // Marker keys are (version, type): type 1 commits, 0 aborts.
            if key.len() >= 4 {
                visit(LogEntry::Marker {
                    producer_id: r.producer_id,
                    commit: key[3] == 1 && key[2] == 0,
                });
            }
            return;
        }
        let producer_id = if r.transactional { r.producer_id } else { -1 };
        visit(LogEntry::Record {
            producer_id,
            key,
            value: r.value,
        });
    })
}

/// Visits every record of a local log in offset order.
pub fn scan_records(
    store: &Store,
    log: &PartitionLog,
    mut visit: impl FnMut(Record),
) -> Result<(), BrokerError> {
    let end = log.log_end_offset();
    let mut next = log.log_start_offset();
    while next < end {
        let batches = store.read(log, next, end, 4 << 20, true)?;
        let Some(last) = batches.last() else { break };
        next = sluice_storage::batch::parse_header(last)?.last_offset() + 1;
        for b in batches {
            let set = RecordBatchDecoder::decode(&mut b.clone())
                .map_err(|e| BrokerError::Storage(e.to_string()))?;
            set.records.into_iter().for_each(&mut visit);
        }
    }
    Ok(())
}

/// The transactional producer a coordinator write is part of (TxnOffsetCommit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnProducer {
    /// Producer id.
    pub id: i64,
    /// Producer epoch.
    pub epoch: i16,
}

/// Coordinator records as record batches, one batch per buffer (what the appender takes);
/// transactional batches of `producer` when it is given.
fn encode_batches(
    records: &[CoordinatorRecord],
    producer: Option<TxnProducer>,
) -> Result<Vec<Bytes>, BrokerError> {
    let now = crate::clock::now_ms();
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: producer.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: producer.map_or(-1, |p| p.id),
            producer_epoch: producer.map_or(-1, |p| p.epoch),
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch whenever offset - sequence changes; keeping it
            // constant puts all records in one batch, with base sequence -1 (no producer).
            sequence: i as i32 - 1,
            timestamp: now,
            key: Some(k.clone()),
            value: v.clone(),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| BrokerError::Storage(e.to_string()))?;
    let encoded = buf.freeze();
    // Split defensively: the encoder may emit several batches.
    Ok(sluice_storage::batch::split_batches(&encoded)?
        .into_iter()
        .map(|(pos, h)| encoded.slice(pos..pos + h.total_len()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_placement_matches_kafka() {
        // Values printed by Java 17: "my-group".hashCode(), and the partition Kafka picks.
        assert_eq!(java_hash("my-group"), -1_906_497_762);
        assert_eq!(partition_for("my-group", 50), 36);
        // UTF-16 code units, as Java hashes them.
        assert_eq!(java_hash("consumer-group-éü"), 277_012_280);
    }
}
