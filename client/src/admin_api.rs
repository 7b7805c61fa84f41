//! The HTTP admin API of a Sluice node: what only the controller knows (Raft status,
//! brokers, voter changes) plus the node's view of its partitions. The broker serializes
//! these types and `sluice admin` reads them back, so both sides agree on every field.
//! Errors are answered with a non-2xx status and an [`ErrorReply`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// GET: [`Status`].
pub const STATUS: &str = "/admin/status";
/// GET: a list of [`BrokerEntry`].
pub const BROKERS: &str = "/admin/brokers";
/// GET: a list of [`TopicEntry`].
pub const TOPICS: &str = "/admin/topics";
/// GET with a [`DigestQuery`]: a list of [`Digest`].
pub const DIGEST: &str = "/admin/digest";
/// POST a [`LeaderTransfer`]: a [`LeaderTransferred`].
pub const LEADER: &str = "/admin/leader";
/// POST a [`VotersChange`]: a [`Done`].
pub const VOTERS: &str = "/admin/voters";

/// The controller quorum as one node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The answering node.
    pub node_id: u64,
    /// The cluster's id.
    pub cluster_id: String,
    /// The node's wall clock when it answered (ms since the epoch): skew between nodes
    /// shows in record timestamps and time-based retention.
    #[serde(default)]
    pub wall_clock_ms: i64,
    /// The Raft quorum.
    pub raft: Raft,
}

/// The Raft quorum of the controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Raft {
    /// Current term.
    pub term: u64,
    /// Current leader, if known.
    pub leader: Option<u64>,
    /// Whether the answering node leads.
    pub is_leader: bool,
    /// Index of the last log entry.
    pub last_log_index: u64,
    /// Index of the last applied entry.
    pub applied_index: u64,
    /// Voters with their controller addresses.
    pub voters: BTreeMap<u64, String>,
    /// Learners with their controller addresses.
    pub learners: BTreeMap<u64, String>,
    /// On the leader: per member, the last log index known to be replicated to it.
    pub replication: BTreeMap<u64, Option<u64>>,
}

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerEntry {
    /// Broker id.
    pub id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised Kafka port.
    pub port: i32,
    /// `broker.rack`, if set.
    pub rack: Option<String>,
    /// Fenced brokers lead nothing and are out of every ISR.
    pub fenced: bool,
}

/// A topic with its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicEntry {
    /// Topic name.
    pub name: String,
    /// Topic id.
    pub id: Uuid,
    /// Topic config overrides by Kafka name.
    pub configs: BTreeMap<String, String>,
    /// Partitions by index.
    pub partitions: Vec<PartitionEntry>,
}

/// One partition: its metadata, and the offsets of the answering node's replica if it
/// stores one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionEntry {
    /// Partition index.
    pub partition: i32,
    /// Leader broker, -1 for none.
    pub leader: i32,
    /// Leader epoch.
    pub leader_epoch: i32,
    /// Replica set, preferred leader first.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// The local replica's log start offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_start_offset: Option<i64>,
    /// The local replica's log end offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_end_offset: Option<i64>,
    /// The local replica's high watermark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_watermark: Option<i64>,
}

/// Query of [`DIGEST`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DigestQuery {
    /// The topic to digest.
    pub topic: String,
    /// Only this partition (default: every partition the node stores).
    pub partition: Option<i32>,
    /// Digest the batches that end below this offset (default: the replica's high
    /// watermark).
    pub upto: Option<i64>,
}

/// A replica's digest: a CRC-32C over the stored bytes of the batches from its log start
/// whose last offset is below `upto`. In-sync replicas report equal digests for equal `upto`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// Partition index.
    pub partition: i32,
    /// Log start offset.
    pub log_start_offset: i64,
    /// Log end offset.
    pub log_end_offset: i64,
    /// High watermark.
    pub high_watermark: i64,
    /// The bound asked for (or the high watermark).
    pub upto: i64,
    /// Where the digested batches end (a batch straddling `upto` is left out).
    pub covered_end: i64,
    /// Batches digested.
    pub batches: u64,
    /// Bytes digested.
    pub bytes: u64,
    /// CRC-32C of those bytes.
    pub crc32c: u32,
}

/// Body of [`LEADER`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaderTransfer {
    /// The voter to lead.
    pub to: u64,
}

/// Reply of [`LEADER`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaderTransferred {
    /// Always true.
    pub ok: bool,
    /// The new leader.
    pub leader: u64,
}

/// Body of [`VOTERS`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VotersChange {
    /// The new voter set (each must already be a member of the quorum).
    pub voters: Vec<u64>,
}

/// Reply of a change that has nothing more to say.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Done {
    /// Always true.
    pub ok: bool,
}

/// What every endpoint answers on failure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorReply {
    /// What went wrong.
    pub error: String,
}
