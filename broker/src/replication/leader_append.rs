//! The one leader-append path: every write to a partition this node leads (produce, offset
//! commits; later transaction markers and the coordinators' logs) is queued, written and
//! answered here, so "acknowledged" means the same thing for all of them.

use std::time::Duration;

use bytes::Bytes;

use sluice_controller::ControllerClient;
use sluice_storage::{AppendEntry, AppendOutcome, TxnGuard};

use super::{LeaderPartition, ReplicaManager};
use crate::error::BrokerError;

/// How durable an append must be before it is answered (the producer's `acks`).
#[derive(Debug, Clone, Copy)]
pub enum Acks {
    /// Written to the leader's log (acks=0 and acks=1).
    Leader,
    /// Also below the high watermark, with the ISR still at `min.insync.replicas`, within
    /// `timeout` (acks=all).
    All {
        /// How long to wait for the ISR.
        timeout: Duration,
    },
}

/// One led partition's part of an append (its log and leader epoch come from `leader`).
pub struct LeaderAppend {
    /// The partition, as this node leads it.
    pub leader: LeaderPartition,
    /// Its batches, validated by the caller, one batch per buffer.
    pub batches: Vec<Bytes>,
    /// Rewrite timestamps to LogAppendTime.
    pub log_append_time: bool,
    /// `flush.messages` (see [`AppendEntry::flush_messages`]).
    pub flush_messages: u64,
    /// The ISR size an acks=all answer needs (the topic's `min.insync.replicas`).
    pub min_isr: usize,
    /// A transactional produce's guard (see [`AppendEntry::txn_guard`]).
    pub txn_guard: Option<TxnGuard>,
}

impl LeaderAppend {
    /// The storage entry, and what answering per `acks` needs once it is written.
    fn split(self) -> (AppendEntry, (LeaderPartition, usize)) {
        let entry = AppendEntry {
            log: self.leader.log.clone(),
            batches: self.batches,
            leader_epoch: self.leader.info.leader_epoch,
            log_append_time: self.log_append_time,
            flush_messages: self.flush_messages,
            replicated: false,
            txn_guard: self.txn_guard,
        };
        (entry, (self.leader, self.min_isr))
    }
}

impl ReplicaManager {
    /// Appends to led partitions in one storage write and waits for what `acks` asks; the
    /// outcome of each partition, in order. `queued` runs once the write is queued, when the
    /// offsets are fixed but nothing is written yet (a produce lets the connection's next
    /// request start there).
    pub async fn append_as_leader(
        &self,
        controller: &ControllerClient,
        appends: Vec<LeaderAppend>,
        acks: Acks,
        queued: impl FnOnce(),
    ) -> Vec<Result<AppendOutcome, BrokerError>> {
        let (entries, leaders): (Vec<_>, Vec<_>) =
            appends.into_iter().map(LeaderAppend::split).unzip();
        let queued_write = self.store.queue_append(entries).await;
        queued();
        let written = match queued_write {
            Ok(written) => written.await,
            Err(e) => Err(e),
        };
        let outcomes: Vec<Result<AppendOutcome, BrokerError>> = match written {
            Ok(o) => o
                .into_iter()
                .map(|r| r.map_err(BrokerError::from))
                .collect(),
            Err(e) => vec![Err(BrokerError::from(e)); leaders.len()],
        };
        let mut results = Vec::with_capacity(leaders.len());
        for ((leader, min_isr), outcome) in leaders.iter().zip(outcomes) {
            let result = match (outcome, acks) {
                (Ok(o), Acks::Leader) => {
                    self.on_append(leader);
                    Ok(o)
                }
                (Ok(o), Acks::All { timeout }) => {
                    self.on_append(leader);
                    leader
                        .wait_committed(o.last_offset, timeout)
                        .await
                        .and_then(|()| {
                            self.confirm_committed(&controller.image(), leader, *min_isr)
                        })
                        .map(|()| o)
                }
                (Err(e), _) => Err(e),
            };
            results.push(result);
        }
        results
    }
}
