//! Maintenance of partition logs: moving the log start (retention, DeleteRecords),
//! truncating a follower (KIP-101), restarting it at its leader's log start, and giving
//! freed space back.

use super::*;

impl Store {
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
        // Aborted transactions that ended before the new start concern no reader any more.
        wb.delete_range_cf(
            &meta,
            log.meta_keys.aborted(0),
            log.meta_keys.aborted(new_start),
        );
        self.db.write_opt(&wb, &wo)?;
        log.set_log_start(new_start);
        Ok(true)
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
    // A transaction whose abort marker is cut is open again (read_committed consumers must
    // not see its records until the coordinator writes the marker anew); one whose first
    // batch is cut did not happen here. A cut commit marker is not reopened: that commit is
    // decided, so its records only become visible a little early.
    let mut reopened = std::collections::HashMap::new();
    let prefix = log.meta_keys.aborted_prefix();
    let mut it = db.raw_iterator_cf(&meta);
    it.seek(log.meta_keys.aborted(offset));
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        if !k.starts_with(&prefix) || v.len() != 16 {
            break;
        }
        let (pid, first) = (read_i64(&v[..8])?, read_i64(&v[8..])?);
        if first < offset {
            reopened.entry(pid).or_insert(first);
        }
        wb.delete_cf(&meta, k);
        it.next();
    }
    it.status()?;
    drop(it);
    for (pid, mut entry) in w.producers.entries() {
        let before = (entry.batches.len(), entry.open_txn);
        entry.batches.retain(|b| b.last_offset < offset);
        entry.open_txn = entry
            .open_txn
            .filter(|first| *first < offset)
            .or(reopened.remove(&pid));
        if (entry.batches.len(), entry.open_txn) != before {
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
    log.publish_first_unstable(w.producers.first_open_txn());
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
