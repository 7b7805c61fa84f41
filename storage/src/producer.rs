//! Producer state per partition: the last five batches of each idempotent producer, and
//! where each transactional producer's open transaction began.
//!
//! A pure state machine: `check` decides what to do with an incoming batch, `record` notes an
//! appended one, `begin_txn`/`end_txn` follow transactions from their first batch to their
//! marker. Kept in the `meta` column family, written in the same WriteBatch as the append,
//! and rebuilt on open. The first offset of the oldest open transaction bounds the last
//! stable offset, up to which `read_committed` consumers read.

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::batch::BatchHeader;
use crate::error::{Result, StorageError};

/// Kafka clients keep at most five requests in flight per partition.
pub const MAX_CACHED_BATCHES: usize = 5;

/// One appended batch remembered for duplicate detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedBatch {
    /// Sequence of the first record.
    pub first_seq: i32,
    /// Sequence of the last record.
    pub last_seq: i32,
    /// Offset assigned to the first record.
    pub base_offset: i64,
    /// Offset assigned to the last record.
    pub last_offset: i64,
}

/// What one producer has written to one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerEntry {
    /// Current producer epoch.
    pub epoch: i16,
    /// Most recent batches, oldest first.
    pub batches: VecDeque<CachedBatch>,
    /// Offset of the first batch of the producer's open transaction, if one is open.
    pub open_txn: Option<i64>,
    /// Max timestamp of the producer's last batch or marker here (DescribeProducers).
    pub last_timestamp: Option<i64>,
    /// Epoch of the coordinator whose marker last ended a transaction here.
    pub coordinator_epoch: Option<i32>,
}

/// What to do with a transaction marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerCheck {
    /// Write it.
    Append,
    /// Its producer epoch is older than the producer's.
    StaleEpoch,
    /// Its coordinator epoch is older than that of the producer's last marker.
    CoordinatorFenced,
}

/// The verdict on an incoming idempotent batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// New data in sequence: append it.
    Append,
    /// Already appended: answer with the original offsets, write nothing.
    Duplicate(CachedBatch),
    /// A gap or reordering: OUT_OF_ORDER_SEQUENCE_NUMBER.
    OutOfOrder,
    /// A retry of a batch older than the batches remembered: appended long ago (this
    /// epoch's sequences were taken only in order, and later ones followed it), but its
    /// offsets are forgotten: DUPLICATE_SEQUENCE_NUMBER, which the Java client counts as delivered.
    DuplicateBeyondMemory,
    /// An older epoch than the one already seen: INVALID_PRODUCER_EPOCH.
    StaleEpoch,
}

/// What a partition leader saw of a producer before asking the transaction coordinator
/// about its write (KIP-890): the write may go ahead only if no marker ended the producer's
/// transaction here in between (a late write would otherwise open a transaction no
/// coordinator knows of, and hold the last stable offset forever).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnGuard {
    /// The producer.
    pub producer_id: i64,
    /// Its transaction is open here at the write's epoch: no need to ask the coordinator.
    pub in_transaction: bool,
    /// Markers of the producer written here so far.
    markers_seen: u64,
}

/// Producer state of one partition.
#[derive(Debug, Clone, Default)]
pub struct ProducerStates {
    entries: HashMap<i64, ProducerEntry>,
    /// (first offset, producer id) of every open transaction: the first is the oldest.
    open: BTreeSet<(i64, i64)>,
    /// Markers written per producer since this state was loaded (for [`TxnGuard`]).
    markers: HashMap<i64, u64>,
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl ProducerStates {
    /// The entry of one producer, if any.
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.entries.get(&producer_id)
    }

    /// Replaces (or removes, with `None`) one producer's entry; used for undo and recovery.
    pub fn set(&mut self, producer_id: i64, entry: Option<ProducerEntry>) {
        let old = match entry {
            Some(e) => {
                if let Some(first) = e.open_txn {
                    self.open.insert((first, producer_id));
                }
                self.entries.insert(producer_id, e)
            }
            None => self.entries.remove(&producer_id),
        };
        if let Some(first) = old.and_then(|o| o.open_txn) {
            if self.entries.get(&producer_id).and_then(|e| e.open_txn) != Some(first) {
                self.open.remove(&(first, producer_id));
            }
        }
    }

    /// Notes a transactional batch at `offset`: it opens the producer's transaction unless
    /// one is open already. Returns the updated entry for persisting.
    pub fn begin_txn(&mut self, producer_id: i64, epoch: i16, offset: i64) -> &ProducerEntry {
        let entry = self
            .entries
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch,
                ..ProducerEntry::default()
            });
        if entry.open_txn.is_none() {
            entry.open_txn = Some(offset);
            self.open.insert((offset, producer_id));
        }
        entry
    }

    /// Whether a transaction marker may be written: not one of a producer epoch older than
    /// the producer's, nor one from a coordinator older than the one that wrote the
    /// producer's last marker (it lost the transactional id to a newer coordinator).
    pub fn check_marker(&self, h: &BatchHeader, coordinator_epoch: i32) -> MarkerCheck {
        let Some(e) = self.entries.get(&h.producer_id) else {
            return MarkerCheck::Append;
        };
        if h.producer_epoch < e.epoch {
            MarkerCheck::StaleEpoch
        } else if e.coordinator_epoch.is_some_and(|c| coordinator_epoch < c) {
            MarkerCheck::CoordinatorFenced
        } else {
            MarkerCheck::Append
        }
    }

    /// A guard for a transactional write of `producer_id` at `epoch`.
    pub fn txn_guard(&self, producer_id: i64, epoch: i16) -> TxnGuard {
        TxnGuard {
            producer_id,
            in_transaction: self
                .entries
                .get(&producer_id)
                .is_some_and(|e| e.epoch == epoch && e.open_txn.is_some()),
            markers_seen: self.markers.get(&producer_id).copied().unwrap_or(0),
        }
    }

    /// Whether a write guarded by `guard` may go ahead: its producer's transaction is open
    /// here, or no marker was written since the guard was taken.
    pub fn guard_holds(&self, guard: &TxnGuard) -> bool {
        let open = self
            .entries
            .get(&guard.producer_id)
            .is_some_and(|e| e.open_txn.is_some());
        open || self.markers.get(&guard.producer_id).copied().unwrap_or(0) == guard.markers_seen
    }

    /// Notes a transaction marker: the producer's transaction (if any) ends; a newer epoch
    /// (transaction version 2 bumps it at every end) starts its sequences afresh. Returns
    /// where the ended transaction began, and the updated entry for persisting.
    pub fn end_txn(
        &mut self,
        h: &BatchHeader,
        coordinator_epoch: i32,
    ) -> (Option<i64>, &ProducerEntry) {
        *self.markers.entry(h.producer_id).or_default() += 1;
        let entry = self.entries.entry(h.producer_id).or_default();
        entry.last_timestamp = Some(h.max_timestamp);
        entry.coordinator_epoch = Some(coordinator_epoch);
        if h.producer_epoch > entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        let first = entry.open_txn.take();
        if let Some(first) = first {
            self.open.remove(&(first, h.producer_id));
        }
        (first, entry)
    }

    /// First offset of the oldest open transaction, if any.
    pub fn first_open_txn(&self) -> Option<i64> {
        self.open.first().map(|(first, _)| *first)
    }

    /// Every producer's entry (for rewriting them after a truncation).
    pub fn entries(&self) -> Vec<(i64, ProducerEntry)> {
        self.entries.iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    /// Decides what to do with an incoming batch of an idempotent producer.
    pub fn check(&self, h: &BatchHeader) -> SequenceCheck {
        let Some(entry) = self.entries.get(&h.producer_id) else {
            // No state (new producer, or its state expired): accept any first sequence.
            return SequenceCheck::Append;
        };
        if h.producer_epoch < entry.epoch {
            return SequenceCheck::StaleEpoch;
        }
        if h.producer_epoch > entry.epoch {
            return if h.base_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::OutOfOrder
            };
        }
        let last_seq = h.last_sequence();
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq)
        {
            return SequenceCheck::Duplicate(*dup);
        }
        // A known epoch with nothing remembered (a transaction marker began it) starts at
        // sequence 0, as in Kafka: anything else is a gap. Accepting it let a transaction's
        // second batch in ahead of its first, whose retry was then refused for ever.
        if entry.batches.is_empty() && h.base_sequence != 0 {
            return SequenceCheck::OutOfOrder;
        }
        match (entry.batches.front(), entry.batches.back()) {
            (Some(first), Some(last)) if h.base_sequence != next_seq(last.last_seq) => {
                // Sequences wrap at i32::MAX: "older" only within this run of them.
                let older = last_seq < first.first_seq && first.first_seq <= last.last_seq;
                if older && entry.batches.len() == MAX_CACHED_BATCHES {
                    SequenceCheck::DuplicateBeyondMemory
                } else {
                    SequenceCheck::OutOfOrder
                }
            }
            _ => SequenceCheck::Append,
        }
    }

    /// Records an appended batch; returns the producer's updated entry for persisting.
    pub fn record(&mut self, h: &BatchHeader, base_offset: i64) -> &ProducerEntry {
        let entry = self.entries.entry(h.producer_id).or_default();
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        entry.last_timestamp = Some(h.max_timestamp);
        if entry.batches.len() == MAX_CACHED_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back(CachedBatch {
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            base_offset,
            last_offset: base_offset + i64::from(h.last_offset_delta),
        });
        entry
    }
}

impl ProducerEntry {
    /// Serialises the entry for the meta column family.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(11 + self.batches.len() * 24);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.push(self.batches.len() as u8);
        for b in &self.batches {
            out.extend_from_slice(&b.first_seq.to_be_bytes());
            out.extend_from_slice(&b.last_seq.to_be_bytes());
            out.extend_from_slice(&b.base_offset.to_be_bytes());
            out.extend_from_slice(&b.last_offset.to_be_bytes());
        }
        out.extend_from_slice(&self.open_txn.unwrap_or(-1).to_be_bytes());
        out.extend_from_slice(&self.last_timestamp.unwrap_or(-1).to_be_bytes());
        out.extend_from_slice(&self.coordinator_epoch.unwrap_or(-1).to_be_bytes());
        out
    }

    /// Parses an entry written by [`ProducerEntry::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let bad = || StorageError::CorruptState("producer state entry".into());
        let (head, mut rest) = bytes.split_at_checked(3).ok_or_else(bad)?;
        let epoch = i16::from_be_bytes([head[0], head[1]]);
        let mut batches = VecDeque::new();
        for _ in 0..head[2] {
            let (b, tail) = rest.split_at_checked(24).ok_or_else(bad)?;
            let int = |at: usize| i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
            let long = |at: usize| {
                let mut a = [0u8; 8];
                a.copy_from_slice(&b[at..at + 8]);
                i64::from_be_bytes(a)
            };
            batches.push_back(CachedBatch {
                first_seq: int(0),
                last_seq: int(4),
                base_offset: long(8),
                last_offset: long(16),
            });
            rest = tail;
        }
        // Older entries end before the open transaction, or before the last timestamp.
        let mut long = || {
            let (field, tail) = rest.split_at_checked(8)?;
            rest = tail;
            let mut a = [0u8; 8];
            a.copy_from_slice(field);
            Some(i64::from_be_bytes(a)).filter(|v| *v >= 0)
        };
        let open_txn = long();
        let last_timestamp = long();
        let coordinator_epoch = rest
            .get(..4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .filter(|e| *e >= 0);
        Ok(Self {
            epoch,
            batches,
            open_txn,
            last_timestamp,
            coordinator_epoch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{tests::make_batch, validate};

    fn header(epoch: i16, seq: i32, count: i32) -> BatchHeader {
        validate(&make_batch(count, 42, epoch, seq, 0)).unwrap()
    }

    #[test]
    fn in_order_duplicates_and_gaps() {
        let mut s = ProducerStates::default();
        let a = header(0, 0, 3);
        assert_eq!(s.check(&a), SequenceCheck::Append);
        s.record(&a, 100);
        // The same batch again is a duplicate with its original offsets.
        match s.check(&a) {
            SequenceCheck::Duplicate(b) => assert_eq!((b.base_offset, b.last_offset), (100, 102)),
            other => panic!("expected duplicate, got {other:?}"),
        }
        assert_eq!(s.check(&header(0, 3, 1)), SequenceCheck::Append);
        assert_eq!(s.check(&header(0, 5, 1)), SequenceCheck::OutOfOrder);
    }

    #[test]
    fn a_new_epoch_begun_by_a_marker_starts_at_sequence_zero() {
        let mut s = ProducerStates::default();
        s.record(&header(3, 0, 4), 0);
        // Transaction version 2: the marker ending epoch 3's transaction bumps it to 4.
        let marker = validate(&make_batch(1, 42, 4, -1, 0)).unwrap();
        s.end_txn(&marker, 0);
        assert_eq!(s.check(&header(4, 32, 1)), SequenceCheck::OutOfOrder);
        assert_eq!(s.check(&header(4, 0, 32)), SequenceCheck::Append);
    }

    #[test]
    fn epochs_fence_and_reset() {
        let mut s = ProducerStates::default();
        s.record(&header(2, 0, 1), 0);
        assert_eq!(s.check(&header(1, 1, 1)), SequenceCheck::StaleEpoch);
        assert_eq!(s.check(&header(3, 4, 1)), SequenceCheck::OutOfOrder);
        assert_eq!(s.check(&header(3, 0, 1)), SequenceCheck::Append);
    }

    #[test]
    fn only_five_batches_are_remembered() {
        let mut s = ProducerStates::default();
        for i in 0..7 {
            s.record(&header(0, i, 1), i64::from(i));
        }
        let e = s.get(42).unwrap();
        assert_eq!(e.batches.len(), MAX_CACHED_BATCHES);
        assert_eq!(e.batches.front().unwrap().first_seq, 2);
        assert_eq!(ProducerEntry::decode(&e.encode()).unwrap(), *e);
        assert!(ProducerEntry::decode(&e.encode()[..10]).is_err());
    }

    #[test]
    fn a_retry_older_than_the_remembered_batches_is_a_duplicate_without_offsets() {
        let mut s = ProducerStates::default();
        for i in 0..3 {
            s.record(&header(0, i, 1), i64::from(i));
        }
        // Fewer than five remembered: the producer's state began with them, so what came
        // before them is unknown here.
        s.entries.get_mut(&42).unwrap().batches.pop_front();
        assert_eq!(s.check(&header(0, 0, 1)), SequenceCheck::OutOfOrder);
        for i in 3..9 {
            s.record(&header(0, i, 1), i64::from(i));
        }
        // Sequences 4..=8 remembered; 0..=3 were appended before them, in order.
        assert_eq!(
            s.check(&header(0, 1, 2)),
            SequenceCheck::DuplicateBeyondMemory
        );
        assert!(matches!(
            s.check(&header(0, 4, 1)),
            SequenceCheck::Duplicate(_)
        ));
        // Straddling the oldest remembered batch, or ahead: a gap.
        assert_eq!(s.check(&header(0, 3, 2)), SequenceCheck::OutOfOrder);
        assert_eq!(s.check(&header(0, 10, 1)), SequenceCheck::OutOfOrder);
        assert_eq!(s.check(&header(0, 9, 1)), SequenceCheck::Append);
    }

    #[test]
    fn open_transactions_bound_the_stable_offset_until_their_markers() {
        let mut s = ProducerStates::default();
        assert_eq!(s.first_open_txn(), None);
        s.begin_txn(7, 0, 10);
        s.begin_txn(7, 0, 12); // still the same transaction
        s.begin_txn(8, 0, 11);
        assert_eq!(s.first_open_txn(), Some(10));
        let marker = validate(&make_batch(1, 7, 0, -1, 0)).unwrap();
        let (first, entry) = s.end_txn(&marker, 0);
        assert_eq!((first, entry.open_txn), (Some(10), None));
        assert_eq!(s.first_open_txn(), Some(11));
        // Undo and recovery go through `set`, which keeps the open set in step.
        let mut reopened = s.get(7).cloned().unwrap();
        reopened.open_txn = Some(10);
        assert_eq!(ProducerEntry::decode(&reopened.encode()).unwrap(), reopened);
        s.set(7, Some(reopened));
        assert_eq!(s.first_open_txn(), Some(10));
        s.set(7, None);
        s.set(8, None);
        assert_eq!(s.first_open_txn(), None);
        // A marker of an older epoch is refused; a newer one resets the sequences.
        s.record(&header(3, 0, 1), 20);
        assert_eq!(
            s.check_marker(&validate(&make_batch(1, 42, 2, -1, 0)).unwrap(), 0),
            MarkerCheck::StaleEpoch
        );
        s.end_txn(&validate(&make_batch(1, 42, 4, -1, 0)).unwrap(), 5);
        assert_eq!(s.check(&header(4, 0, 1)), SequenceCheck::Append);
        // A coordinator older than the last marker's is fenced; the same or a newer is not.
        let next = validate(&make_batch(1, 42, 4, -1, 0)).unwrap();
        assert_eq!(s.check_marker(&next, 4), MarkerCheck::CoordinatorFenced);
        assert_eq!(s.check_marker(&next, 5), MarkerCheck::Append);
        assert_eq!(s.check_marker(&next, 6), MarkerCheck::Append);
    }

    #[test]
    fn a_marker_between_guard_and_write_stops_the_write() {
        let mut s = ProducerStates::default();
        let guard = s.txn_guard(7, 0);
        assert!(!guard.in_transaction);
        assert!(s.guard_holds(&guard));
        // The coordinator aborted the transaction (a marker) before the write came.
        s.end_txn(&validate(&make_batch(1, 7, 1, -1, 0)).unwrap(), 0);
        assert!(!s.guard_holds(&guard));
        // A guard taken now holds; once the transaction is open here, so does any.
        let fresh = s.txn_guard(7, 1);
        assert!(s.guard_holds(&fresh));
        s.begin_txn(7, 1, 30);
        assert!(s.txn_guard(7, 1).in_transaction);
        assert!(!s.txn_guard(7, 2).in_transaction);
        assert!(s.guard_holds(&guard));
    }

    #[test]
    fn entries_written_before_transactions_still_decode() {
        let e = ProducerEntry {
            epoch: 1,
            ..ProducerEntry::default()
        };
        let old = &e.encode()[..3];
        assert_eq!(ProducerEntry::decode(old).unwrap(), e);
        // Before the last timestamp and coordinator epoch were kept: an open transaction only.
        let txn = ProducerEntry {
            open_txn: Some(12),
            ..e.clone()
        };
        let old = &txn.encode()[..11];
        assert_eq!(ProducerEntry::decode(old).unwrap(), txn);
    }

    #[test]
    fn entries_keep_the_last_timestamp_and_coordinator_epoch() {
        let mut s = ProducerStates::default();
        let data = validate(&make_batch(2, 7, 0, 0, 0)).unwrap();
        s.record(&data, 0);
        s.begin_txn(7, 0, 0);
        assert_eq!(s.get(7).unwrap().last_timestamp, Some(data.max_timestamp));
        assert_eq!(s.get(7).unwrap().coordinator_epoch, None);
        let marker = validate(&crate::control::marker_batch(7, 0, true, 3, 5_000)).unwrap();
        let (first, entry) = s.end_txn(&marker, 3);
        assert_eq!(first, Some(0));
        assert_eq!(
            (entry.last_timestamp, entry.coordinator_epoch),
            (Some(5_000), Some(3))
        );
        let stored = entry.encode();
        assert_eq!(&ProducerEntry::decode(&stored).unwrap(), s.get(7).unwrap());
    }
}
