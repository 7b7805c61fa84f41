//! openraft's log storage and state machine, persisted in the node's RocksDB.
//!
//! The Raft log lives in the `sys.raft_log` table (key: index, big-endian); vote, committed
//! id, purge point and the latest snapshot in `sys.raft_state`. The state machine is kept
//! in memory and persisted through snapshots: on restart openraft re-applies the committed
//! log after the snapshot, so nothing is lost and applying stays cheap.

// openraft's trait methods fix the error type (StorageError, ~224 bytes); helpers return it too.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::io::Cursor;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftLogReader, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership, Vote,
};
use serde::{Deserialize, Serialize};
use sluice_storage::SystemTable;
use tokio::sync::watch;

use crate::metadata::{CommandResult, MetadataImage};
use crate::TypeConfig;

/// Table of Raft log entries.
pub const LOG_TABLE: &str = "raft_log";
/// Table of vote, committed id, purge point and snapshot.
pub const STATE_TABLE: &str = "raft_state";

const VOTE_KEY: &[u8] = b"vote";
const COMMITTED_KEY: &[u8] = b"committed";
const PURGED_KEY: &[u8] = b"purged";
const SNAPSHOT_KEY: &[u8] = b"snapshot";

type NodeId = u64;
type Node = openraft::BasicNode;
type SError = StorageError<NodeId>;

fn io_err(e: impl std::error::Error + 'static) -> SError {
    StorageIOError::<NodeId>::write(&e).into()
}

fn read_err(e: impl std::error::Error + 'static) -> SError {
    StorageIOError::<NodeId>::read(&e).into()
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// The Raft log and vote.
#[derive(Clone)]
pub struct LogStore {
    log: SystemTable,
    state: SystemTable,
    /// The committed index as openraft last saved it (followers included), for metrics.
    committed: Arc<AtomicU64>,
}

impl LogStore {
    /// Wraps the two system tables.
    pub fn new(log: SystemTable, state: SystemTable) -> Self {
        Self {
            log,
            state,
            committed: Arc::default(),
        }
    }

    /// A live view of the committed index this node knows (it moves as openraft saves it).
    pub fn committed_index(&self) -> Arc<AtomicU64> {
        self.committed.clone()
    }

    /// The id of the entry at `index`, if this node holds it.
    pub fn log_id_at(&self, index: u64) -> Result<Option<LogId<NodeId>>, SError> {
        let Some(bytes) = self.log.get(&index_key(index)).map_err(read_err)? else {
            return Ok(None);
        };
        let entry: Entry<TypeConfig> = serde_json::from_slice(&bytes).map_err(read_err)?;
        Ok(Some(entry.log_id))
    }

    fn get_json<T: for<'de> Deserialize<'de>>(&self, key: &[u8]) -> Result<Option<T>, SError> {
        match self.state.get(key).map_err(read_err)? {
            Some(v) => Ok(Some(serde_json::from_slice(&v).map_err(read_err)?)),
            None => Ok(None),
        }
    }

    fn put_json<T: Serialize>(&self, key: &[u8], value: &T) -> Result<(), SError> {
        let bytes = serde_json::to_vec(value).map_err(io_err)?;
        self.state
            .write(&[(key.to_vec(), bytes)], &[])
            .map_err(io_err)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, SError> {
        let start = match range.start_bound() {
            Bound::Included(s) => *s,
            Bound::Excluded(s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(e) => e.saturating_add(1),
            Bound::Excluded(e) => *e,
            Bound::Unbounded => u64::MAX,
        };
        self.log
            .range(&index_key(start), &index_key(end))
            .map_err(read_err)?
            .into_iter()
            .map(|(_, v)| serde_json::from_slice(&v).map_err(read_err))
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, SError> {
        let purged: Option<LogId<NodeId>> = self.get_json(PURGED_KEY)?;
        let last = match self.log.last().map_err(read_err)? {
            Some((_, v)) => {
                let e: Entry<TypeConfig> = serde_json::from_slice(&v).map_err(read_err)?;
                Some(e.log_id)
            }
            None => purged,
        };
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), SError> {
        self.put_json(VOTE_KEY, vote)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, SError> {
        self.get_json(VOTE_KEY)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), SError> {
        self.put_json(COMMITTED_KEY, &committed)?;
        self.committed
            .store(committed.map_or(0, |c| c.index), Ordering::Release);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, SError> {
        let committed = self
            .get_json::<Option<LogId<NodeId>>>(COMMITTED_KEY)?
            .flatten();
        self.committed
            .store(committed.map_or(0, |c| c.index), Ordering::Release);
        Ok(committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), SError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut puts = Vec::new();
        for e in entries {
            puts.push((
                index_key(e.log_id.index).to_vec(),
                serde_json::to_vec(&e).map_err(io_err)?,
            ));
        }
        // The write is synced, so the entries are durable once it returns.
        let result = self.log.write(&puts, &[]);
        callback.log_io_completed(
            result
                .as_ref()
                .map(|_| ())
                .map_err(|e| std::io::Error::other(e.to_string())),
        );
        result.map_err(io_err)
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), SError> {
        self.log
            .delete_range(&index_key(log_id.index), &index_key(u64::MAX))
            .map_err(io_err)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), SError> {
        self.put_json(PURGED_KEY, &log_id)?;
        self.log
            .delete_range(&index_key(0), &index_key(log_id.index.saturating_add(1)))
            .map_err(io_err)
    }
}

/// What a snapshot holds.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, Node>,
    image: MetadataImage,
}

struct SmState {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, Node>,
    image: MetadataImage,
    snapshot: Option<StoredSnapshot>,
    snapshots_built: u64,
}

/// The metadata state machine; publishes every new image on a watch channel.
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Mutex<SmState>>,
    state: SystemTable,
    image_tx: watch::Sender<Arc<MetadataImage>>,
}

impl StateMachine {
    /// Loads the latest snapshot (if any) from the state table.
    pub fn open(state: SystemTable) -> Result<(Self, watch::Receiver<Arc<MetadataImage>>), SError> {
        let snapshot: Option<StoredSnapshot> = match state.get(SNAPSHOT_KEY).map_err(read_err)? {
            Some(v) => Some(serde_json::from_slice(&v).map_err(read_err)?),
            None => None,
        };
        let (last_applied, membership, image) = match &snapshot {
            Some(s) => (
                s.meta.last_log_id,
                s.meta.last_membership.clone(),
                s.image.clone(),
            ),
            None => (None, StoredMembership::default(), MetadataImage::default()),
        };
        let (image_tx, image_rx) = watch::channel(Arc::new(image.clone()));
        let inner = SmState {
            last_applied,
            membership,
            image,
            snapshot,
            snapshots_built: 0,
        };
        Ok((
            Self {
                inner: Arc::new(Mutex::new(inner)),
                state,
                image_tx,
            },
            image_rx,
        ))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SmState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SError> {
        let (stored, bytes) = {
            let mut sm = self.lock();
            sm.snapshots_built += 1;
            let last = sm.last_applied;
            let snapshot_id = match last {
                Some(l) => format!("{}-{}-{}", l.leader_id, l.index, sm.snapshots_built),
                None => format!("none-{}", sm.snapshots_built),
            };
            let meta = SnapshotMeta {
                last_log_id: last,
                last_membership: sm.membership.clone(),
                snapshot_id,
            };
            let stored = StoredSnapshot {
                meta,
                image: sm.image.clone(),
            };
            let bytes = serde_json::to_vec(&stored).map_err(io_err)?;
            (stored, bytes)
        };
        self.state
            .write(&[(SNAPSHOT_KEY.to_vec(), bytes.clone())], &[])
            .map_err(io_err)?;
        let meta = stored.meta.clone();
        self.lock().snapshot = Some(stored);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, Node>), SError> {
        let sm = self.lock();
        Ok((sm.last_applied, sm.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, SError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut results = Vec::new();
        let image = {
            let mut sm = self.lock();
            for entry in entries {
                sm.last_applied = Some(entry.log_id);
                let result = match &entry.payload {
                    EntryPayload::Blank => CommandResult::Done,
                    EntryPayload::Normal(cmd) => sm.image.apply(cmd),
                    EntryPayload::Membership(m) => {
                        sm.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                        CommandResult::Done
                    }
                };
                results.push(result);
            }
            Arc::new(sm.image.clone())
        };
        self.image_tx.send_replace(image);
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, SError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), SError> {
        let bytes = snapshot.into_inner();
        let stored: StoredSnapshot = serde_json::from_slice(&bytes).map_err(read_err)?;
        self.state
            .write(&[(SNAPSHOT_KEY.to_vec(), bytes)], &[])
            .map_err(io_err)?;
        let image = Arc::new(stored.image.clone());
        {
            let mut sm = self.lock();
            sm.last_applied = meta.last_log_id;
            sm.membership = meta.last_membership.clone();
            sm.image = stored.image.clone();
            sm.snapshot = Some(stored);
        }
        self.image_tx.send_replace(image);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SError> {
        let sm = self.lock();
        let Some(s) = &sm.snapshot else {
            return Ok(None);
        };
        let bytes = serde_json::to_vec(s).map_err(io_err)?;
        Ok(Some(Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(Cursor::new(bytes)),
        }))
    }
}
