//! Idempotent-producer state per partition: the last five batches of each producer.
//!
//! A pure state machine: `check` decides what to do with an incoming batch, `record` notes an
//! appended one. Kept in the `meta` column family, written in the same WriteBatch as the
//! append, and rebuilt on open.

use std::collections::{HashMap, VecDeque};

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
    /// An older epoch than the one already seen: INVALID_PRODUCER_EPOCH.
    StaleEpoch,
}

/// Producer state of one partition.
#[derive(Debug, Clone, Default)]
pub struct ProducerStates {
    entries: HashMap<i64, ProducerEntry>,
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
        match entry {
            Some(e) => {
                self.entries.insert(producer_id, e);
            }
            None => {
                self.entries.remove(&producer_id);
            }
        }
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
        match entry.batches.back() {
            Some(last) if h.base_sequence != next_seq(last.last_seq) => SequenceCheck::OutOfOrder,
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
        let mut out = Vec::with_capacity(3 + self.batches.len() * 24);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.push(self.batches.len() as u8);
        for b in &self.batches {
            out.extend_from_slice(&b.first_seq.to_be_bytes());
            out.extend_from_slice(&b.last_seq.to_be_bytes());
            out.extend_from_slice(&b.base_offset.to_be_bytes());
            out.extend_from_slice(&b.last_offset.to_be_bytes());
        }
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
        Ok(Self { epoch, batches })
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
}
