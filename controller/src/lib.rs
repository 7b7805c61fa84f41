//! # sluice-controller: cluster metadata replicated by Raft
//!
//! ## Layout
//!
//! ```text
//! client.rs      ControllerClient: start the Raft node, execute commands, watch the image
//! metadata.rs    MetadataImage + Command: the pure, deterministic state machine
//! reassign.rs    its replica reassignments (KIP-455): adding, catching up, removing
//! raft_store.rs  openraft log storage and state machine on the node's RocksDB
//! rpc.rs         controller RPC: serde messages in length-prefixed TCP frames
//! frames.rs      its framing: buffers grow as bytes arrive, not to a claimed length
//! network.rs     openraft's peer transport over rpc.rs
//! error.rs       ControllerError
//! ```
//!
//! A broker calls `ControllerClient::execute(Command::CreateTopics(..))`; on a node that is
//! not the Raft leader the command is forwarded to it (`rpc.rs`). openraft appends it to the
//! log (`raft_store::LogStore`), commits it on a quorum of voters, and every node's
//! `raft_store::StateMachine` applies it with `MetadataImage::apply` and publishes the new
//! image on a watch channel that every part of the broker follows; `execute` returns once
//! the local image has it. The leader also fences brokers whose heartbeats stop. openraft
//! types stay inside this crate.

pub mod acl;
mod client;
mod error;
mod frames;
pub mod metadata;
mod network;
mod raft_store;
mod reassign;
mod rpc;
pub mod secret;

pub use acl::{AclBinding, AclFilter};
pub use client::{system_tables, ControllerClient, ControllerConfig, RaftStatus};
pub use error::ControllerError;
pub use metadata::{
    BrokerConfigChange, BrokerEndpoint, BrokerInfo, ClientQuota, Command, CommandResult,
    ConfigChange, GroupConfigChange, MetadataError, MetadataImage, NewTopic, PartitionInfo,
    QuotaChange, QuotaEntity, QuotaValue, Reassignment, ScramChange, ScramCredential, TopicInfo,
};
#[doc(hidden)]
pub use rpc::example_request_frames;
pub use secret::ClusterSecret;

use std::io::Cursor;

openraft::declare_raft_types!(
    /// openraft type configuration of the metadata log.
    pub TypeConfig:
        D = metadata::Command,
        R = metadata::CommandResult,
);
