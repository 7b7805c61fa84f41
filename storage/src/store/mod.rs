//! The node's RocksDB instance. This file: the store's state, partition lifecycle and appends;
//! the rest by concern:
//!
//! ```text
//! open.rs         opening, format versions, recovery of every partition's state
//! read.rs         fetch reads, lookups by timestamp and by size
//! maintenance.rs  log start moves, follower truncation, space reclaim
//! system.rs       node-local system tables (the controller's Raft log and state)
//! stats.rs        RocksDB properties and write stalls for metrics
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use bytes::{Bytes, BytesMut};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, Direction, IteratorMode,
    Options, ReadOptions, WriteBatch, WriteBufferManager, WriteOptions, DB,
};
use tokio::sync::{mpsc, oneshot};

use crate::appender::{self, AppendEntry, AppendJob, AppendResults, Job};
use crate::batch;
use crate::error::{Result, StorageError};
use crate::keys::{
    offset_from_key, offset_key, system_cf, PartitionKey, PartitionMetaKeys, FORMAT_VERSION_KEY,
    META_CF,
};
use crate::log::{PartitionLog, WriterState};
use crate::producer::{ProducerEntry, ProducerStates};

mod maintenance;
mod open;
mod read;
mod stats;
mod system;

pub use system::SystemTable;

/// Newest on-disk format this build reads and writes.
/// (2 added the per-partition time index; a version-1 store gets it built on open.)
pub const FORMAT_VERSION: u32 = 2;

/// Memory and durability knobs of the node's RocksDB.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Budget for all memtables together (one WriteBufferManager for every CF).
    pub write_buffer_budget: usize,
    /// Memtable size per column family before it is flushed. Small, because every
    /// partition being written holds up to this much: at 32 MiB, six busy partitions kept
    /// 220-250 MiB resident under ProducerPerformance, at 8 MiB 94-160 MiB at the same MB/s
    /// (`compat-tests/bench/produce-probe` with `sluice.storage.write.buffer.bytes`).
    pub write_buffer_size: usize,
    /// Arena block size; small so thousands of idle CFs cost little.
    pub arena_block_size: usize,
    /// Shared block cache for all CFs.
    pub block_cache_size: usize,
    /// Names of system tables to create (e.g. the controller's Raft log).
    pub system_tables: Vec<String>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            write_buffer_budget: 256 << 20,
            write_buffer_size: 8 << 20,
            arena_block_size: 64 << 10,
            block_cache_size: 64 << 20,
            system_tables: Vec::new(),
        }
    }
}

/// The node's storage: every partition replica and system table in one RocksDB.
pub struct Store {
    db: Arc<DB>,
    cf_opts: Options,
    partitions: RwLock<HashMap<PartitionKey, Arc<PartitionLog>>>,
    appender: Mutex<Option<mpsc::Sender<Job>>>,
    appender_thread: Mutex<Option<JoinHandle<()>>>,
    /// Serialises the rewrites below the log end (retention, DeleteRecords, compaction).
    maintenance: Mutex<()>,
    /// Column families of the system tables.
    system_cfs: Vec<String>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Creates the given partitions (those missing): one batched column-family creation per
    /// topic, so a topic this node cannot hold does not keep the others from being created.
    /// On failure the others are still created and the first error is returned.
    pub fn create_partitions(&self, keys: &[PartitionKey]) -> Result<Vec<Arc<PartitionLog>>> {
        let mut missing: BTreeMap<uuid::Uuid, Vec<PartitionKey>> = BTreeMap::new();
        {
            let parts = self.read_partitions();
            for k in keys.iter().filter(|k| !parts.contains_key(k)) {
                missing.entry(k.topic_id).or_default().push(*k);
            }
        }
        let mut failed = None;
        for topic in missing.into_values() {
            if let Err(e) = self.create_topic_partitions(topic) {
                failed.get_or_insert(e);
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        let parts = self.read_partitions();
        Ok(keys.iter().filter_map(|k| parts.get(k).cloned()).collect())
    }

    fn create_topic_partitions(&self, keys: Vec<PartitionKey>) -> Result<()> {
        let names: Vec<String> = keys
            .iter()
            .map(|k| k.cf_name())
            .filter(|n| self.db.cf_handle(n).is_none())
            .collect();
        check_descriptors_for(names.len())?;
        self.db.create_cfs(&names, &self.cf_opts)?;
        let mut parts = self.write_partitions();
        for key in keys {
            parts
                .entry(key)
                .or_insert_with(|| Arc::new(PartitionLog::new(key, WriterState::default(), 0)));
        }
        Ok(())
    }

    /// Deletes the given partitions and all their metadata from this node.
    pub fn delete_partitions(&self, keys: &[PartitionKey]) -> Result<()> {
        let removed: Vec<Arc<PartitionLog>> = {
            let mut parts = self.write_partitions();
            keys.iter().filter_map(|k| parts.remove(k)).collect()
        };
        let meta = self.meta_cf()?;
        let mut wb = WriteBatch::default();
        for log in &removed {
            log.mark_deleted();
            let (start, end) = log.meta_keys.range();
            wb.delete_range_cf(&meta, start, end);
        }
        self.db.write(&wb)?;
        for log in &removed {
            // Waits for the appender to finish with the partition before dropping its CF.
            drop(log.writer.lock());
            if self.db.cf_handle(log.cf_name()).is_some() {
                self.db.drop_cf(log.cf_name())?;
            }
        }
        Ok(())
    }

    /// The partition, if stored here.
    pub fn partition(&self, key: &PartitionKey) -> Option<Arc<PartitionLog>> {
        self.read_partitions().get(key).cloned()
    }

    /// Every partition stored here.
    pub fn partitions(&self) -> Vec<Arc<PartitionLog>> {
        self.read_partitions().values().cloned().collect()
    }

    /// Appends batches to several partitions in one write, fsynced first if an entry's
    /// `flush_messages` asks for it.
    ///
    /// Each entry's batches must have passed [`batch::validate`].
    pub async fn append(&self, entries: Vec<AppendEntry>) -> Result<AppendResults> {
        self.queue_append(entries).await?.await
    }

    /// Queues an append and returns once it is queued: appends are written, and get their
    /// offsets, in queue order. The returned future resolves when it is written.
    pub async fn queue_append(
        &self,
        entries: Vec<AppendEntry>,
    ) -> Result<impl std::future::Future<Output = Result<AppendResults>>> {
        let sender = self
            .appender
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .ok_or(StorageError::ShuttingDown)?;
        let (done, result) = oneshot::channel();
        sender
            .send(Job::Append(AppendJob { entries, done }))
            .await
            .map_err(|_| StorageError::ShuttingDown)?;
        Ok(async move { result.await.map_err(|_| StorageError::ShuttingDown) })
    }
    pub(crate) fn db(&self) -> &DB {
        &self.db
    }

    pub(crate) fn partition_cf(
        &self,
        log: &PartitionLog,
    ) -> Result<Arc<rocksdb::BoundColumnFamily<'_>>> {
        self.db
            .cf_handle(log.cf_name())
            .ok_or_else(|| StorageError::UnknownPartition(log.cf_name().to_string()))
    }

    pub(crate) fn maintenance_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.maintenance.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// Flushes memtables and stops the appender; called on clean shutdown.
    pub fn close(&self) -> Result<()> {
        if let Ok(mut s) = self.appender.lock() {
            s.take();
        }
        if let Some(t) = self.appender_thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
        self.db.flush_wal(true)?;
        Ok(())
    }

    /// Fsyncs the write-ahead log (`flush.ms`): everything appended so far becomes durable,
    /// and every partition's unflushed count drops by what the sync covered.
    pub fn sync(&self) -> Result<()> {
        let seen: Vec<(Arc<PartitionLog>, u64)> = self
            .partitions()
            .into_iter()
            .map(|l| {
                let n = l.unflushed().0;
                (l, n)
            })
            .collect();
        let started = std::time::Instant::now();
        self.db.flush_wal(true)?;
        crate::metrics::record_since(crate::metrics::FLUSH_DURATION, started);
        for (log, n) in seen {
            log.note_flushed(n);
        }
        Ok(())
    }
    /// The meta column family and every partition's.
    fn cf_names(&self) -> Vec<String> {
        let mut names = vec![META_CF.to_string()];
        names.extend(
            self.read_partitions()
                .values()
                .map(|l| l.cf_name().to_string()),
        );
        names
    }

    pub(crate) fn meta_cf(&self) -> Result<Arc<rocksdb::BoundColumnFamily<'_>>> {
        self.db
            .cf_handle(META_CF)
            .ok_or_else(|| StorageError::CorruptState("meta column family missing".into()))
    }

    fn read_partitions(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, HashMap<PartitionKey, Arc<PartitionLog>>> {
        self.partitions.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_partitions(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<PartitionKey, Arc<PartitionLog>>> {
        self.partitions.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

fn read_i64(bytes: &[u8]) -> Result<i64> {
    let a: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StorageError::CorruptState("expected 8 bytes".into()))?;
    Ok(i64::from_be_bytes(a))
}

/// The last (largest) time-index entry of a partition: (timestamp, offset).
fn last_time_index_entry(db: &DB, keys: &PartitionMetaKeys) -> Result<Option<(i64, i64)>> {
    let meta = db
        .cf_handle(META_CF)
        .ok_or_else(|| StorageError::CorruptState("meta column family missing".into()))?;
    let prefix = keys.time_index_prefix();
    let mut it = db.raw_iterator_cf(&meta);
    it.seek_for_prev(keys.time_index(i64::MAX));
    let entry = match (it.key(), it.value()) {
        (Some(k), Some(v)) if k.starts_with(&prefix) => {
            let ts = read_i64(&k[prefix.len()..])? as u64 ^ (1 << 63);
            Some((ts as i64, read_i64(v)?))
        }
        _ => None,
    };
    it.status()?;
    Ok(entry)
}

/// Descriptors kept free for what else the node opens meanwhile (sockets, files being
/// written).
const DESCRIPTOR_RESERVE: usize = 64;

/// Each column family created while the node runs keeps a descriptor on the data directory
/// open (RocksDB opens one per creation; at open, all share one), and a batched creation
/// that runs out of descriptors part-way leaves column families RocksDB has but no handle
/// of ours names, so every later creation fails until a restart. Refuse it whole instead.
fn check_descriptors_for(count: usize) -> Result<()> {
    let Some((open, limit)) = open_descriptors() else {
        return Ok(());
    };
    let left = limit.saturating_sub(open);
    if count.saturating_add(DESCRIPTOR_RESERVE) > left {
        return Err(StorageError::TooManyOpenFiles {
            needed: count,
            left,
        });
    }
    Ok(())
}

/// (descriptors open, soft limit) of this process, where /proc tells.
fn open_descriptors() -> Option<(usize, usize)> {
    let open = std::fs::read_dir("/proc/self/fd").ok()?.count();
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?;
    let limit = if soft == "unlimited" {
        usize::MAX
    } else {
        soft.parse().ok()?
    };
    Some((open, limit))
}
