//! A partition replica's in-memory handle: offsets readers may use, and the writer's state.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::watch;

use crate::keys::{PartitionKey, PartitionMetaKeys};
use crate::producer::ProducerStates;

/// State only the append pipeline changes (it holds the lock for the length of one append).
#[derive(Debug)]
pub(crate) struct WriterState {
    /// Offset the next batch gets.
    pub next_offset: i64,
    /// Idempotent-producer state.
    pub producers: ProducerStates,
    /// Leader-epoch cache: (epoch, first offset written in it), ascending.
    pub epochs: Vec<(i32, i64)>,
    /// Largest batch timestamp so far; a batch raising it gets a time-index entry.
    pub max_timestamp: i64,
}

impl Default for WriterState {
    fn default() -> Self {
        Self {
            next_offset: 0,
            producers: ProducerStates::default(),
            epochs: Vec::new(),
            max_timestamp: i64::MIN,
        }
    }
}

/// One partition replica stored on this node.
#[derive(Debug)]
pub struct PartitionLog {
    key: PartitionKey,
    cf: String,
    pub(crate) meta_keys: PartitionMetaKeys,
    pub(crate) writer: Mutex<WriterState>,
    log_end: watch::Sender<i64>,
    high_watermark: watch::Sender<i64>,
    log_start: AtomicI64,
    /// First offset of the oldest open transaction as of the last completed write
    /// (`i64::MAX`: none). Published after the write, not when the append is prepared: a
    /// marker's aborted-transaction entry is readable before readers may pass its data.
    first_unstable: AtomicI64,
    deleted: AtomicBool,
    /// Records written since the last fsync (`flush.messages`), and when the oldest of them
    /// was written in ms (`flush.ms`; 0 when none are pending).
    unflushed: AtomicU64,
    unflushed_since_ms: AtomicI64,
    /// Set while this replica follows: only replicated batches are appended then.
    follower: AtomicBool,
    /// The leader epoch of the image this replica last followed in: a batch fetched in an
    /// older epoch (a response from a deposed leader, in flight while leadership moved) is
    /// refused, as it may lie past where the new leader's log agrees with ours.
    follower_epoch: AtomicI32,
}

impl std::fmt::Debug for PartitionMetaKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PartitionMetaKeys")
    }
}

impl PartitionLog {
    pub(crate) fn new(key: PartitionKey, writer: WriterState, log_start: i64) -> Self {
        let end = writer.next_offset;
        let first_unstable = writer.producers.first_open_txn().unwrap_or(i64::MAX);
        Self {
            key,
            cf: key.cf_name(),
            meta_keys: PartitionMetaKeys::new(&key),
            writer: Mutex::new(writer),
            log_end: watch::Sender::new(end),
            high_watermark: watch::Sender::new(end),
            log_start: AtomicI64::new(log_start),
            first_unstable: AtomicI64::new(first_unstable),
            deleted: AtomicBool::new(false),
            unflushed: AtomicU64::new(0),
            unflushed_since_ms: AtomicI64::new(0),
            follower: AtomicBool::new(false),
            follower_epoch: AtomicI32::new(-1),
        }
    }

    /// Which partition this is.
    pub fn key(&self) -> PartitionKey {
        self.key
    }

    /// Name of the column family holding its batches.
    pub fn cf_name(&self) -> &str {
        &self.cf
    }

    /// Offset the next appended record will get.
    pub fn log_end_offset(&self) -> i64 {
        *self.log_end.borrow()
    }

    /// First offset still stored.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start.load(Ordering::Acquire)
    }

    /// Offset up to which consumers may read.
    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    /// Offset up to which `read_committed` consumers read: the high watermark, or the first
    /// offset of the oldest transaction still open below it.
    pub fn last_stable_offset(&self) -> i64 {
        self.first_unstable
            .load(Ordering::Acquire)
            .min(self.high_watermark())
    }

    /// First offset of the oldest open transaction (`i64::MAX` if none is open).
    pub(crate) fn first_unstable(&self) -> i64 {
        self.first_unstable.load(Ordering::Acquire)
    }

    /// Publishes the oldest open transaction once the write that left it so is done.
    pub(crate) fn publish_first_unstable(&self, first: Option<i64>) {
        self.first_unstable
            .store(first.unwrap_or(i64::MAX), Ordering::Release);
    }

    /// A guard for a transactional write of `producer_id` at `epoch` (see [`TxnGuard`]).
    pub fn txn_guard(&self, producer_id: i64, epoch: i16) -> crate::producer::TxnGuard {
        match self.writer.lock() {
            Ok(w) => w.producers.txn_guard(producer_id, epoch),
            Err(p) => p.into_inner().producers.txn_guard(producer_id, epoch),
        }
    }

    /// Every producer's state (DescribeProducers).
    pub fn producers(&self) -> Vec<(i64, crate::producer::ProducerEntry)> {
        self.writer
            .lock()
            .map(|w| w.producers.entries())
            .unwrap_or_default()
    }

    /// Moves the high watermark (never backwards, never past the log end).
    pub fn advance_high_watermark(&self, to: i64) {
        let to = to.min(self.log_end_offset());
        self.high_watermark.send_if_modified(|hw| {
            if to > *hw {
                *hw = to;
                true
            } else {
                false
            }
        });
    }

    /// Watches the log end, for follower fetches that wait for new batches.
    pub fn watch_log_end(&self) -> watch::Receiver<i64> {
        self.log_end.subscribe()
    }

    /// Sets the high watermark a follower learned from its leader (never past the log end;
    /// it may move back after truncation).
    pub fn set_high_watermark(&self, to: i64) {
        let to = to.min(self.log_end_offset());
        self.high_watermark.send_if_modified(|hw| {
            let changed = *hw != to;
            *hw = to;
            changed
        });
    }

    /// Watches the high watermark, for fetches that wait for data.
    pub fn watch_high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// The leader epoch in force at the log end and where each epoch started.
    pub fn leader_epochs(&self) -> Vec<(i32, i64)> {
        self.writer
            .lock()
            .map(|w| w.epochs.clone())
            .unwrap_or_default()
    }

    /// End offset of `epoch` (start of the next higher epoch, or the log end), KIP-101 style.
    ///
    /// Returns the largest epoch <= `epoch` with its end offset, or `None` if unknown.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        let epochs = self.leader_epochs();
        let idx = epochs.iter().rposition(|(e, _)| *e <= epoch)?;
        let end = epochs
            .get(idx + 1)
            .map(|(_, start)| *start)
            .unwrap_or_else(|| self.log_end_offset());
        Some((epochs[idx].0, end))
    }

    /// Makes this replica a follower (only replicated appends) or a leader (only producers').
    pub fn set_follower(&self, follower: bool) {
        let was = self.follower.swap(follower, Ordering::AcqRel);
        if follower && !was {
            // Writes waiting for the high watermark as leader learn at once that it is over.
            self.high_watermark.send_modify(|_| {});
        }
    }

    /// Sets the leader epoch of the image this replica now follows (or leads) in.
    pub fn set_follower_epoch(&self, epoch: i32) {
        self.follower_epoch.store(epoch, Ordering::Release);
    }

    /// The leader epoch a replicated batch must have been fetched in.
    pub fn follower_epoch(&self) -> i32 {
        self.follower_epoch.load(Ordering::Acquire)
    }

    /// Whether this replica follows.
    pub fn is_follower(&self) -> bool {
        self.follower.load(Ordering::Acquire)
    }

    /// Whether the partition has been deleted from this node.
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    pub(crate) fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
        // Writes waiting for the high watermark learn at once that the replica is gone.
        self.high_watermark.send_modify(|_| {});
    }

    /// Records appended but not yet fsynced, and since when (ms; 0 if none).
    pub fn unflushed(&self) -> (u64, i64) {
        (
            self.unflushed.load(Ordering::Acquire),
            self.unflushed_since_ms.load(Ordering::Acquire),
        )
    }

    /// Counts records written (after their write) without an fsync.
    pub(crate) fn note_unflushed(&self, records: u64, now_ms: i64) {
        self.unflushed.fetch_add(records, Ordering::AcqRel);
        let _ = self.unflushed_since_ms.compare_exchange(
            0,
            now_ms,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// Forgets the `seen` unflushed records an fsync has just covered; records counted
    /// meanwhile keep the partition pending (and its older since-time: an earlier sync is
    /// harmless, a missed one is not).
    pub(crate) fn note_flushed(&self, seen: u64) {
        if seen > 0
            && self
                .unflushed
                .compare_exchange(seen, 0, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.unflushed_since_ms.store(0, Ordering::Release);
        }
    }

    pub(crate) fn set_log_start(&self, start: i64) {
        self.log_start.store(start, Ordering::Release);
    }

    pub(crate) fn publish_log_end(&self, end: i64) {
        self.log_end.send_replace(end);
    }
}
