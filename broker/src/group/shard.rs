//! The groups of one `__consumer_offsets` partition: classic groups, KIP-848 consumer groups
//! and committed offsets, as the coordinator runtime hosts them on the partition's leader.
//!
//! Committed offsets are replayed from the log, and so are classic groups' memberships as of
//! their last generation and assignment (written when those change): a new coordinator takes
//! a group over where it was, as Kafka's does. Sessions, join and sync waits live only in
//! memory; KIP-848 groups do too, so their members rejoin after a failover.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_controller::MetadataImage;
use tokio::sync::oneshot;

use super::consumer::{self, ConsumerGroup, ConsumerGroupView, Heartbeat, HeartbeatReply};
use super::membership;
use super::offsets::{Committed, OffsetStore, TopicPartition};
use super::state::{Group, GroupState, JoinParams, JoinResult, Reply, Step, SyncResult};
use super::GroupView;
use crate::coordinator::{CoordinatorRecord, CoordinatorShard};
use crate::error::GroupError;
use crate::group_config;

/// Group timings from the broker configs.
#[derive(Debug, Clone, Copy)]
pub struct GroupSettings {
    /// `group.initial.rebalance.delay.ms` (classic groups).
    pub initial_delay: Duration,
    /// `group.consumer.session.timeout.ms` (KIP-848 groups).
    pub consumer_session: Duration,
}

/// A classic group with the joins and syncs waiting for its rebalance.
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

/// A reply now, or a receiver for the reply a later event completes.
pub enum Answer<T> {
    /// Answered at once.
    Now(T),
    /// Answered when the rebalance gets there.
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

/// One offsets partition's groups.
pub struct GroupShard {
    settings: GroupSettings,
    classic: HashMap<String, Slot>,
    consumer: HashMap<String, ConsumerGroup>,
    offsets: OffsetStore,
    /// Loaded: the memberships in memory are ahead of their records, which replay skips.
    loaded: bool,
}

impl CoordinatorShard for GroupShard {
    fn replay(&mut self, producer_id: i64, key: Bytes, value: Option<Bytes>) {
        if producer_id >= 0 {
            self.offsets.apply_pending(producer_id, key, value);
        } else if let Some(group_id) = membership::decode_key(key.clone()) {
            if !self.loaded {
                self.restore(group_id, value);
            }
        } else {
            self.offsets.apply_record(key, value);
        }
    }

    fn loaded(&mut self, now: Instant) {
        self.loaded = true;
        for slot in self.classic.values_mut() {
            slot.group.restart_sessions(now);
        }
    }

    fn replay_marker(&mut self, producer_id: i64, commit: bool) {
        self.offsets.complete_txn(producer_id, commit);
    }

    /// Expires sessions and finishes timed-out join phases.
    fn tick(&mut self, now: Instant, image: &MetadataImage) {
        for (id, g) in self.consumer.iter_mut() {
            let overrides = image.group_configs.get(id);
            let session = group_config::session_timeout(overrides, self.settings.consumer_session);
            if !g.expire(session, image, now) {
                g.refresh(image);
            }
        }
        self.consumer.retain(|_, g| g.members().next().is_some());
        for slot in self.classic.values_mut() {
            slot.group.tick(now);
            slot.deliver();
        }
    }
}

impl GroupShard {
    /// An empty shard, before replay.
    pub fn new(settings: GroupSettings) -> Self {
        Self {
            settings,
            classic: HashMap::new(),
            consumer: HashMap::new(),
            offsets: OffsetStore::default(),
            loaded: false,
        }
    }

    /// Replaces a classic group by its membership record while loading (a tombstone or a
    /// record that does not decode: the group is gone).
    fn restore(&mut self, group_id: String, value: Option<Bytes>) {
        match value.and_then(membership::decode_value) {
            Some(stored) => {
                let group = Group::restore(
                    &group_id,
                    self.settings.initial_delay,
                    stored,
                    Instant::now(),
                );
                self.classic.insert(
                    group_id,
                    Slot {
                        group,
                        joins: HashMap::new(),
                        syncs: HashMap::new(),
                    },
                );
            }
            None => {
                self.classic.remove(&group_id);
            }
        }
    }

    /// The classic groups whose membership record is due, no longer due once taken.
    pub fn take_persist_due(&mut self) -> Vec<String> {
        self.classic
            .iter_mut()
            .filter_map(|(id, slot)| slot.group.take_persist_due().then(|| id.clone()))
            .collect()
    }

    /// Whether some classic group's membership record is due.
    pub fn persist_due(&self) -> bool {
        self.classic.values().any(|slot| slot.group.persist_due())
    }

    /// Asks again for the membership records of `groups` (their write failed).
    pub fn mark_persist_due(&mut self, groups: &[String]) {
        for id in groups {
            if let Some(slot) = self.classic.get_mut(id) {
                slot.group.mark_persist_due();
            }
        }
    }

    /// The membership records of `groups` as they are now (deleted ones have none).
    pub fn membership_records(&self, groups: &[String], now_ms: i64) -> Vec<CoordinatorRecord> {
        groups
            .iter()
            .filter_map(|id| {
                let slot = self.classic.get(id)?;
                let value = membership::encode_value(&slot.group.stored(now_ms));
                Some((membership::encode_key(id), Some(value)))
            })
            .collect()
    }

    fn with_slot<T>(&mut self, group_id: &str, f: impl FnOnce(&mut Slot) -> T) -> T {
        let delay = self.settings.initial_delay;
        let slot = self
            .classic
            .entry(group_id.to_string())
            .or_insert_with(|| Slot {
                group: Group::new(group_id, delay),
                joins: HashMap::new(),
                syncs: HashMap::new(),
            });
        let out = f(slot);
        slot.deliver();
        out
    }

    fn has_active_classic(&self, group_id: &str) -> bool {
        self.classic
            .get(group_id)
            .is_some_and(|s| s.group.state != GroupState::Empty)
    }

    /// ConsumerGroupHeartbeat (KIP-848).
    pub fn consumer_heartbeat(
        &mut self,
        group_id: &str,
        hb: Heartbeat,
        image: &MetadataImage,
        now: Instant,
    ) -> HeartbeatReply {
        if self.has_active_classic(group_id) {
            return HeartbeatReply {
                error: Some(GroupError::GroupIdNotFound),
                message: None,
                member_id: hb.member_id,
                member_epoch: -1,
                assignment: None,
            };
        }
        let group = self.consumer.entry(group_id.to_string()).or_default();
        let reply = group.heartbeat(hb, image, now);
        if group.members().next().is_none() {
            self.consumer.remove(group_id);
        }
        reply
    }

    /// JoinGroup: a reply now or when the join phase completes.
    pub fn join(&mut self, group_id: &str, params: JoinParams, now: Instant) -> Answer<JoinResult> {
        self.with_slot(group_id, |slot| {
            park(slot.group.join(params, now), &mut slot.joins)
        })
    }

    /// SyncGroup: the leader's call completes everyone's.
    pub fn sync(
        &mut self,
        group_id: &str,
        member: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> Answer<SyncResult> {
        self.with_slot(group_id, |slot| {
            park(
                slot.group.sync(member, generation, assignments, now),
                &mut slot.syncs,
            )
        })
    }

    /// Heartbeat.
    pub fn heartbeat(
        &mut self,
        group_id: &str,
        member: &str,
        generation: i32,
        now: Instant,
    ) -> Result<(), GroupError> {
        if !self.classic.contains_key(group_id) {
            return Err(GroupError::UnknownMemberId);
        }
        self.with_slot(group_id, |slot| {
            slot.group.heartbeat(member, generation, now)
        })
    }

    /// LeaveGroup for one member.
    pub fn leave(
        &mut self,
        group_id: &str,
        member: &str,
        instance: Option<&str>,
        now: Instant,
    ) -> Result<(), GroupError> {
        if !self.classic.contains_key(group_id) {
            return Err(GroupError::UnknownMemberId);
        }
        self.with_slot(group_id, |slot| slot.group.leave(member, instance, now))
    }

    /// Checks that a commit comes from a current member (or from a group-less client).
    pub fn check_commit(
        &self,
        group_id: &str,
        member: &str,
        generation: i32,
        transactional: bool,
    ) -> Result<(), GroupError> {
        if let Some(g) = self.consumer.get(group_id) {
            // KIP-848 members commit with their member epoch.
            return match g.members().find(|m| m.id == member) {
                Some(m) if generation <= m.epoch => Ok(()),
                Some(_) => Err(GroupError::StaleMemberEpoch),
                None => Err(GroupError::UnknownMemberId),
            };
        }
        let Some(slot) = self.classic.get(group_id) else {
            return if generation < 0 {
                Ok(())
            } else {
                Err(GroupError::IllegalGeneration)
            };
        };
        let g = &slot.group;
        if generation < 0 && member.is_empty() {
            return if g.state == GroupState::Empty {
                Ok(())
            } else {
                Err(GroupError::UnknownMemberId)
            };
        }
        if !g.has_member(member) {
            return Err(GroupError::UnknownMemberId);
        }
        if generation != g.generation {
            return Err(GroupError::IllegalGeneration);
        }
        // A member that has its generation's join answer may not commit before its
        // assignment, except inside a transaction: Kafka lets a transactional producer
        // commit then (a member ending its transaction as it rejoins would otherwise be
        // refused until the rebalance it is part of completes).
        if g.state == GroupState::CompletingRebalance && !transactional {
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    /// The records of a commit.
    pub fn commit_records(
        group_id: &str,
        offsets: &[(TopicPartition, Committed)],
    ) -> Vec<CoordinatorRecord> {
        offsets
            .iter()
            .map(|((t, p), c)| {
                (
                    super::offsets::encode_key(group_id, t, *p),
                    Some(super::offsets::encode_value(c)),
                )
            })
            .collect()
    }

    /// Tombstones for a group's committed offsets (all of them with `None`).
    pub fn delete_records(
        &self,
        group_id: &str,
        only: Option<&[TopicPartition]>,
    ) -> Vec<CoordinatorRecord> {
        self.offsets
            .group(group_id)
            .into_iter()
            .flat_map(|g| g.keys())
            .filter(|tp| only.is_none_or(|o| o.contains(tp)))
            .map(|(t, p)| (super::offsets::encode_key(group_id, t, *p), None))
            .collect()
    }

    /// Tombstones for a deleted group: its committed offsets and its membership.
    pub fn group_tombstones(&self, group_id: &str) -> Vec<CoordinatorRecord> {
        let mut records = self.delete_records(group_id, None);
        records.push((membership::encode_key(group_id), None));
        records
    }

    /// Why an empty group cannot be deleted, if it cannot.
    pub fn check_delete(&self, group_id: &str) -> Result<(), GroupError> {
        match self.classic.get(group_id) {
            Some(slot) if slot.group.state != GroupState::Empty => Err(GroupError::NonEmptyGroup),
            None if self.offsets.group(group_id).is_none() => Err(GroupError::GroupIdNotFound),
            _ => Ok(()),
        }
    }

    /// Forgets a deleted group's (empty) membership.
    pub fn forget(&mut self, group_id: &str) {
        self.classic.remove(group_id);
    }

    /// The group's partitions with offsets pending in open transactions.
    pub fn pending(&self, group_id: &str) -> std::collections::BTreeSet<TopicPartition> {
        self.offsets.pending(group_id)
    }

    /// A group's committed offsets.
    pub fn committed(&self, group_id: &str) -> BTreeMap<TopicPartition, Committed> {
        self.offsets.group(group_id).cloned().unwrap_or_default()
    }

    /// Every group with members or committed offsets.
    pub fn group_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .classic
            .iter()
            .filter(|(_, s)| s.group.state != GroupState::Empty)
            .map(|(k, _)| k.clone())
            .collect();
        ids.extend(self.offsets.groups());
        ids.extend(self.consumer.keys().cloned());
        ids
    }

    /// Whether a classic group has members (OffsetDelete refuses then).
    pub fn is_active(&self, group_id: &str) -> bool {
        self.has_active_classic(group_id)
    }

    /// A KIP-848 group as ConsumerGroupDescribe shows it, or Kafka's GROUP_ID_NOT_FOUND
    /// message (classic groups included: the Admin client then retries with DescribeGroups).
    pub fn describe_consumer(&self, group_id: &str) -> Result<ConsumerGroupView, String> {
        if let Some(g) = self.consumer.get(group_id) {
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
        if let Some(g) = self.consumer.get(group_id) {
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
        match self.classic.get(group_id) {
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
            slot if slot.is_some() || self.offsets.group(group_id).is_some() => Some(GroupView {
                id: group_id.to_string(),
                state: GroupState::Empty.name(),
                group_type: "classic",
                protocol_type: slot
                    .and_then(|s| s.group.protocol_type.clone())
                    .unwrap_or_else(|| "consumer".into()),
                protocol: String::new(),
                members: Vec::new(),
            }),
            _ => None,
        }
    }
}
