//! The groups of one `__consumer_offsets` partition: classic groups, KIP-848 consumer groups
//! and committed offsets, as the coordinator runtime hosts them on the partition's leader.
//!
//! Memberships live only in memory (a new coordinator starts them empty and members rejoin,
//! as after a Kafka coordinator failover); committed offsets are replayed from the log.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_controller::MetadataImage;
use tokio::sync::oneshot;

use super::consumer::{self, ConsumerGroup, ConsumerGroupView, Heartbeat, HeartbeatReply};
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
}

impl CoordinatorShard for GroupShard {
    fn replay(&mut self, producer_id: i64, key: Bytes, value: Option<Bytes>) {
        if producer_id >= 0 {
            self.offsets.apply_pending(producer_id, key, value);
        } else {
            self.offsets.apply_record(key, value);
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
        }
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
        if g.state == GroupState::CompletingRebalance {
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
