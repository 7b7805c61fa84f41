//! One transactional id's state and its transitions, as a pure state machine; and its
//! records in `__transaction_state` (Kafka's own layout: key v0 = transactional id, value v0
//! = producer id, epoch, timeout, status, partitions, update and start times).
//!
//! A transition returns the state to write; the coordinator writes it and only then acts
//! on it (sends markers, answers), so what a new coordinator replays is what was decided.

use std::collections::BTreeSet;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::TxnError;

/// (topic, partition)
pub type TopicPartition = (String, i32);

/// Where a transaction is (Kafka's TransactionState, with its status codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    /// No transaction open.
    Empty,
    /// Partitions added, not ended.
    Ongoing,
    /// Commit decided; markers being written.
    PrepareCommit,
    /// Abort decided; markers being written.
    PrepareAbort,
    /// Committed and every marker written.
    CompleteCommit,
    /// Aborted and every marker written.
    CompleteAbort,
}

impl TxnState {
    fn code(self) -> i8 {
        match self {
            Self::Empty => 0,
            Self::Ongoing => 1,
            Self::PrepareCommit => 2,
            Self::PrepareAbort => 3,
            Self::CompleteCommit => 4,
            Self::CompleteAbort => 5,
        }
    }

    fn from_code(code: i8) -> Option<Self> {
        Some(match code {
            0 => Self::Empty,
            1 => Self::Ongoing,
            2 => Self::PrepareCommit,
            3 => Self::PrepareAbort,
            4 => Self::CompleteCommit,
            5 => Self::CompleteAbort,
            _ => return None,
        })
    }

    /// The name Kafka's tools print.
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::Ongoing => "Ongoing",
            Self::PrepareCommit => "PrepareCommit",
            Self::PrepareAbort => "PrepareAbort",
            Self::CompleteCommit => "CompleteCommit",
            Self::CompleteAbort => "CompleteAbort",
        }
    }

    /// Commit or abort decided, markers not all written.
    pub fn is_prepared(self) -> bool {
        matches!(self, Self::PrepareCommit | Self::PrepareAbort)
    }
}

/// One transactional id's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMeta {
    /// Producer id.
    pub producer_id: i64,
    /// Current producer epoch (older ones are fenced).
    pub producer_epoch: i16,
    /// Transaction timeout (ms).
    pub timeout_ms: i32,
    /// State.
    pub state: TxnState,
    /// Partitions of the open (or ending) transaction.
    pub partitions: BTreeSet<TopicPartition>,
    /// When the open transaction began (ms), or -1.
    pub start_ms: i64,
    /// Last change (ms).
    pub update_ms: i64,
}

/// What InitProducerId must do.
#[derive(Debug, PartialEq, Eq)]
pub enum InitStep {
    /// Write this state and answer with its producer id and epoch.
    Ready(TxnMeta),
    /// The previous instance left a transaction open: write this (PrepareAbort, fenced by a
    /// new epoch), abort it, then try again.
    AbortFirst(TxnMeta),
}

/// What EndTxn must do.
#[derive(Debug, PartialEq, Eq)]
pub enum EndStep {
    /// Write this prepared state, then the markers, then complete.
    Prepare(TxnMeta),
    /// A retry of an end already completed: answer success.
    AlreadyDone,
}

/// The highest epoch handed out before a producer gets a new id.
const MAX_EPOCH: i16 = i16::MAX - 1;

/// InitProducerId for a transactional id: a new epoch fences every older instance.
/// `fresh_id` is used when the id has no producer yet or its epochs are used up.
pub fn init(
    current: Option<&TxnMeta>,
    fresh_id: i64,
    timeout_ms: i32,
    now: i64,
) -> Result<InitStep, TxnError> {
    let Some(m) = current else {
        return Ok(InitStep::Ready(TxnMeta {
            producer_id: fresh_id,
            producer_epoch: 0,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            update_ms: now,
        }));
    };
    match m.state {
        TxnState::PrepareCommit | TxnState::PrepareAbort => Err(TxnError::ConcurrentTransactions),
        TxnState::Ongoing => Ok(InitStep::AbortFirst(TxnMeta {
            state: TxnState::PrepareAbort,
            update_ms: now,
            ..bumped(m)
        })),
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
            Ok(InitStep::Ready(TxnMeta {
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                start_ms: -1,
                update_ms: now,
                ..bumped_or_new(m, fresh_id)
            }))
        }
    }
}

fn bumped(m: &TxnMeta) -> TxnMeta {
    TxnMeta {
        producer_epoch: m.producer_epoch.saturating_add(1),
        ..m.clone()
    }
}

fn bumped_or_new(m: &TxnMeta, fresh_id: i64) -> TxnMeta {
    if m.producer_epoch >= MAX_EPOCH {
        TxnMeta {
            producer_id: fresh_id,
            producer_epoch: 0,
            ..m.clone()
        }
    } else {
        bumped(m)
    }
}

/// The producer must be the transactional id's current instance.
fn check_producer(m: &TxnMeta, producer_id: i64, epoch: i16) -> Result<(), TxnError> {
    if m.producer_id != producer_id {
        return Err(TxnError::InvalidProducerIdMapping);
    }
    if m.producer_epoch != epoch {
        return Err(TxnError::ProducerFenced);
    }
    Ok(())
}

/// AddPartitionsToTxn / AddOffsetsToTxn: the state with `partitions` in the transaction
/// (opening it), or `None` when nothing changes.
pub fn add_partitions(
    current: Option<&TxnMeta>,
    producer_id: i64,
    epoch: i16,
    partitions: &[TopicPartition],
    now: i64,
) -> Result<Option<TxnMeta>, TxnError> {
    let m = current.ok_or(TxnError::InvalidProducerIdMapping)?;
    check_producer(m, producer_id, epoch)?;
    if m.state.is_prepared() {
        return Err(TxnError::ConcurrentTransactions);
    }
    let ongoing = m.state == TxnState::Ongoing;
    if ongoing && partitions.iter().all(|p| m.partitions.contains(p)) {
        return Ok(None);
    }
    let mut next = m.clone();
    if !ongoing {
        next.partitions.clear();
        next.start_ms = now;
    }
    next.partitions.extend(partitions.iter().cloned());
    next.state = TxnState::Ongoing;
    next.update_ms = now;
    Ok(Some(next))
}

/// Whether every partition is in the producer's open transaction (a partition leader's
/// verification before a transactional produce, AddPartitionsToTxn v4 `verify_only`).
pub fn verify(
    current: Option<&TxnMeta>,
    producer_id: i64,
    epoch: i16,
    partition: &TopicPartition,
) -> Result<(), TxnError> {
    let m = current.ok_or(TxnError::InvalidProducerIdMapping)?;
    check_producer(m, producer_id, epoch)?;
    if m.state == TxnState::Ongoing && m.partitions.contains(partition) {
        Ok(())
    } else {
        Err(TxnError::InvalidTxnState)
    }
}

/// EndTxn.
pub fn end(
    current: Option<&TxnMeta>,
    producer_id: i64,
    epoch: i16,
    commit: bool,
    now: i64,
) -> Result<EndStep, TxnError> {
    let m = current.ok_or(TxnError::InvalidProducerIdMapping)?;
    check_producer(m, producer_id, epoch)?;
    match (m.state, commit) {
        (TxnState::Ongoing, _) => Ok(EndStep::Prepare(TxnMeta {
            state: if commit {
                TxnState::PrepareCommit
            } else {
                TxnState::PrepareAbort
            },
            update_ms: now,
            ..m.clone()
        })),
        (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
            Ok(EndStep::AlreadyDone)
        }
        (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
            Err(TxnError::ConcurrentTransactions)
        }
        _ => Err(TxnError::InvalidTxnState),
    }
}

/// The completed state once every marker of a prepared transaction is written.
pub fn complete(m: &TxnMeta, now: i64) -> Option<TxnMeta> {
    let state = match m.state {
        TxnState::PrepareCommit => TxnState::CompleteCommit,
        TxnState::PrepareAbort => TxnState::CompleteAbort,
        _ => return None,
    };
    Some(TxnMeta {
        state,
        partitions: BTreeSet::new(),
        start_ms: -1,
        update_ms: now,
        ..m.clone()
    })
}

/// An open transaction past its timeout: abort it, fencing its producer with a new epoch
/// (its late writes are refused, and it must initialise again).
pub fn expire(m: &TxnMeta, now: i64) -> Option<TxnMeta> {
    let due = m.state == TxnState::Ongoing
        && m.start_ms >= 0
        && now > m.start_ms.saturating_add(i64::from(m.timeout_ms));
    due.then(|| TxnMeta {
        state: TxnState::PrepareAbort,
        update_ms: now,
        ..bumped(m)
    })
}

const KEY_VERSION: i16 = 0;
const VALUE_VERSION: i16 = 0;

fn put_str(buf: &mut BytesMut, s: &str) {
    let bytes = s.as_bytes();
    let len = bytes.len().min(i16::MAX as usize);
    buf.put_i16(len as i16);
    buf.put_slice(&bytes[..len]);
}

fn get_str(buf: &mut Bytes) -> Option<String> {
    if buf.remaining() < 2 {
        return None;
    }
    let len = usize::try_from(buf.get_i16()).ok()?;
    if buf.remaining() < len {
        return None;
    }
    String::from_utf8(buf.split_to(len).to_vec()).ok()
}

/// The record key of a transactional id.
pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(KEY_VERSION);
    put_str(&mut b, transactional_id);
    b.freeze()
}

/// The transactional id of a record key.
pub fn decode_key(mut key: Bytes) -> Option<String> {
    if key.remaining() < 2 || key.get_i16() != KEY_VERSION {
        return None;
    }
    get_str(&mut key)
}

/// The record value of a state.
pub fn encode_value(m: &TxnMeta) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(VALUE_VERSION);
    b.put_i64(m.producer_id);
    b.put_i16(m.producer_epoch);
    b.put_i32(m.timeout_ms);
    b.put_i8(m.state.code());
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for (t, p) in &m.partitions {
        match topics.last_mut() {
            Some((last, ps)) if *last == t.as_str() => ps.push(*p),
            _ => topics.push((t, vec![*p])),
        }
    }
    b.put_i32(topics.len() as i32);
    for (t, ps) in topics {
        put_str(&mut b, t);
        b.put_i32(ps.len() as i32);
        ps.iter().for_each(|p| b.put_i32(*p));
    }
    b.put_i64(m.update_ms);
    b.put_i64(m.start_ms);
    b.freeze()
}

/// A state read back from its record value (`None` if malformed: replay skips it).
pub fn decode_value(mut v: Bytes) -> Option<TxnMeta> {
    if v.remaining() < 2 + 8 + 2 + 4 + 1 + 4 || v.get_i16() != VALUE_VERSION {
        return None;
    }
    let producer_id = v.get_i64();
    let producer_epoch = v.get_i16();
    let timeout_ms = v.get_i32();
    let state = TxnState::from_code(v.get_i8())?;
    let mut partitions = BTreeSet::new();
    let topics = v.get_i32();
    for _ in 0..topics.max(0) {
        let topic = get_str(&mut v)?;
        if v.remaining() < 4 {
            return None;
        }
        let count = v.get_i32();
        // Each partition is 4 bytes: a count the value cannot hold is malformed.
        if count < 0 || v.remaining() < count as usize * 4 {
            return None;
        }
        for _ in 0..count {
            partitions.insert((topic.clone(), v.get_i32()));
        }
    }
    if v.remaining() < 16 {
        return None;
    }
    let update_ms = v.get_i64();
    let start_ms = v.get_i64();
    Some(TxnMeta {
        producer_id,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        start_ms,
        update_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: &str, p: i32) -> TopicPartition {
        (t.to_string(), p)
    }

    fn ready(step: InitStep) -> TxnMeta {
        match step {
            InitStep::Ready(m) => m,
            other => panic!("expected Ready, got {other:?}"),
        }
    }

    #[test]
    fn a_transaction_from_init_to_commit_and_the_next_instance_fences_the_old() {
        let m = ready(init(None, 7, 60_000, 1).unwrap());
        assert_eq!(
            (m.producer_id, m.producer_epoch, m.state),
            (7, 0, TxnState::Empty)
        );
        let m = add_partitions(Some(&m), 7, 0, &[tp("a", 0), tp("a", 1)], 2)
            .unwrap()
            .unwrap();
        assert_eq!(
            (m.state, m.start_ms, m.partitions.len()),
            (TxnState::Ongoing, 2, 2)
        );
        // Adding what is in already changes nothing.
        assert_eq!(
            add_partitions(Some(&m), 7, 0, &[tp("a", 0)], 3).unwrap(),
            None
        );
        assert_eq!(verify(Some(&m), 7, 0, &tp("a", 1)), Ok(()));
        assert_eq!(
            verify(Some(&m), 7, 0, &tp("b", 0)),
            Err(TxnError::InvalidTxnState)
        );
        assert_eq!(
            add_partitions(Some(&m), 8, 0, &[], 3),
            Err(TxnError::InvalidProducerIdMapping)
        );
        assert_eq!(
            add_partitions(Some(&m), 7, 1, &[], 3),
            Err(TxnError::ProducerFenced)
        );
        let EndStep::Prepare(p) = end(Some(&m), 7, 0, true, 4).unwrap() else {
            panic!("expected Prepare");
        };
        assert_eq!(p.state, TxnState::PrepareCommit);
        assert_eq!(
            end(Some(&p), 7, 0, true, 5),
            Err(TxnError::ConcurrentTransactions)
        );
        assert_eq!(
            add_partitions(Some(&p), 7, 0, &[tp("a", 0)], 5),
            Err(TxnError::ConcurrentTransactions)
        );
        assert_eq!(
            init(Some(&p), 9, 60_000, 5),
            Err(TxnError::ConcurrentTransactions)
        );
        let c = complete(&p, 6).unwrap();
        assert_eq!((c.state, c.partitions.len()), (TxnState::CompleteCommit, 0));
        assert_eq!(end(Some(&c), 7, 0, true, 7), Ok(EndStep::AlreadyDone));
        assert_eq!(
            end(Some(&c), 7, 0, false, 7),
            Err(TxnError::InvalidTxnState)
        );
        // A new instance gets the next epoch; the old one is fenced.
        let n = ready(init(Some(&c), 9, 30_000, 8).unwrap());
        assert_eq!(
            (n.producer_id, n.producer_epoch, n.timeout_ms),
            (7, 1, 30_000)
        );
        assert_eq!(
            add_partitions(Some(&n), 7, 0, &[tp("a", 0)], 9),
            Err(TxnError::ProducerFenced)
        );
        assert_eq!(end(Some(&n), 7, 1, true, 9), Err(TxnError::InvalidTxnState));
    }

    #[test]
    fn an_open_transaction_is_aborted_by_a_new_instance_or_its_timeout() {
        let m = ready(init(None, 7, 100, 0).unwrap());
        let m = add_partitions(Some(&m), 7, 0, &[tp("a", 0)], 10)
            .unwrap()
            .unwrap();
        let InitStep::AbortFirst(a) = init(Some(&m), 9, 100, 20).unwrap() else {
            panic!("expected AbortFirst");
        };
        assert_eq!((a.state, a.producer_epoch), (TxnState::PrepareAbort, 1));
        assert_eq!(
            a.partitions, m.partitions,
            "the markers go where the data went"
        );
        assert_eq!(expire(&m, 110), None);
        let e = expire(&m, 111).unwrap();
        assert_eq!((e.state, e.producer_epoch), (TxnState::PrepareAbort, 1));
        // Epochs used up: a new producer id.
        let worn = TxnMeta {
            producer_epoch: MAX_EPOCH,
            state: TxnState::CompleteAbort,
            ..m
        };
        let n = ready(init(Some(&worn), 9, 100, 30).unwrap());
        assert_eq!((n.producer_id, n.producer_epoch), (9, 0));
    }

    #[test]
    fn records_round_trip_and_garbage_is_skipped() {
        let m = TxnMeta {
            producer_id: 5,
            producer_epoch: 3,
            timeout_ms: 60_000,
            state: TxnState::PrepareCommit,
            partitions: [tp("a", 0), tp("a", 2), tp("b", 1)].into_iter().collect(),
            start_ms: 10,
            update_ms: 20,
        };
        assert_eq!(decode_value(encode_value(&m)), Some(m.clone()));
        assert_eq!(decode_key(encode_key("tx-1")), Some("tx-1".to_string()));
        let v = encode_value(&m);
        for cut in 0..v.len() {
            assert_eq!(decode_value(v.slice(..cut)), None, "cut at {cut}");
        }
        // A partition count far beyond the value's length is refused, not allocated.
        let mut huge = v.to_vec();
        let at = 2 + 8 + 2 + 4 + 1 + 4 + 2 + 1;
        huge[at..at + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(decode_value(Bytes::from(huge)), None);
    }
}
