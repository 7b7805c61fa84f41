//! The services every handler reaches through `&Broker`.

use std::sync::Arc;

use sluice_controller::ControllerClient;
use sluice_storage::Store;

use crate::config::BrokerConfig;
use crate::coordinator::CoordinatorIo;
use crate::disk_guard::DiskGuard;
use crate::fetch_session::FetchSessions;
use crate::group::GroupCoordinator;
use crate::log_levels::LogLevels;
use crate::producer_ids::ProducerIdAllocator;
use crate::quota::ClientQuotas;
use crate::replication::ReplicaManager;
use crate::request_reader::RequestBudget;
use crate::security::authorizer::Authorizer;
use crate::txn::markers::MarkerIo;
use crate::txn::TxnCoordinator;

/// One broker node's shared state.
pub struct Broker {
    /// This broker's id.
    pub node_id: i32,
    /// Broker configs by Kafka name.
    pub config: BrokerConfig,
    /// Node storage.
    pub store: Arc<Store>,
    /// The metadata controller.
    pub controller: ControllerClient,
    /// Local partition replicas and their roles.
    pub replicas: Arc<ReplicaManager>,
    /// Incremental fetch sessions (KIP-227).
    pub fetch_sessions: FetchSessions,
    /// Producer ids for InitProducerId.
    pub producer_ids: ProducerIdAllocator,
    /// Consumer groups and committed offsets.
    pub groups: GroupCoordinator,
    /// Transactional ids and their transactions.
    pub txns: TxnCoordinator,
    /// The data directory's free-space floor.
    pub disk: DiskGuard,
    /// Client quota sensors.
    pub quotas: ClientQuotas,
    /// Bytes of requests read and not yet answered (`queued.max.request.bytes`).
    pub request_budget: Arc<RequestBudget>,
    /// This node's log levels (the BROKER_LOGGER resource).
    pub log_levels: Arc<LogLevels>,
    /// Checks requests against the ACLs (`authorizer.class.name`).
    pub authorizer: Authorizer,
}

impl Broker {
    /// What the coordinators read and write through.
    pub fn coordinator_io(&self) -> CoordinatorIo<'_> {
        CoordinatorIo {
            node_id: self.node_id,
            store: &self.store,
            replicas: &self.replicas,
            controller: &self.controller,
        }
    }

    /// What writing transaction markers goes through.
    pub fn marker_io(&self) -> MarkerIo<'_> {
        MarkerIo {
            io: self.coordinator_io(),
            groups: &self.groups,
            config: &self.config,
        }
    }
}

/// Handlers take the broker by shared reference.
pub type Ctx = Arc<Broker>;
