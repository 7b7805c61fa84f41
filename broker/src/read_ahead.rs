//! Consumer read-ahead: once a fetch is answered, the next stretch of every partition that
//! returned data is read on a blocking thread while the client is still busy with the
//! response, so the connection's next fetch finds it ready instead of waiting for storage.
//!
//! Only committed data (below the high watermark) is read ahead, and a stretch is used only
//! by the same log, under the same leader epoch, from exactly the offset the client asks for
//! and within its byte limit; anything else is dropped and read afresh. Memory is bounded by
//! one pending read per partition of one connection, each no larger than its fetch limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use sluice_storage::{batch, PartitionLog, Store};
use tokio::task::JoinHandle;

use crate::metrics;

/// A stretch of one partition, being read or read.
struct Pending {
    log: Arc<PartitionLog>,
    leader_epoch: i32,
    from: i64,
    limit: usize,
    read: JoinHandle<Option<Bytes>>,
}

/// A stretch ready for the current fetch.
pub struct Ready {
    log: Arc<PartitionLog>,
    leader_epoch: i32,
    limit: usize,
    records: Bytes,
}

impl Ready {
    /// The records, if they answer a read of `log` under `leader_epoch` with `limit` bytes
    /// (`first`: the partition that must return at least one batch).
    pub fn records_for(
        &self,
        log: &Arc<PartitionLog>,
        leader_epoch: i32,
        limit: usize,
        first: bool,
    ) -> Option<Bytes> {
        let same = Arc::ptr_eq(&self.log, log) && self.leader_epoch == leader_epoch;
        // Read with min_one: a larger single batch is only what a `first` read returns.
        let fits = self.limit == limit && (first || self.records.len() <= limit);
        let used = same && fits && !self.records.is_empty();
        metrics::record_read_ahead(used);
        used.then(|| self.records.clone())
    }
}

/// Per-connection read-ahead (each request gets it through its `RequestScope`).
#[derive(Default)]
pub struct ReadAhead {
    pending: Mutex<HashMap<(String, i32), Pending>>,
}

impl ReadAhead {
    /// Takes the stretches read ahead for `wanted` (topic, partition, fetch offset), waiting for
    /// reads still under way. Stretches for other offsets are dropped.
    pub async fn take(&self, wanted: &[(String, i32, i64)]) -> HashMap<(String, i32), Ready> {
        let taken: Vec<((String, i32), Pending)> = match self.pending.lock() {
            Ok(mut pending) => std::mem::take(&mut *pending).into_iter().collect(),
            Err(_) => return HashMap::new(),
        };
        let mut ready = HashMap::new();
        for (key, p) in taken {
            let asked = wanted
                .iter()
                .any(|(t, part, from)| *t == key.0 && *part == key.1 && *from == p.from);
            if !asked {
                p.read.abort();
                metrics::record_read_ahead(false);
                continue;
            }
            if let Ok(Some(records)) = p.read.await {
                ready.insert(
                    key,
                    Ready {
                        log: p.log,
                        leader_epoch: p.leader_epoch,
                        limit: p.limit,
                        records,
                    },
                );
            }
        }
        ready
    }

    /// After answering with `records` from `log`, reads the stretch that follows, up to the
    /// current high watermark, for the connection's next fetch.
    #[allow(clippy::too_many_arguments)]
    pub fn schedule(
        &self,
        store: &Arc<Store>,
        topic: &str,
        partition: i32,
        log: &Arc<PartitionLog>,
        leader_epoch: i32,
        records: &Bytes,
        limit: usize,
    ) {
        let Some(next) = batch::last_offset_in(records).map(|last| last + 1) else {
            return;
        };
        let upper = log.high_watermark();
        if next >= upper || limit == 0 {
            return;
        }
        let (store, reader) = (Arc::clone(store), Arc::clone(log));
        let read = tokio::task::spawn_blocking(move || {
            store
                .read_contiguous(&reader, next, upper, limit, true)
                .ok()
        });
        if let Ok(mut pending) = self.pending.lock() {
            let replaced = pending.insert(
                (topic.to_string(), partition),
                Pending {
                    log: Arc::clone(log),
                    leader_epoch,
                    from: next,
                    limit,
                    read,
                },
            );
            if let Some(old) = replaced {
                old.read.abort();
            }
        };
    }
}
