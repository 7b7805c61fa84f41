//! Classic consumer-group membership (JoinGroup/SyncGroup/Heartbeat/LeaveGroup) as a pure
//! state machine: every method takes `now` and queues the replies it completes; the
//! coordinator delivers them to the waiting requests. No sockets, no timers, no clocks.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::membership::{StoredGroup, StoredMember};
use crate::error::GroupError;

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

fn duration(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Session timeouts Kafka accepts by default (group.min/max.session.timeout.ms).
pub const MIN_SESSION_TIMEOUT: Duration = Duration::from_millis(6_000);
/// See [`MIN_SESSION_TIMEOUT`].
pub const MAX_SESSION_TIMEOUT: Duration = Duration::from_millis(1_800_000);

/// Kafka's group states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members (maybe committed offsets).
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
}

impl GroupState {
    /// The name Kafka's tools print.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
        }
    }
}

/// One member of the group.
#[derive(Debug, Clone)]
pub struct Member {
    /// Member id assigned by the coordinator.
    pub id: String,
    /// Static membership id (group.instance.id), if any.
    pub instance_id: Option<String>,
    /// Client id of the member's client.
    pub client_id: String,
    /// Address the member connected from.
    pub client_host: String,
    /// Session timeout the member asked for.
    pub session_timeout: Duration,
    /// Rebalance timeout the member asked for.
    pub rebalance_timeout: Duration,
    /// Protocols (assignor name, metadata) in preference order.
    pub protocols: Vec<(String, Bytes)>,
    /// Current assignment.
    pub assignment: Bytes,
    last_heartbeat: Instant,
    joined: bool,
}

impl Member {
    /// The member's metadata for the group's chosen protocol.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// A JoinGroup request's parameters.
#[derive(Debug, Clone)]
pub struct JoinParams {
    /// Member id ("" for a new member).
    pub member_id: String,
    /// group.instance.id for static members.
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client address.
    pub client_host: String,
    /// session.timeout.ms
    pub session_timeout: Duration,
    /// max.poll.interval.ms (rebalance timeout)
    pub rebalance_timeout: Duration,
    /// Protocol type ("consumer").
    pub protocol_type: String,
    /// Assignors and their metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: a new member must rejoin with the id it is given (KIP-394).
    pub require_known_member_id: bool,
}

/// A member in a JoinGroup response (only the leader gets the list).
#[derive(Debug, Clone, PartialEq)]
pub struct JoinedMember {
    /// Member id.
    pub member_id: String,
    /// Static id.
    pub instance_id: Option<String>,
    /// Metadata for the chosen protocol.
    pub metadata: Bytes,
}

/// The answer to a JoinGroup.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinResult {
    /// Why the join failed, if it did.
    pub error: Option<GroupError>,
    /// Generation the member joined.
    pub generation: i32,
    /// Protocol type.
    pub protocol_type: Option<String>,
    /// Chosen assignor.
    pub protocol: Option<String>,
    /// Leader's member id.
    pub leader: String,
    /// The member's id.
    pub member_id: String,
    /// All members, for the leader.
    pub members: Vec<JoinedMember>,
}

impl JoinResult {
    fn error(error: GroupError, member_id: &str) -> Self {
        Self {
            error: Some(error),
            generation: -1,
            protocol_type: None,
            protocol: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// The answer to a SyncGroup.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncResult {
    /// Why the sync failed, if it did.
    pub error: Option<GroupError>,
    /// Protocol type.
    pub protocol_type: Option<String>,
    /// Chosen assignor.
    pub protocol: Option<String>,
    /// The member's assignment (empty, never null, when it has none).
    pub assignment: Bytes,
}

impl SyncResult {
    fn error(error: GroupError) -> Self {
        Self {
            error: Some(error),
            protocol_type: None,
            protocol: None,
            assignment: Bytes::new(),
        }
    }
}

/// A reply completed by an event, for a request that is waiting.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Complete a member's pending JoinGroup.
    Join(String, JoinResult),
    /// Complete a member's pending SyncGroup.
    Sync(String, SyncResult),
}

/// Whether a request was answered at once or must wait for a reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Step<T> {
    /// Answered now.
    Done(T),
    /// Wait for `Reply` addressed to this member id.
    Wait(String),
}

/// One consumer group.
#[derive(Debug)]
pub struct Group {
    /// Group id.
    pub id: String,
    /// Current state.
    pub state: GroupState,
    /// Generation, bumped by every completed rebalance.
    pub generation: i32,
    /// Protocol type of the members ("consumer").
    pub protocol_type: Option<String>,
    /// Assignor chosen for this generation.
    pub protocol: Option<String>,
    /// Leader member id.
    pub leader: Option<String>,
    /// Members in join order.
    members: BTreeMap<u64, Member>,
    next_seq: u64,
    /// Ids handed out with MEMBER_ID_REQUIRED, waiting for the member's second join.
    pending_ids: HashMap<String, Instant>,
    /// When the join phase ends even if some members have not rejoined.
    join_deadline: Option<Instant>,
    /// Until then a new group waits for more members (group.initial.rebalance.delay.ms).
    initial_delay_until: Option<Instant>,
    initial_delay: Duration,
    awaiting_join: Vec<String>,
    awaiting_sync: Vec<String>,
    replies: Vec<Reply>,
    /// Its generation, leader, members or assignments changed since its membership record
    /// was last written.
    persist_due: bool,
}

impl Group {
    /// A new, empty group.
    pub fn new(id: &str, initial_delay: Duration) -> Self {
        Self {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            next_seq: 0,
            pending_ids: HashMap::new(),
            join_deadline: None,
            initial_delay_until: None,
            initial_delay,
            awaiting_join: Vec::new(),
            awaiting_sync: Vec::new(),
            replies: Vec::new(),
            persist_due: false,
        }
    }

    /// The group as its membership record stores it, written at `now_ms`.
    pub fn stored(&self, now_ms: i64) -> StoredGroup {
        let protocol = self.protocol.clone().unwrap_or_default();
        StoredGroup {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_ms: now_ms,
            members: self
                .members
                .values()
                .map(|m| StoredMember {
                    id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: millis(m.rebalance_timeout),
                    session_timeout_ms: millis(m.session_timeout),
                    subscription: m.metadata(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// The group a new coordinator takes over from its last membership record: Stable in
    /// that generation with those members and assignments (their sessions start now), or
    /// Empty. A record written when a join phase ended holds no assignments yet; the
    /// members' SyncGroups went to the old coordinator, so they are asked to rejoin.
    pub fn restore(id: &str, initial_delay: Duration, stored: StoredGroup, now: Instant) -> Self {
        let mut g = Self::new(id, initial_delay);
        g.generation = stored.generation;
        g.protocol_type = Some(stored.protocol_type).filter(|t| !t.is_empty());
        g.leader = stored.leader;
        let protocol = stored.protocol.clone().unwrap_or_default();
        g.protocol = stored.protocol;
        for (seq, m) in stored.members.into_iter().enumerate() {
            g.members.insert(
                seq as u64,
                Member {
                    id: m.id,
                    instance_id: m.instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout: duration(m.session_timeout_ms),
                    rebalance_timeout: duration(m.rebalance_timeout_ms),
                    protocols: vec![(protocol.clone(), m.subscription)],
                    assignment: m.assignment,
                    last_heartbeat: now,
                    joined: false,
                },
            );
        }
        g.next_seq = g.members.len() as u64;
        if g.members.is_empty() {
            g.protocol = None;
            g.leader = None;
        } else if g.members.values().all(|m| m.assignment.is_empty()) {
            g.prepare_rebalance(now);
        } else {
            g.state = GroupState::Stable;
        }
        g
    }

    /// Starts every member's session afresh: a coordinator that has just taken the group
    /// over has heard from none of them yet.
    pub fn restart_sessions(&mut self, now: Instant) {
        for m in self.members.values_mut() {
            m.last_heartbeat = now;
        }
    }

    /// Whether its membership record is due (and no longer, once asked).
    pub fn take_persist_due(&mut self) -> bool {
        std::mem::take(&mut self.persist_due)
    }

    /// Whether its membership record is due.
    pub fn persist_due(&self) -> bool {
        self.persist_due
    }

    /// Asks for its membership record again (the last write failed).
    pub fn mark_persist_due(&mut self) {
        self.persist_due = true;
    }

    /// Members in join order.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// Whether the member belongs to the group.
    pub fn has_member(&self, id: &str) -> bool {
        self.find(id).is_some()
    }

    /// Takes the replies completed so far.
    pub fn take_replies(&mut self) -> Vec<Reply> {
        std::mem::take(&mut self.replies)
    }

    fn find(&self, id: &str) -> Option<u64> {
        self.members
            .iter()
            .find(|(_, m)| m.id == id)
            .map(|(k, _)| *k)
    }

    fn find_instance(&self, instance: &str) -> Option<u64> {
        self.members
            .iter()
            .find(|(_, m)| m.instance_id.as_deref() == Some(instance))
            .map(|(k, _)| *k)
    }

    fn new_member_id(&self, client_id: &str) -> String {
        format!("{client_id}-{}", uuid::Uuid::new_v4())
    }

    /// Handles a JoinGroup.
    pub fn join(&mut self, p: JoinParams, now: Instant) -> Step<JoinResult> {
        if p.session_timeout < MIN_SESSION_TIMEOUT || p.session_timeout > MAX_SESSION_TIMEOUT {
            return Step::Done(JoinResult::error(
                GroupError::InvalidSessionTimeout,
                &p.member_id,
            ));
        }
        if !self.members.is_empty() {
            let same_type = self.protocol_type.as_deref() == Some(p.protocol_type.as_str());
            let common = self.members.values().all(|m| {
                m.protocols
                    .iter()
                    .any(|(n, _)| p.protocols.iter().any(|(q, _)| q == n))
            });
            if !same_type || !common {
                return Step::Done(JoinResult::error(
                    GroupError::InconsistentGroupProtocol,
                    &p.member_id,
                ));
            }
        }
        self.pending_ids
            .retain(|_, at| now.duration_since(*at) < MAX_SESSION_TIMEOUT);

        let existing = if p.member_id.is_empty() {
            match &p.instance_id {
                // A static member coming back under a new member id replaces its old self.
                Some(instance) => match self.find_instance(instance) {
                    Some(seq) => {
                        let new_id = self.new_member_id(&p.client_id);
                        let old_id = self
                            .members
                            .get(&seq)
                            .map(|m| m.id.clone())
                            .unwrap_or_default();
                        tracing::debug!(group = %self.id, %instance, %old_id, %new_id, "static member replaced");
                        self.fence_waiters(&old_id);
                        if let Some(m) = self.members.get_mut(&seq) {
                            m.id = new_id.clone();
                        }
                        if self.leader.as_deref() == Some(old_id.as_str()) {
                            self.leader = Some(new_id);
                        }
                        self.persist_due = true;
                        Some(seq)
                    }
                    None => None,
                },
                None if p.require_known_member_id => {
                    let id = self.new_member_id(&p.client_id);
                    self.pending_ids.insert(id.clone(), now);
                    return Step::Done(JoinResult::error(GroupError::MemberIdRequired, &id));
                }
                None => None,
            }
        } else {
            match self.find(&p.member_id) {
                Some(seq) => Some(seq),
                None if self.pending_ids.remove(&p.member_id).is_some() => None,
                None => {
                    return Step::Done(JoinResult::error(GroupError::UnknownMemberId, &p.member_id))
                }
            }
        };

        let seq = match existing {
            Some(seq) => {
                let unchanged = self
                    .members
                    .get(&seq)
                    .is_some_and(|m| m.protocols == p.protocols);
                let is_leader = self
                    .members
                    .get(&seq)
                    .is_some_and(|m| Some(&m.id) == self.leader.as_ref());
                if let Some(m) = self.members.get_mut(&seq) {
                    m.protocols = p.protocols.clone();
                    m.session_timeout = p.session_timeout;
                    m.rebalance_timeout = p.rebalance_timeout;
                    m.last_heartbeat = now;
                }
                let member_id = self
                    .members
                    .get(&seq)
                    .map(|m| m.id.clone())
                    .unwrap_or_default();
                match self.state {
                    GroupState::CompletingRebalance if unchanged => {
                        return Step::Done(self.join_result(&member_id));
                    }
                    GroupState::Stable if unchanged && !is_leader => {
                        return Step::Done(self.join_result(&member_id));
                    }
                    GroupState::PreparingRebalance => {}
                    _ => self.prepare_rebalance(now),
                }
                seq
            }
            None => {
                let id = if p.member_id.is_empty() {
                    self.new_member_id(&p.client_id)
                } else {
                    p.member_id.clone()
                };
                let seq = self.next_seq;
                self.next_seq += 1;
                if self.members.is_empty() {
                    self.protocol_type = Some(p.protocol_type.clone());
                }
                self.members.insert(
                    seq,
                    Member {
                        id,
                        instance_id: p.instance_id.clone(),
                        client_id: p.client_id.clone(),
                        client_host: p.client_host.clone(),
                        session_timeout: p.session_timeout,
                        rebalance_timeout: p.rebalance_timeout,
                        protocols: p.protocols.clone(),
                        assignment: Bytes::new(),
                        last_heartbeat: now,
                        joined: false,
                    },
                );
                if self.state != GroupState::PreparingRebalance {
                    self.prepare_rebalance(now);
                } else if let Some(until) = self.initial_delay_until {
                    // Each newcomer during the initial delay extends it, up to the rebalance timeout.
                    let cap = self.join_deadline.unwrap_or(until);
                    self.initial_delay_until = Some((now + self.initial_delay).min(cap));
                }
                seq
            }
        };
        let member_id = match self.members.get_mut(&seq) {
            Some(m) => {
                m.joined = true;
                m.id.clone()
            }
            None => {
                return Step::Done(JoinResult::error(GroupError::UnknownMemberId, &p.member_id))
            }
        };
        self.awaiting_join.retain(|m| *m != member_id);
        self.awaiting_join.push(member_id.clone());
        self.maybe_complete_join(now);
        Step::Wait(member_id)
    }

    /// Handles a SyncGroup; the leader's call carries everyone's assignment.
    pub fn sync(
        &mut self,
        member_id: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> Step<SyncResult> {
        let Some(seq) = self.find(member_id) else {
            return Step::Done(SyncResult::error(GroupError::UnknownMemberId));
        };
        if generation != self.generation {
            return Step::Done(SyncResult::error(GroupError::IllegalGeneration));
        }
        if let Some(m) = self.members.get_mut(&seq) {
            m.last_heartbeat = now;
        }
        match self.state {
            GroupState::Empty => Step::Done(SyncResult::error(GroupError::UnknownMemberId)),
            GroupState::PreparingRebalance => {
                Step::Done(SyncResult::error(GroupError::RebalanceInProgress))
            }
            GroupState::Stable => Step::Done(self.sync_result(member_id)),
            GroupState::CompletingRebalance => {
                self.awaiting_sync.retain(|m| m != member_id);
                self.awaiting_sync.push(member_id.to_string());
                if self.leader.as_deref() == Some(member_id) {
                    let mut by_id: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = by_id.remove(&m.id).unwrap_or_default();
                    }
                    self.state = GroupState::Stable;
                    self.persist_due = true;
                    for waiting in std::mem::take(&mut self.awaiting_sync) {
                        let r = self.sync_result(&waiting);
                        self.replies.push(Reply::Sync(waiting, r));
                    }
                }
                Step::Wait(member_id.to_string())
            }
        }
    }

    /// Handles a Heartbeat.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        generation: i32,
        now: Instant,
    ) -> Result<(), GroupError> {
        let Some(seq) = self.find(member_id) else {
            tracing::debug!(group = %self.id, member = %member_id, "heartbeat from unknown member");
            return Err(GroupError::UnknownMemberId);
        };
        if generation != self.generation {
            tracing::debug!(group = %self.id, member = %member_id, generation, current = self.generation, "heartbeat from an old generation");
            return Err(GroupError::IllegalGeneration);
        }
        if let Some(m) = self.members.get_mut(&seq) {
            m.last_heartbeat = now;
        }
        match self.state {
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    /// Handles a LeaveGroup for one member (by member id, or by instance id when given).
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
    ) -> Result<(), GroupError> {
        let seq = match instance_id {
            Some(i) => self.find_instance(i),
            None => self.find(member_id),
        };
        let Some(seq) = seq else {
            return Err(GroupError::UnknownMemberId);
        };
        if let Some(m) = self.members.remove(&seq) {
            tracing::debug!(group = %self.id, member = %m.id, "member left");
            self.fence_waiters(&m.id);
        }
        // In a join phase already, the members that rejoined stay joined: starting it over
        // would forget their parked JoinGroups, drop them at the deadline and never answer.
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now);
        }
        self.maybe_complete_join(now);
        Ok(())
    }

    /// Expires silent members and ends join phases whose time is up.
    pub fn tick(&mut self, now: Instant) {
        let expired: Vec<u64> = self
            .members
            .iter()
            .filter(|(_, m)| {
                !self.awaiting_join.contains(&m.id)
                    && now.duration_since(m.last_heartbeat) > m.session_timeout
            })
            .map(|(k, _)| *k)
            .collect();
        if !expired.is_empty() {
            for seq in expired {
                if let Some(m) = self.members.remove(&seq) {
                    tracing::info!(group = %self.id, member = %m.id, "member session expired");
                    self.fence_waiters(&m.id);
                }
            }
            if self.state != GroupState::PreparingRebalance {
                self.prepare_rebalance(now);
            }
        }
        self.maybe_complete_join(now);
    }

    /// Answers a member's outstanding requests with UNKNOWN_MEMBER_ID (it was removed).
    fn fence_waiters(&mut self, member_id: &str) {
        if self.awaiting_join.iter().any(|m| m == member_id) {
            self.awaiting_join.retain(|m| m != member_id);
            self.replies.push(Reply::Join(
                member_id.to_string(),
                JoinResult::error(GroupError::UnknownMemberId, member_id),
            ));
        }
        if self.awaiting_sync.iter().any(|m| m == member_id) {
            self.awaiting_sync.retain(|m| m != member_id);
            self.replies.push(Reply::Sync(
                member_id.to_string(),
                SyncResult::error(GroupError::UnknownMemberId),
            ));
        }
    }

    fn prepare_rebalance(&mut self, now: Instant) {
        for waiting in std::mem::take(&mut self.awaiting_sync) {
            self.replies.push(Reply::Sync(
                waiting,
                SyncResult::error(GroupError::RebalanceInProgress),
            ));
        }
        let was_empty = self.state == GroupState::Empty;
        self.state = GroupState::PreparingRebalance;
        for m in self.members.values_mut() {
            m.joined = false;
        }
        let timeout = self.rebalance_timeout();
        self.join_deadline = Some(now + timeout);
        self.initial_delay_until = if was_empty && !self.initial_delay.is_zero() {
            Some((now + self.initial_delay).min(now + timeout))
        } else {
            None
        };
    }

    /// How long a join phase may last: the longest rebalance timeout of the members.
    fn rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    fn maybe_complete_join(&mut self, now: Instant) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = self.members.values().all(|m| m.joined);
        let delayed = self.initial_delay_until.is_some_and(|t| now < t);
        let timed_out = self.join_deadline.is_some_and(|t| now >= t);
        if !(timed_out || (all_joined && !delayed)) {
            return;
        }
        let static_ones = self.members.values().any(|m| m.instance_id.is_some());
        if !self.members.values().any(|m| m.joined) && static_ones {
            // Nobody rejoined but static members are kept (below): as Kafka does, wait on,
            // until they rejoin or their session timeout removes them.
            self.join_deadline = Some(now + self.rebalance_timeout());
            return;
        }
        // Dynamic members that did not rejoin in time leave the group. Static members keep
        // their place and their last subscription (Kafka's rule, KIP-345): a slow static
        // member is not dropped while it still holds its partitions; it learns of the new
        // generation at its next heartbeat.
        self.members
            .retain(|_, m| m.joined || m.instance_id.is_some());
        // A parked JoinGroup whose member is gone gets an answer, never silence.
        let gone: Vec<String> = self
            .awaiting_join
            .iter()
            .filter(|id| !self.members.values().any(|m| m.id == **id))
            .cloned()
            .collect();
        for id in gone {
            self.fence_waiters(&id);
        }
        self.generation += 1;
        self.persist_due = true;
        self.join_deadline = None;
        self.initial_delay_until = None;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            return;
        }
        self.protocol = self.choose_protocol();
        // The leader must be a member that rejoined: it is the one answered with everyone's
        // subscriptions.
        let joined = |id: &str| self.members.values().any(|m| m.id == id && m.joined);
        if !self.leader.as_deref().is_some_and(joined) {
            self.leader = self
                .members
                .values()
                .find(|m| m.joined)
                .map(|m| m.id.clone());
        }
        self.state = GroupState::CompletingRebalance;
        tracing::debug!(
            group = %self.id,
            generation = self.generation,
            leader = ?self.leader,
            members = ?self.members.values().map(|m| (&m.id, m.joined)).collect::<Vec<_>>(),
            "join phase complete"
        );
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
        }
        for waiting in std::mem::take(&mut self.awaiting_join) {
            let r = self.join_result(&waiting);
            self.replies.push(Reply::Join(waiting, r));
        }
    }

    /// The assignor every member supports that most members prefer.
    fn choose_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(q, _)| q == *n))
            })
            .collect();
        let mut votes: Vec<(usize, &String)> = candidates.iter().map(|c| (0, *c)).collect();
        for m in self.members.values() {
            if let Some((_, vote)) = m.protocols.iter().find(|(n, _)| candidates.contains(&n)) {
                if let Some(v) = votes.iter_mut().find(|(_, c)| *c == vote) {
                    v.0 += 1;
                }
            }
        }
        // Highest vote wins; ties go to the first member's preference.
        let best = votes.iter().map(|(n, _)| *n).max()?;
        votes
            .into_iter()
            .find(|(n, _)| *n == best)
            .map(|(_, c)| c.clone())
    }

    fn join_result(&self, member_id: &str) -> JoinResult {
        let leader = self.leader.clone().unwrap_or_default();
        let protocol = self.protocol.clone().unwrap_or_default();
        let members = if leader == member_id {
            self.members
                .values()
                .map(|m| JoinedMember {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    metadata: m.metadata(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResult {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader,
            member_id: member_id.to_string(),
            members,
        }
    }

    fn sync_result(&self, member_id: &str) -> SyncResult {
        let assignment = self
            .members
            .values()
            .find(|m| m.id == member_id)
            .map(|m| m.assignment.clone())
            .unwrap_or_default();
        SyncResult {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            assignment,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(member_id: &str) -> JoinParams {
        JoinParams {
            member_id: member_id.into(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            protocol_type: "consumer".into(),
            protocols: vec![
                ("range".into(), Bytes::from_static(b"m")),
                ("roundrobin".into(), Bytes::new()),
            ],
            require_known_member_id: true,
        }
    }

    /// Joins a new member through the KIP-394 two-step; returns its id.
    fn join_new(g: &mut Group, now: Instant) -> String {
        let Step::Done(first) = g.join(params(""), now) else {
            panic!("first join answers at once")
        };
        assert_eq!(first.error, Some(GroupError::MemberIdRequired));
        match g.join(params(&first.member_id), now) {
            Step::Wait(id) => id,
            Step::Done(r) => panic!("second join should wait, got {r:?}"),
        }
    }

    fn joins(replies: &[Reply]) -> Vec<&JoinResult> {
        replies
            .iter()
            .filter_map(|r| {
                if let Reply::Join(_, j) = r {
                    Some(j)
                } else {
                    None
                }
            })
            .collect()
    }

    #[test]
    fn members_starting_together_land_in_one_generation_after_the_initial_delay() {
        let t0 = Instant::now();
        let mut g = Group::new("g", Duration::from_secs(3));
        let a = join_new(&mut g, t0);
        let b = join_new(&mut g, t0 + Duration::from_secs(1));
        g.tick(t0 + Duration::from_secs(2));
        assert!(
            g.take_replies().is_empty(),
            "still inside the initial delay"
        );
        g.tick(t0 + Duration::from_secs(5));
        let replies = g.take_replies();
        let results = joins(&replies);
        assert_eq!(results.len(), 2);
        assert!(results.iter().all(|r| r.generation == 1
            && r.error.is_none()
            && r.protocol.as_deref() == Some("range")));
        let leader = results
            .iter()
            .find(|r| !r.members.is_empty())
            .expect("leader gets members");
        assert_eq!(leader.leader, a);
        assert_eq!(leader.members.len(), 2);
        assert_eq!(g.state, GroupState::CompletingRebalance);

        // Follower syncs first and waits; the leader's sync completes both.
        assert_eq!(
            g.sync(&b, 1, vec![], t0 + Duration::from_secs(5)),
            Step::Wait(b.clone())
        );
        let assignments = vec![
            (a.clone(), Bytes::from_static(b"A")),
            (b.clone(), Bytes::from_static(b"B")),
        ];
        assert_eq!(
            g.sync(&a, 1, assignments, t0 + Duration::from_secs(5)),
            Step::Wait(a.clone())
        );
        let replies = g.take_replies();
        assert!(replies.contains(&Reply::Sync(
            b.clone(),
            SyncResult {
                error: None,
                protocol_type: Some("consumer".into()),
                protocol: Some("range".into()),
                assignment: Bytes::from_static(b"B")
            }
        )));
        assert_eq!(g.state, GroupState::Stable);
        assert_eq!(g.heartbeat(&a, 1, t0 + Duration::from_secs(6)), Ok(()));
        assert_eq!(
            g.heartbeat(&a, 0, t0 + Duration::from_secs(6)),
            Err(GroupError::IllegalGeneration)
        );
        assert_eq!(
            g.heartbeat("nobody", 1, t0),
            Err(GroupError::UnknownMemberId)
        );
    }

    #[test]
    fn silent_member_expires_and_the_rest_rebalance() {
        let t0 = Instant::now();
        let mut g = Group::new("g", Duration::ZERO);
        let a = join_new(&mut g, t0);
        g.take_replies();
        g.sync(&a, 1, vec![(a.clone(), Bytes::from_static(b"all"))], t0);
        g.take_replies();
        let b = join_new(&mut g, t0); // triggers a rebalance; a must rejoin
        assert_eq!(g.heartbeat(&a, 1, t0), Err(GroupError::RebalanceInProgress));
        assert!(matches!(g.join(params(&a), t0), Step::Wait(_)));
        let gen2 = joins(&g.take_replies()).len();
        assert_eq!(gen2, 2);
        assert_eq!(g.generation, 2);
        // b goes silent: after its session timeout it is removed and a rebalances alone.
        g.sync(&a, 2, vec![], t0);
        g.sync(&b, 2, vec![], t0);
        g.take_replies();
        let _ = g.heartbeat(&a, 2, t0 + Duration::from_secs(9));
        g.tick(t0 + Duration::from_secs(11));
        assert!(!g.has_member(&b));
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert!(matches!(
            g.join(params(&a), t0 + Duration::from_secs(11)),
            Step::Wait(_)
        ));
        let r = g.take_replies();
        assert_eq!(joins(&r)[0].generation, 3);
        assert_eq!(joins(&r)[0].members.len(), 1);
    }

    /// TestTxnEtl/cooperative-sticky's lost joins (compat-tests/kgo/RESULTS.md): a member
    /// leaving during a join phase restarted it, so the members already parked in it counted
    /// as not joined, were dropped at the deadline a full rebalance timeout later, and their
    /// JoinGroups were never answered.
    #[test]
    fn a_member_leaving_mid_join_keeps_the_joins_already_parked() {
        let t0 = Instant::now();
        let mut g = Group::new("g", Duration::ZERO);
        let a = join_new(&mut g, t0);
        let b = join_new(&mut g, t0);
        assert!(matches!(g.join(params(&a), t0), Step::Wait(_)));
        let c = join_new(&mut g, t0);
        assert!(matches!(g.join(params(&a), t0), Step::Wait(_)));
        assert!(matches!(g.join(params(&b), t0), Step::Wait(_)));
        g.take_replies();
        assert_eq!(g.state, GroupState::CompletingRebalance);
        let generation = g.generation;
        let all = vec![(a.clone(), Bytes::new()), (b.clone(), Bytes::new())];
        g.sync(&a, generation, all, t0);
        g.take_replies();
        // a rejoins (a cooperative member gave up partitions), then c leaves, then b rejoins.
        let t1 = t0 + Duration::from_secs(1);
        assert!(matches!(g.join(params(&a), t1), Step::Wait(_)));
        g.leave(&c, None, t1).expect("c leaves");
        assert!(matches!(g.join(params(&b), t1), Step::Wait(_)));
        let replies = g.take_replies();
        let results = joins(&replies);
        assert_eq!(
            results.len(),
            2,
            "both parked joins answered at once: {replies:?}"
        );
        assert!(results
            .iter()
            .all(|r| r.error.is_none() && r.generation == generation + 1));
    }

    #[test]
    fn leaving_last_member_empties_the_group() {
        let t0 = Instant::now();
        let mut g = Group::new("g", Duration::ZERO);
        let a = join_new(&mut g, t0);
        g.take_replies();
        assert_eq!(g.leave(&a, None, t0), Ok(()));
        assert_eq!(g.state, GroupState::Empty);
        assert_eq!(g.leave(&a, None, t0), Err(GroupError::UnknownMemberId));
    }

    #[test]
    fn static_member_rejoins_under_a_new_id_without_growing_the_group() {
        let t0 = Instant::now();
        let mut g = Group::new("g", Duration::ZERO);
        let mut p = params("");
        p.instance_id = Some("host-1".into());
        let Step::Wait(first) = g.join(p.clone(), t0) else {
            panic!()
        };
        g.take_replies();
        g.sync(
            &first,
            1,
            vec![(first.clone(), Bytes::from_static(b"x"))],
            t0,
        );
        g.take_replies();
        let Step::Wait(second) = g.join(p, t0) else {
            panic!()
        };
        assert_ne!(first, second);
        assert_eq!(g.members().count(), 1);
        assert!(!g.has_member(&first));
        let r = g.take_replies();
        assert!(joins(&r)
            .iter()
            .any(|j| j.member_id == second && j.error.is_none()));
    }

    #[test]
    fn a_static_member_that_misses_the_rebalance_keeps_its_place_a_dynamic_one_does_not() {
        let t0 = Instant::now();
        let mut g = Group::new("g", Duration::ZERO);
        let mut sp = params("");
        sp.instance_id = Some("host-s".into());
        let Step::Wait(s) = g.join(sp, t0) else {
            panic!()
        };
        let d = join_new(&mut g, t0);
        assert!(matches!(g.join(params(&s), t0), Step::Wait(_)));
        g.take_replies();
        assert_eq!(g.state, GroupState::CompletingRebalance);
        let gen = g.generation;
        g.sync(&s, gen, vec![], t0);
        g.take_replies();
        // A newcomer triggers a rebalance; neither s nor d rejoins within the rebalance
        // timeout (30 s), though both keep heartbeating.
        let n = join_new(&mut g, t0);
        for secs in [8, 16, 24, 31] {
            let at = t0 + Duration::from_secs(secs);
            let _ = g.heartbeat(&s, gen, at);
            let _ = g.heartbeat(&d, gen, at);
            g.tick(at);
        }
        let r = g.take_replies();
        let j = joins(&r);
        assert_eq!(j.len(), 1, "only the newcomer is answered");
        assert_eq!(j[0].member_id, n);
        assert_eq!(j[0].leader, n, "the leader is a member that rejoined");
        let ids: Vec<&str> = j[0].members.iter().map(|m| m.member_id.as_str()).collect();
        assert!(
            ids.contains(&s.as_str()),
            "the static member is kept: {ids:?}"
        );
        assert!(
            !ids.contains(&d.as_str()),
            "the dynamic one is gone: {ids:?}"
        );
        assert!(g.has_member(&s) && !g.has_member(&d));
        // The static member learns of the new generation at its next heartbeat.
        assert_eq!(
            g.heartbeat(&s, gen, t0 + Duration::from_secs(32)),
            Err(GroupError::IllegalGeneration)
        );
    }

    #[test]
    fn bad_session_timeout_and_inconsistent_protocols_are_refused() {
        let t0 = Instant::now();
        let mut g = Group::new("g", Duration::ZERO);
        let mut p = params("");
        p.session_timeout = Duration::from_millis(100);
        assert!(
            matches!(g.join(p, t0), Step::Done(r) if r.error == Some(GroupError::InvalidSessionTimeout))
        );
        join_new(&mut g, t0);
        let mut other = params("");
        other.protocols = vec![("sticky".into(), Bytes::new())];
        other.require_known_member_id = false;
        assert!(
            matches!(g.join(other, t0), Step::Done(r) if r.error == Some(GroupError::InconsistentGroupProtocol))
        );
    }

    #[test]
    fn a_group_taken_over_from_its_record_keeps_its_generation_and_assignments() {
        let t = Instant::now();
        let mut g = Group::new("g", Duration::from_secs(1));
        let a = join_new(&mut g, t);
        let b = join_new(&mut g, t);
        let t0 = t + Duration::from_secs(2);
        g.tick(t0);
        assert_eq!(joins(&g.take_replies()).len(), 2);
        assert!(g.take_persist_due(), "a new generation is due for storing");
        let completing = g.stored(1);
        let assignments = vec![
            (a.clone(), Bytes::from_static(b"A")),
            (b.clone(), Bytes::from_static(b"B")),
        ];
        assert_eq!(g.sync(&a, 1, assignments, t0), Step::Wait(a.clone()));
        assert!(g.take_persist_due(), "the assignment is due for storing");
        let stable = g.stored(2);

        // Stable: same generation, members and assignments; heartbeats go on.
        let later = t0 + Duration::from_secs(60);
        let mut taken = Group::restore("g", Duration::from_secs(1), stable, later);
        assert_eq!(taken.state, GroupState::Stable);
        assert_eq!(taken.generation, 1);
        assert_eq!(taken.leader.as_deref(), Some(a.as_str()));
        assert_eq!(taken.heartbeat(&b, 1, later), Ok(()));
        assert_eq!(
            taken.sync(&b, 1, vec![], later),
            Step::Done(SyncResult {
                error: None,
                protocol_type: Some("consumer".into()),
                protocol: Some("range".into()),
                assignment: Bytes::from_static(b"B"),
            })
        );
        // Sessions run from the takeover.
        taken.tick(later + Duration::from_secs(9));
        assert_eq!(taken.state, GroupState::Stable);
        taken.tick(later + Duration::from_secs(11));
        assert_eq!(taken.members().count(), 0, "silent members expire");
        assert!(
            taken.take_persist_due(),
            "the emptied group is due for storing"
        );

        // Stored before the leader's sync: the members are asked to rejoin, and do so under
        // their ids into the next generation.
        let mut taken = Group::restore("g", Duration::from_secs(1), completing, later);
        assert_eq!(taken.state, GroupState::PreparingRebalance);
        assert_eq!(
            taken.heartbeat(&a, 1, later),
            Err(GroupError::RebalanceInProgress)
        );
        assert_eq!(taken.join(params(&a), later), Step::Wait(a.clone()));
        assert_eq!(taken.join(params(&b), later), Step::Wait(b.clone()));
        let replies = taken.take_replies();
        assert!(joins(&replies).iter().all(|r| r.generation == 2));
    }
}
