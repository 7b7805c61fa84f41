//! The group coordinator: classic consumer groups around the pure `state::Group`, with
//! committed offsets kept as records in the compacted `__consumer_offsets` topic.
//!
//! A group's coordinator is the leader of its `__consumer_offsets` partition (Java's
//! `abs(groupId.hashCode()) % partitions`, so tools agree with Kafka on the mapping).
//! Joins and syncs that must wait park a oneshot sender; every event and a 100 ms tick
//! deliver the replies the state machine completes.

pub mod consumer;
pub mod offsets;
pub mod state;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use sluice_controller::{MetadataImage, NewTopic, TopicInfo};
use sluice_storage::PartitionLog;
use tokio::sync::{oneshot, watch};

use crate::context::Broker;
use crate::error::{BrokerError, GroupError};
use crate::replication::{Acks, LeaderAppend};
use consumer::{ConsumerGroup, ConsumerGroupView, Heartbeat, HeartbeatReply};
use offsets::{Committed, OffsetStore, TopicPartition};
use state::{Group, GroupState, JoinParams, JoinResult, Reply, Step, SyncResult};

/// The internal topic holding committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// How long a request for a group waits for its offsets partition to be loaded here (just
/// created, or just taken over) before it is answered COORDINATOR_LOAD_IN_PROGRESS.
const LOAD_WAIT: Duration = Duration::from_secs(5);

struct Slot {
    group: Group,
    joins: HashMap<String, oneshot::Sender<JoinResult>>,
    syncs: HashMap<String, oneshot::Sender<SyncResult>>,
}

impl Slot {
    fn deliver(&mut self) {
        for reply in self.group.take_replies() {
            match reply {
                Reply::Join(member, r) => {
                    if let Some(tx) = self.joins.remove(&member) {
                        let _ = tx.send(r);
                    }
                }
                Reply::Sync(member, r) => {
                    if let Some(tx) = self.syncs.remove(&member) {
                        let _ = tx.send(r);
                    }
                }
            }
        }
    }
}

/// A group as DescribeGroups/ListGroups show it.
pub struct GroupView {
    /// Group id.
    pub id: String,
    /// State name.
    pub state: &'static str,
    /// "classic" or "consumer" (KIP-848).
    pub group_type: &'static str,
    /// Protocol type.
    pub protocol_type: String,
    /// Chosen assignor.
    pub protocol: String,
    /// (member id, instance id, client id, host, metadata, assignment)
    pub members: Vec<(String, Option<String>, String, String, Bytes, Bytes)>,
}

/// Consumer groups and committed offsets of this node.
pub struct GroupCoordinator {
    groups: Mutex<HashMap<String, Slot>>,
    consumer_groups: Mutex<HashMap<String, ConsumerGroup>>,
    offsets: OffsetStore,
    /// `__consumer_offsets` partitions loaded, with the leader epoch they were loaded in;
    /// requests for their groups wait on it.
    loaded: watch::Sender<HashMap<i32, i32>>,
    initial_delay: Duration,
    consumer_session: Duration,
}

/// Java's `String.hashCode`, which Kafka uses to place groups.
fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

impl GroupCoordinator {
    /// A coordinator with `group.initial.rebalance.delay.ms` (classic groups) and
    /// `group.consumer.session.timeout.ms` (KIP-848 groups).
    pub fn new(initial_delay: Duration, consumer_session: Duration) -> Self {
        Self {
            groups: Mutex::new(HashMap::new()),
            consumer_groups: Mutex::new(HashMap::new()),
            offsets: OffsetStore::default(),
            loaded: watch::Sender::new(HashMap::new()),
            initial_delay,
            consumer_session,
        }
    }

    fn lock_consumer(&self) -> std::sync::MutexGuard<'_, HashMap<String, ConsumerGroup>> {
        self.consumer_groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// ConsumerGroupHeartbeat (KIP-848).
    pub fn consumer_heartbeat(
        &self,
        group_id: &str,
        hb: Heartbeat,
        image: &MetadataImage,
    ) -> HeartbeatReply {
        if self
            .lock()
            .get(group_id)
            .is_some_and(|s| s.group.state != GroupState::Empty)
        {
            return HeartbeatReply {
                error: Some(GroupError::GroupIdNotFound),
                message: None,
                member_id: hb.member_id,
                member_epoch: -1,
                assignment: None,
            };
        }
        let mut groups = self.lock_consumer();
        let group = groups.entry(group_id.to_string()).or_default();
        let reply = group.heartbeat(hb, image, Instant::now());
        if group.members().next().is_none() {
            groups.remove(group_id);
        }
        reply
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with_slot<T>(&self, group_id: &str, f: impl FnOnce(&mut Slot) -> T) -> T {
        let mut groups = self.lock();
        let slot = groups.entry(group_id.to_string()).or_insert_with(|| Slot {
            group: Group::new(group_id, self.initial_delay),
            joins: HashMap::new(),
            syncs: HashMap::new(),
        });
        let out = f(slot);
        slot.deliver();
        out
    }

    /// The `__consumer_offsets` partition of a group.
    pub fn partition_for(group_id: &str, partitions: usize) -> i32 {
        ((java_hash(group_id) & 0x7fff_ffff) as usize % partitions.max(1)) as i32
    }

    /// The coordinator broker of a group (creating the offsets topic on first use).
    pub async fn coordinator_of(&self, ctx: &Broker, group_id: &str) -> Result<i32, BrokerError> {
        let topic = ensure_offsets_topic(ctx).await?;
        let p = Self::partition_for(group_id, topic.partitions.len());
        topic
            .partitions
            .get(p as usize)
            .map(|p| p.leader)
            .filter(|l| *l >= 0)
            .ok_or(BrokerError::CoordinatorNotAvailable)
    }

    /// JoinGroup: answers at once or when the rebalance completes.
    pub async fn join(&self, group_id: &str, params: JoinParams) -> JoinResult {
        let member = params.member_id.clone();
        let answer = self.with_slot(group_id, |slot| {
            park(slot.group.join(params, Instant::now()), &mut slot.joins)
        });
        match answer {
            Answer::Now(r) => r,
            Answer::Later(rx) => rx
                .await
                .unwrap_or_else(|_| join_error(GroupError::RebalanceInProgress, &member)),
        }
    }

    /// SyncGroup: the leader's call completes everyone's.
    pub async fn sync(
        &self,
        group_id: &str,
        member: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncResult {
        let answer = self.with_slot(group_id, |slot| {
            park(
                slot.group
                    .sync(member, generation, assignments, Instant::now()),
                &mut slot.syncs,
            )
        });
        match answer {
            Answer::Now(r) => r,
            Answer::Later(rx) => rx.await.unwrap_or(SyncResult {
                error: Some(GroupError::RebalanceInProgress),
                protocol_type: None,
                protocol: None,
                assignment: Bytes::new(),
            }),
        }
    }

    /// Heartbeat.
    pub fn heartbeat(
        &self,
        group_id: &str,
        member: &str,
        generation: i32,
    ) -> Result<(), GroupError> {
        if !self.lock().contains_key(group_id) {
            return Err(GroupError::UnknownMemberId);
        }
        self.with_slot(group_id, |slot| {
            slot.group.heartbeat(member, generation, Instant::now())
        })
    }

    /// LeaveGroup for one member.
    pub fn leave(
        &self,
        group_id: &str,
        member: &str,
        instance: Option<&str>,
    ) -> Result<(), GroupError> {
        if !self.lock().contains_key(group_id) {
            return Err(GroupError::UnknownMemberId);
        }
        self.with_slot(group_id, |slot| {
            slot.group.leave(member, instance, Instant::now())
        })
    }

    /// Expires sessions and finishes timed-out join phases; run every 100 ms.
    pub fn tick(&self, image: &MetadataImage) {
        let now = Instant::now();
        {
            let mut consumer = self.lock_consumer();
            for g in consumer.values_mut() {
                if !g.expire(self.consumer_session, image, now) {
                    g.refresh(image);
                }
            }
            consumer.retain(|_, g| g.members().next().is_some());
        }
        let mut groups = self.lock();
        for slot in groups.values_mut() {
            slot.group.tick(now);
            slot.deliver();
        }
    }

    /// Checks that a commit comes from a current member (or from a group-less client).
    fn check_commit(
        &self,
        group_id: &str,
        member: &str,
        generation: i32,
    ) -> Result<(), BrokerError> {
        if let Some(g) = self.lock_consumer().get(group_id) {
            // KIP-848 members commit with their member epoch.
            return match g.members().find(|m| m.id == member) {
                Some(m) if generation <= m.epoch => Ok(()),
                Some(_) => Err(BrokerError::Group(GroupError::StaleMemberEpoch)),
                None => Err(BrokerError::Group(GroupError::UnknownMemberId)),
            };
        }
        let groups = self.lock();
        let Some(slot) = groups.get(group_id) else {
            return if generation < 0 {
                Ok(())
            } else {
                Err(BrokerError::Group(GroupError::IllegalGeneration))
            };
        };
        let g = &slot.group;
        if generation < 0 && member.is_empty() {
            return if g.state == GroupState::Empty {
                Ok(())
            } else {
                Err(BrokerError::Group(GroupError::UnknownMemberId))
            };
        }
        if !g.has_member(member) {
            return Err(BrokerError::Group(GroupError::UnknownMemberId));
        }
        if generation != g.generation {
            return Err(BrokerError::Group(GroupError::IllegalGeneration));
        }
        if g.state == GroupState::CompletingRebalance {
            return Err(BrokerError::Group(GroupError::RebalanceInProgress));
        }
        Ok(())
    }

    /// OffsetCommit: writes the offsets to `__consumer_offsets`, then makes them visible.
    pub async fn commit(
        &self,
        ctx: &Broker,
        group_id: &str,
        member: &str,
        generation: i32,
        offsets: Vec<(TopicPartition, Committed)>,
    ) -> Result<(), BrokerError> {
        self.check_commit(group_id, member, generation)?;
        let records: Vec<(Bytes, Option<Bytes>)> = offsets
            .iter()
            .map(|((t, p), c)| {
                (
                    offsets::encode_key(group_id, t, *p),
                    Some(offsets::encode_value(c)),
                )
            })
            .collect();
        self.write(ctx, group_id, records).await
    }

    /// Removes committed offsets (all of the group's with `None`).
    pub async fn delete_offsets(
        &self,
        ctx: &Broker,
        group_id: &str,
        only: Option<&[TopicPartition]>,
    ) -> Result<(), BrokerError> {
        let records: Vec<(Bytes, Option<Bytes>)> = self
            .offsets
            .group(group_id)
            .keys()
            .filter(|tp| only.is_none_or(|o| o.contains(tp)))
            .map(|(t, p)| (offsets::encode_key(group_id, t, *p), None))
            .collect();
        if records.is_empty() {
            return Ok(());
        }
        self.write(ctx, group_id, records).await
    }

    async fn write(
        &self,
        ctx: &Broker,
        group_id: &str,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<(), BrokerError> {
        let topic = ensure_offsets_topic(ctx).await?;
        let partition = Self::partition_for(group_id, topic.partitions.len());
        self.await_loaded(ctx, &topic, partition).await?;
        let leader = ctx
            .replicas
            .leader(&topic, partition)
            .map_err(|_| BrokerError::Group(GroupError::NotCoordinator))?;
        let encoded = encode_batch(&records)?;
        // Split defensively: the encoder may emit several batches, and the appender takes
        // exactly one batch per buffer.
        let batches = sluice_storage::batch::split_batches(&encoded)?
            .into_iter()
            .map(|(pos, h)| encoded.slice(pos..pos + h.total_len()))
            .collect();
        // A commit is answered once the ISR has it, so it survives the coordinator's loss.
        let append = LeaderAppend {
            leader,
            batches,
            log_append_time: false,
            // Commits are as durable as produced records by default: replication, not fsync.
            flush_messages: u64::MAX,
            min_isr: 1,
        };
        let acks = Acks::All {
            timeout: ctx.config.offsets_commit_timeout(),
        };
        ctx.replicas
            .append_as_leader(&ctx.controller, vec![append], acks, || {})
            .await
            .into_iter()
            .try_for_each(|r| r.map(|_| ()))
            .map_err(commit_error)?;
        for (k, v) in records {
            self.offsets.apply_record(Some(k), v);
        }
        Ok(())
    }

    /// Waits until this node coordinates the groups of offsets partition `partition` with
    /// it loaded: the image may be ahead of the local replicas (the topic was just created,
    /// or leadership just moved here), and answering from offsets not yet read would lose
    /// commits. NOT_COORDINATOR if another node leads it.
    async fn await_loaded(
        &self,
        ctx: &Broker,
        topic: &TopicInfo,
        partition: i32,
    ) -> Result<(), BrokerError> {
        let epoch = usize::try_from(partition)
            .ok()
            .and_then(|i| topic.partitions.get(i))
            .filter(|p| p.leader == ctx.node_id)
            .map(|p| p.leader_epoch)
            .ok_or(BrokerError::Group(GroupError::NotCoordinator))?;
        let mut loaded = self.loaded.subscribe();
        let ready = loaded.wait_for(|m| m.get(&partition).is_some_and(|e| *e >= epoch));
        let outcome = tokio::time::timeout(LOAD_WAIT, ready).await;
        match outcome {
            Ok(Ok(_)) => Ok(()),
            _ => Err(BrokerError::Group(GroupError::CoordinatorLoadInProgress)),
        }
    }

    /// Waits until this node can answer for `group_id`'s committed offsets (see
    /// `await_loaded`); an error is what the client should see.
    pub async fn await_coordinating(
        &self,
        ctx: &Broker,
        group_id: &str,
    ) -> Result<(), BrokerError> {
        let image = ctx.controller.image();
        let Some(topic) = image.topics.get(OFFSETS_TOPIC) else {
            // Nothing was ever committed anywhere.
            return Ok(());
        };
        let partition = Self::partition_for(group_id, topic.partitions.len());
        self.await_loaded(ctx, topic, partition).await
    }

    /// Rebuilds committed offsets from the `__consumer_offsets` partitions this node has
    /// come to lead (at startup, and when a coordinator elsewhere was lost).
    pub fn load(&self, ctx: &Broker) -> Result<usize, BrokerError> {
        let image = ctx.controller.image();
        let Some(topic) = image.topics.get(OFFSETS_TOPIC) else {
            return Ok(0);
        };
        let loaded = self.loaded.borrow().clone();
        let mut records = 0;
        let mut now_led = HashMap::new();
        for p in 0..topic.partitions.len() as i32 {
            let Ok(leader) = ctx.replicas.leader(topic, p) else {
                continue;
            };
            let epoch = leader.info.leader_epoch;
            now_led.insert(p, epoch);
            if loaded.get(&p) == Some(&epoch) {
                continue;
            }
            scan_records(ctx, &leader.log, |_, r| {
                records += 1;
                self.offsets.apply_record(r.key, r.value);
            })?;
        }
        self.loaded.send_replace(now_led);
        Ok(records)
    }

    /// A group's committed offsets.
    pub fn committed(&self, group_id: &str) -> BTreeMap<TopicPartition, Committed> {
        self.offsets.group(group_id)
    }

    /// Every group known here (with members or committed offsets).
    pub fn list(&self) -> Vec<GroupView> {
        let mut ids: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, s)| s.group.state != GroupState::Empty)
            .map(|(k, _)| k.clone())
            .collect();
        ids.extend(self.offsets.groups());
        ids.extend(self.lock_consumer().keys().cloned());
        ids.sort();
        ids.dedup();
        ids.iter().filter_map(|id| self.describe(id)).collect()
    }

    /// A KIP-848 group as ConsumerGroupDescribe shows it, or Kafka's GROUP_ID_NOT_FOUND
    /// message (classic groups included: the Admin client then retries with DescribeGroups).
    pub fn describe_consumer(&self, group_id: &str) -> Result<ConsumerGroupView, String> {
        if let Some(g) = self.lock_consumer().get(group_id) {
            return Ok(g.view());
        }
        if self.describe(group_id).is_some() {
            Err(format!("Group {group_id} is not a consumer group."))
        } else {
            Err(format!("Group {group_id} not found."))
        }
    }

    /// A group's state and members, if it exists.
    pub fn describe(&self, group_id: &str) -> Option<GroupView> {
        if let Some(g) = self.lock_consumer().get(group_id) {
            return Some(GroupView {
                id: group_id.to_string(),
                state: g.state().name(),
                group_type: "consumer",
                protocol_type: "consumer".into(),
                protocol: consumer::ASSIGNOR.into(),
                members: g
                    .members()
                    .map(|m| {
                        (
                            m.id.clone(),
                            m.instance_id.clone(),
                            m.client_id.clone(),
                            m.client_host.clone(),
                            Bytes::new(),
                            Bytes::new(),
                        )
                    })
                    .collect(),
            });
        }
        let groups = self.lock();
        match groups.get(group_id) {
            Some(slot) if slot.group.state != GroupState::Empty => {
                let g = &slot.group;
                let protocol = g.protocol.clone().unwrap_or_default();
                Some(GroupView {
                    id: g.id.clone(),
                    state: g.state.name(),
                    group_type: "classic",
                    protocol_type: g.protocol_type.clone().unwrap_or_default(),
                    members: g
                        .members()
                        .map(|m| {
                            (
                                m.id.clone(),
                                m.instance_id.clone(),
                                m.client_id.clone(),
                                m.client_host.clone(),
                                m.metadata(&protocol),
                                m.assignment.clone(),
                            )
                        })
                        .collect(),
                    protocol,
                })
            }
            _ if !self.offsets.group(group_id).is_empty() || groups.contains_key(group_id) => {
                Some(GroupView {
                    id: group_id.to_string(),
                    state: GroupState::Empty.name(),
                    group_type: "classic",
                    protocol_type: groups
                        .get(group_id)
                        .and_then(|s| s.group.protocol_type.clone())
                        .unwrap_or_else(|| "consumer".into()),
                    protocol: String::new(),
                    members: Vec::new(),
                })
            }
            _ => None,
        }
    }

    /// Deletes an empty group and its offsets.
    pub async fn delete_group(&self, ctx: &Broker, group_id: &str) -> Result<(), BrokerError> {
        {
            let groups = self.lock();
            match groups.get(group_id) {
                Some(slot) if slot.group.state != GroupState::Empty => {
                    return Err(BrokerError::Group(GroupError::NonEmptyGroup))
                }
                None if self.offsets.group(group_id).is_empty() => {
                    return Err(BrokerError::Group(GroupError::GroupIdNotFound))
                }
                _ => {}
            }
        }
        self.delete_offsets(ctx, group_id, None).await?;
        self.lock().remove(group_id);
        Ok(())
    }

    /// Whether a group's members are subscribed to (assigned) a topic; used by OffsetDelete.
    pub fn is_active(&self, group_id: &str) -> bool {
        self.lock()
            .get(group_id)
            .is_some_and(|s| s.group.state != GroupState::Empty)
    }
}

/// Visits every record of a local log in offset order, with its batch's base offset.
pub fn scan_records(
    ctx: &Broker,
    log: &PartitionLog,
    mut visit: impl FnMut(i64, Record),
) -> Result<(), BrokerError> {
    let end = log.log_end_offset();
    let mut next = log.log_start_offset();
    while next < end {
        let batches = ctx.store.read(log, next, end, 4 << 20, true)?;
        let Some(last) = batches.last() else { break };
        next = sluice_storage::batch::parse_header(last)?.last_offset() + 1;
        for b in batches {
            let base = sluice_storage::batch::parse_header(&b)?.base_offset;
            let set = RecordBatchDecoder::decode(&mut b.clone())
                .map_err(|e| BrokerError::Storage(e.to_string()))?;
            for r in set.records {
                visit(base, r);
            }
        }
    }
    Ok(())
}

/// A reply now, or a receiver for the reply a later event completes.
enum Answer<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

/// Parks a waiting request under its member id.
fn park<T>(step: Step<T>, waiters: &mut HashMap<String, oneshot::Sender<T>>) -> Answer<T> {
    match step {
        Step::Done(r) => Answer::Now(r),
        Step::Wait(member) => {
            let (tx, rx) = oneshot::channel();
            waiters.insert(member, tx);
            Answer::Later(rx)
        }
    }
}

fn join_error(error: GroupError, member: &str) -> JoinResult {
    JoinResult {
        error: Some(error),
        generation: -1,
        protocol_type: None,
        protocol: None,
        leader: String::new(),
        member_id: member.to_string(),
        members: Vec::new(),
    }
}

fn encode_batch(records: &[(Bytes, Option<Bytes>)]) -> Result<Bytes, BrokerError> {
    let now = crate::clock::now_ms();
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch whenever offset - sequence changes; keeping it
            // constant puts all records in one batch, with base sequence -1 (no producer).
            sequence: i as i32 - 1,
            timestamp: now,
            key: Some(k.clone()),
            value: v.clone(),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| BrokerError::Storage(e.to_string()))?;
    Ok(buf.freeze())
}

/// Creates `__consumer_offsets` (compacted) on first use; returns its metadata.
pub async fn ensure_offsets_topic(ctx: &Broker) -> Result<TopicInfo, BrokerError> {
    if let Some(t) = ctx.controller.image().topics.get(OFFSETS_TOPIC) {
        return Ok(t.clone());
    }
    let live = ctx.controller.image().live_brokers().len().max(1);
    let rf = ctx
        .config
        .offsets_topic_replication_factor()
        .min(live as i16)
        .max(1);
    let mut configs = BTreeMap::new();
    configs.insert("cleanup.policy".to_string(), "compact".to_string());
    let topic = NewTopic {
        name: OFFSETS_TOPIC.into(),
        id: uuid::Uuid::new_v4(),
        num_partitions: ctx.config.offsets_topic_partitions(),
        replication_factor: rf,
        assignment: None,
        configs,
    };
    // A concurrent creation by another request is fine: TOPIC_ALREADY_EXISTS is ignored.
    let _ = ctx
        .controller
        .execute(sluice_controller::Command::CreateTopics(vec![topic]))
        .await?;
    ctx.replicas.reconcile(&ctx.controller).await?;
    ctx.controller
        .image()
        .topics
        .get(OFFSETS_TOPIC)
        .cloned()
        .ok_or(BrokerError::CoordinatorNotAvailable)
}

/// Kafka's mapping of a failed `__consumer_offsets` write to what a committing client sees:
/// a coordinator that lost its partition's leadership (or its disk) is NOT_COORDINATOR; one
/// that could not replicate in time is COORDINATOR_NOT_AVAILABLE. Both make clients find the
/// coordinator again and retry.
fn commit_error(e: impl Into<BrokerError>) -> BrokerError {
    match e.into() {
        BrokerError::NotLeaderOrFollower | BrokerError::Storage(_) => {
            BrokerError::Group(GroupError::NotCoordinator)
        }
        _ => BrokerError::CoordinatorNotAvailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_placement_matches_kafka() {
        // Values printed by Java 17: "my-group".hashCode(), and the partition Kafka picks.
        assert_eq!(java_hash("my-group"), -1_906_497_762);
        assert_eq!(GroupCoordinator::partition_for("my-group", 50), 36);
        // UTF-16 code units, as Java hashes them.
        assert_eq!(java_hash("consumer-group-éü"), 277_012_280);
    }
}
