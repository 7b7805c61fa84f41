//! The transaction coordinator (KIP-98; transaction versions 1 and 2): the state of each
//! transactional id, kept as records in the compacted `__transaction_state` topic. It is the
//! coordinator runtime's second tenant: each partition is a [`shard::TxnShard`] hosted by the
//! partition's leader, and a transactional id belongs to partition
//! `abs(hashCode(id)) % partitions`, as in Kafka.
//!
//! Ending a transaction is three steps, each durable before the next: the decision
//! (PrepareCommit / PrepareAbort) is written, the markers are written to every partition of
//! the transaction (acks=all), then the completion. A coordinator that dies between them
//! leaves a prepared transaction that its successor replays and finishes (`run_timers`), so
//! a decided commit always lands everywhere. Open transactions past their timeout are aborted
//! there too, with a new epoch that fences their producer.
//!
//! Partition leaders ask it before a producer's first transactional write to a partition
//! (KIP-890, [`TxnCoordinator::enlist`]): in version 1 to confirm the client added the
//! partition, in version 2 (Produce v12+) to add it, which the client no longer does itself.

pub mod markers;
pub mod peers;
pub mod shard;
pub mod state;

use std::time::{Duration, Instant};

use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;

use crate::coordinator::{CoordinatorIo, CoordinatorRuntime, InternalTopic, TxnProducer};
use crate::error::{BrokerError, CoordinatorError, TxnError};
use crate::producer_ids::ProducerIdAllocator;
use markers::{Marker, MarkerClients, MarkerIo};
use peers::PeerClients;
use shard::TxnShard;
use state::{EndRequest, EndStep, InitStep, TopicPartition, TxnMeta};

/// How long a leader keeps asking while the previous transaction is still completing
/// (CONCURRENT_TRANSACTIONS), before answering the producer with a retriable error.
const ENLIST_RETRY_FOR: Duration = Duration::from_millis(500);
const ENLIST_BACKOFF: Duration = Duration::from_millis(20);

/// The internal topic holding transaction state.
pub const TXN_TOPIC: &str = "__transaction_state";

/// Settings from the broker configs.
#[derive(Debug, Clone, Copy)]
pub struct TxnSettings {
    /// `transaction.state.log.num.partitions`
    pub partitions: i32,
    /// `transaction.state.log.replication.factor`
    pub replication_factor: i16,
    /// `transaction.state.log.min.isr`
    pub min_isr: usize,
    /// `transaction.max.timeout.ms`
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`
    pub id_expiration_ms: i64,
}

/// A transactional id as DescribeTransactions and ListTransactions show it.
#[derive(Debug, Clone)]
pub struct TxnView {
    /// The transactional id.
    pub id: String,
    /// Its state.
    pub meta: TxnMeta,
}

/// The transactions this node coordinates.
pub struct TxnCoordinator {
    runtime: CoordinatorRuntime<TxnShard>,
    settings: TxnSettings,
    clients: MarkerClients,
    /// Transactional ids whose markers are being written now: one writer at a time, so no
    /// late duplicate marker lands after the producer's next transaction began (a partition
    /// leader would take it for the end of that one and refuse its write).
    finishing: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Connections to the coordinators of other transactional ids (for [`Self::enlist`]),
    /// apart from the markers' so that a produce never waits behind a marker write.
    coordinators: PeerClients,
}

impl TxnCoordinator {
    /// A coordinator keeping its state in `__transaction_state`.
    pub fn new(settings: TxnSettings, inter_broker: sluice_client::ClientSecurity) -> Self {
        let topic = InternalTopic {
            name: TXN_TOPIC,
            partitions: settings.partitions,
            replication_factor: settings.replication_factor,
            write_timeout: Duration::from_secs(5),
            min_isr: settings.min_isr,
        };
        Self {
            runtime: CoordinatorRuntime::new(topic, TxnShard::default),
            settings,
            clients: MarkerClients::new(inter_broker.clone()),
            coordinators: PeerClients::new(inter_broker),
            finishing: Default::default(),
        }
    }

    async fn partition_of(&self, io: CoordinatorIo<'_>, id: &str) -> Result<i32, BrokerError> {
        self.runtime.partition_of(io, id).await
    }

    /// The coordinator broker of a transactional id (creating the topic on first use).
    pub async fn coordinator_of(
        &self,
        io: CoordinatorIo<'_>,
        id: &str,
    ) -> Result<i32, BrokerError> {
        self.runtime.coordinator_of(io, id).await
    }

    /// Writes `meta` as the id's state, if `decide` (given the current state) returns it.
    async fn write<T>(
        &self,
        io: CoordinatorIo<'_>,
        partition: i32,
        id: &str,
        decide: impl FnOnce(Option<&TxnMeta>) -> Result<(Option<TxnMeta>, T), TxnError>,
    ) -> Result<T, TxnError> {
        self.runtime
            .write(io, partition, |s: &TxnShard| {
                let (next, answer) = decide(s.get(id))?;
                let records = next.iter().map(|m| TxnShard::record(id, m)).collect();
                Ok((records, answer))
            })
            .await
    }

    /// InitProducerId with a transactional id: the id's producer id and a new epoch. An
    /// open transaction of the previous instance is aborted first.
    pub async fn init_producer_id(
        &self,
        mio: MarkerIo<'_>,
        producer_ids: &ProducerIdAllocator,
        id: &str,
        timeout_ms: i32,
        expected: Option<TxnProducer>,
    ) -> Result<TxnProducer, BrokerError> {
        if timeout_ms <= 0 || timeout_ms > self.settings.max_timeout_ms {
            return Err(TxnError::InvalidTransactionTimeout.into());
        }
        let io = mio.io;
        let partition = self.partition_of(io, id).await?;
        let fresh_id = producer_ids.next(io.controller).await?;
        // At most twice: once to abort what the previous instance left open.
        for _ in 0..2 {
            let now = crate::clock::now_ms();
            let step = self
                .write(io, partition, id, |current| {
                    let expected = expected.map(|p| (p.id, p.epoch));
                    let step = state::init(current, fresh_id, timeout_ms, expected, now)?;
                    let meta = match &step {
                        InitStep::Ready(m) | InitStep::AbortFirst(m) => m.clone(),
                    };
                    Ok((Some(meta), step))
                })
                .await?;
            match step {
                InitStep::Ready(m) => {
                    return Ok(TxnProducer {
                        id: m.producer_id,
                        epoch: m.producer_epoch,
                    })
                }
                InitStep::AbortFirst(m) => {
                    self.finish(mio, partition, id, &m).await?;
                }
            }
        }
        Err(TxnError::ConcurrentTransactions.into())
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn, or a version 2 leader's add.
    pub async fn add_partitions(
        &self,
        io: CoordinatorIo<'_>,
        id: &str,
        producer: TxnProducer,
        partitions: &[TopicPartition],
        client_version: i16,
    ) -> Result<(), BrokerError> {
        let partition = self.partition_of(io, id).await?;
        let now = crate::clock::now_ms();
        let began = self
            .write(io, partition, id, |current| {
                let next = state::add_partitions(
                    current,
                    producer.id,
                    producer.epoch,
                    partitions,
                    client_version,
                    now,
                )?;
                let was_open = current.is_some_and(|c| c.state == state::TxnState::Ongoing);
                let began = !was_open
                    && next
                        .as_ref()
                        .is_some_and(|n| n.state == state::TxnState::Ongoing);
                Ok((next, began))
            })
            .await?;
        if began {
            crate::metrics::record_txn_begin();
        }
        Ok(())
    }

    /// A partition leader's check before `producer`'s first transactional write to
    /// `partition` (KIP-890): with `add` (transaction version 2) the partition joins the
    /// transaction, without it the partition must have joined already. Asks this node's
    /// coordinator, or the id's coordinator elsewhere; retried briefly while the previous
    /// transaction still completes.
    pub async fn enlist(
        &self,
        io: CoordinatorIo<'_>,
        id: &str,
        producer: TxnProducer,
        partition: &TopicPartition,
        add: bool,
    ) -> Result<(), BrokerError> {
        let give_up = Instant::now() + ENLIST_RETRY_FOR;
        loop {
            let result = self.enlist_once(io, id, producer, partition, add).await;
            let concurrent = matches!(
                result,
                Err(BrokerError::Txn(TxnError::ConcurrentTransactions))
            );
            if !concurrent || Instant::now() >= give_up {
                return result;
            }
            tokio::time::sleep(ENLIST_BACKOFF).await;
        }
    }

    async fn enlist_once(
        &self,
        io: CoordinatorIo<'_>,
        id: &str,
        producer: TxnProducer,
        partition: &TopicPartition,
        add: bool,
    ) -> Result<(), BrokerError> {
        let node = self.coordinator_of(io, id).await?;
        if node == io.node_id {
            return if add {
                let one = std::slice::from_ref(partition);
                self.add_partitions(io, id, producer, one, state::TV2).await
            } else {
                self.verify(io, id, producer, partition).await
            };
        }
        let addr = io
            .controller
            .image()
            .brokers
            .get(&node)
            .map(|b| format!("{}:{}", b.host, b.port))
            .ok_or(CoordinatorError::NotAvailable)?;
        let (topic, index) = partition;
        let request = AddPartitionsToTxnRequest::default().with_transactions(vec![
            AddPartitionsToTxnTransaction::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(id.to_string())))
                .with_producer_id(producer.id.into())
                .with_producer_epoch(producer.epoch)
                .with_verify_only(!add)
                .with_topics(vec![AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(vec![*index])]),
        ]);
        // Version 5 is a version 2 client's add; 4 carries verifications and version 1 adds.
        let version = if add { 5 } else { 4 };
        let response = self
            .coordinators
            .call(node, &addr, &request, version)
            .await
            .map_err(|_| CoordinatorError::NotAvailable)?;
        let code = response
            .results_by_transaction
            .iter()
            .flat_map(|t| t.topic_results.iter())
            .flat_map(|t| t.results_by_partition.iter())
            .map(|p| p.partition_error_code)
            .find(|c| *c != 0)
            .unwrap_or(response.error_code);
        match code {
            0 => Ok(()),
            code => Err(BrokerError::from_coordinator_code(code)),
        }
    }

    /// AddPartitionsToTxn v4+ with `verify_only`: whether the partition is in the producer's
    /// open transaction.
    pub async fn verify(
        &self,
        io: CoordinatorIo<'_>,
        id: &str,
        producer: TxnProducer,
        partition: &TopicPartition,
    ) -> Result<(), BrokerError> {
        let p = self.partition_of(io, id).await?;
        Ok(self
            .runtime
            .read(io, p, |s| {
                state::verify(s.get(id), producer.id, producer.epoch, partition)
            })
            .await
            .map_err(TxnError::from)??)
    }

    /// EndTxn: decides, writes the markers and completes; answers the producer id and epoch
    /// the client goes on with (a new epoch in transaction version 2). The answer is success
    /// once the decision is written; markers that could not be written yet are retried by
    /// `run_timers` (the client sees CONCURRENT_TRANSACTIONS until they are).
    pub async fn end_txn(
        &self,
        mio: MarkerIo<'_>,
        producer_ids: &ProducerIdAllocator,
        id: &str,
        req: EndRequest,
    ) -> Result<TxnProducer, BrokerError> {
        let io = mio.io;
        let partition = self.partition_of(io, id).await?;
        let mut fresh_id = None;
        // At most twice: once more with a new producer id when the epochs are used up.
        for _ in 0..2 {
            let now = crate::clock::now_ms();
            let step = self
                .write(io, partition, id, |current| {
                    let step = state::end(current, req, fresh_id, now)?;
                    let next = match &step {
                        EndStep::Prepare(m) => Some(m.clone()),
                        EndStep::AlreadyDone(..) | EndStep::NeedsProducerId => None,
                    };
                    Ok((next, step))
                })
                .await?;
            match step {
                EndStep::Prepare(m) => {
                    if let Err(e) = self.finish(mio, partition, id, &m).await {
                        tracing::info!(transactional_id = id, error = %e, "markers not all written yet; retried");
                    }
                    let (id, epoch) = m.producer_after_end();
                    return Ok(TxnProducer { id, epoch });
                }
                EndStep::AlreadyDone(id, epoch) => return Ok(TxnProducer { id, epoch }),
                EndStep::NeedsProducerId => {
                    fresh_id = Some(producer_ids.next(io.controller).await?);
                }
            }
        }
        Err(TxnError::ConcurrentTransactions.into())
    }

    /// Writes a prepared transaction's markers, then its completion.
    async fn finish(
        &self,
        mio: MarkerIo<'_>,
        partition: i32,
        id: &str,
        prepared: &TxnMeta,
    ) -> Result<(), BrokerError> {
        let Some(_turn) = FinishTurn::take(&self.finishing, id) else {
            // Another task is writing these markers; the client asks again meanwhile.
            return Err(TxnError::ConcurrentTransactions.into());
        };
        // A timer's snapshot may be stale: completed (or replaced) meanwhile, nothing to write.
        let current = self
            .runtime
            .read(mio.io, partition, |s| s.get(id) == Some(prepared))
            .await?;
        if !current {
            return Ok(());
        }
        let coordinator_epoch = self
            .runtime
            .epoch_of(partition)
            .ok_or(CoordinatorError::NotCoordinator)?;
        let marker = Marker {
            producer: TxnProducer {
                id: prepared.producer_id,
                epoch: prepared.producer_epoch,
            },
            commit: prepared.state == state::TxnState::PrepareCommit,
            coordinator_epoch,
        };
        let partitions: Vec<TopicPartition> = prepared.partitions.iter().cloned().collect();
        self.clients.send(mio, marker, &partitions).await?;
        let now = crate::clock::now_ms();
        self.write(mio.io, partition, id, |current| {
            // Completed meanwhile (by a concurrent retry), or replaced: nothing to do.
            let next = current
                .filter(|c| *c == prepared)
                .and_then(|c| state::complete(c, now));
            Ok((next, ()))
        })
        .await?;
        crate::metrics::record_txn_end(marker.commit);
        Ok(())
    }

    /// Finishes prepared transactions (left by a failed marker write or a previous
    /// coordinator) and aborts open ones past their timeout; run about every second.
    pub async fn run_timers(&self, mio: MarkerIo<'_>) {
        let now = crate::clock::now_ms();
        let mut due: Vec<(i32, String, TxnMeta)> = Vec::new();
        let mut idle: Vec<(i32, String, TxnMeta)> = Vec::new();
        let expiration = self.settings.id_expiration_ms;
        self.runtime.for_each_partition(|partition, s| {
            for (id, m) in s.all() {
                if m.state.is_prepared() || state::expire(m, now).is_some() {
                    due.push((partition, id.clone(), m.clone()));
                } else if state::is_forgotten(m, now, expiration) {
                    idle.push((partition, id.clone(), m.clone()));
                }
            }
        });
        for (partition, id, m) in idle {
            // Unless it changed meanwhile: a tombstone, which compaction later removes.
            let forgotten = self
                .runtime
                .write(mio.io, partition, |s: &TxnShard| {
                    let records = match s.get(&id) {
                        Some(c) if *c == m => vec![TxnShard::tombstone(&id)],
                        _ => Vec::new(),
                    };
                    Ok::<_, TxnError>((records, ()))
                })
                .await;
            if let Err(e) = forgotten {
                tracing::debug!(transactional_id = %id, error = %e, "expiry retried later");
            }
        }
        for (partition, id, m) in due {
            let prepared = if m.state.is_prepared() {
                Some(m)
            } else {
                let expired = self
                    .write(mio.io, partition, &id, |current| {
                        let next = current
                            .filter(|c| **c == m)
                            .and_then(|c| state::expire(c, now));
                        Ok((next.clone(), next))
                    })
                    .await;
                match expired {
                    Ok(next) => {
                        if next.is_some() {
                            crate::metrics::record_txn_timeout();
                        }
                        next
                    }
                    Err(_) => None,
                }
            };
            if let Some(p) = prepared {
                if let Err(e) = self.finish(mio, partition, &id, &p).await {
                    tracing::debug!(transactional_id = %id, error = %e, "transaction completion retried later");
                }
            }
        }
    }

    /// DescribeTransactions: the state of an id this node coordinates.
    pub async fn describe(&self, io: CoordinatorIo<'_>, id: &str) -> Result<TxnView, BrokerError> {
        let partition = self.partition_of(io, id).await?;
        let meta = self
            .runtime
            .read(io, partition, |s| s.get(id).cloned())
            .await?;
        meta.map(|meta| TxnView {
            id: id.to_string(),
            meta,
        })
        .ok_or(TxnError::TransactionalIdNotFound.into())
    }

    /// Transactions open (ongoing or being ended) at the shards hosted here.
    pub fn open_count(&self) -> usize {
        let mut open = 0;
        self.runtime.for_each(|s| {
            open += s
                .all()
                .filter(|(_, m)| {
                    matches!(
                        m.state,
                        state::TxnState::Ongoing
                            | state::TxnState::PrepareCommit
                            | state::TxnState::PrepareAbort
                    )
                })
                .count()
        });
        open
    }

    /// ListTransactions: every id this node coordinates.
    pub fn list(&self) -> Vec<TxnView> {
        let mut all = Vec::new();
        self.runtime.for_each(|s| {
            all.extend(s.all().map(|(id, m)| TxnView {
                id: id.clone(),
                meta: m.clone(),
            }))
        });
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Hosts the shards of the partitions this node leads now; returns the records replayed.
    pub fn follow_leadership(&self, io: CoordinatorIo<'_>) -> Result<usize, BrokerError> {
        self.runtime.follow_leadership(io)
    }
}

/// The right to write one transactional id's markers, given back on drop.
struct FinishTurn<'a> {
    set: &'a std::sync::Mutex<std::collections::HashSet<String>>,
    id: String,
}

impl<'a> FinishTurn<'a> {
    fn take(
        set: &'a std::sync::Mutex<std::collections::HashSet<String>>,
        id: &str,
    ) -> Option<Self> {
        let mut ids = set.lock().unwrap_or_else(|p| p.into_inner());
        ids.insert(id.to_string()).then(|| Self {
            set,
            id: id.to_string(),
        })
    }
}

impl Drop for FinishTurn<'_> {
    fn drop(&mut self) {
        let mut ids = self.set.lock().unwrap_or_else(|p| p.into_inner());
        ids.remove(&self.id);
    }
}
