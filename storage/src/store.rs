//! The node's RocksDB instance: opening and recovery, partition lifecycle, reads, appends.

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

/// Read-ahead of a fetch scan over SST files, at most.
const READ_AHEAD: usize = 2 << 20;
/// Read-ahead beyond a fetch's byte limit: the batch that crosses the limit.
const READ_AHEAD_SLACK: usize = 64 << 10;

fn options(config: &StoreConfig) -> (Options, Options) {
    let cache = Cache::new_lru_cache(config.block_cache_size);
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&cache);
    table.set_cache_index_and_filter_blocks(true);

    let mut cf = Options::default();
    cf.set_write_buffer_size(config.write_buffer_size);
    cf.set_arena_block_size(config.arena_block_size);
    cf.set_max_write_buffer_number(3);
    // Batches are usually compressed by the producer already.
    cf.set_compression_type(DBCompressionType::None);
    cf.set_block_based_table_factory(&table);

    let mut db = cf.clone();
    db.create_if_missing(true);
    db.create_missing_column_families(true);
    db.set_write_buffer_manager(&WriteBufferManager::new_write_buffer_manager(
        config.write_buffer_budget,
        false,
    ));
    db.set_max_background_jobs(2);
    db.set_keep_log_file_num(3);
    // A WAL file stays until every CF with data in it is flushed: past this total, RocksDB
    // flushes the CFs holding the oldest one, so removed data does not linger in the WAL.
    db.set_max_total_wal_size(128 << 20);
    db.set_max_open_files(4096);
    // Opening a CF's table files starts this many threads for that CF alone, even when it
    // has no files: at the default 16, a restart with 3,000 partitions started 45,000
    // threads, a quarter of its time (`PERF=1 compat-tests/bench/restart-probe`).
    // Partitions have few files each.
    db.set_max_file_opening_threads(1);
    db.set_skip_stats_update_on_db_open(true);
    (db, cf)
}

impl Store {
    /// Opens (or creates) the store in `dir` and recovers every partition's state.
    pub fn open(dir: &Path, config: &StoreConfig) -> Result<Self> {
        let (db_opts, cf_opts) = options(config);
        let mut names = DB::list_cf(&db_opts, dir).unwrap_or_default();
        for required in std::iter::once(META_CF.to_string())
            .chain(config.system_tables.iter().map(|t| system_cf(t)))
        {
            if !names.contains(&required) {
                names.push(required);
            }
        }
        let descriptors = names
            .iter()
            .map(|n| ColumnFamilyDescriptor::new(n, cf_opts.clone()));
        let started = std::time::Instant::now();
        let db = Arc::new(DB::open_cf_descriptors(&db_opts, dir, descriptors)?);
        tracing::info!(
            column_families = names.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "rocksdb open"
        );
        let found_version = check_format(&db)?;

        let mut partitions = HashMap::new();
        for name in &names {
            if let Some(key) = PartitionKey::from_cf_name(name) {
                let log = recover_partition(&db, key)?;
                if found_version < 2 {
                    build_time_index(&db, &log)?;
                }
                partitions.insert(key, Arc::new(log));
            }
        }
        if found_version < FORMAT_VERSION {
            write_format_version(&db)?;
        }
        tracing::info!(partitions = partitions.len(), "storage recovered");

        let (tx, rx) = mpsc::channel(1024);
        let writer_db = db.clone();
        let thread = std::thread::Builder::new()
            .name("sluice-appender".into())
            .spawn(move || appender::run(writer_db, rx))
            .map_err(|e| StorageError::CorruptState(format!("cannot start appender: {e}")))?;
        Ok(Self {
            db,
            cf_opts,
            partitions: RwLock::new(partitions),
            appender: Mutex::new(Some(tx)),
            appender_thread: Mutex::new(Some(thread)),
            maintenance: Mutex::new(()),
            system_cfs: config.system_tables.iter().map(|t| system_cf(t)).collect(),
        })
    }

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

    /// Reads whole batches starting with the one containing `from`, stopping before
    /// `upper` (exclusive) or once `max_bytes` is reached. With `min_one` the first batch is
    /// returned even if larger than `max_bytes`, as Kafka does, so consumers make progress.
    pub fn read(
        &self,
        log: &PartitionLog,
        from: i64,
        upper: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<Vec<Bytes>> {
        let mut out = Vec::new();
        self.scan_for_read(log, from, upper, max_bytes, min_one, |batch| {
            out.push(Bytes::copy_from_slice(batch))
        })?;
        Ok(out)
    }

    /// [`Store::read`] into one contiguous buffer, as a Fetch response carries the batches:
    /// each batch is copied once, straight from RocksDB, with no per-batch allocation.
    pub fn read_contiguous(
        &self,
        log: &PartitionLog,
        from: i64,
        upper: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<Bytes> {
        if from >= upper {
            return Ok(Bytes::new());
        }
        // Untouched capacity costs address space only; cap it for huge limits.
        let mut out = BytesMut::with_capacity(max_bytes.min(16 << 20));
        self.scan_for_read(log, from, upper, max_bytes, min_one, |batch| {
            out.extend_from_slice(batch)
        })?;
        Ok(out.freeze())
    }

    fn scan_for_read(
        &self,
        log: &PartitionLog,
        from: i64,
        upper: i64,
        max_bytes: usize,
        min_one: bool,
        mut emit: impl FnMut(&[u8]),
    ) -> Result<()> {
        if from >= upper {
            return Ok(());
        }
        let cf = self
            .db
            .cf_handle(log.cf_name())
            .ok_or_else(|| StorageError::UnknownPartition(log.cf_name().to_string()))?;
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(offset_key(upper).to_vec());
        // Consumers read a log once, front to back: blocks read from SST files would only
        // push hot ones (the log's tail, indexes) out of the block cache, and large
        // read-ahead turns many small preads into a few.
        ro.fill_cache(false);
        // No more than this read needs: the next fetch opens a new iterator and would read
        // the surplus again.
        ro.set_readahead_size(max_bytes.saturating_add(READ_AHEAD_SLACK).min(READ_AHEAD));
        let mut it = self.db.raw_iterator_cf_opt(&cf, ro);
        it.seek_for_prev(offset_key(from));
        if !it.valid() {
            it.seek(offset_key(from));
        }
        let (mut total, mut emitted) = (0usize, false);
        while let (Some(_), Some(value)) = (it.key(), it.value()) {
            let header = batch::parse_header(value)?;
            if header.last_offset() >= from {
                if (min_one && !emitted) || total + value.len() <= max_bytes {
                    // fits, or the one batch that must be returned
                } else {
                    break;
                }
                total += value.len();
                emit(value);
                emitted = true;
                if total >= max_bytes {
                    break;
                }
            }
            it.next();
        }
        it.status()?;
        Ok(())
    }

    /// The first batch whose max timestamp is >= `timestamp` (below `upper`); the record
    /// inside it is for the caller to pick. One seek in the time index finds where to look.
    pub fn batch_for_timestamp(
        &self,
        log: &PartitionLog,
        timestamp: i64,
        upper: i64,
    ) -> Result<Option<Bytes>> {
        let meta = self.meta_cf()?;
        let prefix = log.meta_keys.time_index_prefix();
        let mut it = self.db.raw_iterator_cf(&meta);
        it.seek(log.meta_keys.time_index(timestamp));
        let indexed = match (it.key(), it.value()) {
            (Some(k), Some(v)) if k.starts_with(&prefix) => Some(read_i64(v)?),
            _ => None,
        };
        it.status()?;
        let Some(from) = indexed else {
            return Ok(None); // no batch ever reached the timestamp
        };
        // Every batch before `from` is older; the indexed one may since have been compacted
        // away or be below the log start, so the first qualifying batch is looked for.
        let mut found = None;
        self.scan_batches(log, from, upper, |h, bytes| {
            if h.max_timestamp >= timestamp {
                found = Some(Bytes::copy_from_slice(bytes));
                false
            } else {
                true
            }
        })?;
        Ok(found)
    }

    /// The (first) batch holding the largest timestamp below `upper`: the last time-index
    /// entry when its batch is still there and below `upper`, else a scan.
    pub fn batch_with_max_timestamp(
        &self,
        log: &PartitionLog,
        upper: i64,
    ) -> Result<Option<Bytes>> {
        if let Some((ts, offset)) = last_time_index_entry(&self.db, &log.meta_keys)? {
            if offset >= log.log_start_offset() {
                let cf = self.partition_cf(log)?;
                if let Some(b) = self.db.get_pinned_cf(&cf, offset_key(offset))? {
                    let h = batch::parse_header(&b)?;
                    if h.max_timestamp == ts && h.last_offset() < upper {
                        return Ok(Some(Bytes::copy_from_slice(&b)));
                    }
                }
            }
        }
        let mut best: Option<(i64, Bytes)> = None;
        self.scan_batches(log, 0, upper, |h, bytes| {
            if best.as_ref().is_none_or(|(ts, _)| h.max_timestamp > *ts) {
                best = Some((h.max_timestamp, Bytes::copy_from_slice(bytes)));
            }
            true
        })?;
        Ok(best.map(|(_, b)| b))
    }

    /// Visits batches from `from` (or the log start, if later) below `upper`.
    fn scan_batches(
        &self,
        log: &PartitionLog,
        from: i64,
        upper: i64,
        mut visit: impl FnMut(&batch::BatchHeader, &[u8]) -> bool,
    ) -> Result<()> {
        let Some(cf) = self.db.cf_handle(log.cf_name()) else {
            return Ok(());
        };
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(offset_key(upper).to_vec());
        let mut it = self.db.raw_iterator_cf_opt(&cf, ro);
        it.seek_for_prev(offset_key(from.max(log.log_start_offset())));
        if !it.valid() {
            it.seek(offset_key(0));
        }
        while let Some(value) = it.value() {
            if !visit(&batch::parse_header(value)?, value) {
                break;
            }
            it.next();
        }
        it.status()?;
        Ok(())
    }

    /// Moves the log start forward to `new_start` (clamped to the log end), removing every
    /// batch that lies wholly before it (retention, DeleteRecords). The new start is written
    /// first, so a crash in between never exposes removed offsets again.
    pub fn advance_log_start(&self, log: &PartitionLog, new_start: i64) -> Result<bool> {
        let _guard = self.maintenance_lock();
        let new_start = new_start.min(log.log_end_offset());
        if new_start <= log.log_start_offset() {
            return Ok(false);
        }
        let cf = self.partition_cf(log)?;
        // Batches are removed whole: the one holding `new_start` stays (readers skip into it).
        let mut it = self.db.raw_iterator_cf(&cf);
        it.seek_for_prev(offset_key(new_start));
        let holding = match (it.key().and_then(offset_from_key), it.value()) {
            (Some(base), Some(value)) => Some((base, batch::parse_header(value)?.last_offset())),
            _ => None,
        };
        let keep_from = match holding {
            Some((base, last)) if last >= new_start => base,
            _ => new_start,
        };
        it.status()?;
        let meta = self.meta_cf()?;
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        let mut wb = WriteBatch::default();
        wb.put_cf(&meta, log.meta_keys.log_start(), new_start.to_be_bytes());
        wb.delete_range_cf(&cf, offset_key(0), offset_key(keep_from));
        self.db.write_opt(&wb, &wo)?;
        log.set_log_start(new_start);
        Ok(true)
    }

    /// The first batch (at or after the log start, below `upper`) whose max timestamp is at
    /// least `timestamp`: where time retention cuts the log.
    pub fn first_offset_newer_than(
        &self,
        log: &PartitionLog,
        timestamp: i64,
        upper: i64,
    ) -> Result<Option<i64>> {
        let mut found = None;
        self.scan_batches(log, 0, upper, |h, _| {
            if h.max_timestamp >= timestamp {
                found = Some(h.base_offset);
                false
            } else {
                true
            }
        })?;
        Ok(found)
    }

    /// Where size retention cuts the log: the oldest batch such that it and everything after
    /// it still hold at least `retain_bytes` (as Kafka, which deletes a segment only while the
    /// rest stays at or above `retention.bytes`); never past `upper`. None if nothing goes.
    pub fn start_for_size(
        &self,
        log: &PartitionLog,
        retain_bytes: u64,
        upper: i64,
    ) -> Result<Option<i64>> {
        let cf = self.partition_cf(log)?;
        let mut it = self.db.raw_iterator_cf(&cf);
        it.seek_to_last();
        let mut total = 0u64;
        while let (Some(key), Some(value)) = (it.key(), it.value()) {
            total += value.len() as u64;
            let base = offset_from_key(key).unwrap_or(0);
            if total >= retain_bytes {
                it.status()?;
                let start = base.max(log.log_start_offset()).min(upper);
                return Ok((start > log.log_start_offset()).then_some(start));
            }
            it.prev();
        }
        it.status()?;
        Ok(None)
    }

    /// Removes everything from `offset` on (a follower whose log diverged from its new
    /// leader's, KIP-101): batches, leader epochs that started there, producer batches
    /// written there. `offset` must be a batch boundary (epoch end offsets always are).
    /// Runs on the writer thread, so no append can interleave with it.
    pub async fn truncate_to(&self, log: &Arc<PartitionLog>, offset: i64) -> Result<bool> {
        let (db, log) = (self.db.clone(), log.clone());
        self.on_writer(move || truncate(&db, &log, offset)).await
    }

    /// Empties a follower's log and restarts it at `offset`: the follower fell behind its
    /// leader's log start (a new replica, or one away longer than retention), so what it has
    /// can never be continued. Runs on the writer thread like [`Store::truncate_to`].
    pub async fn restart_at(&self, log: &Arc<PartitionLog>, offset: i64) -> Result<()> {
        let (db, log) = (self.db.clone(), log.clone());
        self.on_writer(move || {
            truncate(&db, &log, log.log_start_offset()).and_then(|_| restart(&db, &log, offset))
        })
        .await
    }

    /// Runs `work` on the writer thread, between appends, and returns its result.
    async fn on_writer<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let sender = self
            .appender
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .ok_or(StorageError::ShuttingDown)?;
        let (done, result) = oneshot::channel();
        let job = Box::new(move || {
            let _ = done.send(work());
        });
        sender
            .send(Job::Exclusive(job))
            .await
            .map_err(|_| StorageError::ShuttingDown)?;
        result.await.map_err(|_| StorageError::ShuttingDown)?
    }

    /// Compacts the key range below the log start, so the space of removed batches is
    /// returned to the file system now rather than whenever RocksDB gets to it.
    pub fn reclaim(&self, log: &PartitionLog) -> Result<()> {
        let cf = self.partition_cf(log)?;
        let end = offset_key(log.log_start_offset());
        self.db.compact_range_cf(&cf, None::<&[u8]>, Some(&end[..]));
        Ok(())
    }

    /// Compacts a whole partition (after log compaction rewrote it), dropping the versions
    /// its rewrites replaced.
    pub fn reclaim_all(&self, log: &PartitionLog) -> Result<()> {
        let cf = self.partition_cf(log)?;
        self.db.compact_range_cf(&cf, None::<&[u8]>, None::<&[u8]>);
        Ok(())
    }

    /// Flushes the small, always-written column families (meta, system tables), which
    /// otherwise keep old WAL files, and the removed data in them, on disk. Once per
    /// retention or cleaner pass, after its `reclaim` calls.
    pub fn release_wal(&self) -> Result<()> {
        for name in std::iter::once(META_CF).chain(self.system_cfs.iter().map(String::as_str)) {
            if let Some(cf) = self.db.cf_handle(name) {
                self.db.flush_cf(&cf)?;
            }
        }
        Ok(())
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

    /// A system table (created at open through [`StoreConfig::system_tables`]).
    pub fn system_table(&self, name: &str) -> Result<SystemTable> {
        let cf = system_cf(name);
        if self.db.cf_handle(&cf).is_none() {
            return Err(StorageError::UnknownPartition(cf));
        }
        Ok(SystemTable {
            db: self.db.clone(),
            cf,
        })
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

    /// Write stalls so far (delays plus stops): the write buffer manager's, from
    /// `db-write-stall-stats`, plus every column family's totals from `cf-write-stall-stats`.
    pub fn write_stalls(&self) -> u64 {
        let db_wide = self
            .db
            .property_value("rocksdb.db-write-stall-stats")
            .ok()
            .flatten()
            .map(|s| stall_count(&s, |k| k.ends_with("-stops") || k.ends_with("-delays")))
            .unwrap_or(0);
        let per_cf: u64 = self
            .cf_names()
            .iter()
            .filter_map(|n| self.db.cf_handle(n))
            .filter_map(|cf| {
                self.db
                    .property_value_cf(&cf, "rocksdb.cf-write-stall-stats")
                    .ok()
                    .flatten()
            })
            .map(|s| stall_count(&s, |k| k == "total-delays" || k == "total-stops"))
            .sum();
        db_wide + per_cf
    }

    /// Estimated bytes a partition takes: its live SST data plus its memtables.
    pub fn partition_size_estimate(&self, log: &PartitionLog) -> u64 {
        let Ok(cf) = self.partition_cf(log) else {
            return 0;
        };
        [
            "rocksdb.estimate-live-data-size",
            "rocksdb.cur-size-all-mem-tables",
        ]
        .iter()
        .filter_map(|p| self.db.property_int_value_cf(&cf, *p).ok().flatten())
        .sum()
    }

    /// A RocksDB integer property summed over all column families (e.g. memtable size).
    pub fn int_property(&self, name: &str) -> u64 {
        self.cf_names()
            .iter()
            .filter_map(|n| self.db.cf_handle(n))
            .filter_map(|cf| self.db.property_int_value_cf(&cf, name).ok().flatten())
            .sum()
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

    fn meta_cf(&self) -> Result<Arc<rocksdb::BoundColumnFamily<'_>>> {
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

/// The format version on disk (this build's for a new store); refuses newer ones.
fn check_format(db: &DB) -> Result<u32> {
    let meta = db
        .cf_handle(META_CF)
        .ok_or_else(|| StorageError::CorruptState("meta column family missing".into()))?;
    match db.get_cf(&meta, FORMAT_VERSION_KEY)? {
        Some(v) => {
            let bytes: [u8; 4] = v
                .as_slice()
                .try_into()
                .map_err(|_| StorageError::CorruptState("format version".into()))?;
            let found = u32::from_be_bytes(bytes);
            if found > FORMAT_VERSION {
                return Err(StorageError::FormatTooNew {
                    found,
                    supported: FORMAT_VERSION,
                });
            }
            Ok(found)
        }
        None => {
            write_format_version(db)?;
            Ok(FORMAT_VERSION)
        }
    }
}

fn write_format_version(db: &DB) -> Result<()> {
    let meta = db
        .cf_handle(META_CF)
        .ok_or_else(|| StorageError::CorruptState("meta column family missing".into()))?;
    let mut wo = WriteOptions::default();
    wo.set_sync(true);
    let mut wb = WriteBatch::default();
    wb.put_cf(&meta, FORMAT_VERSION_KEY, FORMAT_VERSION.to_be_bytes());
    db.write_opt(&wb, &wo)?;
    Ok(())
}

/// Builds a partition's time index from its batch headers (upgrade from format 1).
fn build_time_index(db: &DB, log: &PartitionLog) -> Result<()> {
    let meta = db
        .cf_handle(META_CF)
        .ok_or_else(|| StorageError::CorruptState("meta column family missing".into()))?;
    let cf = db
        .cf_handle(log.cf_name())
        .ok_or_else(|| StorageError::UnknownPartition(log.cf_name().to_string()))?;
    let mut wb = WriteBatch::default();
    let mut max = i64::MIN;
    let mut it = db.raw_iterator_cf(&cf);
    it.seek_to_first();
    while let Some(value) = it.value() {
        let h = batch::parse_header(value)?;
        if h.max_timestamp > max {
            max = h.max_timestamp;
            wb.put_cf(
                &meta,
                log.meta_keys.time_index(max),
                h.base_offset.to_be_bytes(),
            );
        }
        it.next();
    }
    it.status()?;
    db.write(&wb)?;
    if let Ok(mut w) = log.writer.lock() {
        w.max_timestamp = max;
    }
    Ok(())
}

fn read_i64(bytes: &[u8]) -> Result<i64> {
    let a: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StorageError::CorruptState("expected 8 bytes".into()))?;
    Ok(i64::from_be_bytes(a))
}

fn recover_partition(db: &DB, key: PartitionKey) -> Result<PartitionLog> {
    let keys = PartitionMetaKeys::new(&key);
    let meta = db
        .cf_handle(META_CF)
        .ok_or_else(|| StorageError::CorruptState("meta column family missing".into()))?;
    let cf = db
        .cf_handle(&key.cf_name())
        .ok_or_else(|| StorageError::UnknownPartition(key.cf_name()))?;

    let stored_start = db
        .get_cf(&meta, keys.log_start())?
        .map(|v| read_i64(&v))
        .transpose()?;
    let mut first = db.iterator_cf(&cf, IteratorMode::Start);
    let first_offset = match first.next() {
        Some(item) => offset_from_key(&item?.0),
        None => None,
    };
    let mut last = db.iterator_cf(&cf, IteratorMode::End);
    let next_offset = match last.next() {
        Some(item) => batch::parse_header(&item?.1)?.last_offset() + 1,
        None => stored_start.unwrap_or(0),
    };
    let log_start = stored_start.or(first_offset).unwrap_or(next_offset);

    let mut producers = ProducerStates::default();
    let prefix = keys.producers_prefix();
    for item in db.iterator_cf(&meta, IteratorMode::From(&prefix, Direction::Forward)) {
        let (k, v) = item?;
        let Some(pid) = k.strip_prefix(prefix.as_slice()) else {
            break;
        };
        producers.set(read_i64(pid)?, Some(ProducerEntry::decode(&v)?));
    }
    let epochs = db
        .get_cf(&meta, keys.leader_epochs())?
        .map(|v| appender::decode_epochs(&v))
        .unwrap_or_default();
    let max_timestamp = last_time_index_entry(db, &keys)?
        .map(|(ts, _)| ts)
        .unwrap_or(i64::MIN);
    let writer = WriterState {
        next_offset,
        producers,
        epochs,
        max_timestamp,
    };
    Ok(PartitionLog::new(key, writer, log_start))
}

/// Truncates a follower's log from `offset` on (see [`Store::truncate_to`]); runs on the
/// writer thread.
fn truncate(db: &DB, log: &PartitionLog, offset: i64) -> Result<bool> {
    let cf = db
        .cf_handle(log.cf_name())
        .ok_or_else(|| StorageError::UnknownPartition(log.cf_name().to_string()))?;
    let meta = db
        .cf_handle(META_CF)
        .ok_or_else(|| StorageError::CorruptState("meta column family missing".into()))?;

    let mut w = log
        .writer
        .lock()
        .map_err(|_| StorageError::CorruptState("partition writer lock poisoned".into()))?;
    if offset >= w.next_offset {
        return Ok(false);
    }
    let offset = offset.max(log.log_start_offset());
    let mut wb = WriteBatch::default();
    wb.delete_range_cf(&cf, offset_key(offset), offset_key(i64::MAX));
    w.epochs.retain(|(_, start)| *start < offset);
    wb.put_cf(
        &meta,
        log.meta_keys.leader_epochs(),
        appender::encode_epochs(&w.epochs),
    );
    for (pid, mut entry) in w.producers.entries() {
        let before = entry.batches.len();
        entry.batches.retain(|b| b.last_offset < offset);
        if entry.batches.len() != before {
            wb.put_cf(&meta, log.meta_keys.producer(pid), entry.encode());
            w.producers.set(pid, Some(entry));
        }
    }
    // The time index keeps only entries below the cut; the running max is the last one.
    let from = log.meta_keys.time_index(i64::MIN);
    let mut stale = Vec::new();
    let mut max_ts = i64::MIN;
    let mut it = db.raw_iterator_cf(&meta);
    it.seek(&from);
    let prefix = log.meta_keys.time_index_prefix();
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        if !k.starts_with(&prefix) {
            break;
        }
        if read_i64(v)? >= offset {
            stale.push(k.to_vec());
        } else {
            max_ts = (read_i64(&k[prefix.len()..])? as u64 ^ (1 << 63)) as i64;
        }
        it.next();
    }
    it.status()?;
    for k in stale {
        wb.delete_cf(&meta, k);
    }
    let mut wo = WriteOptions::default();
    wo.set_sync(true);
    db.write_opt(&wb, &wo)?;
    w.next_offset = offset;
    w.max_timestamp = max_ts;
    log.publish_log_end(offset);
    log.set_high_watermark(log.high_watermark().min(offset));
    Ok(true)
}

/// Moves an emptied log's start and end to `offset` (see [`Store::restart_at`]).
fn restart(db: &DB, log: &PartitionLog, offset: i64) -> Result<()> {
    let meta = db
        .cf_handle(META_CF)
        .ok_or_else(|| StorageError::CorruptState("meta column family missing".into()))?;
    let mut w = log
        .writer
        .lock()
        .map_err(|_| StorageError::CorruptState("partition writer lock poisoned".into()))?;
    let mut wo = WriteOptions::default();
    wo.set_sync(true);
    db.put_cf_opt(&meta, log.meta_keys.log_start(), offset.to_be_bytes(), &wo)?;
    w.next_offset = offset;
    log.set_log_start(offset);
    log.publish_log_end(offset);
    log.set_high_watermark(offset);
    Ok(())
}

/// Sums the counts of the entries `wanted` picks from a RocksDB write-stall stats string
/// ("Write Stall (count): name: N, name: N, ...").
fn stall_count(stats: &str, wanted: impl Fn(&str) -> bool) -> u64 {
    let body = stats.split_once("(count):").map_or(stats, |(_, b)| b);
    body.split([',', '\n'])
        .filter_map(|kv| kv.split_once(':'))
        .filter(|(k, _)| wanted(k.trim()))
        .filter_map(|(_, v)| v.trim().parse::<u64>().ok())
        .sum()
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

/// A node-local key-value table in its own column family (used by the controller).
#[derive(Clone)]
pub struct SystemTable {
    db: Arc<DB>,
    cf: String,
}

impl SystemTable {
    fn cf(&self) -> Result<Arc<rocksdb::BoundColumnFamily<'_>>> {
        self.db
            .cf_handle(&self.cf)
            .ok_or_else(|| StorageError::UnknownPartition(self.cf.clone()))
    }

    /// Reads one key.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(&self.cf()?, key)?)
    }

    /// Writes and deletes in one atomic, synced write.
    pub fn write(&self, puts: &[(Vec<u8>, Vec<u8>)], deletes: &[Vec<u8>]) -> Result<()> {
        let cf = self.cf()?;
        let mut wb = WriteBatch::default();
        for (k, v) in puts {
            wb.put_cf(&cf, k, v);
        }
        for k in deletes {
            wb.delete_cf(&cf, k);
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        Ok(self.db.write_opt(&wb, &wo)?)
    }

    /// Deletes every key in `[from, to)`.
    pub fn delete_range(&self, from: &[u8], to: &[u8]) -> Result<()> {
        let cf = self.cf()?;
        let mut wb = WriteBatch::default();
        wb.delete_range_cf(&cf, from, to);
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        Ok(self.db.write_opt(&wb, &wo)?)
    }

    /// Key-value pairs in `[from, to)`, in key order.
    pub fn range(&self, from: &[u8], to: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let cf = self.cf()?;
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(to.to_vec());
        let mut it = self.db.raw_iterator_cf_opt(&cf, ro);
        it.seek(from);
        let mut out = Vec::new();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            out.push((k.to_vec(), v.to_vec()));
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    /// The last key-value pair in the table, if any.
    pub fn last(&self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let cf = self.cf()?;
        let mut it = self.db.raw_iterator_cf(&cf);
        it.seek_to_last();
        let out = match (it.key(), it.value()) {
            (Some(k), Some(v)) => Some((k.to_vec(), v.to_vec())),
            _ => None,
        };
        it.status()?;
        Ok(out)
    }
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

#[cfg(test)]
mod stall_tests {
    use super::stall_count;

    #[test]
    fn write_stall_stats_strings_are_read_as_rocksdb_prints_them() {
        let db = "Write Stall (count): write-buffer-manager-limit-stops: 4\n";
        assert_eq!(stall_count(db, |k| k.ends_with("-stops")), 4);
        let cf = "Write Stall (count): l0-file-count-limit-delays: 2, memtable-limit-stops: 1, \
                  total-delays: 2, total-stops: 1\n";
        assert_eq!(
            stall_count(cf, |k| k == "total-delays" || k == "total-stops"),
            3
        );
    }
}
