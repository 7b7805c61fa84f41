//! The append pipeline: one writer thread that group-commits appends from every partition.
//!
//! Request tasks validate their batches and send them here. The thread drains whatever is
//! queued, assigns offsets and checks producer sequences under each partition's writer lock,
//! builds one WriteBatch (batches, producer state, epoch cache), writes it once — synced when
//! any append in the group asked for it — then publishes the new log ends. One fsync covers
//! every append in the group; offsets are assigned in write order, so a leader's log has no
//! holes (a follower's may: it copies its leader's, gaps left by compaction included).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use std::io::IoSlice;

use bytes::{Bytes, BytesMut};
use rocksdb::{WriteBatch, WriteOptions, DB};
use tokio::sync::{mpsc, oneshot};

use crate::batch::{self, BatchHeader};
use crate::control;
use crate::keys::{offset_key, META_CF};
use crate::log::{PartitionLog, WriterState};
use crate::producer::{MarkerCheck, ProducerEntry, SequenceCheck, TxnGuard};

/// Most bytes gathered into one group commit.
const MAX_GROUP_BYTES: usize = 16 << 20;

/// Batches for one partition, validated by the caller.
pub struct AppendEntry {
    /// The partition to append to.
    pub log: Arc<PartitionLog>,
    /// One or more record batches, each validated with [`batch::validate`]; usually slices
    /// of the request that carried them.
    pub batches: Vec<Bytes>,
    /// Leader epoch stamped into each batch.
    pub leader_epoch: i32,
    /// Rewrite timestamps to LogAppendTime.
    pub log_append_time: bool,
    /// `flush.messages`: fsync before answering once this many records of the partition are
    /// unsynced (1: every append; `u64::MAX`: never here, `flush.ms` or the OS decide).
    pub flush_messages: u64,
    /// Batches copied from the leader by a follower: their offsets, leader epochs and
    /// timestamps are kept and producer state is recorded without sequence checks, so every
    /// replica derives the same state from the same log. Each must start at or past the log
    /// end: offsets only have to grow, as in Kafka, because the leader's compaction removes
    /// whole batches and leaves gaps a lagging follower must accept.
    pub replicated: bool,
    /// For a producer's transactional write that its transaction coordinator approved: what
    /// the leader saw before asking (the write is refused if a marker came in between).
    pub txn_guard: Option<TxnGuard>,
}

/// A successful append (or a recognised duplicate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
    /// The LogAppendTime used, or -1 for CreateTime.
    pub log_append_time: i64,
    /// The batch had been appended before; nothing was written.
    pub duplicate: bool,
}

/// Why one partition's append was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// A gap in an idempotent producer's sequence numbers.
    #[error("out of order sequence number")]
    OutOfOrderSequence,
    /// A retry of a batch appended before the batches whose offsets are remembered.
    #[error("duplicate of a batch appended before the last 5 of its producer")]
    DuplicateSequence,
    /// An idempotent producer's epoch older than one already seen.
    #[error("producer epoch is stale")]
    InvalidProducerEpoch,
    /// A marker from a transaction coordinator older than the producer's last marker's.
    #[error("the transaction coordinator writing this marker is no longer current")]
    CoordinatorFenced,
    /// A marker ended the producer's transaction after the coordinator approved this write.
    #[error("the producer's transaction ended before its write arrived")]
    TransactionEnded,
    /// The partition is not stored here (deleted meanwhile).
    #[error("partition is not stored on this node")]
    UnknownPartition,
    /// The replica's role changed: a producer write reached a follower, or a fetched batch
    /// a leader.
    #[error("this replica is not in the role the write needs")]
    NotLeader,
    /// RocksDB refused the write (disk full, I/O error); nothing was appended.
    #[error("storage error: {0}")]
    Storage(String),
}

/// Results of one append call, in entry order.
pub type AppendResults = Vec<Result<AppendOutcome, AppendError>>;

pub(crate) struct AppendJob {
    pub entries: Vec<AppendEntry>,
    pub done: oneshot::Sender<AppendResults>,
}

impl AppendJob {
    fn size(&self) -> usize {
        self.entries
            .iter()
            .flat_map(|e| e.batches.iter())
            .map(|b| b.len())
            .sum()
    }
}

/// Undo information for in-memory writer state, applied if the group's write fails.
enum Undo {
    NextOffset(Arc<PartitionLog>, i64),
    Producer(Arc<PartitionLog>, i64, Option<ProducerEntry>),
    Epochs(Arc<PartitionLog>, usize),
    MaxTimestamp(Arc<PartitionLog>, i64),
}

/// What the writer thread is asked to do.
pub(crate) enum Job {
    /// Append batches (grouped with other appends into one write).
    Append(AppendJob),
    /// Run this on the writer thread once every append queued before it is written, with
    /// no append in between (truncating a follower's log).
    Exclusive(Box<dyn FnOnce() + Send>),
}

/// Runs the writer loop until every sender is gone.
pub(crate) fn run(db: Arc<DB>, mut rx: mpsc::Receiver<Job>) {
    let mut next: Option<Job> = None;
    loop {
        let job = match next.take() {
            Some(j) => j,
            None => match rx.blocking_recv() {
                Some(j) => j,
                None => return,
            },
        };
        let first = match job {
            Job::Exclusive(work) => {
                work();
                continue;
            }
            Job::Append(a) => a,
        };
        let mut size = first.size();
        let mut jobs = vec![first];
        while size < MAX_GROUP_BYTES {
            match rx.try_recv() {
                Ok(Job::Append(job)) => {
                    size += job.size();
                    jobs.push(job);
                }
                Ok(exclusive) => {
                    next = Some(exclusive);
                    break;
                }
                Err(_) => break,
            }
        }
        commit_group(&db, jobs);
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Room in a group's WriteBatch beyond its record batches: keys, length prefixes, producer
/// state and index entries.
const WRITE_BATCH_SLACK: usize = 16 << 10;

fn commit_group(db: &DB, jobs: Vec<AppendJob>) {
    let now = now_ms();
    // Sized for the group's batches up front: grown as it goes, the batch's buffer was
    // reallocated and copied again and again (7% of a produce's CPU).
    let batch_bytes: usize = jobs.iter().map(AppendJob::size).sum();
    let mut wb = WriteBatch::with_capacity_bytes(batch_bytes + WRITE_BATCH_SLACK);
    let mut undo = Vec::new();
    // Each partition written, with the records it got and whether they force an fsync.
    let mut touched: Vec<(Arc<PartitionLog>, u64)> = Vec::new();
    let mut results: Vec<AppendResults> = Vec::with_capacity(jobs.len());
    let mut sync = false;
    let mut replies = Vec::with_capacity(jobs.len());
    for job in jobs {
        let mut job_results = Vec::with_capacity(job.entries.len());
        for entry in job.entries {
            let log = entry.log.clone();
            let flush_messages = entry.flush_messages;
            wb.set_save_point();
            let undo_mark = undo.len();
            let result = apply_entry(db, entry, now, &mut wb, &mut undo);
            match &result {
                Err(_) => {
                    // Drop this entry's puts and state changes; the rest of the group goes on.
                    let _ = wb.rollback_to_save_point();
                    rollback(undo.drain(undo_mark..).rev());
                }
                Ok(o) if !o.duplicate => {
                    let records = (o.last_offset - o.base_offset + 1).max(0) as u64;
                    let at = match touched.iter().position(|(t, _)| Arc::ptr_eq(t, &log)) {
                        Some(i) => i,
                        None => {
                            touched.push((log.clone(), 0));
                            touched.len() - 1
                        }
                    };
                    touched[at].1 += records;
                    sync |= log.unflushed().0 + touched[at].1 >= flush_messages;
                }
                Ok(_) => {}
            }
            job_results.push(result);
        }
        results.push(job_results);
        replies.push(job.done);
    }

    let mut opts = WriteOptions::default();
    opts.set_sync(sync);
    opts.set_ignore_missing_column_families(true);
    let started = std::time::Instant::now();
    let written = if wb.is_empty() {
        Ok(())
    } else {
        db.write_opt(&wb, &opts)
    };
    if sync && !wb.is_empty() {
        crate::metrics::record_since(crate::metrics::SYNC_DURATION, started);
    }
    match written {
        Ok(()) => {
            for (log, records) in touched {
                if sync {
                    log.note_flushed(log.unflushed().0);
                } else {
                    log.note_unflushed(records, now);
                }
                let state = log
                    .writer
                    .lock()
                    .map(|w| (w.next_offset, w.producers.first_open_txn()));
                if let Ok((end, first_unstable)) = state {
                    log.publish_first_unstable(first_unstable);
                    log.publish_log_end(end);
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "append group failed; nothing of it was written");
            rollback(undo.into_iter().rev());
            let msg = e.to_string();
            for r in results.iter_mut().flatten() {
                if r.is_ok() {
                    *r = Err(AppendError::Storage(msg.clone()));
                }
            }
        }
    }
    for (done, r) in replies.into_iter().zip(results) {
        let _ = done.send(r);
    }
}

fn rollback(undo: impl Iterator<Item = Undo>) {
    for u in undo {
        match u {
            Undo::NextOffset(log, prev) => {
                if let Ok(mut w) = log.writer.lock() {
                    w.next_offset = prev;
                }
            }
            Undo::Producer(log, pid, prev) => {
                if let Ok(mut w) = log.writer.lock() {
                    w.producers.set(pid, prev);
                }
            }
            Undo::MaxTimestamp(log, prev) => {
                if let Ok(mut w) = log.writer.lock() {
                    w.max_timestamp = prev;
                }
            }
            Undo::Epochs(log, len) => {
                if let Ok(mut w) = log.writer.lock() {
                    w.epochs.truncate(len);
                }
            }
        }
    }
}

fn apply_entry(
    db: &DB,
    entry: AppendEntry,
    now: i64,
    wb: &mut WriteBatch,
    undo: &mut Vec<Undo>,
) -> Result<AppendOutcome, AppendError> {
    let log = entry.log;
    if log.is_deleted() {
        return Err(AppendError::UnknownPartition);
    }
    // Producers write to leaders, fetchers to followers; a role change in flight must not
    // let the other kind through.
    if entry.replicated != log.is_follower() {
        return Err(AppendError::NotLeader);
    }
    // A fetch answered by the previous leader, arriving after the new epoch's truncation.
    if entry.replicated && entry.leader_epoch != log.follower_epoch() {
        return Err(AppendError::NotLeader);
    }
    let cf = db
        .cf_handle(log.cf_name())
        .ok_or(AppendError::UnknownPartition)?;
    let meta = db.cf_handle(META_CF).ok_or(AppendError::UnknownPartition)?;
    let mut writer = log
        .writer
        .lock()
        .map_err(|_| AppendError::Storage("partition writer lock poisoned".into()))?;
    let w: &mut WriterState = &mut writer;
    let append_time = if entry.log_append_time { now } else { -1 };
    let mut outcome: Option<AppendOutcome> = None;

    if !entry.replicated && w.epochs.last().is_none_or(|(e, _)| *e < entry.leader_epoch) {
        undo.push(Undo::Epochs(log.clone(), w.epochs.len()));
        w.epochs.push((entry.leader_epoch, w.next_offset));
        wb.put_cf(
            &meta,
            log.meta_keys.leader_epochs(),
            encode_epochs(&w.epochs),
        );
    }

    for bytes in entry.batches {
        let header: BatchHeader =
            batch::parse_header(&bytes).map_err(|e| AppendError::Storage(e.to_string()))?;
        if header.total_len() != bytes.len() {
            // One buffer, one batch: anything else would corrupt offsets on recovery.
            return Err(AppendError::Storage(
                "buffer does not hold exactly one batch".into(),
            ));
        }
        let idempotent = header.has_producer_id() && header.base_sequence >= 0;
        let marker = if header.is_control() {
            control::parse_marker(&bytes).map_err(|e| AppendError::Storage(e.to_string()))?
        } else {
            None
        };
        if let Some(m) = marker.filter(|_| !entry.replicated) {
            match w.producers.check_marker(&header, m.coordinator_epoch) {
                MarkerCheck::Append => {}
                MarkerCheck::StaleEpoch => return Err(AppendError::InvalidProducerEpoch),
                MarkerCheck::CoordinatorFenced => return Err(AppendError::CoordinatorFenced),
            }
        }
        if entry.replicated {
            if header.base_offset < w.next_offset {
                return Err(AppendError::Storage(format!(
                    "replicated batch at {} lies before the log end {}",
                    header.base_offset, w.next_offset
                )));
            }
            // A new epoch starts at our log end even when the batch leaves a gap: the
            // leader's epoch may have begun anywhere in it, and an end offset that is too
            // early only makes a replica truncate more, never keep what diverged.
            if w.epochs
                .last()
                .is_none_or(|(e, _)| *e < header.partition_leader_epoch)
            {
                undo.push(Undo::Epochs(log.clone(), w.epochs.len()));
                w.epochs
                    .push((header.partition_leader_epoch, w.next_offset));
                wb.put_cf(
                    &meta,
                    log.meta_keys.leader_epochs(),
                    encode_epochs(&w.epochs),
                );
            }
        } else if idempotent {
            // A retry of an appended batch gets its offsets, and a fenced producer its stale
            // epoch (a recoverable error for clients), before a write that a marker
            // overtook is refused as outside any transaction.
            let check = w.producers.check(&header);
            match check {
                SequenceCheck::Duplicate(dup) => {
                    merge(
                        &mut outcome,
                        dup.base_offset,
                        dup.last_offset,
                        append_time,
                        true,
                    );
                    continue;
                }
                SequenceCheck::StaleEpoch => return Err(AppendError::InvalidProducerEpoch),
                SequenceCheck::DuplicateBeyondMemory => return Err(AppendError::DuplicateSequence),
                SequenceCheck::Append | SequenceCheck::OutOfOrder => {}
            }
            let ended = header.is_transactional()
                && entry
                    .txn_guard
                    .filter(|g| g.producer_id == header.producer_id)
                    .is_some_and(|g| !w.producers.guard_holds(&g));
            if ended {
                return Err(AppendError::TransactionEnded);
            }
            if matches!(check, SequenceCheck::OutOfOrder) {
                tracing::debug!(
                    partition = log.cf_name(),
                    producer_id = header.producer_id,
                    epoch = header.producer_epoch,
                    base_sequence = header.base_sequence,
                    known = ?w.producers.get(header.producer_id),
                    "out of order sequence"
                );
                return Err(AppendError::OutOfOrderSequence);
            }
        }
        let base = if entry.replicated {
            header.base_offset
        } else {
            w.next_offset
        };
        if entry.replicated {
            wb.put_cf(&cf, offset_key(base), &bytes);
        } else if entry.log_append_time {
            // The body changes (timestamps and CRC): the one case that copies the batch.
            let mut stamped = BytesMut::from(&bytes[..]);
            batch::assign_offset(&mut stamped, base, entry.leader_epoch);
            batch::set_log_append_time(&mut stamped, now);
            wb.put_cf(&cf, offset_key(base), &stamped);
        } else {
            // Only the head changes; RocksDB copies both parts into the WriteBatch, so the
            // batch goes from the request buffer to RocksDB without a copy of our own.
            let head = batch::stamped_head(&bytes, base, entry.leader_epoch);
            let value = [IoSlice::new(&head), IoSlice::new(&bytes[head.len()..])];
            wb.put_cf_vectored(&cf, &[IoSlice::new(&offset_key(base))], &value)
                .map_err(|e| AppendError::Storage(e.to_string()))?;
        }
        // Time index: only batches that raise the running max, so entries stay sorted both
        // ways and the first entry at or above a timestamp names the first batch reaching it.
        let max_ts = if entry.log_append_time && !entry.replicated {
            now
        } else {
            header.max_timestamp
        };
        if max_ts > w.max_timestamp {
            undo.push(Undo::MaxTimestamp(log.clone(), w.max_timestamp));
            w.max_timestamp = max_ts;
            wb.put_cf(&meta, log.meta_keys.time_index(max_ts), base.to_be_bytes());
        }
        let transactional = header.is_transactional() && header.has_producer_id();
        if idempotent || transactional {
            let pid = header.producer_id;
            undo.push(Undo::Producer(
                log.clone(),
                pid,
                w.producers.get(pid).cloned(),
            ));
            match marker {
                Some(m) => {
                    let (first, _) = w.producers.end_txn(&header, m.coordinator_epoch);
                    // An abort marker's range is what read_committed consumers skip.
                    if let (false, Some(first)) = (m.commit, first) {
                        let mut range = pid.to_be_bytes().to_vec();
                        range.extend_from_slice(&first.to_be_bytes());
                        wb.put_cf(&meta, log.meta_keys.aborted(base), range);
                    }
                }
                None => {
                    if idempotent {
                        w.producers.record(&header, base);
                    }
                    if transactional {
                        w.producers.begin_txn(pid, header.producer_epoch, base);
                    }
                }
            }
            if let Some(updated) = w.producers.get(pid) {
                wb.put_cf(&meta, log.meta_keys.producer(pid), updated.encode());
            }
        }
        undo.push(Undo::NextOffset(log.clone(), w.next_offset));
        w.next_offset = base + i64::from(header.last_offset_delta) + 1;
        merge(&mut outcome, base, w.next_offset - 1, append_time, false);
    }
    outcome.ok_or_else(|| AppendError::Storage("append without batches".into()))
}

fn merge(out: &mut Option<AppendOutcome>, base: i64, last: i64, time: i64, duplicate: bool) {
    match out {
        Some(o) => {
            o.last_offset = last;
            o.duplicate &= duplicate;
        }
        None => {
            *out = Some(AppendOutcome {
                base_offset: base,
                last_offset: last,
                log_append_time: time,
                duplicate,
            })
        }
    }
}

pub(crate) fn encode_epochs(epochs: &[(i32, i64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(epochs.len() * 12);
    for (e, start) in epochs {
        out.extend_from_slice(&e.to_be_bytes());
        out.extend_from_slice(&start.to_be_bytes());
    }
    out
}

pub(crate) fn decode_epochs(bytes: &[u8]) -> Vec<(i32, i64)> {
    bytes
        .chunks_exact(12)
        .map(|c| {
            let mut e = [0u8; 4];
            e.copy_from_slice(&c[..4]);
            let mut s = [0u8; 8];
            s.copy_from_slice(&c[4..]);
            (i32::from_be_bytes(e), i64::from_be_bytes(s))
        })
        .collect()
}
