//! Log compaction (`cleanup.policy=compact`): for every key only its latest record is kept,
//! tombstones go once they are older than `delete.retention.ms`, and offsets never change.
//!
//! Only batches wholly below the caller's bound and the last stable offset (nothing that
//! could still be truncated, and no transaction still open, decides what survives) and never
//! the last batch (the log end is recovered from it) are touched. Batches are rewritten
//! record by record (see [`crate::records::retain`]). As in Kafka, the batches of aborted
//! transactions are removed whole and count as no key's latest record; committed
//! transactional records are compacted like any others; a transaction marker goes once none
//! of its transaction's records are left and it is older than `delete.retention.ms` (with
//! an abort marker goes its aborted-index entry).

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use bytes::Bytes;
use rocksdb::{ReadOptions, WriteBatch};

use crate::batch;
use crate::error::{Result, StorageError};
use crate::keys::{offset_from_key, offset_key};
use crate::log::PartitionLog;
use crate::records::{self, Retained};
use crate::store::Store;

/// What one compaction pass may do.
#[derive(Debug, Clone, Copy)]
pub struct CompactPlan {
    /// Only records below this offset decide the latest record per key, and only batches
    /// ending below it are cleaned.
    pub upper: i64,
    /// Tombstones in batches whose max timestamp is below this (ms) are removed.
    pub tombstone_cutoff_ms: i64,
    /// Batches whose max timestamp is above this (ms) are left alone
    /// (`min.compaction.lag.ms`).
    pub newest_cleanable_ms: i64,
}

/// What one compaction pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CompactStats {
    /// Batches replaced by a smaller rewrite.
    pub batches_rewritten: usize,
    /// Batches removed because none of their records survived.
    pub batches_removed: usize,
    /// Records removed.
    pub records_removed: usize,
    /// Records left in the part of the log the pass cleaned.
    pub records_kept: usize,
    /// The pass cleaned the batches ending below this offset: the bound, or the start of the
    /// last batch or of the first batch too young to clean, whichever comes first. Later
    /// passes count what lies past it as dirty.
    pub cleaned_upto: i64,
    /// Stored bytes of the batches changed, before and after.
    pub bytes_before: usize,
    /// See `bytes_before`.
    pub bytes_after: usize,
    /// Max timestamp of the oldest batch still holding a tombstone, or of the oldest marker
    /// whose transaction's records are all gone: when a later pass can remove it.
    pub oldest_tombstone_ms: Option<i64>,
}

/// Changes are written in chunks of about this many bytes.
const WRITE_CHUNK: usize = 16 << 20;

/// What a pass changes: batches rewritten (`Some`) or removed (`None`) by base offset, and
/// the markers removed (whose aborted-index entries go with them, if they have one).
#[derive(Default)]
struct Changes {
    batches: Vec<(i64, Option<Bytes>)>,
    markers_removed: Vec<i64>,
}

/// The offset ranges of each producer's aborted transactions (first batch to marker).
struct AbortedRanges(HashMap<i64, Vec<Range<i64>>>);

impl AbortedRanges {
    fn contains(&self, header: &batch::BatchHeader) -> bool {
        header.is_transactional()
            && !header.is_control()
            && self
                .0
                .get(&header.producer_id)
                .is_some_and(|rs| rs.iter().any(|r| r.contains(&header.base_offset)))
    }
}

impl Store {
    /// One compaction pass over a partition.
    pub fn compact(&self, log: &PartitionLog, plan: &CompactPlan) -> Result<CompactStats> {
        let last_base = self.last_batch_base(log)?;
        // Below the first open transaction every transaction is decided.
        let bound = plan.upper.min(log.first_unstable());
        let mut aborted = AbortedRanges(HashMap::new());
        for (marker, producer_id, first) in self.aborted_index(log, log.log_start_offset())? {
            aborted
                .0
                .entry(producer_id)
                .or_default()
                .push(first..marker);
        }
        // Pass 1: the latest offset of every key below the bound, and where the first batch
        // too young to clean (`min.compaction.lag.ms`) starts.
        let mut latest: HashMap<Bytes, i64> = HashMap::new();
        let mut first_too_young: Option<i64> = None;
        self.for_each_batch(log, bound, |header, bytes| {
            if header.max_timestamp > plan.newest_cleanable_ms {
                first_too_young.get_or_insert(header.base_offset);
            }
            // An aborted record never superseded anything. Markers' keys are not record keys.
            if header.is_control() || aborted.contains(header) {
                return Ok(());
            }
            let recs = match records::records(bytes) {
                Ok((_, recs)) => recs,
                // Kept whole in pass 2: its keys supersede nothing.
                Err(StorageError::RecordsTooLarge) => return Ok(()),
                Err(e) => return Err(e),
            };
            for r in recs {
                if let Some(key) = r.key {
                    let e = latest.entry(key).or_insert(r.offset);
                    *e = (*e).max(r.offset);
                }
            }
            Ok(())
        })?;
        // Pass 2: rewrite what lost records, up to the last batch or the first one too young
        // to clean, as Kafka stops at its first uncleanable segment.
        let upper = bound
            .min(last_base.unwrap_or(0))
            .min(first_too_young.unwrap_or(i64::MAX));
        let mut stats = CompactStats {
            cleaned_upto: upper,
            ..CompactStats::default()
        };
        let mut pending = Changes::default();
        let mut pending_bytes = 0usize;
        // Producers whose current transaction still has records in the log.
        let mut txn_records_kept: HashSet<i64> = HashSet::new();
        self.for_each_batch(log, upper, |header, bytes| {
            let count = usize::try_from(header.records_count).unwrap_or(0);
            if header.is_control() {
                if !txn_records_kept.remove(&header.producer_id) {
                    if header.max_timestamp < plan.tombstone_cutoff_ms {
                        stats.batches_removed += 1;
                        stats.records_removed += count;
                        stats.bytes_before += bytes.len();
                        pending.batches.push((header.base_offset, None));
                        pending.markers_removed.push(header.base_offset);
                        return Ok(());
                    }
                    let t = stats
                        .oldest_tombstone_ms
                        .get_or_insert(header.max_timestamp);
                    *t = (*t).min(header.max_timestamp);
                }
                stats.records_kept += count;
                return Ok(());
            }
            if aborted.contains(header) {
                stats.batches_removed += 1;
                stats.records_removed += count;
                stats.bytes_before += bytes.len();
                pending.batches.push((header.base_offset, None));
                return Ok(());
            }
            let expired = header.max_timestamp < plan.tombstone_cutoff_ms;
            let (mut removed, mut kept) = (0usize, 0usize);
            let mut kept_tombstone = false;
            let retained = records::retain(bytes, |r| {
                let keep = match &r.key {
                    None => true,
                    Some(k) => latest.get(k) == Some(&r.offset) && !(r.is_tombstone() && expired),
                };
                removed += usize::from(!keep);
                kept += usize::from(keep);
                kept_tombstone |= keep && r.is_tombstone();
                keep
            });
            let retained = match retained {
                Ok(retained) => retained,
                // A batch whose records would inflate past the bound (stored before its topic
                // became compacted) is kept as it is rather than decompressed.
                Err(StorageError::RecordsTooLarge) => {
                    tracing::warn!(
                        base_offset = header.base_offset,
                        "a batch decompresses past the bound: kept whole by compaction"
                    );
                    kept = count;
                    Retained::All
                }
                Err(e) => return Err(e),
            };
            stats.records_kept += kept;
            if kept_tombstone {
                let t = stats
                    .oldest_tombstone_ms
                    .get_or_insert(header.max_timestamp);
                *t = (*t).min(header.max_timestamp);
            }
            stats.records_removed += removed;
            if header.is_transactional() && !matches!(retained, Retained::None) {
                txn_records_kept.insert(header.producer_id);
            }
            match retained {
                Retained::All => return Ok(()),
                Retained::None => {
                    stats.batches_removed += 1;
                    pending.batches.push((header.base_offset, None));
                }
                Retained::Some(b) => {
                    stats.batches_rewritten += 1;
                    stats.bytes_after += b.len();
                    pending_bytes += b.len();
                    pending.batches.push((header.base_offset, Some(b)));
                }
            }
            stats.bytes_before += bytes.len();
            if pending_bytes >= WRITE_CHUNK {
                self.replace_batches(log, std::mem::take(&mut pending))?;
                pending_bytes = 0;
            }
            Ok(())
        })?;
        self.replace_batches(log, pending)?;
        Ok(stats)
    }

    /// Base offset of the partition's last batch.
    fn last_batch_base(&self, log: &PartitionLog) -> Result<Option<i64>> {
        let cf = self.partition_cf(log)?;
        let mut it = self.db().raw_iterator_cf(&cf);
        it.seek_to_last();
        let last = it.key().and_then(offset_from_key);
        it.status()?;
        Ok(last)
    }

    /// Visits every batch from the log start that ends below `upper`.
    fn for_each_batch(
        &self,
        log: &PartitionLog,
        upper: i64,
        mut visit: impl FnMut(&batch::BatchHeader, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let cf = self.partition_cf(log)?;
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(offset_key(upper).to_vec());
        let mut it = self.db().raw_iterator_cf_opt(&cf, ro);
        it.seek(offset_key(0));
        while let Some(value) = it.value() {
            let header = batch::parse_header(value)?;
            if header.last_offset() < upper && header.last_offset() >= log.log_start_offset() {
                visit(&header, value)?;
            }
            it.next();
        }
        it.status()?;
        Ok(())
    }

    /// Writes rewritten batches and removes emptied ones, skipping any the log start has
    /// passed meanwhile (so retention and compaction never resurrect each other's deletions).
    fn replace_batches(&self, log: &PartitionLog, changes: Changes) -> Result<()> {
        if changes.batches.is_empty() {
            return Ok(());
        }
        let _guard = self.maintenance_lock();
        let cf = self.partition_cf(log)?;
        let meta = self.meta_cf()?;
        let start = log.log_start_offset();
        let mut wb = WriteBatch::default();
        for marker in changes.markers_removed {
            wb.delete_cf(&meta, log.meta_keys.aborted(marker));
        }
        for (base, bytes) in changes.batches {
            match bytes {
                Some(b) if batch::parse_header(&b)?.last_offset() >= start => {
                    wb.put_cf(&cf, offset_key(base), &b)
                }
                Some(_) => {}
                None => wb.delete_cf(&cf, offset_key(base)),
            }
        }
        if log.is_deleted() {
            return Err(StorageError::UnknownPartition(log.cf_name().to_string()));
        }
        self.db().write(&wb)?;
        Ok(())
    }
}
