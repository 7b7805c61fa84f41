//! Reads: whole batches for fetches, and the lookups by timestamp and by size that
//! ListOffsets and retention need.

use super::*;

impl Store {
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

    /// The aborted transactions a `read_committed` fetch of `[from, upper)` must be told
    /// about: (producer id, first offset) of each whose abort marker is at or past `from`
    /// and whose first batch is before `upper`, oldest marker first.
    pub fn aborted_transactions(
        &self,
        log: &PartitionLog,
        from: i64,
        upper: i64,
    ) -> Result<Vec<(i64, i64)>> {
        let mut out = Vec::new();
        for (_, producer_id, first) in self.aborted_index(log, from)? {
            if first < upper {
                out.push((producer_id, first));
            }
        }
        Ok(out)
    }

    /// Entries of the aborted-transaction index from marker offset `from` on:
    /// (marker offset, producer id, first offset).
    pub(crate) fn aborted_index(
        &self,
        log: &PartitionLog,
        from: i64,
    ) -> Result<Vec<(i64, i64, i64)>> {
        let meta = self.meta_cf()?;
        let prefix = log.meta_keys.aborted_prefix();
        let mut it = self.db.raw_iterator_cf(&meta);
        it.seek(log.meta_keys.aborted(from.max(0)));
        let mut out = Vec::new();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !k.starts_with(&prefix) || v.len() != 16 {
                break;
            }
            let marker = read_i64(&k[prefix.len()..])?;
            out.push((marker, read_i64(&v[..8])?, read_i64(&v[8..])?));
            it.next();
        }
        it.status()?;
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
        // push hot ones (the log's tail, indexes) out of the block cache. No read-ahead
        // buffer either (see `open.rs`): each block is read straight into its own buffer.
        ro.fill_cache(false);
        // Every batch carries its own CRC32C, which consumers check (and followers on
        // append), as Kafka relies on it: hashing each block again on every read took a
        // fifth of the fetch path's CPU.
        ro.set_verify_checksums(false);
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
}
