//! ControllerClient: start the Raft node, propose commands, watch the metadata image.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, Config, Raft, ServerState};
use sluice_storage::Store;
use tokio::sync::watch;

use crate::error::ControllerError;
use crate::metadata::{BrokerInfo, Command, CommandResult, MetadataImage};
use crate::network::PeerNetwork;
use crate::raft_store::{LogStore, StateMachine, LOG_TABLE, STATE_TABLE};
use crate::TypeConfig;

/// How a node takes part in the controller quorum.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// This node's id.
    pub node_id: u64,
    /// Voters: (node id, controller address).
    pub voters: Vec<(u64, String)>,
    /// How long to wait for the controller to elect a leader at start.
    pub ready_timeout: Duration,
}

/// The system tables the controller needs the store to create.
pub fn system_tables() -> Vec<String> {
    vec![LOG_TABLE.to_string(), STATE_TABLE.to_string()]
}

/// Raft state worth showing (metrics, admin status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftStatus {
    /// Current term.
    pub term: u64,
    /// Current leader, if known.
    pub leader: Option<u64>,
    /// Index of the last log entry.
    pub last_log_index: u64,
    /// Index of the last applied entry.
    pub applied_index: u64,
    /// Whether this node is the leader.
    pub is_leader: bool,
}

/// A handle on this node's controller: cheap to clone.
#[derive(Clone)]
pub struct ControllerClient {
    raft: Raft<TypeConfig>,
    image: watch::Receiver<Arc<MetadataImage>>,
}

impl ControllerClient {
    /// Starts the Raft node on `store`, forms the quorum on first start, waits for a leader.
    pub async fn start(store: &Store, config: &ControllerConfig) -> Result<Self, ControllerError> {
        if config.voters.len() != 1 || config.voters[0].0 != config.node_id {
            return Err(ControllerError::Config(
                "this build runs a single-voter controller: --voters must name only this node"
                    .into(),
            ));
        }
        let log = LogStore::new(
            store.system_table(LOG_TABLE)?,
            store.system_table(STATE_TABLE)?,
        );
        let (sm, image) = StateMachine::open(store.system_table(STATE_TABLE)?)
            .map_err(|e| ControllerError::Raft(e.to_string()))?;
        let raft_config = Config {
            cluster_name: "sluice".into(),
            heartbeat_interval: 100,
            election_timeout_min: 300,
            election_timeout_max: 600,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(1000),
            max_in_snapshot_log_to_keep: 100,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ControllerError::Config(e.to_string()))?;
        let raft = Raft::new(config.node_id, Arc::new(raft_config), PeerNetwork, log, sm)
            .await
            .map_err(|e| ControllerError::Raft(e.to_string()))?;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| ControllerError::Raft(e.to_string()))?;
        if !initialized {
            let members: BTreeMap<u64, BasicNode> = config
                .voters
                .iter()
                .map(|(id, addr)| (*id, BasicNode::new(addr)))
                .collect();
            raft.initialize(members)
                .await
                .map_err(|e| ControllerError::Raft(e.to_string()))?;
        }
        raft.wait(Some(config.ready_timeout))
            .state(ServerState::Leader, "controller leader elected")
            .await
            .map_err(|e| ControllerError::Timeout(e.to_string()))?;
        let client = Self { raft, image };
        // A barrier: once this commits, everything before it is applied to the image.
        if client.image().cluster_id.is_empty() {
            let cluster_id = uuid::Uuid::new_v4().simple().to_string();
            client.execute(Command::InitCluster { cluster_id }).await?;
        } else {
            client
                .execute(Command::AllocateProducerIds { count: 0 })
                .await?;
        }
        Ok(client)
    }

    /// Proposes a command and returns its result once applied.
    pub async fn execute(&self, command: Command) -> Result<CommandResult, ControllerError> {
        let response = self
            .raft
            .client_write(command)
            .await
            .map_err(|e| ControllerError::Raft(e.to_string()))?;
        Ok(response.data)
    }

    /// Registers this node as a broker.
    pub async fn register_broker(&self, info: BrokerInfo) -> Result<(), ControllerError> {
        self.execute(Command::RegisterBroker(info))
            .await
            .map(|_| ())
    }

    /// The latest applied metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.borrow().clone()
    }

    /// A receiver that sees every new image.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.image.clone()
    }

    /// Current Raft state.
    pub fn status(&self) -> RaftStatus {
        let m = self.raft.metrics().borrow().clone();
        RaftStatus {
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index.unwrap_or(0),
            applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
            is_leader: m.state == ServerState::Leader,
        }
    }

    /// Stops the Raft node.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "controller shutdown");
        }
    }
}
