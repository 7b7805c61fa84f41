//! One transactional id's state and its transitions, as a pure state machine; and its
//! records in `__transaction_state` (Kafka's own layout: key v0 = transactional id, value v1
//! = producer id, epoch, timeout, status, partitions, update and start times, with the next
//! producer id and the client's transaction version as tagged fields; v0 is still read).
//!
//! Transaction version 2 (KIP-890 part 2) differs in one rule: every end bumps the producer
//! epoch, and the markers carry the new epoch, so a late write of the ended transaction is
//! refused as stale by every partition.
//!
//! A transition returns the state to write; the coordinator writes it and only then acts
//! on it (sends markers, answers), so what a new coordinator replays is what was decided.

use std::collections::BTreeSet;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::coordinator::{get_str, put_str};

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

/// Transaction version 1: the client adds every partition itself; epochs stay.
pub const TV1: i16 = 1;
/// Transaction version 2: partition leaders add partitions; every end bumps the epoch.
pub const TV2: i16 = 2;

/// One transactional id's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMeta {
    /// Producer id.
    pub producer_id: i64,
    /// Current producer epoch (older ones are fenced).
    pub producer_epoch: i16,
    /// The epoch before a transaction version 2 end bumped it, so that a retried EndTxn
    /// is answered rather than fenced; -1 otherwise (kept in a Sluice tagged field).
    pub last_epoch: i16,
    /// The producer id the client continues with once this end completes, when its epochs
    /// ran out (transaction version 2); -1 otherwise.
    pub next_producer_id: i64,
    /// The transaction version the client speaks (0 or 1: epochs stay; 2: bumped per end).
    pub client_version: i16,
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
    /// A retry of an end already completed: answer success with this producer id and epoch.
    AlreadyDone(i64, i16),
    /// The epochs are used up: call again with a fresh producer id.
    NeedsProducerId,
}

impl TxnMeta {
    /// The producer id and epoch the client goes on with once this state's end completes.
    pub fn producer_after_end(&self) -> (i64, i16) {
        if self.next_producer_id >= 0 {
            (self.next_producer_id, 0)
        } else {
            (self.producer_id, self.producer_epoch)
        }
    }
}

/// The highest epoch handed out before a producer gets a new id.
const MAX_EPOCH: i16 = i16::MAX - 1;

/// InitProducerId for a transactional id: a new epoch fences every older instance.
/// `fresh_id` is used when the id has no producer yet or its epochs are used up.
/// `expected` is the producer a running client says it is (KIP-360: it bumps its own epoch
/// after an abortable error): only the current instance may bump, and a retry of a bump
/// whose answer was lost gets the same epoch again rather than another one.
pub fn init(
    current: Option<&TxnMeta>,
    fresh_id: i64,
    timeout_ms: i32,
    expected: Option<(i64, i16)>,
    now: i64,
) -> Result<InitStep, TxnError> {
    let Some(m) = current else {
        return Ok(InitStep::Ready(TxnMeta {
            producer_id: fresh_id,
            producer_epoch: 0,
            last_epoch: -1,
            next_producer_id: -1,
            client_version: 0,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            update_ms: now,
        }));
    };
    let mut last_epoch = -1;
    if let Some((producer_id, epoch)) = expected {
        if producer_id != m.producer_id {
            return Err(TxnError::ProducerFenced);
        }
        if epoch != m.producer_epoch {
            let retried = epoch == m.last_epoch
                && matches!(
                    m.state,
                    TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
                );
            if !retried {
                return Err(TxnError::ProducerFenced);
            }
            return Ok(InitStep::Ready(TxnMeta {
                timeout_ms,
                update_ms: now,
                ..m.clone()
            }));
        }
        last_epoch = m.producer_epoch;
    }
    match m.state {
        TxnState::PrepareCommit | TxnState::PrepareAbort => Err(TxnError::ConcurrentTransactions),
        TxnState::Ongoing => Ok(InitStep::AbortFirst(TxnMeta {
            state: TxnState::PrepareAbort,
            update_ms: now,
            ..bumped(m)
        })),
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
            let next = bumped_or_new(m, fresh_id);
            Ok(InitStep::Ready(TxnMeta {
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                start_ms: -1,
                update_ms: now,
                last_epoch: if next.producer_id == m.producer_id {
                    last_epoch
                } else {
                    -1
                },
                ..next
            }))
        }
    }
}

/// A new epoch that fences the previous instance (no retry of its EndTxn is recognised).
fn bumped(m: &TxnMeta) -> TxnMeta {
    TxnMeta {
        producer_epoch: m.producer_epoch.saturating_add(1),
        last_epoch: -1,
        ..m.clone()
    }
}

fn bumped_or_new(m: &TxnMeta, fresh_id: i64) -> TxnMeta {
    if m.producer_epoch >= MAX_EPOCH {
        TxnMeta {
            producer_id: fresh_id,
            producer_epoch: 0,
            last_epoch: -1,
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

/// AddPartitionsToTxn / AddOffsetsToTxn (or, in transaction version 2, a partition
/// leader adding the partition of a transactional produce): the state with `partitions` in
/// the transaction (opening it), or `None` when nothing changes.
pub fn add_partitions(
    current: Option<&TxnMeta>,
    producer_id: i64,
    epoch: i16,
    partitions: &[TopicPartition],
    client_version: i16,
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
    next.client_version = client_version;
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

/// What EndTxn is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndRequest {
    /// The producer id the client holds.
    pub producer_id: i64,
    /// Its epoch.
    pub epoch: i16,
    /// Commit (true) or abort.
    pub commit: bool,
    /// The client's transaction version (2 from EndTxn v5).
    pub client_version: i16,
}

/// EndTxn. `fresh_id` is a new producer id, given on a second call after
/// [`EndStep::NeedsProducerId`].
pub fn end(
    current: Option<&TxnMeta>,
    req: EndRequest,
    fresh_id: Option<i64>,
    now: i64,
) -> Result<EndStep, TxnError> {
    let m = current.ok_or(TxnError::InvalidProducerIdMapping)?;
    let tv2 = req.client_version >= TV2;
    let done = |m: &TxnMeta| {
        let (id, epoch) = m.producer_after_end();
        EndStep::AlreadyDone(id, epoch)
    };
    let same_outcome = |state: TxnState| {
        matches!(
            (state, req.commit),
            (TxnState::CompleteCommit | TxnState::PrepareCommit, true)
                | (TxnState::CompleteAbort | TxnState::PrepareAbort, false)
        )
    };
    // A retry of an end that bumped the epoch: the client has not seen the new one yet.
    if tv2 && m.producer_id == req.producer_id && m.last_epoch >= 0 && req.epoch == m.last_epoch {
        return match m.state {
            s if !same_outcome(s) => Err(TxnError::InvalidTxnState),
            s if s.is_prepared() => Err(TxnError::ConcurrentTransactions),
            _ => Ok(done(m)),
        };
    }
    check_producer(m, req.producer_id, req.epoch)?;
    match m.state {
        TxnState::Ongoing => prepare(m, req, fresh_id, now),
        // Version 2 ends a transaction that enlisted nothing too: the epoch still moves on.
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort if tv2 => {
            prepare(m, req, fresh_id, now)
        }
        s if s.is_prepared() && same_outcome(s) => Err(TxnError::ConcurrentTransactions),
        s if !s.is_prepared() && same_outcome(s) => Ok(done(m)),
        _ => Err(TxnError::InvalidTxnState),
    }
}

/// The prepared state of an end: in version 2 with the next epoch (or, when the epochs
/// are used up, the next producer id), which the markers carry.
fn prepare(
    m: &TxnMeta,
    req: EndRequest,
    fresh_id: Option<i64>,
    now: i64,
) -> Result<EndStep, TxnError> {
    let mut next = TxnMeta {
        state: if req.commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        },
        client_version: req.client_version,
        last_epoch: -1,
        next_producer_id: -1,
        update_ms: now,
        ..m.clone()
    };
    if m.state != TxnState::Ongoing {
        next.partitions.clear();
        next.start_ms = now;
    }
    if req.client_version >= TV2 {
        next.last_epoch = m.producer_epoch;
        if m.producer_epoch >= MAX_EPOCH {
            match fresh_id {
                Some(id) => next.next_producer_id = id,
                None => return Ok(EndStep::NeedsProducerId),
            }
        } else {
            next.producer_epoch = m.producer_epoch + 1;
        }
    }
    Ok(EndStep::Prepare(next))
}

/// The completed state once every marker of a prepared transaction is written.
pub fn complete(m: &TxnMeta, now: i64) -> Option<TxnMeta> {
    let state = match m.state {
        TxnState::PrepareCommit => TxnState::CompleteCommit,
        TxnState::PrepareAbort => TxnState::CompleteAbort,
        _ => return None,
    };
    let (producer_id, producer_epoch) = m.producer_after_end();
    Some(TxnMeta {
        state,
        partitions: BTreeSet::new(),
        start_ms: -1,
        update_ms: now,
        producer_id,
        producer_epoch,
        next_producer_id: -1,
        last_epoch: if producer_id == m.producer_id {
            m.last_epoch
        } else {
            -1
        },
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

/// A transactional id with no transaction open whose producer was silent for
/// `expiration_ms` (`transactional.id.expiration.ms`): it is forgotten, as in Kafka.
pub fn is_forgotten(m: &TxnMeta, now: i64, expiration_ms: i64) -> bool {
    matches!(
        m.state,
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
    ) && now > m.update_ms.saturating_add(expiration_ms)
}

const KEY_VERSION: i16 = 0;
/// Kafka's first flexible value version; v0 (written before transaction version 2) is read.
const VALUE_VERSION: i16 = 1;

/// Kafka's tagged fields of the value, and Sluice's own (Kafka's readers skip unknown tags).
const TAG_NEXT_PRODUCER_ID: u32 = 1;
const TAG_CLIENT_VERSION: u32 = 2;
const TAG_LAST_EPOCH: u32 = 10_000;

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

/// The partitions grouped by topic, in order.
fn by_topic(partitions: &BTreeSet<TopicPartition>) -> Vec<(&str, Vec<i32>)> {
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for (t, p) in partitions {
        match topics.last_mut() {
            Some((last, ps)) if *last == t.as_str() => ps.push(*p),
            _ => topics.push((t, vec![*p])),
        }
    }
    topics
}

/// The record value of a state (v1: compact strings and arrays, tagged fields).
pub fn encode_value(m: &TxnMeta) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(VALUE_VERSION);
    b.put_i64(m.producer_id);
    b.put_i16(m.producer_epoch);
    b.put_i32(m.timeout_ms);
    b.put_i8(m.state.code());
    let topics = by_topic(&m.partitions);
    put_uvarint(&mut b, topics.len() as u32 + 1);
    for (t, ps) in topics {
        put_uvarint(&mut b, t.len() as u32 + 1);
        b.put_slice(t.as_bytes());
        put_uvarint(&mut b, ps.len() as u32 + 1);
        ps.iter().for_each(|p| b.put_i32(*p));
        put_uvarint(&mut b, 0);
    }
    b.put_i64(m.update_ms);
    b.put_i64(m.start_ms);
    let mut tags: Vec<(u32, Vec<u8>)> = Vec::new();
    if m.next_producer_id >= 0 {
        tags.push((
            TAG_NEXT_PRODUCER_ID,
            m.next_producer_id.to_be_bytes().to_vec(),
        ));
    }
    if m.client_version != 0 {
        tags.push((TAG_CLIENT_VERSION, m.client_version.to_be_bytes().to_vec()));
    }
    if m.last_epoch >= 0 {
        tags.push((TAG_LAST_EPOCH, m.last_epoch.to_be_bytes().to_vec()));
    }
    put_uvarint(&mut b, tags.len() as u32);
    for (tag, data) in tags {
        put_uvarint(&mut b, tag);
        put_uvarint(&mut b, data.len() as u32);
        b.put_slice(&data);
    }
    b.freeze()
}

/// A state read back from its record value (`None` if malformed: replay skips it).
pub fn decode_value(mut v: Bytes) -> Option<TxnMeta> {
    if v.remaining() < 2 + 8 + 2 + 4 + 1 {
        return None;
    }
    let version = v.get_i16();
    if !(0..=VALUE_VERSION).contains(&version) {
        return None;
    }
    let flexible = version >= 1;
    let producer_id = v.get_i64();
    let producer_epoch = v.get_i16();
    let timeout_ms = v.get_i32();
    let state = TxnState::from_code(v.get_i8())?;
    let mut partitions = BTreeSet::new();
    let topics = if flexible {
        i64::from(get_uvarint(&mut v)?) - 1
    } else {
        (v.remaining() >= 4).then(|| i64::from(v.get_i32()))?
    };
    for _ in 0..topics.max(0) {
        let topic = if flexible {
            let len = usize::try_from(get_uvarint(&mut v)?.checked_sub(1)?).ok()?;
            (v.remaining() >= len).then_some(())?;
            String::from_utf8(v.split_to(len).to_vec()).ok()?
        } else {
            get_str(&mut v)?
        };
        let count = if flexible {
            i64::from(get_uvarint(&mut v)?) - 1
        } else {
            (v.remaining() >= 4).then(|| i64::from(v.get_i32()))?
        };
        // Each partition is 4 bytes: a count the value cannot hold is malformed.
        if count < 0 || (v.remaining() as i64) < count * 4 {
            return None;
        }
        for _ in 0..count {
            partitions.insert((topic.clone(), v.get_i32()));
        }
        if flexible {
            skip_tags(&mut v)?;
        }
    }
    if v.remaining() < 16 {
        return None;
    }
    let update_ms = v.get_i64();
    let start_ms = v.get_i64();
    let mut m = TxnMeta {
        producer_id,
        producer_epoch,
        last_epoch: -1,
        next_producer_id: -1,
        client_version: 0,
        timeout_ms,
        state,
        partitions,
        start_ms,
        update_ms,
    };
    if flexible {
        for _ in 0..get_uvarint(&mut v)? {
            let tag = get_uvarint(&mut v)?;
            let len = get_uvarint(&mut v)? as usize;
            if v.remaining() < len {
                return None;
            }
            let mut data = v.split_to(len);
            match (tag, len) {
                (TAG_NEXT_PRODUCER_ID, 8) => m.next_producer_id = data.get_i64(),
                (TAG_CLIENT_VERSION, 2) => m.client_version = data.get_i16(),
                (TAG_LAST_EPOCH, 2) => m.last_epoch = data.get_i16(),
                _ => {}
            }
        }
    }
    Some(m)
}

fn put_uvarint(b: &mut BytesMut, mut n: u32) {
    while n >= 0x80 {
        b.put_u8((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    b.put_u8(n as u8);
}

fn get_uvarint(b: &mut Bytes) -> Option<u32> {
    let mut n: u32 = 0;
    for shift in (0..35).step_by(7) {
        if !b.has_remaining() {
            return None;
        }
        let byte = b.get_u8();
        n |= u32::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

/// Skips a tagged-field section.
fn skip_tags(b: &mut Bytes) -> Option<()> {
    for _ in 0..get_uvarint(b)? {
        get_uvarint(b)?;
        let len = get_uvarint(b)? as usize;
        if b.remaining() < len {
            return None;
        }
        b.advance(len);
    }
    Some(())
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

    fn end_req(producer_id: i64, epoch: i16, commit: bool, client_version: i16) -> EndRequest {
        EndRequest {
            producer_id,
            epoch,
            commit,
            client_version,
        }
    }

    fn prepared(step: Result<EndStep, TxnError>) -> TxnMeta {
        match step {
            Ok(EndStep::Prepare(m)) => m,
            other => panic!("expected Prepare, got {other:?}"),
        }
    }

    #[test]
    fn a_running_producer_bumps_its_own_epoch_and_a_zombie_cannot() {
        let m = ready(init(None, 7, 60_000, Some((-1, -1)), 1).unwrap());
        let m = add_partitions(Some(&m), 7, 0, &[tp("a", 0)], TV1, 2)
            .unwrap()
            .unwrap();
        let m = complete(
            &prepared(end(Some(&m), end_req(7, 0, false, TV1), None, 2)),
            3,
        )
        .unwrap();
        // The current instance bumps (KIP-360), and a retry of that bump gets the same epoch.
        let bumped = ready(init(Some(&m), 9, 60_000, Some((7, 0)), 4).unwrap());
        assert_eq!((bumped.producer_id, bumped.producer_epoch), (7, 1));
        let again = ready(init(Some(&bumped), 9, 60_000, Some((7, 0)), 5).unwrap());
        assert_eq!((again.producer_id, again.producer_epoch), (7, 1));
        // A new instance (no producer given) takes over; the old one can no longer bump.
        let newer = ready(init(Some(&again), 9, 60_000, None, 6).unwrap());
        assert_eq!(newer.producer_epoch, 2);
        for zombie in [(7, 0), (7, 1), (8, 2)] {
            assert_eq!(
                init(Some(&newer), 9, 60_000, Some(zombie), 7),
                Err(TxnError::ProducerFenced),
                "{zombie:?}"
            );
        }
        // While a transaction is open, only its own producer may abort it by a bump.
        let open = add_partitions(Some(&newer), 7, 2, &[tp("a", 0)], TV1, 8)
            .unwrap()
            .unwrap();
        assert_eq!(
            init(Some(&open), 9, 60_000, Some((7, 1)), 9),
            Err(TxnError::ProducerFenced)
        );
        assert!(matches!(
            init(Some(&open), 9, 60_000, Some((7, 2)), 9),
            Ok(InitStep::AbortFirst(_))
        ));
    }

    #[test]
    fn a_transaction_from_init_to_commit_and_the_next_instance_fences_the_old() {
        let m = ready(init(None, 7, 60_000, None, 1).unwrap());
        assert_eq!(
            (m.producer_id, m.producer_epoch, m.state),
            (7, 0, TxnState::Empty)
        );
        let m = add_partitions(Some(&m), 7, 0, &[tp("a", 0), tp("a", 1)], TV1, 2)
            .unwrap()
            .unwrap();
        assert_eq!(
            (m.state, m.start_ms, m.partitions.len()),
            (TxnState::Ongoing, 2, 2)
        );
        // Adding what is in already changes nothing.
        assert_eq!(
            add_partitions(Some(&m), 7, 0, &[tp("a", 0)], TV1, 3).unwrap(),
            None
        );
        assert_eq!(verify(Some(&m), 7, 0, &tp("a", 1)), Ok(()));
        assert_eq!(
            verify(Some(&m), 7, 0, &tp("b", 0)),
            Err(TxnError::InvalidTxnState)
        );
        assert_eq!(
            add_partitions(Some(&m), 8, 0, &[], TV1, 3),
            Err(TxnError::InvalidProducerIdMapping)
        );
        assert_eq!(
            add_partitions(Some(&m), 7, 1, &[], TV1, 3),
            Err(TxnError::ProducerFenced)
        );
        let p = prepared(end(Some(&m), end_req(7, 0, true, TV1), None, 4));
        assert_eq!((p.state, p.producer_epoch), (TxnState::PrepareCommit, 0));
        assert_eq!(
            end(Some(&p), end_req(7, 0, true, TV1), None, 5),
            Err(TxnError::ConcurrentTransactions)
        );
        assert_eq!(
            add_partitions(Some(&p), 7, 0, &[tp("a", 0)], TV1, 5),
            Err(TxnError::ConcurrentTransactions)
        );
        assert_eq!(
            init(Some(&p), 9, 60_000, None, 5),
            Err(TxnError::ConcurrentTransactions)
        );
        let c = complete(&p, 6).unwrap();
        assert_eq!((c.state, c.partitions.len()), (TxnState::CompleteCommit, 0));
        assert_eq!(
            end(Some(&c), end_req(7, 0, true, TV1), None, 7),
            Ok(EndStep::AlreadyDone(7, 0))
        );
        assert_eq!(
            end(Some(&c), end_req(7, 0, false, TV1), None, 7),
            Err(TxnError::InvalidTxnState)
        );
        // A new instance gets the next epoch; the old one is fenced.
        let n = ready(init(Some(&c), 9, 30_000, None, 8).unwrap());
        assert_eq!(
            (n.producer_id, n.producer_epoch, n.timeout_ms),
            (7, 1, 30_000)
        );
        assert_eq!(
            add_partitions(Some(&n), 7, 0, &[tp("a", 0)], TV1, 9),
            Err(TxnError::ProducerFenced)
        );
        assert_eq!(
            end(Some(&n), end_req(7, 1, true, TV1), None, 9),
            Err(TxnError::InvalidTxnState)
        );
    }

    #[test]
    fn version_2_bumps_the_epoch_at_every_end_and_answers_a_retry() {
        let m = ready(init(None, 7, 60_000, None, 1).unwrap());
        let m = add_partitions(Some(&m), 7, 0, &[tp("a", 0)], TV2, 2)
            .unwrap()
            .unwrap();
        let p = prepared(end(Some(&m), end_req(7, 0, true, TV2), None, 3));
        // The markers carry the new epoch, so a late write at the old one is stale.
        assert_eq!((p.producer_epoch, p.last_epoch), (1, 0));
        assert_eq!(p.partitions.len(), 1);
        assert_eq!(
            end(Some(&p), end_req(7, 0, true, TV2), None, 4),
            Err(TxnError::ConcurrentTransactions)
        );
        let c = complete(&p, 4).unwrap();
        assert_eq!(c.producer_after_end(), (7, 1));
        // The client did not see the answer and asks again with its old epoch.
        assert_eq!(
            end(Some(&c), end_req(7, 0, true, TV2), None, 5),
            Ok(EndStep::AlreadyDone(7, 1))
        );
        assert_eq!(
            end(Some(&c), end_req(7, 0, false, TV2), None, 5),
            Err(TxnError::InvalidTxnState)
        );
        // The next transaction at the new epoch; one that enlisted nothing still ends.
        let e = prepared(end(Some(&c), end_req(7, 1, false, TV2), None, 6));
        assert_eq!(
            (e.state, e.producer_epoch, e.partitions.len()),
            (TxnState::PrepareAbort, 2, 0)
        );
        // A timeout fences: the expired epoch is not taken for a retry.
        let o = add_partitions(Some(&c), 7, 1, &[tp("a", 0)], TV2, 7)
            .unwrap()
            .unwrap();
        let x = expire(&o, 7 + 60_001).unwrap();
        assert_eq!((x.producer_epoch, x.last_epoch), (2, -1));
        assert_eq!(
            end(Some(&x), end_req(7, 1, false, TV2), None, 70_000),
            Err(TxnError::ProducerFenced)
        );
        // Epochs used up: the end asks for a new producer id and hands it over.
        let worn = TxnMeta {
            producer_epoch: MAX_EPOCH,
            ..o.clone()
        };
        assert_eq!(
            end(Some(&worn), end_req(7, MAX_EPOCH, true, TV2), None, 8),
            Ok(EndStep::NeedsProducerId)
        );
        let w = prepared(end(
            Some(&worn),
            end_req(7, MAX_EPOCH, true, TV2),
            Some(11),
            8,
        ));
        assert_eq!((w.producer_id, w.producer_epoch), (7, MAX_EPOCH));
        let done = complete(&w, 9).unwrap();
        assert_eq!((done.producer_id, done.producer_epoch), (11, 0));
    }

    #[test]
    fn an_open_transaction_is_aborted_by_a_new_instance_or_its_timeout() {
        let m = ready(init(None, 7, 100, None, 0).unwrap());
        let m = add_partitions(Some(&m), 7, 0, &[tp("a", 0)], TV1, 10)
            .unwrap()
            .unwrap();
        let InitStep::AbortFirst(a) = init(Some(&m), 9, 100, None, 20).unwrap() else {
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
        let n = ready(init(Some(&worn), 9, 100, None, 30).unwrap());
        assert_eq!((n.producer_id, n.producer_epoch), (9, 0));
    }

    fn sample() -> TxnMeta {
        TxnMeta {
            producer_id: 5,
            producer_epoch: 3,
            last_epoch: 2,
            next_producer_id: 8,
            client_version: TV2,
            timeout_ms: 60_000,
            state: TxnState::PrepareCommit,
            partitions: [tp("a", 0), tp("a", 2), tp("b", 1)].into_iter().collect(),
            start_ms: 10,
            update_ms: 20,
        }
    }

    #[test]
    fn records_round_trip_and_garbage_is_skipped() {
        let m = sample();
        assert_eq!(decode_value(encode_value(&m)), Some(m.clone()));
        let plain = TxnMeta {
            last_epoch: -1,
            next_producer_id: -1,
            client_version: 0,
            ..m.clone()
        };
        assert_eq!(decode_value(encode_value(&plain)), Some(plain.clone()));
        assert_eq!(decode_key(encode_key("tx-1")), Some("tx-1".to_string()));
        let v = encode_value(&m);
        for cut in 0..v.len() {
            assert_eq!(decode_value(v.slice(..cut)), None, "cut at {cut}");
        }
        // A partition count far beyond the value's length is refused, not allocated.
        let mut huge = v[..2 + 8 + 2 + 4 + 1].to_vec();
        huge.extend_from_slice(&[2, 2, b'a', 0xff, 0xff, 0xff, 0xff, 0x07]);
        assert_eq!(decode_value(Bytes::from(huge)), None);
    }

    #[test]
    fn version_0_records_written_before_version_2_still_load() {
        let m = sample();
        let mut b = BytesMut::new();
        b.put_i16(0);
        b.put_i64(m.producer_id);
        b.put_i16(m.producer_epoch);
        b.put_i32(m.timeout_ms);
        b.put_i8(m.state.code());
        let topics = by_topic(&m.partitions);
        b.put_i32(topics.len() as i32);
        for (t, ps) in topics {
            put_str(&mut b, t);
            b.put_i32(ps.len() as i32);
            ps.iter().for_each(|p| b.put_i32(*p));
        }
        b.put_i64(m.update_ms);
        b.put_i64(m.start_ms);
        let old = TxnMeta {
            last_epoch: -1,
            next_producer_id: -1,
            client_version: 0,
            ..m
        };
        assert_eq!(decode_value(b.freeze()), Some(old));
    }
}
