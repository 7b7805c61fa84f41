//! KIP-848 consumer groups (`group.protocol=consumer`): the broker computes assignments.
//!
//! A pure state machine of (group, heartbeat, now). Every membership or subscription change
//! bumps the group epoch and recomputes the target assignment (partitions of each topic
//! spread round-robin over its subscribers, in member-id order). A member is only given a
//! partition once no other member still reports owning it, so a partition is never consumed
//! by two members at once: the previous owner revokes (and commits) first.
//!
//! A member subscribes by topic names, by a regular expression, or both: the regex is
//! matched against the topics that exist whenever the target is computed, so topics created
//! or deleted later join or leave the subscription on the next refresh.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use regex::Regex;
use sluice_controller::MetadataImage;
use uuid::Uuid;

use crate::error::GroupError;

/// Partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// A subscription pattern (KIP-848 `SubscribedTopicRegex`), matched against whole topic names
/// as Kafka's RE2J `matches()` does.
#[derive(Debug, Clone)]
pub struct TopicRegex {
    source: String,
    full: Regex,
}

impl TopicRegex {
    /// Compiles a pattern; `Err` carries the parser's message.
    pub fn new(source: &str) -> Result<Self, String> {
        // Compiled alone first: only a well-formed pattern keeps its meaning once anchored
        // (`a)|(b` would otherwise turn into a different, valid regex).
        Regex::new(source).map_err(|e| e.to_string())?;
        let full = Regex::new(&format!("^(?:{source})$")).map_err(|e| e.to_string())?;
        Ok(Self {
            source: source.to_string(),
            full,
        })
    }

    /// The pattern as the client sent it.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern selects a topic. Internal topics are not skipped: Kafka's
    /// coordinator matches the pattern against every topic name (clients that want them left
    /// out say so in the pattern).
    pub fn selects(&self, topic: &str) -> bool {
        self.full.is_match(topic)
    }
}

/// The server assignor groups advertise: Kafka's default name for spreading partitions evenly.
pub const ASSIGNOR: &str = "uniform";

/// A KIP-848 group state, as ConsumerGroupDescribe and ListGroups name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerGroupState {
    /// No members.
    Empty,
    /// Some member does not yet hold exactly its target at the current epoch.
    Reconciling,
    /// Every member holds its target at the current epoch.
    Stable,
}

impl ConsumerGroupState {
    /// Kafka's name for the state.
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::Reconciling => "Reconciling",
            Self::Stable => "Stable",
        }
    }
}

/// One member of a consumer group.
#[derive(Debug, Clone)]
pub struct ConsumerMember {
    /// Member id (chosen by the client in v1, by the broker in v0).
    pub id: String,
    /// Static membership id, if any.
    pub instance_id: Option<String>,
    /// Epoch last given to the member.
    pub epoch: i32,
    /// Subscribed topic names (as sent; a regex may add more).
    pub subscribed: BTreeSet<String>,
    /// Subscription pattern, if any.
    pub regex: Option<TopicRegex>,
    /// Rack the client runs in, if it said.
    pub rack: Option<String>,
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

impl ConsumerMember {
    /// Whether the member's names or pattern take in a topic.
    pub fn subscribes_to(&self, topic: &str) -> bool {
        self.subscribed.contains(topic) || self.regex.as_ref().is_some_and(|r| r.selects(topic))
    }
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
    /// New subscription pattern ("" drops it), or None if unchanged.
    pub regex: Option<String>,
    /// Client rack, or None if unchanged.
    pub rack: Option<String>,
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
    /// Why the heartbeat failed, if it did.
    pub error: Option<GroupError>,
    /// Why, for errors a client cannot guess.
    pub message: Option<String>,
    /// The member's id.
    pub member_id: String,
    /// The member's epoch.
    pub member_epoch: i32,
    /// What the member may own now (None on errors and leaves).
    pub assignment: Option<Assignment>,
}

impl HeartbeatReply {
    fn error(error: GroupError, member: &str) -> Self {
        Self {
            error: Some(error),
            message: None,
            member_id: member.to_string(),
            member_epoch: -1,
            assignment: None,
        }
    }
}

/// A copy of a group for ConsumerGroupDescribe, taken under the coordinator's lock.
#[derive(Debug, Clone)]
pub struct ConsumerGroupView {
    /// Group state.
    pub state: ConsumerGroupState,
    /// Group epoch.
    pub epoch: i32,
    /// Epoch of the target assignment.
    pub assignment_epoch: i32,
    /// Each member with its target assignment.
    pub members: Vec<(ConsumerMember, Assignment)>,
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

    /// The group as ConsumerGroupDescribe shows it.
    pub fn view(&self) -> ConsumerGroupView {
        ConsumerGroupView {
            state: self.state(),
            epoch: self.epoch,
            assignment_epoch: self.assignment_epoch(),
            members: self
                .members
                .values()
                .map(|m| (m.clone(), self.target_of(&m.id)))
                .collect(),
        }
    }

    /// The epoch of the current target assignment. Always the group epoch: the target is
    /// recomputed in the step that bumps the epoch, so Kafka's "Assigning" (group epoch
    /// ahead of the target's) never shows here.
    pub fn assignment_epoch(&self) -> i32 {
        self.epoch
    }

    /// The group's state as Kafka computes it: Stable once every member has heartbeated at
    /// the current epoch and reported owning exactly its target.
    pub fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            return ConsumerGroupState::Empty;
        }
        let reconciled = self.members.values().all(|m| {
            m.epoch == self.epoch && non_empty(&m.owned) == non_empty(&self.target_of(&m.id))
        });
        if reconciled {
            ConsumerGroupState::Stable
        } else {
            ConsumerGroupState::Reconciling
        }
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
                    error: None,
                    message: None,
                    member_id: id,
                    member_epoch: hb.member_epoch,
                    assignment: None,
                };
            }
            return HeartbeatReply::error(GroupError::UnknownMemberId, &hb.member_id);
        }
        // Some(None) drops the pattern, None leaves it as it was.
        let regex = match hb.regex.as_deref() {
            None => None,
            Some("") => Some(None),
            Some(source) => match TopicRegex::new(source) {
                Ok(r) => Some(Some(r)),
                Err(why) => {
                    return HeartbeatReply {
                        message: Some(format!("invalid SubscribedTopicRegex: {why}")),
                        ..HeartbeatReply::error(GroupError::InvalidRegularExpression, &hb.member_id)
                    }
                }
            },
        };
        if hb.member_epoch == 0 {
            if hb.subscribed.is_none() && regex.is_none() {
                return HeartbeatReply::error(GroupError::NoSubscription, &hb.member_id);
            }
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
                    subscribed: hb.subscribed.unwrap_or_default().into_iter().collect(),
                    regex: regex.flatten(),
                    rack: hb.rack,
                    owned: hb.owned.unwrap_or_default(),
                    given: Assignment::new(),
                    client_id: hb.client_id,
                    client_host: hb.client_host,
                    last_heartbeat: now,
                },
            );
            self.rebalance(image);
            return self.reply(&id);
        }
        let Some(member) = self.members.get_mut(&hb.member_id) else {
            return HeartbeatReply::error(GroupError::UnknownMemberId, &hb.member_id);
        };
        if hb.member_epoch > member.epoch {
            return HeartbeatReply::error(GroupError::FencedMemberEpoch, &hb.member_id);
        }
        member.last_heartbeat = now;
        if let Some(owned) = hb.owned {
            member.owned = owned;
        }
        if hb.rack.is_some() {
            member.rack = hb.rack;
        }
        let mut changed = false;
        if let Some(subscribed) = hb.subscribed {
            let subscribed: BTreeSet<String> = subscribed.into_iter().collect();
            if subscribed != member.subscribed {
                member.subscribed = subscribed;
                changed = true;
            }
        }
        if let Some(regex) = regex {
            if regex.as_ref().map(TopicRegex::as_str)
                != member.regex.as_ref().map(TopicRegex::as_str)
            {
                member.regex = regex;
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
            error: None,
            message: None,
            member_id: member_id.to_string(),
            member_epoch: epoch,
            assignment: Some(assignment),
        }
    }
}

/// An assignment without topics that have no partitions (clients may list those).
fn non_empty(a: &Assignment) -> Assignment {
    a.iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(t, ps)| (*t, ps.clone()))
        .collect()
}

fn compute_target(
    members: &BTreeMap<String, ConsumerMember>,
    image: &MetadataImage,
) -> BTreeMap<String, Assignment> {
    let mut target: BTreeMap<String, Assignment> = members
        .keys()
        .map(|id| (id.clone(), Assignment::new()))
        .collect();
    // Each distinct pattern is matched once per topic, not once per member.
    let mut patterns: BTreeMap<&str, &TopicRegex> = BTreeMap::new();
    for r in members.values().filter_map(|m| m.regex.as_ref()) {
        patterns.insert(r.as_str(), r);
    }
    let mut topics: BTreeSet<&String> =
        members.values().flat_map(|m| m.subscribed.iter()).collect();
    topics.extend(
        image
            .topics
            .keys()
            .filter(|name| patterns.values().any(|r| r.selects(name))),
    );
    for name in topics {
        let Some(topic) = image.topics.get(name) else {
            continue;
        };
        let subscribers: Vec<&String> = members
            .values()
            .filter(|m| m.subscribes_to(name))
            .map(|m| &m.id)
            .collect();
        if subscribers.is_empty() {
            continue;
        }
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

    fn create(img: &mut MetadataImage, name: &str, id: u128, partitions: i32) {
        img.apply(&Command::CreateTopics(vec![NewTopic {
            name: name.into(),
            id: Uuid::from_u128(id),
            num_partitions: partitions,
            replication_factor: 1,
            assignment: None,
            configs: Default::default(),
        }]));
    }

    fn image() -> MetadataImage {
        let mut img = MetadataImage::default();
        img.apply(&Command::RegisterBroker(BrokerInfo {
            id: 1,
            host: "h".into(),
            port: 1,
            rack: None,
            fenced: false,
            endpoints: Vec::new(),
        }));
        create(&mut img, "t", 7, 4);
        img
    }

    fn hello(id: &str, names: Option<Vec<String>>, regex: Option<&str>) -> Heartbeat {
        Heartbeat {
            member_id: id.into(),
            member_epoch: 0,
            instance_id: None,
            subscribed: names,
            regex: regex.map(String::from),
            rack: None,
            owned: None,
            client_id: "c".into(),
            client_host: "/h".into(),
        }
    }

    fn join(g: &mut ConsumerGroup, id: &str, img: &MetadataImage, now: Instant) -> HeartbeatReply {
        g.heartbeat(hello(id, Some(vec!["t".into()]), None), img, now)
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
                regex: None,
                rack: None,
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
            Some(GroupError::FencedMemberEpoch)
        );
        assert!(g.expire(Duration::from_secs(10), &img, t0 + Duration::from_secs(11)));
        assert_eq!(g.members().count(), 0);
        assert_eq!(
            beat(&mut g, "a", 1, Assignment::new(), &img, t0).error,
            Some(GroupError::UnknownMemberId)
        );
    }

    #[test]
    fn regex_matches_whole_names_internal_ones_included() {
        let r = TopicRegex::new("orders-.*").unwrap();
        assert!(r.selects("orders-eu"));
        assert!(!r.selects("old-orders-eu"), "anchored at the start");
        assert!(
            !TopicRegex::new("orders").unwrap().selects("orders-eu"),
            "and the end"
        );
        assert!(
            TopicRegex::new("a|b").unwrap().selects("b"),
            "alternation stays whole"
        );
        assert!(TopicRegex::new(".*").unwrap().selects("__consumer_offsets"));
        assert!(
            TopicRegex::new("a)|(b").is_err(),
            "unbalanced groups are refused"
        );
        assert!(TopicRegex::new("(").is_err());
    }

    #[test]
    fn joins_need_names_or_a_pattern_and_a_valid_one() {
        let img = image();
        let mut g = ConsumerGroup::default();
        let t0 = Instant::now();
        assert_eq!(
            g.heartbeat(hello("a", None, None), &img, t0).error,
            Some(GroupError::NoSubscription)
        );
        let bad = g.heartbeat(hello("a", None, Some("[")), &img, t0);
        assert_eq!(bad.error, Some(GroupError::InvalidRegularExpression));
        assert!(bad.message.is_some());
        assert_eq!(g.members().count(), 0);
    }

    #[test]
    fn pattern_subscriptions_follow_topics_created_and_deleted() {
        let mut img = image();
        create(&mut img, "orders-eu", 8, 2);
        let t0 = Instant::now();
        let mut g = ConsumerGroup::default();
        let a = g.heartbeat(hello("a", Some(vec![]), Some("orders-.*")), &img, t0);
        assert_eq!(count(&a.assignment), 2, "only orders-eu matches");
        assert_eq!(
            g.members().next().unwrap().regex.as_ref().unwrap().as_str(),
            "orders-.*"
        );

        let epoch = g.epoch;
        create(&mut img, "orders-us", 9, 3);
        g.refresh(&img);
        assert_eq!(g.epoch, epoch + 1, "a new matching topic bumps the epoch");
        let both: usize = g.target_of("a").values().map(BTreeSet::len).sum();
        assert_eq!(both, 5);

        img.apply(&Command::DeleteTopics(vec!["orders-eu".into()]));
        g.refresh(&img);
        assert_eq!(
            g.target_of("a").keys().copied().collect::<Vec<_>>(),
            vec![Uuid::from_u128(9)]
        );

        // "" drops the pattern; the (empty) names remain the subscription.
        let mut drop = hello("a", None, Some(""));
        drop.member_epoch = a.member_epoch;
        g.heartbeat(drop, &img, t0);
        assert!(g.target_of("a").is_empty());
    }

    #[test]
    fn state_is_stable_only_when_everyone_owns_its_target() {
        let img = image();
        let t0 = Instant::now();
        let mut g = ConsumerGroup::default();
        assert_eq!(g.state(), ConsumerGroupState::Empty);
        let a = join(&mut g, "a", &img, t0);
        assert_eq!(
            g.state(),
            ConsumerGroupState::Reconciling,
            "a owns nothing yet"
        );
        let all = a.assignment.clone().unwrap();
        beat(&mut g, "a", a.member_epoch, all.clone(), &img, t0);
        assert_eq!(g.state(), ConsumerGroupState::Stable);
        assert_eq!(g.assignment_epoch(), g.epoch);

        let b = join(&mut g, "b", &img, t0);
        assert_eq!(
            g.state(),
            ConsumerGroupState::Reconciling,
            "a must give up two"
        );
        let a2 = beat(&mut g, "a", a.member_epoch, all, &img, t0);
        beat(
            &mut g,
            "a",
            a2.member_epoch,
            a2.assignment.unwrap(),
            &img,
            t0,
        );
        let b2 = beat(&mut g, "b", b.member_epoch, Assignment::new(), &img, t0);
        assert_eq!(
            g.state(),
            ConsumerGroupState::Reconciling,
            "b has not confirmed"
        );
        beat(
            &mut g,
            "b",
            b2.member_epoch,
            b2.assignment.unwrap(),
            &img,
            t0,
        );
        assert_eq!(g.state(), ConsumerGroupState::Stable);
    }
}
