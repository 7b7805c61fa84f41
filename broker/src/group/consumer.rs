//! KIP-848 consumer groups (`group.protocol=consumer`): the broker computes assignments.
//!
//! A pure state machine of (group, heartbeat, now). Every membership or subscription change
//! bumps the group epoch and recomputes the target assignment (partitions of each topic
//! spread round-robin over its subscribers, in member-id order). A member is only given a
//! partition once no other member still reports owning it, so a partition is never consumed
//! by two members at once: the previous owner revokes (and commits) first.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError as Code;
use sluice_controller::MetadataImage;
use uuid::Uuid;

/// Partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// One member of a consumer group.
#[derive(Debug, Clone)]
pub struct ConsumerMember {
    /// Member id (chosen by the client in v1, by the broker in v0).
    pub id: String,
    /// Static membership id, if any.
    pub instance_id: Option<String>,
    /// Epoch last given to the member.
    pub epoch: i32,
    /// Subscribed topic names.
    pub subscribed: BTreeSet<String>,
    /// Partitions the member last reported owning.
    pub owned: Assignment,
    /// The assignment last sent to it: until it reports otherwise, it may hold these too.
    given: Assignment,
    /// Client id.
    pub client_id: String,
    /// Client address.
    pub client_host: String,
    last_heartbeat: Instant,
}

/// A heartbeat as the state machine sees it.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    /// Member id ("" to join in v0).
    pub member_id: String,
    /// 0 to join, -1 to leave, -2 for a static member's temporary leave, else current.
    pub member_epoch: i32,
    /// Static membership id.
    pub instance_id: Option<String>,
    /// New subscription, or None if unchanged.
    pub subscribed: Option<Vec<String>>,
    /// Owned partitions, or None if unchanged.
    pub owned: Option<Assignment>,
    /// Client id.
    pub client_id: String,
    /// Client address.
    pub client_host: String,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatReply {
    /// Kafka error code.
    pub error: i16,
    /// The member's id.
    pub member_id: String,
    /// The member's epoch.
    pub member_epoch: i32,
    /// What the member may own now (None on errors and leaves).
    pub assignment: Option<Assignment>,
}

impl HeartbeatReply {
    fn error(code: Code, member: &str) -> Self {
        Self {
            error: code.code(),
            member_id: member.to_string(),
            member_epoch: -1,
            assignment: None,
        }
    }
}

/// A KIP-848 consumer group.
#[derive(Debug, Default)]
pub struct ConsumerGroup {
    /// Bumped on every membership or subscription change.
    pub epoch: i32,
    members: BTreeMap<String, ConsumerMember>,
    target: BTreeMap<String, Assignment>,
}

impl ConsumerGroup {
    /// Members by id.
    pub fn members(&self) -> impl Iterator<Item = &ConsumerMember> {
        self.members.values()
    }

    /// The member's target assignment.
    pub fn target_of(&self, member: &str) -> Assignment {
        self.target.get(member).cloned().unwrap_or_default()
    }

    /// Handles one ConsumerGroupHeartbeat.
    pub fn heartbeat(
        &mut self,
        hb: Heartbeat,
        image: &MetadataImage,
        now: Instant,
    ) -> HeartbeatReply {
        if hb.member_epoch < 0 {
            let existing = match &hb.instance_id {
                Some(instance) => self
                    .members
                    .values()
                    .find(|m| m.instance_id.as_ref() == Some(instance))
                    .map(|m| m.id.clone()),
                None => Some(hb.member_id.clone()),
            };
            if let Some(id) = existing.filter(|id| self.members.remove(id).is_some()) {
                self.rebalance(image);
                return HeartbeatReply {
                    error: 0,
                    member_id: id,
                    member_epoch: hb.member_epoch,
                    assignment: None,
                };
            }
            return HeartbeatReply::error(Code::UnknownMemberId, &hb.member_id);
        }
        if hb.member_epoch == 0 {
            let Some(subscribed) = hb.subscribed.clone() else {
                return HeartbeatReply::error(Code::InvalidRequest, &hb.member_id);
            };
            let id = if hb.member_id.is_empty() {
                Uuid::new_v4().to_string()
            } else {
                hb.member_id.clone()
            };
            // A static member rejoining replaces its previous incarnation.
            if let Some(instance) = &hb.instance_id {
                self.members
                    .retain(|_, m| m.instance_id.as_ref() != Some(instance));
            }
            self.members.insert(
                id.clone(),
                ConsumerMember {
                    id: id.clone(),
                    instance_id: hb.instance_id.clone(),
                    epoch: 0,
                    subscribed: subscribed.into_iter().collect(),
                    owned: hb.owned.clone().unwrap_or_default(),
                    given: Assignment::new(),
                    client_id: hb.client_id.clone(),
                    client_host: hb.client_host.clone(),
                    last_heartbeat: now,
                },
            );
            self.rebalance(image);
            return self.reply(&id);
        }
        let Some(member) = self.members.get_mut(&hb.member_id) else {
            return HeartbeatReply::error(Code::UnknownMemberId, &hb.member_id);
        };
        if hb.member_epoch > member.epoch {
            return HeartbeatReply::error(Code::FencedMemberEpoch, &hb.member_id);
        }
        member.last_heartbeat = now;
        if let Some(owned) = hb.owned {
            member.owned = owned;
        }
        let mut changed = false;
        if let Some(subscribed) = hb.subscribed {
            let subscribed: BTreeSet<String> = subscribed.into_iter().collect();
            if subscribed != member.subscribed {
                member.subscribed = subscribed;
                changed = true;
            }
        }
        if changed {
            self.rebalance(image);
        }
        self.reply(&hb.member_id)
    }

    /// Removes members silent for longer than `session`; true if any was removed.
    pub fn expire(&mut self, session: Duration, image: &MetadataImage, now: Instant) -> bool {
        let before = self.members.len();
        self.members
            .retain(|_, m| now.duration_since(m.last_heartbeat) <= session);
        let removed = self.members.len() != before;
        if removed {
            self.rebalance(image);
        }
        removed
    }

    /// Recomputes the target when topics change (partitions added, topics created).
    pub fn refresh(&mut self, image: &MetadataImage) {
        let target = compute_target(&self.members, image);
        if target != self.target {
            self.epoch += 1;
            self.target = target;
        }
    }

    fn rebalance(&mut self, image: &MetadataImage) {
        self.epoch += 1;
        self.target = compute_target(&self.members, image);
    }

    fn reply(&mut self, member_id: &str) -> HeartbeatReply {
        // A partition is held by a member that reported it, or was given it and has not yet
        // reported releasing it.
        let held_by_others: BTreeSet<(Uuid, i32)> = self
            .members
            .values()
            .filter(|m| m.id != member_id)
            .flat_map(|m| {
                m.owned
                    .iter()
                    .chain(m.given.iter())
                    .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
            })
            .collect();
        let mut assignment = self.target_of(member_id);
        for (topic, partitions) in assignment.iter_mut() {
            partitions.retain(|p| !held_by_others.contains(&(*topic, *p)));
        }
        assignment.retain(|_, ps| !ps.is_empty());
        let epoch = self.epoch;
        if let Some(m) = self.members.get_mut(member_id) {
            m.epoch = epoch;
            m.given = assignment.clone();
        }
        HeartbeatReply {
            error: 0,
            member_id: member_id.to_string(),
            member_epoch: epoch,
            assignment: Some(assignment),
        }
    }
}

fn compute_target(
    members: &BTreeMap<String, ConsumerMember>,
    image: &MetadataImage,
) -> BTreeMap<String, Assignment> {
    let mut target: BTreeMap<String, Assignment> = members
        .keys()
        .map(|id| (id.clone(), Assignment::new()))
        .collect();
    let topics: BTreeSet<&String> = members.values().flat_map(|m| m.subscribed.iter()).collect();
    for name in topics {
        let Some(topic) = image.topics.get(name) else {
            continue;
        };
        let subscribers: Vec<&String> = members
            .values()
            .filter(|m| m.subscribed.contains(name))
            .map(|m| &m.id)
            .collect();
        for p in 0..topic.partitions.len() {
            let owner = subscribers[p % subscribers.len()];
            target
                .entry(owner.clone())
                .or_default()
                .entry(topic.id)
                .or_default()
                .insert(p as i32);
        }
    }
    target
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_controller::{BrokerInfo, Command, NewTopic};

    fn image() -> MetadataImage {
        let mut img = MetadataImage::default();
        img.apply(&Command::RegisterBroker(BrokerInfo {
            id: 1,
            host: "h".into(),
            port: 1,
            rack: None,
            fenced: false,
        }));
        img.apply(&Command::CreateTopics(vec![NewTopic {
            name: "t".into(),
            id: Uuid::from_u128(7),
            num_partitions: 4,
            replication_factor: 1,
            assignment: None,
            configs: Default::default(),
        }]));
        img
    }

    fn join(g: &mut ConsumerGroup, id: &str, img: &MetadataImage, now: Instant) -> HeartbeatReply {
        g.heartbeat(
            Heartbeat {
                member_id: id.into(),
                member_epoch: 0,
                instance_id: None,
                subscribed: Some(vec!["t".into()]),
                owned: None,
                client_id: "c".into(),
                client_host: "/h".into(),
            },
            img,
            now,
        )
    }

    fn beat(
        g: &mut ConsumerGroup,
        id: &str,
        epoch: i32,
        owned: Assignment,
        img: &MetadataImage,
        now: Instant,
    ) -> HeartbeatReply {
        g.heartbeat(
            Heartbeat {
                member_id: id.into(),
                member_epoch: epoch,
                instance_id: None,
                subscribed: None,
                owned: Some(owned),
                client_id: "c".into(),
                client_host: "/h".into(),
            },
            img,
            now,
        )
    }

    fn count(a: &Option<Assignment>) -> usize {
        a.as_ref()
            .map(|a| a.values().map(BTreeSet::len).sum())
            .unwrap_or(0)
    }

    #[test]
    fn partitions_move_only_after_the_previous_owner_releases_them() {
        let img = image();
        let t0 = Instant::now();
        let mut g = ConsumerGroup::default();
        let a = join(&mut g, "a", &img, t0);
        assert_eq!(count(&a.assignment), 4);
        let owned_by_a = a.assignment.clone().unwrap();
        beat(&mut g, "a", a.member_epoch, owned_by_a.clone(), &img, t0);
        // b joins: its target is two partitions, but a still owns them.
        let b = join(&mut g, "b", &img, t0);
        assert_eq!(count(&b.assignment), 0, "nothing a still owns");
        // a hears its smaller target, releases two partitions and reports it.
        let a2 = beat(&mut g, "a", a.member_epoch, owned_by_a, &img, t0);
        assert_eq!(count(&a2.assignment), 2);
        beat(
            &mut g,
            "a",
            a2.member_epoch,
            a2.assignment.clone().unwrap(),
            &img,
            t0,
        );
        let b2 = beat(&mut g, "b", b.member_epoch, Assignment::new(), &img, t0);
        assert_eq!(count(&b2.assignment), 2, "now free for b");
    }

    #[test]
    fn silent_members_expire_and_epochs_fence() {
        let img = image();
        let t0 = Instant::now();
        let mut g = ConsumerGroup::default();
        let a = join(&mut g, "a", &img, t0);
        join(&mut g, "b", &img, t0);
        assert_eq!(
            beat(&mut g, "a", a.member_epoch + 5, Assignment::new(), &img, t0).error,
            Code::FencedMemberEpoch.code()
        );
        assert!(g.expire(Duration::from_secs(10), &img, t0 + Duration::from_secs(11)));
        assert_eq!(g.members().count(), 0);
        assert_eq!(
            beat(&mut g, "a", 1, Assignment::new(), &img, t0).error,
            Code::UnknownMemberId.code()
        );
    }
}
