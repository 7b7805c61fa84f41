//! The cluster metadata image and the commands that change it: a pure state machine.
//!
//! Every node applies the same Raft log to the same image, so `apply` must be deterministic:
//! ids and timestamps come inside commands, never from the applying node.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::acl::{AclBinding, AclFilter};
use crate::reassign::complete_reassignment;

/// Longest topic name Kafka accepts.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    /// Broker (node) id.
    pub id: i32,
    /// Host clients connect to.
    pub host: String,
    /// Kafka port clients connect to.
    pub port: i32,
    /// Rack, if configured.
    pub rack: Option<String>,
    /// Fenced brokers lead nothing and are left out of Metadata responses.
    pub fenced: bool,
    /// Every listener clients may reach it on (absent from registrations made before
    /// named listeners existed: then `host`/`port` serve every listener).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<BrokerEndpoint>,
}

/// One named listener of a broker, as advertised to clients that came in on that listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerEndpoint {
    /// Listener name (`PLAINTEXT`, `SASL_SSL`, `EXTERNAL`, ...).
    pub listener: String,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
    /// Kafka's security protocol id (0 PLAINTEXT, 1 SSL, 2 SASL_PLAINTEXT, 3 SASL_SSL).
    pub security_protocol: i16,
}

impl BrokerInfo {
    /// Where clients of `listener` reach this broker; None if it does not serve that
    /// listener (Kafka leaves such brokers out of the answer).
    pub fn endpoint(&self, listener: &str) -> Option<(&str, i32)> {
        if self.endpoints.is_empty() {
            return Some((&self.host, self.port));
        }
        self.endpoints
            .iter()
            .find(|e| e.listener == listener)
            .map(|e| (e.host.as_str(), e.port))
    }
}

/// A user's salted SCRAM credential for one mechanism (RFC 5802), as Kafka keeps it: never
/// the password, only what verifies a proof of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    /// The salt.
    pub salt: Vec<u8>,
    /// H(ClientKey): checks the client's proof.
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key"): signs the server's answer.
    pub server_key: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: i32,
}

/// Sets or deletes one user's credential for one mechanism.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramChange {
    /// User name.
    pub user: String,
    /// `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: String,
    /// The new credential; None deletes it.
    pub credential: Option<ScramCredential>,
}

/// One partition's replica set and leadership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionInfo {
    /// Replica broker ids, preferred leader first.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Current leader, or -1 if none.
    pub leader: i32,
    /// Bumped on every leader change.
    pub leader_epoch: i32,
    /// Bumped on every change of this record (ISR, leader, replicas).
    pub partition_epoch: i32,
    /// Replicas an ongoing reassignment adds (already listed in `replicas`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding: Vec<i32>,
    /// Replicas an ongoing reassignment removes once the target set is in sync (still
    /// listed in `replicas` until then).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing: Vec<i32>,
}

/// A topic: its id, configs and partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicInfo {
    /// The topic name.
    pub name: String,
    /// The topic id (Kafka topic UUID).
    pub id: Uuid,
    /// Topic-level config overrides, by Kafka name.
    pub configs: BTreeMap<String, String>,
    /// Partitions by index.
    pub partitions: Vec<PartitionInfo>,
}

/// The whole cluster metadata, as every node sees it once it has applied the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    /// Cluster id, fixed by the first command of the log.
    pub cluster_id: String,
    /// Registered brokers by id.
    pub brokers: BTreeMap<i32, BrokerInfo>,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicInfo>,
    /// Next producer id to hand out.
    pub next_producer_id: i64,
    /// Config overrides of consumer groups, by group id (absent from images stored before
    /// group configs existed).
    #[serde(default)]
    pub group_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Client quotas, one entry per entity that has any (absent from images stored before
    /// quotas existed).
    #[serde(default)]
    pub client_quotas: Vec<ClientQuota>,
    /// Dynamic broker configs: by broker id, or "" for the cluster-wide default (absent
    /// from images stored before they existed).
    #[serde(default)]
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// SCRAM credentials: user -> mechanism -> credential (absent from images stored
    /// before SASL existed).
    #[serde(default)]
    pub scram_credentials: BTreeMap<String, BTreeMap<String, ScramCredential>>,
    /// ACLs, sorted, each once (absent from images stored before ACLs existed).
    #[serde(default)]
    pub acls: Vec<AclBinding>,
}

/// A client quota entity (Kafka's `ClientQuotaEntity`): entity type (`user`, `client-id`
/// or `ip`) to name, where `None` names the type's default (`<default>` in kafka-configs).
pub type QuotaEntity = BTreeMap<String, Option<String>>;

/// A quota value. Kafka's quotas are doubles; validation keeps NaN out, so comparing bits
/// is equality.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QuotaValue(pub f64);

impl PartialEq for QuotaValue {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for QuotaValue {}

/// The quotas of one entity, by Kafka key (`producer_byte_rate`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientQuota {
    /// Whom they apply to.
    pub entity: QuotaEntity,
    /// Quota values by key.
    pub values: BTreeMap<String, QuotaValue>,
}

/// A quota change of one entity: set these, remove those.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaChange {
    /// Whom the change applies to.
    pub entity: QuotaEntity,
    /// Keys to set.
    pub set: BTreeMap<String, QuotaValue>,
    /// Keys to remove.
    pub remove: Vec<String>,
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTopic {
    /// Topic name.
    pub name: String,
    /// Id chosen by the proposer.
    pub id: Uuid,
    /// Number of partitions.
    pub num_partitions: i32,
    /// Replicas per partition.
    pub replication_factor: i16,
    /// Explicit replica assignment per partition (overrides the two counts), if given.
    pub assignment: Option<Vec<Vec<i32>>>,
    /// Topic config overrides.
    pub configs: BTreeMap<String, String>,
}

/// A config change of one topic: set these, remove those.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigChange {
    /// Topic name.
    pub topic: String,
    /// Keys to set.
    pub set: BTreeMap<String, String>,
    /// Keys to remove (back to default).
    pub delete: Vec<String>,
}

/// A config change of one group: set these, remove those.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupConfigChange {
    /// Group id.
    pub group: String,
    /// Keys to set.
    pub set: BTreeMap<String, String>,
    /// Keys to remove (back to the broker's value).
    pub delete: Vec<String>,
}

/// A dynamic config change of one broker ("" for the cluster default): set these, remove
/// those.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerConfigChange {
    /// Broker id, or "" for every broker.
    pub broker: String,
    /// Keys to set.
    pub set: BTreeMap<String, String>,
    /// Keys to remove (back to the static config).
    pub delete: Vec<String>,
}

/// The most partitions one command may create (Kafka's `MAX_PARTITIONS_PER_BATCH`). Checked
/// where the command is applied, on every node and again on every replay of the log: a
/// CreateTopics asking for two billion partitions would otherwise make each node allocate
/// them until it dies, and die again at each restart.
pub const MAX_PARTITIONS_PER_COMMAND: usize = 10_000;

fn too_many() -> MetadataError {
    MetadataError::PolicyViolation("Excessively large number of partitions per request.".into())
}

/// A metadata command, as stored in the Raft log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Fixes the cluster id (first command of a new cluster).
    InitCluster {
        /// The id.
        cluster_id: String,
    },
    /// Registers (or re-registers) a broker and unfences it.
    RegisterBroker(BrokerInfo),
    /// Fences a broker that stopped heartbeating: it leads nothing and leaves every ISR it
    /// is not the last member of; its partitions get a new leader from their live ISR.
    FenceBroker {
        /// Broker id.
        id: i32,
    },
    /// Unfences a broker that heartbeats again: partitions left without a leader whose ISR
    /// holds it get it back as leader.
    UnfenceBroker {
        /// Broker id.
        id: i32,
    },
    /// Creates topics (each validated on its own).
    CreateTopics(Vec<NewTopic>),
    /// Deletes topics by name.
    DeleteTopics(Vec<String>),
    /// Grows a topic to `total` partitions.
    CreatePartitions {
        /// Topic name.
        topic: String,
        /// New total partition count.
        total: i32,
        /// Explicit assignment of the new partitions, if given.
        assignment: Option<Vec<Vec<i32>>>,
    },
    /// Changes topic configs.
    AlterConfigs(Vec<ConfigChange>),
    /// Changes a group's configs (a group needs no other record to have them).
    AlterGroupConfigs(GroupConfigChange),
    /// Changes client quotas (validated by the proposing broker, as group configs are).
    AlterClientQuotas(Vec<QuotaChange>),
    /// Changes dynamic broker configs (validated by the proposing broker).
    AlterBrokerConfigs(BrokerConfigChange),
    /// A partition leader changes the ISR (shrink or expand; AlterPartition), accepted only
    /// from the current leader at the current leader and partition epochs.
    AlterPartition {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
        /// The proposing leader.
        leader: i32,
        /// Its leader epoch.
        leader_epoch: i32,
        /// The partition epoch the change is based on.
        partition_epoch: i32,
        /// The new ISR.
        isr: Vec<i32>,
    },
    /// Elects leaders (ElectLeaders): the preferred replica (first in the replica list) when
    /// it is live and in the ISR, or with `unclean`, any live replica of a leaderless
    /// partition.
    ElectLeaders {
        /// (topic, partition) pairs.
        partitions: Vec<(String, i32)>,
        /// Unclean election instead of preferred.
        unclean: bool,
    },
    /// Moves partitions to new replica sets (AlterPartitionReassignments): `Some(target)`
    /// starts (or replaces) a reassignment, `None` cancels the ongoing one.
    ReassignPartitions(Vec<Reassignment>),
    /// Sets and deletes SCRAM credentials (validated by the proposing broker).
    AlterScramCredentials(Vec<ScramChange>),
    /// Adds ACLs (validated by the proposing broker); one already there is kept once.
    CreateAcls(Vec<AclBinding>),
    /// Deletes the ACLs each filter matches (CommandResult::DeletedAcls says which).
    DeleteAcls(Vec<AclFilter>),
    /// Hands out a block of producer ids.
    AllocateProducerIds {
        /// How many ids.
        count: i64,
    },
}

/// One partition's requested replica set (see [`Command::ReassignPartitions`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reassignment {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The target replicas, preferred leader first; `None` cancels.
    pub target: Option<Vec<i32>>,
}

/// Why a command (or one item of it) was refused; maps to a Kafka error code in the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum MetadataError {
    /// TOPIC_ALREADY_EXISTS
    #[error("topic '{0}' already exists")]
    TopicAlreadyExists(String),
    /// UNKNOWN_TOPIC_OR_PARTITION
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    /// INVALID_TOPIC_EXCEPTION
    #[error("{0}")]
    InvalidTopic(String),
    /// INVALID_PARTITIONS
    #[error("{0}")]
    InvalidPartitions(String),
    /// POLICY_VIOLATION
    #[error("{0}")]
    PolicyViolation(String),
    /// INVALID_REPLICATION_FACTOR
    #[error("{0}")]
    InvalidReplicationFactor(String),
    /// INVALID_REPLICA_ASSIGNMENT
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    /// INVALID_CONFIG
    #[error("{0}")]
    InvalidConfig(String),
    /// FENCED_LEADER_EPOCH: the proposer is not (or no longer) the leader.
    #[error("not the current leader at this leader epoch")]
    FencedLeaderEpoch,
    /// INVALID_UPDATE_VERSION: the change is based on an outdated partition epoch.
    #[error("the partition epoch changed meanwhile")]
    InvalidUpdateVersion,
    /// INELIGIBLE_REPLICA: the ISR would hold a fenced broker or a non-replica.
    #[error("{0}")]
    IneligibleReplica(String),
    /// ELECTION_NOT_NEEDED: the partition already has the leader asked for.
    #[error("Leader election not needed for topic partition.")]
    ElectionNotNeeded,
    /// PREFERRED_LEADER_NOT_AVAILABLE / ELIGIBLE_LEADERS_NOT_AVAILABLE
    #[error("{0}")]
    LeaderNotAvailable(String),
    /// NO_REASSIGNMENT_IN_PROGRESS: a cancel for a partition that is not moving.
    #[error("No partition reassignment is in progress.")]
    NoReassignmentInProgress,
}

/// The result of applying one command.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    /// Nothing to report.
    #[default]
    Done,
    /// One result per item of a batched command, in order.
    PerItem(Vec<Result<(), MetadataError>>),
    /// The command as a whole failed.
    Failed(MetadataError),
    /// First id of an allocated producer-id block.
    ProducerIds {
        /// First id of the block.
        first: i64,
    },
    /// The ACLs each filter of a DeleteAcls deleted, in filter order.
    DeletedAcls(Vec<Vec<AclBinding>>),
}

/// Sets and removes configs of one owner in a map of owners' configs; an owner left with
/// none is dropped.
fn change_configs(
    owners: &mut BTreeMap<String, BTreeMap<String, String>>,
    owner: &str,
    set: &BTreeMap<String, String>,
    delete: &[String],
) {
    let configs = owners.entry(owner.to_string()).or_default();
    for k in delete {
        configs.remove(k);
    }
    configs.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
    if configs.is_empty() {
        owners.remove(owner);
    }
}

/// Checks a topic name the way Kafka does (`Topic.validate`).
pub fn validate_topic_name(name: &str) -> Result<(), MetadataError> {
    let invalid = |why: String| Err(MetadataError::InvalidTopic(why));
    if name.is_empty() {
        return invalid("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return invalid("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return invalid(format!(
            "Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LEN} characters"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
    {
        return invalid(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII \
             alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

impl MetadataImage {
    /// The topic with this id.
    pub fn topic_by_id(&self, id: &Uuid) -> Option<&TopicInfo> {
        self.topics.values().find(|t| t.id == *id)
    }

    /// Ids of unfenced brokers, ascending.
    pub fn live_brokers(&self) -> Vec<i32> {
        self.brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| b.id)
            .collect()
    }

    /// Applies one command; deterministic, never panics.
    pub fn apply(&mut self, command: &Command) -> CommandResult {
        match command {
            Command::InitCluster { cluster_id } => {
                if self.cluster_id.is_empty() {
                    self.cluster_id = cluster_id.clone();
                }
                CommandResult::Done
            }
            Command::RegisterBroker(info) => {
                let mut info = info.clone();
                info.fenced = false;
                let id = info.id;
                self.brokers.insert(id, info);
                self.unfence(id);
                CommandResult::Done
            }
            Command::FenceBroker { id } => {
                self.fence(*id);
                CommandResult::Done
            }
            Command::UnfenceBroker { id } => {
                self.unfence(*id);
                CommandResult::Done
            }
            Command::CreateTopics(topics) => {
                let requested = topics.iter().map(|t| match &t.assignment {
                    Some(a) => a.len(),
                    None => usize::try_from(t.num_partitions).unwrap_or(0),
                });
                if requested.sum::<usize>() > MAX_PARTITIONS_PER_COMMAND {
                    CommandResult::PerItem(topics.iter().map(|_| Err(too_many())).collect())
                } else {
                    CommandResult::PerItem(topics.iter().map(|t| self.create_topic(t)).collect())
                }
            }
            Command::DeleteTopics(names) => CommandResult::PerItem(
                names
                    .iter()
                    .map(|n| {
                        self.topics
                            .remove(n)
                            .map(|_| ())
                            .ok_or_else(|| MetadataError::UnknownTopic(n.clone()))
                    })
                    .collect(),
            ),
            Command::CreatePartitions {
                topic,
                total,
                assignment,
            } => match self.create_partitions(topic, *total, assignment.as_deref()) {
                Ok(()) => CommandResult::Done,
                Err(e) => CommandResult::Failed(e),
            },
            Command::AlterConfigs(changes) => CommandResult::PerItem(
                changes
                    .iter()
                    .map(|c| {
                        let t = self
                            .topics
                            .get_mut(&c.topic)
                            .ok_or_else(|| MetadataError::UnknownTopic(c.topic.clone()))?;
                        for k in &c.delete {
                            t.configs.remove(k);
                        }
                        t.configs
                            .extend(c.set.iter().map(|(k, v)| (k.clone(), v.clone())));
                        Ok(())
                    })
                    .collect(),
            ),
            Command::AlterGroupConfigs(change) => {
                change_configs(
                    &mut self.group_configs,
                    &change.group,
                    &change.set,
                    &change.delete,
                );
                CommandResult::Done
            }
            Command::AlterBrokerConfigs(change) => {
                change_configs(
                    &mut self.broker_configs,
                    &change.broker,
                    &change.set,
                    &change.delete,
                );
                CommandResult::Done
            }
            Command::AlterClientQuotas(changes) => {
                for change in changes {
                    self.alter_client_quota(change);
                }
                CommandResult::Done
            }
            Command::CreateAcls(bindings) => {
                for b in bindings {
                    if let Err(at) = self.acls.binary_search(b) {
                        self.acls.insert(at, b.clone());
                    }
                }
                CommandResult::Done
            }
            Command::DeleteAcls(filters) => {
                let deleted = filters
                    .iter()
                    .map(|f| {
                        let (gone, kept) = std::mem::take(&mut self.acls)
                            .into_iter()
                            .partition(|b| f.matches(b));
                        self.acls = kept;
                        gone
                    })
                    .collect();
                CommandResult::DeletedAcls(deleted)
            }
            Command::AlterScramCredentials(changes) => {
                for change in changes {
                    let users = &mut self.scram_credentials;
                    match &change.credential {
                        Some(c) => {
                            users
                                .entry(change.user.clone())
                                .or_default()
                                .insert(change.mechanism.clone(), c.clone());
                        }
                        None => {
                            if let Some(mechanisms) = users.get_mut(&change.user) {
                                mechanisms.remove(&change.mechanism);
                                if mechanisms.is_empty() {
                                    users.remove(&change.user);
                                }
                            }
                        }
                    }
                }
                CommandResult::Done
            }
            Command::AlterPartition {
                topic,
                partition,
                leader,
                leader_epoch,
                partition_epoch,
                isr,
            } => match self.alter_partition(
                topic,
                *partition,
                *leader,
                *leader_epoch,
                *partition_epoch,
                isr,
            ) {
                Ok(()) => CommandResult::Done,
                Err(e) => CommandResult::Failed(e),
            },
            Command::ElectLeaders {
                partitions,
                unclean,
            } => CommandResult::PerItem(
                partitions
                    .iter()
                    .map(|(t, p)| self.elect(t, *p, *unclean))
                    .collect(),
            ),
            Command::ReassignPartitions(moves) => CommandResult::PerItem(
                moves
                    .iter()
                    .map(|m| self.reassign(&m.topic, m.partition, m.target.as_deref()))
                    .collect(),
            ),
            Command::AllocateProducerIds { count } => {
                let first = self.next_producer_id;
                self.next_producer_id = first.saturating_add((*count).max(1));
                CommandResult::ProducerIds { first }
            }
        }
    }

    fn alter_partition(
        &mut self,
        topic: &str,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: &[i32],
    ) -> Result<(), MetadataError> {
        let live: BTreeSet<i32> = self.live_brokers().into_iter().collect();
        let p = self.partition_mut(topic, partition)?;
        if p.leader != leader || p.leader_epoch != leader_epoch {
            return Err(MetadataError::FencedLeaderEpoch);
        }
        if p.partition_epoch != partition_epoch {
            return Err(MetadataError::InvalidUpdateVersion);
        }
        if !isr.contains(&leader) {
            return Err(MetadataError::IneligibleReplica(
                "the ISR must hold its leader".into(),
            ));
        }
        if let Some(r) = isr.iter().find(|r| !p.replicas.contains(r)) {
            return Err(MetadataError::IneligibleReplica(format!(
                "{r} is not a replica"
            )));
        }
        if let Some(r) = isr.iter().find(|r| !p.isr.contains(r) && !live.contains(r)) {
            return Err(MetadataError::IneligibleReplica(format!("{r} is fenced")));
        }
        p.isr = p
            .replicas
            .iter()
            .copied()
            .filter(|r| isr.contains(r))
            .collect();
        p.partition_epoch += 1;
        // An ISR expansion may be the last step of a reassignment.
        complete_reassignment(p, &live);
        Ok(())
    }

    pub(crate) fn partition_mut(
        &mut self,
        topic: &str,
        partition: i32,
    ) -> Result<&mut PartitionInfo, MetadataError> {
        self.topics
            .get_mut(topic)
            .and_then(|t| {
                usize::try_from(partition)
                    .ok()
                    .and_then(|i| t.partitions.get_mut(i))
            })
            .ok_or_else(|| MetadataError::UnknownTopic(topic.into()))
    }

    fn elect(&mut self, topic: &str, partition: i32, unclean: bool) -> Result<(), MetadataError> {
        let live: BTreeSet<i32> = self.live_brokers().into_iter().collect();
        let p = self.partition_mut(topic, partition)?;
        let chosen = if unclean {
            if p.leader >= 0 {
                return Err(MetadataError::ElectionNotNeeded);
            }
            let any = p.replicas.iter().copied().find(|r| live.contains(r));
            let l =
                any.ok_or_else(|| MetadataError::LeaderNotAvailable("no replica is alive".into()))?;
            p.isr = vec![l];
            l
        } else {
            let preferred = p.replicas.first().copied().unwrap_or(-1);
            if p.leader == preferred {
                return Err(MetadataError::ElectionNotNeeded);
            }
            if !live.contains(&preferred) || !p.isr.contains(&preferred) {
                return Err(MetadataError::LeaderNotAvailable(format!(
                    "the preferred leader {preferred} is not alive and in the ISR"
                )));
            }
            preferred
        };
        p.leader = chosen;
        p.leader_epoch += 1;
        p.partition_epoch += 1;
        Ok(())
    }

    fn fence(&mut self, id: i32) {
        let Some(b) = self.brokers.get_mut(&id) else {
            return;
        };
        b.fenced = true;
        let live: BTreeSet<i32> = self.live_brokers().into_iter().collect();
        for t in self.topics.values_mut() {
            let unclean = t
                .configs
                .get("unclean.leader.election.enable")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            for p in t.partitions.iter_mut() {
                let mut changed = false;
                if p.isr.len() > 1 && p.isr.contains(&id) {
                    p.isr.retain(|r| *r != id);
                    changed = true;
                }
                if p.leader == id {
                    // The next live ISR member in preferred order; none: offline until one
                    // returns, unless the topic accepts losing data to stay available.
                    let clean = p
                        .replicas
                        .iter()
                        .copied()
                        .find(|r| p.isr.contains(r) && live.contains(r));
                    let any_live = p.replicas.iter().copied().find(|r| live.contains(r));
                    p.leader = match (clean, any_live) {
                        (Some(l), _) => l,
                        (None, Some(l)) if unclean => {
                            p.isr = vec![l];
                            l
                        }
                        _ => -1,
                    };
                    p.leader_epoch += 1;
                    changed = true;
                }
                if changed {
                    p.partition_epoch += 1;
                }
            }
        }
    }

    fn alter_client_quota(&mut self, change: &QuotaChange) {
        let at = match self
            .client_quotas
            .binary_search_by(|q| q.entity.cmp(&change.entity))
        {
            Ok(at) => at,
            Err(at) => {
                self.client_quotas.insert(
                    at,
                    ClientQuota {
                        entity: change.entity.clone(),
                        values: BTreeMap::new(),
                    },
                );
                at
            }
        };
        let values = &mut self.client_quotas[at].values;
        for k in &change.remove {
            values.remove(k);
        }
        values.extend(change.set.iter().map(|(k, v)| (k.clone(), *v)));
        if values.is_empty() {
            self.client_quotas.remove(at);
        }
    }

    fn unfence(&mut self, id: i32) {
        let Some(b) = self.brokers.get_mut(&id) else {
            return;
        };
        b.fenced = false;
        for p in self
            .topics
            .values_mut()
            .flat_map(|t| t.partitions.iter_mut())
        {
            if p.leader < 0 && p.isr.contains(&id) {
                p.leader = id;
                p.leader_epoch += 1;
                p.partition_epoch += 1;
            }
        }
    }

    fn create_topic(&mut self, t: &NewTopic) -> Result<(), MetadataError> {
        validate_topic_name(&t.name)?;
        if self.topics.contains_key(&t.name) {
            return Err(MetadataError::TopicAlreadyExists(t.name.clone()));
        }
        if let Some(existing) = self.topics.keys().find(|n| collides(n, &t.name)) {
            return Err(MetadataError::InvalidTopic(format!(
                "Topic '{}' collides with existing topic: {existing}",
                t.name
            )));
        }
        let assignment = match &t.assignment {
            Some(a) => {
                self.check_assignment(a, None)?;
                a.clone()
            }
            None => self.place(0, t.num_partitions, t.replication_factor)?,
        };
        self.topics.insert(
            t.name.clone(),
            TopicInfo {
                name: t.name.clone(),
                id: t.id,
                configs: t.configs.clone(),
                partitions: assignment.into_iter().map(new_partition).collect(),
            },
        );
        Ok(())
    }

    fn create_partitions(
        &mut self,
        topic: &str,
        total: i32,
        assignment: Option<&[Vec<i32>]>,
    ) -> Result<(), MetadataError> {
        let existing = self
            .topics
            .get(topic)
            .ok_or_else(|| MetadataError::UnknownTopic(topic.into()))?;
        let current = existing.partitions.len() as i32;
        if total <= current {
            return Err(MetadataError::InvalidPartitions(format!(
                "Topic currently has {current} partitions, which is higher than the requested {total}."
            )));
        }
        if (total - current) as usize > MAX_PARTITIONS_PER_COMMAND {
            return Err(too_many());
        }
        let rf = existing
            .partitions
            .first()
            .map(|p| p.replicas.len())
            .unwrap_or(1) as i16;
        let new = match assignment {
            Some(a) => {
                if a.len() as i32 != total - current {
                    return Err(MetadataError::InvalidReplicaAssignment(format!(
                        "Increasing the number of partitions by {} but {} assignments provided.",
                        total - current,
                        a.len()
                    )));
                }
                self.check_assignment(a, Some(rf as usize))?;
                a.to_vec()
            }
            None => self.place(current, total - current, rf)?,
        };
        if let Some(t) = self.topics.get_mut(topic) {
            t.partitions.extend(new.into_iter().map(new_partition));
        }
        Ok(())
    }

    pub(crate) fn check_assignment(
        &self,
        a: &[Vec<i32>],
        rf: Option<usize>,
    ) -> Result<(), MetadataError> {
        for replicas in a {
            let mut sorted = replicas.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if replicas.is_empty() || sorted.len() != replicas.len() {
                return Err(MetadataError::InvalidReplicaAssignment(
                    "Replica assignment must list distinct brokers".into(),
                ));
            }
            if rf.is_some_and(|rf| rf != replicas.len()) {
                return Err(MetadataError::InvalidReplicaAssignment(
                    "Inconsistent replication factor between partitions".into(),
                ));
            }
            if let Some(b) = replicas.iter().find(|b| !self.brokers.contains_key(b)) {
                return Err(MetadataError::InvalidReplicaAssignment(format!(
                    "Unknown broker {b} in replica assignment"
                )));
            }
        }
        Ok(())
    }

    /// Brokers in an order that alternates racks (a1, b1, c1, a2, ...), as Kafka's
    /// rack-aware assignment does: consecutive picks, hence a partition's replicas, land on
    /// different racks whenever there are enough of them. Without racks: by id.
    fn rack_alternating(&self, live: &[i32]) -> Vec<i32> {
        let mut by_rack: BTreeMap<Option<&str>, Vec<i32>> = BTreeMap::new();
        for id in live {
            let rack = self.brokers.get(id).and_then(|b| b.rack.as_deref());
            by_rack.entry(rack).or_default().push(*id);
        }
        let racks: Vec<Vec<i32>> = by_rack.into_values().collect();
        let depth = racks.iter().map(Vec::len).max().unwrap_or(0);
        (0..depth)
            .flat_map(|i| racks.iter().filter_map(move |r| r.get(i).copied()))
            .collect()
    }

    /// Round-robin placement over live brokers (rack-alternating), leaders spread evenly.
    fn place(&self, first: i32, count: i32, rf: i16) -> Result<Vec<Vec<i32>>, MetadataError> {
        if count <= 0 {
            return Err(MetadataError::InvalidPartitions(
                "Number of partitions must be larger than 0.".into(),
            ));
        }
        let live = self.live_brokers();
        if rf <= 0 {
            return Err(MetadataError::InvalidReplicationFactor(
                "Replication factor must be larger than 0.".into(),
            ));
        }
        if rf as usize > live.len() {
            return Err(MetadataError::InvalidReplicationFactor(format!(
                "Replication factor: {rf} larger than available brokers: {}.",
                live.len()
            )));
        }
        let order = self.rack_alternating(&live);
        Ok((first..first + count)
            .map(|p| {
                (0..rf as usize)
                    .map(|r| order[(p as usize + r) % order.len()])
                    .collect()
            })
            .collect())
    }
}

fn new_partition(replicas: Vec<i32>) -> PartitionInfo {
    PartitionInfo {
        leader: replicas.first().copied().unwrap_or(-1),
        isr: replicas.clone(),
        replicas,
        leader_epoch: 0,
        partition_epoch: 0,
        adding: Vec::new(),
        removing: Vec::new(),
    }
}

/// Kafka refuses topics whose names differ only by '.' vs '_' (metric names collide).
fn collides(a: &str, b: &str) -> bool {
    a != b && a.replace('.', "_") == b.replace('.', "_")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn fencing_moves_leadership_to_a_live_isr_member_and_unfencing_restores_offline_ones() {
        let mut img = image_with_brokers(3);
        img.apply(&Command::CreateTopics(vec![
            new_topic("t", 3, 3),
            new_topic("one", 1, 1),
        ]));
        let leader_of = |img: &MetadataImage, t: &str, p: usize| img.topics[t].partitions[p].leader;
        let single = leader_of(&img, "one", 0);
        let p0 = img.topics["t"].partitions[0].clone();
        img.apply(&Command::FenceBroker { id: p0.leader });
        let after = &img.topics["t"].partitions[0];
        assert_ne!(after.leader, p0.leader);
        assert!(after.isr.contains(&after.leader) && !after.isr.contains(&p0.leader));
        assert_eq!(after.leader_epoch, p0.leader_epoch + 1);
        if single == p0.leader {
            assert_eq!(leader_of(&img, "one", 0), -1, "no other replica: offline");
            img.apply(&Command::UnfenceBroker { id: p0.leader });
            assert_eq!(leader_of(&img, "one", 0), single, "back with its broker");
        }
    }

    #[test]
    fn preferred_election_moves_leadership_back_once_the_preferred_replica_is_in_sync() {
        let mut img = image_with_brokers(2);
        img.apply(&Command::CreateTopics(vec![new_topic("t", 1, 2)]));
        let preferred = img.topics["t"].partitions[0].replicas[0];
        let elect = Command::ElectLeaders {
            partitions: vec![("t".into(), 0)],
            unclean: false,
        };
        assert_eq!(
            img.apply(&elect),
            CommandResult::PerItem(vec![Err(MetadataError::ElectionNotNeeded)])
        );
        img.apply(&Command::FenceBroker { id: preferred });
        assert!(matches!(
            img.apply(&elect),
            CommandResult::PerItem(ref r) if matches!(r[0], Err(MetadataError::LeaderNotAvailable(_)))
        ));
        img.apply(&Command::UnfenceBroker { id: preferred });
        let p = img.topics["t"].partitions[0].clone();
        img.apply(&Command::AlterPartition {
            topic: "t".into(),
            partition: 0,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: p.replicas.clone(),
        });
        assert_eq!(img.apply(&elect), CommandResult::PerItem(vec![Ok(())]));
        assert_eq!(img.topics["t"].partitions[0].leader, preferred);
    }

    #[test]
    fn replicas_of_a_partition_land_on_different_racks() {
        let mut img = MetadataImage::default();
        for (id, rack) in [(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")] {
            img.apply(&Command::RegisterBroker(BrokerInfo {
                id,
                host: "127.0.0.1".into(),
                port: 9000 + id,
                rack: Some(rack.into()),
                fenced: false,
                endpoints: Vec::new(),
            }));
        }
        img.apply(&Command::CreateTopics(vec![new_topic("t", 12, 3)]));
        let rack = |id: i32| img.brokers[&id].rack.clone().unwrap();
        let mut leaders = BTreeMap::new();
        for p in &img.topics["t"].partitions {
            let racks: BTreeSet<String> = p.replicas.iter().map(|r| rack(*r)).collect();
            assert_eq!(racks.len(), 3, "one replica per rack: {:?}", p.replicas);
            *leaders.entry(p.leader).or_insert(0) += 1;
        }
        assert!(
            leaders.values().all(|n| *n == 2),
            "leaders spread: {leaders:?}"
        );
    }

    #[test]
    fn unclean_election_only_when_the_topic_allows_it() {
        for unclean in [false, true] {
            let mut img = image_with_brokers(2);
            let mut t = new_topic("t", 1, 2);
            t.configs
                .insert("unclean.leader.election.enable".into(), unclean.to_string());
            img.apply(&Command::CreateTopics(vec![t]));
            let p = img.topics["t"].partitions[0].clone();
            let follower = p.replicas.iter().copied().find(|r| *r != p.leader).unwrap();
            // The follower fell out of the ISR, then the leader died.
            img.apply(&Command::AlterPartition {
                topic: "t".into(),
                partition: 0,
                leader: p.leader,
                leader_epoch: 0,
                partition_epoch: 0,
                isr: vec![p.leader],
            });
            img.apply(&Command::FenceBroker { id: p.leader });
            let expect = if unclean { follower } else { -1 };
            assert_eq!(
                img.topics["t"].partitions[0].leader, expect,
                "unclean={unclean}"
            );
        }
    }

    #[test]
    fn alter_partition_is_checked_against_leader_and_partition_epochs() {
        let mut img = image_with_brokers(3);
        img.apply(&Command::CreateTopics(vec![new_topic("t", 1, 3)]));
        let p = img.topics["t"].partitions[0].clone();
        let alter =
            |isr: Vec<i32>, leader_epoch: i32, partition_epoch: i32| Command::AlterPartition {
                topic: "t".into(),
                partition: 0,
                leader: p.leader,
                leader_epoch,
                partition_epoch,
                isr,
            };
        let shrunk: Vec<i32> = vec![p.leader];
        assert_eq!(img.apply(&alter(shrunk.clone(), 0, 0)), CommandResult::Done);
        assert_eq!(img.topics["t"].partitions[0].isr, shrunk);
        assert_eq!(
            img.apply(&alter(p.replicas.clone(), 0, 0)),
            CommandResult::Failed(MetadataError::InvalidUpdateVersion),
            "based on the old partition epoch"
        );
        assert_eq!(
            img.apply(&alter(p.replicas.clone(), 1, 1)),
            CommandResult::Failed(MetadataError::FencedLeaderEpoch)
        );
        assert!(matches!(
            img.apply(&alter(vec![99], 0, 1)),
            CommandResult::Failed(MetadataError::IneligibleReplica(_))
        ));
        assert_eq!(
            img.apply(&alter(p.replicas.clone(), 0, 1)),
            CommandResult::Done,
            "expanded"
        );
        assert_eq!(img.topics["t"].partitions[0].partition_epoch, 2);
    }

    pub(crate) fn image_with_brokers(n: i32) -> MetadataImage {
        let mut img = MetadataImage::default();
        for id in 1..=n {
            img.apply(&Command::RegisterBroker(BrokerInfo {
                id,
                host: "127.0.0.1".into(),
                port: 9000 + id,
                rack: None,
                fenced: true,
                endpoints: Vec::new(),
            }));
        }
        img
    }

    pub(crate) fn new_topic(name: &str, partitions: i32, rf: i16) -> NewTopic {
        NewTopic {
            name: name.into(),
            id: Uuid::new_v4(),
            num_partitions: partitions,
            replication_factor: rf,
            assignment: None,
            configs: BTreeMap::new(),
        }
    }

    #[test]
    fn a_command_creating_more_than_ten_thousand_partitions_is_refused_whole() {
        let mut img = image_with_brokers(1);
        let refused = img.apply(&Command::CreateTopics(vec![
            new_topic("small", 1, 1),
            new_topic("huge", i32::MAX, 1),
        ]));
        let CommandResult::PerItem(results) = refused else {
            panic!("{refused:?}");
        };
        assert!(results
            .iter()
            .all(|r| matches!(r, Err(MetadataError::PolicyViolation(_)))));
        assert!(img.topics.is_empty());
        img.apply(&Command::CreateTopics(vec![new_topic("t", 10_000, 1)]));
        assert_eq!(img.topics["t"].partitions.len(), 10_000);
        let grown = img.apply(&Command::CreatePartitions {
            topic: "t".into(),
            total: i32::MAX,
            assignment: None,
        });
        assert!(
            matches!(
                grown,
                CommandResult::Failed(MetadataError::PolicyViolation(_))
            ),
            "{grown:?}"
        );
    }

    #[test]
    fn topic_names_are_validated_like_kafka() {
        assert!(validate_topic_name("orders.v1_x-y").is_ok());
        for bad in ["", ".", "..", "has space", "ünï", &"x".repeat(250)] {
            assert!(
                matches!(
                    validate_topic_name(bad),
                    Err(MetadataError::InvalidTopic(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn create_places_replicas_round_robin_and_rejects_duplicates() {
        let mut img = image_with_brokers(3);
        let r = img.apply(&Command::CreateTopics(vec![
            new_topic("a", 6, 2),
            new_topic("a", 1, 1),
        ]));
        assert_eq!(
            r,
            CommandResult::PerItem(vec![
                Ok(()),
                Err(MetadataError::TopicAlreadyExists("a".into()))
            ])
        );
        let t = &img.topics["a"];
        let leaders: Vec<i32> = t.partitions.iter().map(|p| p.leader).collect();
        assert_eq!(leaders, vec![1, 2, 3, 1, 2, 3]);
        assert_eq!(t.partitions[2].replicas, vec![3, 1]);
        assert_eq!(t.partitions[2].isr, vec![3, 1]);
    }

    #[test]
    fn replication_factor_above_brokers_is_refused() {
        let mut img = image_with_brokers(1);
        let r = img.apply(&Command::CreateTopics(vec![new_topic("a", 1, 3)]));
        assert!(matches!(
            r,
            CommandResult::PerItem(ref v) if matches!(v[0], Err(MetadataError::InvalidReplicationFactor(_)))
        ));
    }

    #[test]
    fn colliding_names_are_refused() {
        let mut img = image_with_brokers(1);
        img.apply(&Command::CreateTopics(vec![new_topic("a.b", 1, 1)]));
        let r = img.apply(&Command::CreateTopics(vec![new_topic("a_b", 1, 1)]));
        assert!(
            matches!(r, CommandResult::PerItem(ref v) if matches!(v[0], Err(MetadataError::InvalidTopic(_))))
        );
    }

    #[test]
    fn partitions_grow_but_never_shrink() {
        let mut img = image_with_brokers(2);
        img.apply(&Command::CreateTopics(vec![new_topic("t", 2, 1)]));
        let grow = |total| Command::CreatePartitions {
            topic: "t".into(),
            total,
            assignment: None,
        };
        assert_eq!(img.apply(&grow(5)), CommandResult::Done);
        assert_eq!(img.topics["t"].partitions.len(), 5);
        assert!(matches!(
            img.apply(&grow(3)),
            CommandResult::Failed(MetadataError::InvalidPartitions(_))
        ));
        assert!(matches!(
            img.apply(&Command::CreatePartitions {
                topic: "nope".into(),
                total: 3,
                assignment: None
            }),
            CommandResult::Failed(MetadataError::UnknownTopic(_))
        ));
    }

    #[test]
    fn client_quotas_are_kept_per_entity_and_dropped_when_empty() {
        let mut img = image_with_brokers(1);
        let entity = |user: Option<&str>, client: Option<Option<&str>>| {
            let mut e = QuotaEntity::new();
            e.insert("user".to_string(), user.map(String::from));
            if let Some(c) = client {
                e.insert("client-id".to_string(), c.map(String::from));
            }
            e
        };
        let change = |entity: QuotaEntity, set: &[(&str, f64)], remove: &[&str]| QuotaChange {
            entity,
            set: set
                .iter()
                .map(|(k, v)| (k.to_string(), QuotaValue(*v)))
                .collect(),
            remove: remove.iter().map(|k| k.to_string()).collect(),
        };
        let alice = entity(Some("alice"), None);
        let default_user_and_client = entity(None, Some(None));
        img.apply(&Command::AlterClientQuotas(vec![
            change(alice.clone(), &[("producer_byte_rate", 1024.0)], &[]),
            change(
                default_user_and_client.clone(),
                &[("consumer_byte_rate", 2048.0)],
                &[],
            ),
        ]));
        assert_eq!(img.client_quotas.len(), 2);
        let alice_quota = img.client_quotas.iter().find(|q| q.entity == alice);
        assert_eq!(
            alice_quota.map(|q| q.values["producer_byte_rate"]),
            Some(QuotaValue(1024.0))
        );
        img.apply(&Command::AlterClientQuotas(vec![change(
            alice.clone(),
            &[],
            &["producer_byte_rate"],
        )]));
        assert_eq!(img.client_quotas.len(), 1, "alice has no quota left");
        assert_eq!(img.client_quotas[0].entity, default_user_and_client);
    }

    #[test]
    fn configs_delete_and_producer_ids() {
        let mut img = image_with_brokers(1);
        img.apply(&Command::CreateTopics(vec![new_topic("t", 1, 1)]));
        let mut set = BTreeMap::new();
        set.insert("retention.ms".to_string(), "1000".to_string());
        img.apply(&Command::AlterConfigs(vec![ConfigChange {
            topic: "t".into(),
            set,
            delete: vec![],
        }]));
        assert_eq!(img.topics["t"].configs["retention.ms"], "1000");
        img.apply(&Command::AlterConfigs(vec![ConfigChange {
            topic: "t".into(),
            set: BTreeMap::new(),
            delete: vec!["retention.ms".into()],
        }]));
        assert!(img.topics["t"].configs.is_empty());
        let group_change = |set: &[(&str, &str)], delete: &[&str]| {
            Command::AlterGroupConfigs(GroupConfigChange {
                group: "g".into(),
                set: set
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                delete: delete.iter().map(|k| k.to_string()).collect(),
            })
        };
        img.apply(&group_change(
            &[("consumer.session.timeout.ms", "50000")],
            &[],
        ));
        assert_eq!(
            img.group_configs["g"]["consumer.session.timeout.ms"],
            "50000"
        );
        img.apply(&group_change(&[], &["consumer.session.timeout.ms"]));
        assert!(
            img.group_configs.is_empty(),
            "a group with no overrides left"
        );
        assert_eq!(
            img.apply(&Command::AllocateProducerIds { count: 1000 }),
            CommandResult::ProducerIds { first: 0 }
        );
        assert_eq!(
            img.apply(&Command::AllocateProducerIds { count: 1000 }),
            CommandResult::ProducerIds { first: 1000 }
        );
        assert!(matches!(
            img.apply(&Command::DeleteTopics(vec!["t".into(), "t".into()])),
            CommandResult::PerItem(ref v) if v[0].is_ok() && v[1].is_err()
        ));
    }
}
