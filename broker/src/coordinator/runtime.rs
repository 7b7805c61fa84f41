//! The runtime proper: shards by partition, their loading and unloading, reads that wait for
//! a load, serialised writes through the leader-append path, and timers.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sluice_controller::{MetadataImage, NewTopic, TopicInfo};
use tokio::sync::watch;

use super::{
    encode_batches, partition_for, replay, scan_log, CoordinatorIo, CoordinatorRecord,
    CoordinatorShard, LogEntry, TxnProducer,
};
use crate::error::{BrokerError, CoordinatorError};
use crate::replication::{Acks, LeaderAppend};

/// How long a request waits for its shard to be loaded here (its partition just created, or
/// its leadership just moved here) before it is answered COORDINATOR_LOAD_IN_PROGRESS.
const LOAD_WAIT: Duration = Duration::from_secs(5);

/// A coordinator's internal topic and how it is created and written.
#[derive(Debug, Clone)]
pub struct InternalTopic {
    /// Topic name (`__consumer_offsets`, ...).
    pub name: &'static str,
    /// Partitions at creation (`offsets.topic.num.partitions`, ...).
    pub partitions: i32,
    /// Replication factor at creation, capped by the live brokers.
    pub replication_factor: i16,
    /// How long a write waits for the ISR (`offsets.commit.timeout.ms`, ...).
    pub write_timeout: Duration,
    /// The ISR size a write needs (`transaction.state.log.min.isr`; 1 for offsets, whose
    /// commits Kafka acknowledges once the ISR has them, however small it is).
    pub min_isr: usize,
}

/// A shard this node hosts, in the leader epoch it was loaded in.
struct Hosted<S> {
    epoch: i32,
    state: S,
    /// Held by a write from its records to their replay.
    writing: Arc<tokio::sync::Mutex<()>>,
}

/// The shards of one coordinator on this node.
pub struct CoordinatorRuntime<S> {
    topic: InternalTopic,
    new_shard: Box<dyn Fn() -> S + Send + Sync>,
    shards: Mutex<HashMap<i32, Hosted<S>>>,
    /// The leader epoch each hosted shard was loaded in; requests wait on it.
    loaded: watch::Sender<HashMap<i32, i32>>,
}

impl<S: CoordinatorShard> CoordinatorRuntime<S> {
    /// A runtime for `topic` whose shards start as `new_shard()` before replay.
    pub fn new(topic: InternalTopic, new_shard: impl Fn() -> S + Send + Sync + 'static) -> Self {
        Self {
            topic,
            new_shard: Box::new(new_shard),
            shards: Mutex::new(HashMap::new()),
            loaded: watch::Sender::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<i32, Hosted<S>>> {
        self.shards.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The internal topic's metadata, creating it (compacted) on first use.
    pub async fn ensure_topic(&self, io: CoordinatorIo<'_>) -> Result<TopicInfo, BrokerError> {
        if let Some(t) = io.controller.image().topics.get(self.topic.name) {
            return Ok(t.clone());
        }
        let live = io.controller.image().live_brokers().len().max(1);
        let replication_factor = self.topic.replication_factor.min(live as i16).max(1);
        let mut configs = BTreeMap::new();
        configs.insert("cleanup.policy".to_string(), "compact".to_string());
        let topic = NewTopic {
            name: self.topic.name.into(),
            id: uuid::Uuid::new_v4(),
            num_partitions: self.topic.partitions,
            replication_factor,
            assignment: None,
            configs,
        };
        // A concurrent creation by another request is fine: TOPIC_ALREADY_EXISTS is ignored.
        let _ = io
            .controller
            .execute(sluice_controller::Command::CreateTopics(vec![topic]))
            .await?;
        io.replicas.reconcile(io.controller).await?;
        io.controller
            .image()
            .topics
            .get(self.topic.name)
            .cloned()
            .ok_or(BrokerError::Coordinator(CoordinatorError::NotAvailable))
    }

    /// The partition of a key, creating the topic on first use.
    pub async fn partition_of(&self, io: CoordinatorIo<'_>, key: &str) -> Result<i32, BrokerError> {
        let topic = self.ensure_topic(io).await?;
        Ok(partition_for(key, topic.partitions.len()))
    }

    /// The partition of a key if the topic exists (nothing was ever written otherwise).
    pub fn existing_partition(&self, io: CoordinatorIo<'_>, key: &str) -> Option<i32> {
        let image = io.controller.image();
        let topic = image.topics.get(self.topic.name)?;
        Some(partition_for(key, topic.partitions.len()))
    }

    /// The node coordinating a key: the leader of its partition (creating the topic on
    /// first use).
    pub async fn coordinator_of(
        &self,
        io: CoordinatorIo<'_>,
        key: &str,
    ) -> Result<i32, BrokerError> {
        let topic = self.ensure_topic(io).await?;
        let p = partition_for(key, topic.partitions.len());
        topic
            .partitions
            .get(p as usize)
            .map(|p| p.leader)
            .filter(|l| *l >= 0)
            .ok_or(BrokerError::Coordinator(CoordinatorError::NotAvailable))
    }

    /// Hosts exactly the shards of the partitions this node now leads: unloads the others,
    /// loads new ones by replaying their logs. Blocking (it reads logs); run it after every
    /// metadata change. Returns how many records were replayed.
    pub fn follow_leadership(&self, io: CoordinatorIo<'_>) -> Result<usize, BrokerError> {
        let image = io.controller.image();
        let led: HashMap<i32, _> = match image.topics.get(self.topic.name) {
            Some(topic) => (0..topic.partitions.len() as i32)
                .filter_map(|p| io.replicas.led_here(topic, p).ok().map(|l| (p, l)))
                .collect(),
            None => HashMap::new(),
        };
        let mut to_load = {
            let mut shards = self.lock();
            shards.retain(|p, h| led.get(p).is_some_and(|l| l.info.leader_epoch == h.epoch));
            self.publish_loaded(&shards);
            led.into_iter()
                .filter(|(p, _)| !shards.contains_key(p))
                .collect::<Vec<_>>()
        };
        to_load.sort_by_key(|(p, _)| *p);
        let mut replayed = 0;
        for (partition, leader) in to_load {
            let mut state = (self.new_shard)();
            scan_log(io.store, &leader.log, |entry| {
                replayed += 1;
                replay(&mut state, entry);
            })?;
            state.loaded(Instant::now());
            let mut shards = self.lock();
            shards.insert(
                partition,
                Hosted {
                    epoch: leader.info.leader_epoch,
                    state,
                    writing: Arc::default(),
                },
            );
            self.publish_loaded(&shards);
        }
        Ok(replayed)
    }

    fn publish_loaded(&self, shards: &HashMap<i32, Hosted<S>>) {
        self.loaded
            .send_replace(shards.iter().map(|(p, h)| (*p, h.epoch)).collect());
    }

    /// Waits until this node hosts `partition`'s shard in the leader epoch the metadata
    /// names: the image may be ahead of the local replicas, and answering from a shard not
    /// yet replayed would lose what it holds. Returns that epoch.
    async fn await_loaded(
        &self,
        io: CoordinatorIo<'_>,
        partition: i32,
    ) -> Result<i32, CoordinatorError> {
        let image = io.controller.image();
        let epoch = image
            .topics
            .get(self.topic.name)
            .and_then(|t| {
                usize::try_from(partition)
                    .ok()
                    .and_then(|i| t.partitions.get(i))
            })
            .filter(|p| p.leader == io.node_id)
            .map(|p| p.leader_epoch)
            .ok_or(CoordinatorError::NotCoordinator)?;
        let mut loaded = self.loaded.subscribe();
        let ready = loaded.wait_for(|m| m.get(&partition).is_some_and(|e| *e >= epoch));
        let outcome = tokio::time::timeout(LOAD_WAIT, ready).await;
        match outcome {
            Ok(Ok(_)) => Ok(epoch),
            _ => Err(CoordinatorError::LoadInProgress),
        }
    }

    /// Runs `f` on `partition`'s shard once it is loaded here (for what is not persisted:
    /// memberships, and reads).
    pub async fn read<T>(
        &self,
        io: CoordinatorIo<'_>,
        partition: i32,
        f: impl FnOnce(&mut S) -> T,
    ) -> Result<T, CoordinatorError> {
        self.await_loaded(io, partition).await?;
        let mut shards = self.lock();
        let hosted = shards
            .get_mut(&partition)
            .ok_or(CoordinatorError::NotCoordinator)?;
        Ok(f(&mut hosted.state))
    }

    /// Runs `f` on `partition`'s shard if it is hosted here now, without waiting.
    pub fn peek<T>(&self, partition: i32, f: impl FnOnce(&mut S) -> T) -> Option<T> {
        self.lock().get_mut(&partition).map(|h| f(&mut h.state))
    }

    /// Visits every shard hosted here with its partition.
    pub fn for_each_partition(&self, mut f: impl FnMut(i32, &S)) {
        self.lock().iter().for_each(|(p, h)| f(*p, &h.state));
    }

    /// Visits every shard hosted here.
    pub fn for_each(&self, mut f: impl FnMut(&mut S)) {
        self.lock().values_mut().for_each(|h| f(&mut h.state));
    }

    /// A persisted change: `f` decides from the shard what records to write (none is fine)
    /// and what to answer; the records are appended with acks=all and replayed into the
    /// shard once committed, and only then is the answer returned.
    pub async fn write<T, E: From<CoordinatorError>>(
        &self,
        io: CoordinatorIo<'_>,
        partition: i32,
        f: impl FnOnce(&S) -> Result<(Vec<CoordinatorRecord>, T), E>,
    ) -> Result<T, E> {
        self.write_as(io, partition, None, f).await
    }

    /// [`CoordinatorRuntime::write`] as part of `producer`'s transaction: the records are
    /// replayed as that producer's, pending until its marker.
    pub async fn write_as<T, E: From<CoordinatorError>>(
        &self,
        io: CoordinatorIo<'_>,
        partition: i32,
        producer: Option<TxnProducer>,
        f: impl FnOnce(&S) -> Result<(Vec<CoordinatorRecord>, T), E>,
    ) -> Result<T, E> {
        let (epoch, _serialised) = self.write_turn(io, partition).await?;
        let (records, answer) = {
            let shards = self.lock();
            let hosted = shards
                .get(&partition)
                .filter(|h| h.epoch == epoch)
                .ok_or(CoordinatorError::NotCoordinator)?;
            f(&hosted.state)?
        };
        if records.is_empty() {
            return Ok(answer);
        }
        let batches = encode_batches(&records, producer).map_err(write_error)?;
        self.append(io, partition, epoch, batches).await?;
        if let Some(hosted) = self.lock().get_mut(&partition).filter(|h| h.epoch == epoch) {
            let producer_id = producer.map_or(-1, |p| p.id);
            for (key, value) in records {
                hosted.state.replay(producer_id, key, value);
            }
        }
        Ok(answer)
    }

    /// Waits for `partition`'s shard to be loaded here and for its previous write to finish;
    /// the guard keeps other writes out until dropped. Returns the epoch it was loaded in.
    async fn write_turn(
        &self,
        io: CoordinatorIo<'_>,
        partition: i32,
    ) -> Result<(i32, tokio::sync::OwnedMutexGuard<()>), CoordinatorError> {
        let epoch = self.await_loaded(io, partition).await?;
        let writing = self
            .lock()
            .get(&partition)
            .filter(|h| h.epoch == epoch)
            .map(|h| h.writing.clone())
            .ok_or(CoordinatorError::NotCoordinator)?;
        Ok((epoch, writing.lock_owned().await))
    }

    /// Writes a transaction marker to `partition` (WriteTxnMarkers for an internal topic),
    /// in order with the shard's other writes, and replays it once committed.
    pub async fn write_marker(
        &self,
        io: CoordinatorIo<'_>,
        partition: i32,
        producer: TxnProducer,
        commit: bool,
        coordinator_epoch: i32,
    ) -> Result<(), CoordinatorError> {
        let (epoch, _serialised) = self.write_turn(io, partition).await?;
        let marker = sluice_storage::control::marker_batch(
            producer.id,
            producer.epoch,
            commit,
            coordinator_epoch,
            crate::clock::now_ms(),
        );
        self.append(io, partition, epoch, vec![marker]).await?;
        if let Some(hosted) = self.lock().get_mut(&partition).filter(|h| h.epoch == epoch) {
            replay(
                &mut hosted.state,
                LogEntry::Marker {
                    producer_id: producer.id,
                    commit,
                },
            );
        }
        Ok(())
    }

    /// The leader epoch `partition`'s shard was loaded in, if it is hosted here (the
    /// coordinator epoch of the markers a transaction coordinator sends).
    pub fn epoch_of(&self, partition: i32) -> Option<i32> {
        self.lock().get(&partition).map(|h| h.epoch)
    }

    /// Appends batches to the shard's partition and waits for the ISR.
    async fn append(
        &self,
        io: CoordinatorIo<'_>,
        partition: i32,
        epoch: i32,
        batches: Vec<bytes::Bytes>,
    ) -> Result<(), CoordinatorError> {
        let image = io.controller.image();
        let leader = image
            .topics
            .get(self.topic.name)
            .and_then(|t| io.replicas.leader(t, partition).ok())
            .filter(|l| l.info.leader_epoch == epoch)
            .ok_or(CoordinatorError::NotCoordinator)?;
        // A topic created with fewer replicas (a smaller cluster) needs no more.
        let min_isr = self.topic.min_isr.min(leader.info.replicas.len()).max(1);
        let append = LeaderAppend {
            leader,
            batches,
            log_append_time: false,
            // As durable as produced records by default: replication, not fsync.
            flush_messages: u64::MAX,
            min_isr,
            txn_guard: None,
        };
        let acks = Acks::All {
            timeout: self.topic.write_timeout,
        };
        io.replicas
            .append_as_leader(io.controller, vec![append], acks, || {})
            .await
            .into_iter()
            .try_for_each(|r| r.map(|_| ()))
            .map_err(write_error)
    }

    /// Runs every hosted shard's timers.
    pub fn tick(&self, now: Instant, image: &MetadataImage) {
        self.for_each(|s| s.tick(now, image));
    }
}

/// Kafka's mapping of a failed coordinator write to what the client sees: a coordinator that
/// lost its partition's leadership (or its disk) is NOT_COORDINATOR; one that could not
/// replicate in time is COORDINATOR_NOT_AVAILABLE. Both make clients find the coordinator
/// again and retry.
fn write_error(e: BrokerError) -> CoordinatorError {
    match e {
        BrokerError::NotLeaderOrFollower | BrokerError::Storage(_) => {
            CoordinatorError::NotCoordinator
        }
        _ => CoordinatorError::NotAvailable,
    }
}
