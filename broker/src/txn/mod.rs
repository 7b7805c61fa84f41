//! The transaction coordinator (KIP-98, transaction version 1): the state of each
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

pub mod markers;
pub mod shard;
pub mod state;

use std::time::Duration;

use sluice_controller::TopicInfo;

use crate::coordinator::{CoordinatorIo, CoordinatorRuntime, InternalTopic, TxnProducer};
use crate::error::{BrokerError, CoordinatorError, TxnError};
use crate::producer_ids::ProducerIdAllocator;
use markers::{Marker, MarkerClients, MarkerIo};
use shard::TxnShard;
use state::{EndStep, InitStep, TopicPartition, TxnMeta};

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
}

impl TxnCoordinator {
    /// A coordinator keeping its state in `__transaction_state`.
    pub fn new(settings: TxnSettings) -> Self {
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
            clients: MarkerClients::default(),
        }
    }

    fn partition_for(id: &str, topic: &TopicInfo) -> i32 {
        crate::group::GroupCoordinator::partition_for(id, topic.partitions.len())
    }

    async fn partition_of(&self, io: CoordinatorIo<'_>, id: &str) -> Result<i32, BrokerError> {
        let topic = self.runtime.ensure_topic(io).await?;
        Ok(Self::partition_for(id, &topic))
    }

    /// The coordinator broker of a transactional id (creating the topic on first use).
    pub async fn coordinator_of(
        &self,
        io: CoordinatorIo<'_>,
        id: &str,
    ) -> Result<i32, BrokerError> {
        let topic = self.runtime.ensure_topic(io).await?;
        let p = Self::partition_for(id, &topic);
        topic
            .partitions
            .get(p as usize)
            .map(|p| p.leader)
            .filter(|l| *l >= 0)
            .ok_or(BrokerError::Coordinator(CoordinatorError::NotAvailable))
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
                    let step = state::init(current, fresh_id, timeout_ms, now)?;
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

    /// AddPartitionsToTxn / AddOffsetsToTxn.
    pub async fn add_partitions(
        &self,
        io: CoordinatorIo<'_>,
        id: &str,
        producer: TxnProducer,
        partitions: &[TopicPartition],
    ) -> Result<(), BrokerError> {
        let partition = self.partition_of(io, id).await?;
        let now = crate::clock::now_ms();
        Ok(self
            .write(io, partition, id, |current| {
                let next =
                    state::add_partitions(current, producer.id, producer.epoch, partitions, now)?;
                Ok((next, ()))
            })
            .await?)
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

    /// EndTxn: decides, writes the markers and completes. The answer is success once the
    /// decision is written; markers that could not be written yet are retried by
    /// `run_timers` (the client sees CONCURRENT_TRANSACTIONS until they are).
    pub async fn end_txn(
        &self,
        mio: MarkerIo<'_>,
        id: &str,
        producer: TxnProducer,
        commit: bool,
    ) -> Result<(), BrokerError> {
        let io = mio.io;
        let partition = self.partition_of(io, id).await?;
        let now = crate::clock::now_ms();
        let step = self
            .write(io, partition, id, |current| {
                let step = state::end(current, producer.id, producer.epoch, commit, now)?;
                let next = match &step {
                    EndStep::Prepare(m) => Some(m.clone()),
                    EndStep::AlreadyDone => None,
                };
                Ok((next, step))
            })
            .await?;
        if let EndStep::Prepare(m) = step {
            if let Err(e) = self.finish(mio, partition, id, &m).await {
                tracing::info!(transactional_id = id, error = %e, "markers not all written yet; retried");
            }
        }
        Ok(())
    }

    /// Writes a prepared transaction's markers, then its completion.
    async fn finish(
        &self,
        mio: MarkerIo<'_>,
        partition: i32,
        id: &str,
        prepared: &TxnMeta,
    ) -> Result<(), BrokerError> {
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
        self.runtime.for_each_partition(|partition, s| {
            for (id, m) in s.all() {
                if m.state.is_prepared() || state::expire(m, now).is_some() {
                    due.push((partition, id.clone(), m.clone()));
                }
            }
        });
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
