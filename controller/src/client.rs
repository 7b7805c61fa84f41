//! ControllerClient: start this node's Raft member, execute commands (forwarded to the
//! leader when this node is not it), watch the metadata image, report broker liveness.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::raft::AppendEntriesRequest;
use openraft::{BasicNode, Config, Raft, ServerState};
use sluice_storage::Store;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::error::ControllerError;
use crate::metadata::{BrokerInfo, Command, CommandResult, MetadataImage};
use crate::network::PeerNetwork;
use crate::raft_store::{LogStore, StateMachine, LOG_TABLE, STATE_TABLE};
use crate::rpc::{self, RemoteError, Request, Response};
use crate::secret::ClusterSecret;
use crate::TypeConfig;

/// How long `execute` keeps trying to reach a leader with a quorum.
const EXECUTE_TIMEOUT: Duration = Duration::from_secs(15);
/// Timeout of one forwarded request.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a leader transfer waits for its target to lead.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a voter holds back its elections when asked (a transfer that dies half-way
/// must not leave the quorum without candidates for long).
const MAX_ELECTION_HOLD: Duration = Duration::from_secs(30);

/// How a node takes part in the controller quorum.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// This node's id.
    pub node_id: u64,
    /// Voters: (node id, controller address). A node not listed joins as a learner.
    pub voters: Vec<(u64, String)>,
    /// Where this node's controller listens (port 0 picks one: single-node only).
    pub listen_addr: String,
    /// How long to wait for a leader at start.
    pub ready_timeout: Duration,
    /// A broker silent for this long is fenced (`broker.session.timeout.ms`).
    pub broker_session_timeout: Duration,
    /// Proved by both ends of every controller connection, when set.
    pub cluster_secret: Option<ClusterSecret>,
}

/// The system tables the controller needs the store to create.
pub fn system_tables() -> Vec<String> {
    vec![LOG_TABLE.to_string(), STATE_TABLE.to_string()]
}

/// Raft state worth showing (metrics, admin status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftStatus {
    /// This node's id.
    pub node_id: u64,
    /// Current term.
    pub term: u64,
    /// Current leader, if known.
    pub leader: Option<u64>,
    /// Index of the last log entry.
    pub last_log_index: u64,
    /// Index of the last applied entry.
    pub applied_index: u64,
    /// Index of the last committed entry: on the leader, the highest index a quorum of
    /// voters holds; elsewhere the applied index (a lower bound: openraft 0.9 does not
    /// report a follower's commit index).
    pub commit_index: u64,
    /// Whether this node is the leader.
    pub is_leader: bool,
    /// Voters with their controller addresses.
    pub voters: BTreeMap<u64, String>,
    /// Learners with their controller addresses.
    pub learners: BTreeMap<u64, String>,
    /// On the leader: per member, the last log index known to be replicated to it.
    pub replication: BTreeMap<u64, Option<u64>>,
}

/// Broker heartbeats as the leader saw them.
#[derive(Debug, Default)]
struct Liveness {
    last_heartbeat: HashMap<i32, Instant>,
    /// Brokers found silent whose fencing is being committed: their heartbeats are refused
    /// until it is, so that no heartbeat is acknowledged ahead of a fencing already decided.
    fencing: HashSet<i32>,
    /// When this node last became leader: brokers get a full session from then.
    leader_since: Option<Instant>,
    /// The previous liveness check, to notice that this process was paused.
    last_check: Option<Instant>,
    /// Leading, but no quorum of voters' brokers heard for a session: this node is the one
    /// cut off (see `fence_silent_brokers`).
    deaf: bool,
}

impl Liveness {
    /// Broker `id` heartbeated within `session` before `now` (a leader since `since` counts
    /// from then: brokers get a whole session after an election).
    fn heard(&self, id: i32, since: Instant, now: Instant, session: Duration) -> bool {
        let last = self.last_heartbeat.get(&id).copied().unwrap_or(since);
        now.duration_since(last.max(since)) <= session
    }
}

/// How often the leader looks for silent brokers.
const LIVENESS_CHECK: Duration = Duration::from_millis(500);

/// A handle on this node's controller: cheap to clone.
#[derive(Clone)]
pub struct ControllerClient {
    node_id: u64,
    /// The address the controller listener is bound to.
    listen_addr: std::net::SocketAddr,
    raft: Raft<TypeConfig>,
    image: watch::Receiver<Arc<MetadataImage>>,
    liveness: Arc<Mutex<Liveness>>,
    session_timeout: Duration,
    /// The committed index openraft last persisted on this node.
    committed: Arc<std::sync::atomic::AtomicU64>,
    /// The Raft log, read to refuse AppendEntries that contradict its committed entries;
    /// let go at shutdown (a handle kept would hold the RocksDB open past it).
    log: Arc<Mutex<Option<LogStore>>>,
    /// Kafka clients that reached the controller listener (`--bootstrap-controller`), until
    /// the broker takes them.
    kafka_clients: Arc<Mutex<Option<mpsc::Receiver<TcpStream>>>>,
    /// The cluster secret, if any (see `secret.rs`).
    secret: Option<ClusterSecret>,
    /// Until when this voter starts no elections (another voter is taking over leadership).
    election_hold: Arc<Mutex<Option<Instant>>>,
}

/// Kafka clients on the controller listener waiting for the broker; more are turned away.
const KAFKA_CLIENTS_WAITING: usize = 64;

impl ControllerClient {
    /// Starts the Raft member on `store`: serves peers, forms the quorum on first start (or
    /// joins as a learner), waits until the log is caught up.
    pub async fn start(store: &Store, config: &ControllerConfig) -> Result<Self, ControllerError> {
        let is_voter = config.voters.iter().any(|(id, _)| *id == config.node_id);
        let listener = TcpListener::bind(&config.listen_addr).await.map_err(|e| {
            ControllerError::Config(format!("cannot listen on {}: {e}", config.listen_addr))
        })?;
        let listen_addr = listener.local_addr().map_err(|e| {
            ControllerError::Config(format!("cannot listen on {}: {e}", config.listen_addr))
        })?;
        let own_addr = listen_addr.to_string();
        let log = LogStore::new(
            store.system_table(LOG_TABLE)?,
            store.system_table(STATE_TABLE)?,
        );
        let committed = log.committed_index();
        let (kafka_tx, kafka_rx) = mpsc::channel(KAFKA_CLIENTS_WAITING);
        let (sm, image) = StateMachine::open(store.system_table(STATE_TABLE)?)
            .map_err(|e| ControllerError::Raft(e.to_string()))?;
        let raft_config = Config {
            cluster_name: "sluice".into(),
            heartbeat_interval: 100,
            election_timeout_min: 500,
            election_timeout_max: 1000,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(1000),
            max_in_snapshot_log_to_keep: 100,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ControllerError::Config(e.to_string()))?;
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            PeerNetwork {
                secret: config.cluster_secret.clone(),
            },
            log.clone(),
            sm,
        )
        .await
        .map_err(|e| ControllerError::Raft(e.to_string()))?;
        let client = Self {
            node_id: config.node_id,
            listen_addr,
            raft,
            image,
            liveness: Arc::default(),
            election_hold: Arc::default(),
            session_timeout: config.broker_session_timeout,
            committed,
            log: Arc::new(Mutex::new(Some(log))),
            kafka_clients: Arc::new(Mutex::new(Some(kafka_rx))),
            secret: config.cluster_secret.clone(),
        };
        tokio::spawn(client.clone().accept(listener, kafka_tx));

        let initialized = client
            .raft
            .is_initialized()
            .await
            .map_err(|e| ControllerError::Raft(e.to_string()))?;
        if is_voter && !initialized {
            let members: BTreeMap<u64, BasicNode> = config
                .voters
                .iter()
                .map(|(id, addr)| (*id, BasicNode::new(addr)))
                .collect();
            // Every voter initializes with the same set; all but the first are refused.
            match client.raft.initialize(members).await {
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(ControllerError::Raft(e.to_string())),
            }
        } else if !is_voter && !client.is_member() {
            client
                .join_as_learner(&config.voters, &own_addr, config.ready_timeout)
                .await?;
        }
        client
            .raft
            .wait(Some(config.ready_timeout))
            .metrics(|m| m.current_leader.is_some(), "controller leader known")
            .await
            .map_err(|e| ControllerError::Timeout(e.to_string()))?;
        // A barrier: once this commits and is applied here, the local image is current.
        let cluster_id = new_cluster_id();
        client.execute(Command::InitCluster { cluster_id }).await?;
        tokio::spawn(client.clone().fence_silent_brokers());
        Ok(client)
    }

    /// Proposes a command to the leader (forwarding it when this node is not the leader) and
    /// returns its result once it is applied to the local image too.
    pub async fn execute(&self, command: Command) -> Result<CommandResult, ControllerError> {
        let deadline = Instant::now() + EXECUTE_TIMEOUT;
        let no_quorum = || {
            ControllerError::Timeout(
                "no controller leader with a quorum of voters is reachable".into(),
            )
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(no_quorum());
            }
            let leader =
                match tokio::time::timeout(left, self.raft.client_write(command.clone())).await {
                    Err(_) => return Err(no_quorum()),
                    Ok(Ok(r)) => {
                        self.wait_applied(r.log_id.index).await?;
                        return Ok(r.data);
                    }
                    Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                        f.leader_id.zip(f.leader_node)
                    }
                    Ok(Err(e)) => return Err(ControllerError::Raft(e.to_string())),
                };
            if let Some((id, node)) = leader {
                let req = Request::Execute(command.clone());
                let forwarded = rpc::call_once(
                    &node.addr,
                    self.secret.as_ref(),
                    &req,
                    FORWARD_TIMEOUT.min(left),
                );
                // A leader cut off without a reset (packets lost) would hold the call for
                // the whole timeout, and with it an ISR change every acks=all write waits
                // for: once another leader is elected, ask that one instead.
                let answer = tokio::select! {
                    answer = forwarded => answer,
                    () = self.leader_other_than(id) => {
                        tracing::info!(
                            old = id,
                            "controller leader replaced during a forwarded command; asking \
                             the new one"
                        );
                        continue;
                    }
                };
                match answer {
                    Ok(Response::Executed(Ok((result, index)))) => {
                        self.wait_applied(index).await?;
                        return Ok(result);
                    }
                    Ok(Response::Executed(Err(RemoteError::Failed(e)))) => {
                        return Err(ControllerError::Raft(e))
                    }
                    Ok(_) | Err(_) => {} // not the leader any more, or unreachable: retry
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Registers this node as a broker (and unfences it).
    pub async fn register_broker(&self, info: BrokerInfo) -> Result<(), ControllerError> {
        self.execute(Command::RegisterBroker(info))
            .await
            .map(|_| ())
    }

    /// Tells the leader this broker is alive (a fenced broker is unfenced by it), then waits
    /// until the local image holds everything the leader had applied when it took the
    /// heartbeat: Ok means this broker's image shows any fencing of it that could take effect
    /// before the heartbeat's send time plus the session timeout.
    pub async fn heartbeat(&self, broker_id: i32) -> Result<(), ControllerError> {
        let req = Request::BrokerHeartbeat { broker_id };
        // Well inside the session: a leader that stopped answering (paused, partitioned)
        // must not hold this broker's heartbeats back until a new leader fences it.
        let timeout = (self.session_timeout / 3).max(Duration::from_millis(100));
        match self.handle_locally_or_forward(req, timeout).await? {
            Response::HeartbeatTaken(Ok(index)) => self.wait_applied_for(index, timeout).await,
            other => Err(ControllerError::Raft(format!(
                "heartbeat refused: {other:?}"
            ))),
        }
    }

    /// Makes exactly these nodes the voters (each must already be a member: a learner or a
    /// voter); voters left out stay on as learners.
    pub async fn change_voters(&self, voters: BTreeSet<u64>) -> Result<(), ControllerError> {
        let req = Request::ChangeVoters {
            voters: voters.into_iter().collect(),
        };
        match self.handle_locally_or_forward(req, FORWARD_TIMEOUT).await? {
            Response::Done(Ok(())) => Ok(()),
            Response::Done(Err(e)) => Err(ControllerError::Raft(e.to_string())),
            other => Err(ControllerError::Raft(format!("unexpected: {other:?}"))),
        }
    }

    /// Moves Raft leadership to voter `to`: it starts an election, which it wins when its log
    /// is up to date (openraft 0.9 has no transfer call; a triggered election is one). The
    /// other voters hold their elections meanwhile: the first campaign is refused while the
    /// old leader's lease lasts, and without the hold the old leader, stepping down on the
    /// target's higher term, raced it for the next one and often won.
    pub async fn transfer_leader(&self, to: u64) -> Result<(), ControllerError> {
        let status = self.status();
        let addr = status
            .voters
            .get(&to)
            .ok_or_else(|| ControllerError::Config(format!("{to} is not a voter")))?;
        if status.leader == Some(to) {
            return Ok(());
        }
        let others: Vec<(u64, String)> = status
            .voters
            .iter()
            .filter(|(id, _)| **id != to)
            .map(|(id, addr)| (*id, addr.clone()))
            .collect();
        self.hold_elections_of(&others, TRANSFER_TIMEOUT + FORWARD_TIMEOUT)
            .await;
        let transferred = self.campaign_and_wait(to, addr).await;
        self.hold_elections_of(&others, Duration::ZERO).await;
        transferred
    }

    async fn campaign_and_wait(&self, to: u64, addr: &str) -> Result<(), ControllerError> {
        let done = if to == self.node_id {
            Response::Done(self.campaign().await)
        } else {
            rpc::call_once(addr, self.secret.as_ref(), &Request::Elect, FORWARD_TIMEOUT)
                .await
                .map_err(|e| ControllerError::Raft(e.to_string()))?
        };
        match done {
            Response::Done(Ok(())) => {}
            other => {
                return Err(ControllerError::Raft(format!(
                    "election refused: {other:?}"
                )))
            }
        }
        self.raft
            .wait(Some(TRANSFER_TIMEOUT))
            .metrics(|m| m.current_leader == Some(to), "leadership transferred")
            .await
            .map(|_| ())
            .map_err(|e| ControllerError::Timeout(e.to_string()))
    }

    /// Whether `r` claims an entry this node holds as committed under another id. No leader
    /// elected by Raft's rules sends one (it holds every committed entry), only a process
    /// that lies about its vote (found by the controller_rpc fuzz target: a seed's made-up
    /// leader of the same term made openraft truncate committed entries, then panic applying
    /// them).
    fn rewrites_committed(&self, r: &AppendEntriesRequest<TypeConfig>) -> bool {
        let Some(log) = self.log.lock().ok().and_then(|l| l.clone()) else {
            return false;
        };
        let committed = self.committed.load(std::sync::atomic::Ordering::Acquire);
        let claimed = r
            .prev_log_id
            .iter()
            .chain(r.entries.iter().map(|e| &e.log_id));
        claimed
            .filter(|id| id.index <= committed)
            .any(|id| match log.log_id_at(id.index) {
                Ok(Some(ours)) => ours != *id,
                // Purged into the snapshot (so committed and matching) or unreadable: openraft
                // decides.
                _ => false,
            })
    }

    /// Starts an election on this node.
    async fn campaign(&self) -> Result<(), RemoteError> {
        let elected = self.raft.trigger().elect().await;
        elected.map_err(|e| RemoteError::Failed(e.to_string()))
    }

    /// Asks `voters` (this node among them or not) to hold their elections for `hold`, or to
    /// end a hold (`Duration::ZERO`). Best effort: an unreachable voter cannot campaign either.
    async fn hold_elections_of(&self, voters: &[(u64, String)], hold: Duration) {
        let request = Request::HoldElections {
            millis: u64::try_from(hold.as_millis()).unwrap_or(u64::MAX),
        };
        let calls = voters.iter().map(|(id, addr)| {
            let request = &request;
            async move {
                if *id == self.node_id {
                    self.hold_elections(hold);
                    return;
                }
                let held = rpc::call_once(addr, self.secret.as_ref(), request, FORWARD_TIMEOUT);
                if let Err(e) = held.await {
                    tracing::warn!(voter = id, error = %e, "could not hold its elections");
                }
            }
        });
        futures::future::join_all(calls).await;
    }

    /// Starts no election for `hold` (capped), or again at once for `Duration::ZERO`. The
    /// hold ends by itself, whatever becomes of whoever asked for it.
    fn hold_elections(&self, hold: Duration) {
        let Ok(mut until) = self.election_hold.lock() else {
            return;
        };
        if hold.is_zero() {
            *until = None;
            self.raft.runtime_config().elect(true);
            return;
        }
        let end = Instant::now() + hold.min(MAX_ELECTION_HOLD);
        *until = Some(end);
        self.raft.runtime_config().elect(false);
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(end.into()).await;
            let Ok(mut until) = me.election_hold.lock() else {
                return;
            };
            // A later hold moved the end, or a release already re-enabled elections.
            if until.is_some_and(|u| u <= Instant::now()) {
                *until = None;
                me.raft.runtime_config().elect(true);
            }
        });
    }

    /// The address the controller listener is bound to (peers and `--bootstrap-controller`).
    pub fn listen_addr(&self) -> std::net::SocketAddr {
        self.listen_addr
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
        let membership = m.membership_config.membership();
        let voter_ids: BTreeSet<u64> = membership.voter_ids().collect();
        let mut voters = BTreeMap::new();
        let mut learners = BTreeMap::new();
        for (id, node) in membership.nodes() {
            if voter_ids.contains(id) {
                voters.insert(*id, node.addr.clone());
            } else {
                learners.insert(*id, node.addr.clone());
            }
        }
        let replication: BTreeMap<u64, Option<u64>> = m
            .replication
            .as_ref()
            .map(|r| {
                r.iter()
                    .map(|(id, log)| (*id, log.map(|l| l.index)))
                    .collect()
            })
            .unwrap_or_default();
        let last_log_index = m.last_log_index.unwrap_or(0);
        let applied_index = m.last_applied.map(|l| l.index).unwrap_or(0);
        // What openraft persisted as committed, on followers too (it may trail the leader by
        // a heartbeat); never below what this node has applied.
        let commit_index = self
            .committed
            .load(std::sync::atomic::Ordering::Acquire)
            .max(applied_index);
        RaftStatus {
            node_id: self.node_id,
            commit_index,
            term: m.current_term,
            leader: m.current_leader,
            last_log_index,
            applied_index,
            is_leader: m.state == ServerState::Leader,
            voters,
            learners,
            replication,
        }
    }

    /// Stops the Raft node.
    pub async fn shutdown(&self) {
        if let Ok(mut log) = self.log.lock() {
            log.take();
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "controller shutdown");
        }
    }

    fn is_member(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        m.membership_config
            .membership()
            .get_node(&self.node_id)
            .is_some()
    }

    /// Resolves once this node's Raft follows a leader other than `leader`.
    async fn leader_other_than(&self, leader: u64) {
        let mut metrics = self.raft.metrics();
        loop {
            if metrics
                .borrow_and_update()
                .current_leader
                .is_some_and(|l| l != leader)
            {
                return;
            }
            if metrics.changed().await.is_err() {
                // Raft stopped: only the call's own timeout ends the wait.
                std::future::pending::<()>().await;
            }
        }
    }

    async fn wait_applied(&self, index: u64) -> Result<(), ControllerError> {
        self.wait_applied_for(index, EXECUTE_TIMEOUT).await
    }

    async fn wait_applied_for(&self, index: u64, timeout: Duration) -> Result<(), ControllerError> {
        self.raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(index), "command applied locally")
            .await
            .map(|_| ())
            .map_err(|e| ControllerError::Timeout(e.to_string()))
    }

    /// Asks the voters, until one leader accepts, to add this node as a learner.
    async fn join_as_learner(
        &self,
        voters: &[(u64, String)],
        addr: &str,
        timeout: Duration,
    ) -> Result<(), ControllerError> {
        let deadline = Instant::now() + timeout;
        let req = Request::AddLearner {
            id: self.node_id,
            addr: addr.to_string(),
        };
        while Instant::now() < deadline {
            for (_, voter) in voters {
                if let Ok(Response::Done(Ok(()))) =
                    rpc::call_once(voter, self.secret.as_ref(), &req, FORWARD_TIMEOUT).await
                {
                    tracing::info!(voter = %voter, "joined the controller quorum as a learner");
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Err(ControllerError::Timeout(
            "no controller voter accepted this node as a learner".into(),
        ))
    }

    /// Runs `req` here if this node leads, else sends it to the leader.
    async fn handle_locally_or_forward(
        &self,
        req: Request,
        timeout: Duration,
    ) -> Result<Response, ControllerError> {
        let m = self.raft.metrics().borrow().clone();
        match m.current_leader {
            Some(l) if l == self.node_id => Ok(self.handle(req).await),
            Some(l) => {
                let addr = m
                    .membership_config
                    .membership()
                    .get_node(&l)
                    .map(|n| n.addr.clone())
                    .ok_or_else(|| ControllerError::Raft(format!("leader {l} has no address")))?;
                rpc::call_once(&addr, self.secret.as_ref(), &req, timeout)
                    .await
                    .map_err(|e| ControllerError::Raft(e.to_string()))
            }
            None => Err(ControllerError::Timeout("no controller leader".into())),
        }
    }

    /// The Kafka clients that connect to this node's controller listener, as Kafka's tools
    /// do with `--bootstrap-controller`: the broker serves them the controller's Kafka APIs.
    /// `None` once taken.
    pub fn take_kafka_clients(&self) -> Option<mpsc::Receiver<TcpStream>> {
        self.kafka_clients.lock().ok()?.take()
    }

    async fn accept(self, listener: TcpListener, kafka_clients: mpsc::Sender<TcpStream>) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let me = self.clone();
            let kafka_clients = kafka_clients.clone();
            tokio::spawn(async move {
                if rpc::speaks_kafka(&stream).await {
                    // Turned away (closed) when nobody serves them or too many wait.
                    let _ = kafka_clients.try_send(stream);
                    return;
                }
                let secret = me.secret.clone();
                rpc::serve_connection(stream, secret.as_ref(), |req| {
                    let me = me.clone();
                    async move { me.handle(req).await }
                })
                .await
            });
        }
    }

    /// Serves one request from a peer (or from this node, for leader-only work).
    async fn handle(&self, req: Request) -> Response {
        match req {
            Request::AppendEntries(r) if self.rewrites_committed(&r) => {
                let vote = r.vote;
                tracing::warn!(%vote, "refused an AppendEntries contradicting committed entries");
                Response::Done(Err(RemoteError::Failed(
                    "refused: it contradicts committed entries".into(),
                )))
            }
            Request::AppendEntries(r) => Response::AppendEntries(self.raft.append_entries(r).await),
            Request::Vote(r) => Response::Vote(self.raft.vote(r).await),
            Request::InstallSnapshot(r) => {
                Response::InstallSnapshot(self.raft.install_snapshot(r).await)
            }
            Request::Execute(command) => {
                let written =
                    tokio::time::timeout(FORWARD_TIMEOUT, self.raft.client_write(command)).await;
                Response::Executed(match written {
                    Ok(Ok(r)) => Ok((r.data, r.log_id.index)),
                    Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                        Err(RemoteError::NotLeader(f.leader_id))
                    }
                    Ok(Err(e)) => Err(RemoteError::Failed(e.to_string())),
                    Err(_) => Err(RemoteError::Failed("no quorum: commit timed out".into())),
                })
            }
            Request::HoldElections { millis } => {
                self.hold_elections(Duration::from_millis(millis));
                Response::Done(Ok(()))
            }
            Request::Elect => Response::Done(self.campaign().await),
            Request::AddLearner { id, addr } => {
                let added = self.raft.add_learner(id, BasicNode::new(addr), false).await;
                Response::Done(added.map(|_| ()).map_err(not_leader_or_failed))
            }
            Request::ChangeVoters { voters } => {
                let ids: BTreeSet<u64> = voters.into_iter().collect();
                let changed = self.raft.change_membership(ids.clone(), true).await;
                if changed.is_ok() && !ids.contains(&self.node_id) {
                    let me = self.clone();
                    tokio::spawn(async move { me.hand_over_leadership().await });
                }
                Response::Done(changed.map(|_| ()).map_err(not_leader_or_failed))
            }
            Request::BrokerHeartbeat { broker_id } => {
                let (state, leader) = {
                    let m = self.raft.metrics();
                    let m = m.borrow();
                    (m.state, m.current_leader)
                };
                if state != ServerState::Leader {
                    return Response::HeartbeatTaken(Err(RemoteError::NotLeader(leader)));
                }
                {
                    let Ok(mut l) = self.liveness.lock() else {
                        return Response::HeartbeatTaken(Err(RemoteError::Failed(
                            "liveness state poisoned".into(),
                        )));
                    };
                    if l.fencing.contains(&broker_id) {
                        return Response::HeartbeatTaken(Err(RemoteError::Failed(
                            "this broker is being fenced".into(),
                        )));
                    }
                    l.last_heartbeat.insert(broker_id, Instant::now());
                    // A leader the quorum may have replaced grants no lease: the broker
                    // (its own included) would go on serving on a stale image.
                    if l.deaf {
                        return Response::HeartbeatTaken(Err(RemoteError::Failed(
                            "this controller leader hears no quorum of voters".into(),
                        )));
                    }
                }
                // Read after the `fencing` check: a fencing of this broker is either still
                // in the set (refused above) or applied by now, so within this index.
                let applied = self
                    .raft
                    .metrics()
                    .borrow()
                    .last_applied
                    .map(|l| l.index)
                    .unwrap_or(0);
                let fenced = self
                    .image()
                    .brokers
                    .get(&broker_id)
                    .is_some_and(|b| b.fenced);
                if fenced {
                    let me = self.clone();
                    tokio::spawn(async move {
                        tracing::info!(broker_id, "broker is back: unfencing");
                        if let Err(e) = me.execute(Command::UnfenceBroker { id: broker_id }).await {
                            tracing::warn!(broker_id, error = %e, "unfencing failed");
                        }
                    });
                }
                Response::HeartbeatTaken(Ok(applied))
            }
        }
    }

    /// A leader just removed from the voters hands leadership to the voter its log reached
    /// furthest: openraft lets a learner go on leading, KRaft's leader resigns (and an
    /// operator removing it means to move the quorum off it).
    async fn hand_over_leadership(&self) {
        let status = self.status();
        let Some(to) = status
            .voters
            .keys()
            .max_by_key(|id| status.replication.get(id).copied().flatten())
        else {
            return;
        };
        match self.transfer_leader(*to).await {
            Ok(()) => tracing::info!(to, "removed from the voters: leadership handed over"),
            Err(e) => tracing::warn!(to, error = %e, "removed from the voters; handover failed"),
        }
    }

    /// On the leader: fences brokers whose heartbeats stopped for a whole session.
    async fn fence_silent_brokers(self) {
        let mut tick = tokio::time::interval(LIVENESS_CHECK);
        loop {
            tick.tick().await;
            let leading = self.raft.metrics().borrow().state == ServerState::Leader;
            let now = Instant::now();
            let silent: Vec<i32> = {
                let Ok(mut l) = self.liveness.lock() else {
                    continue;
                };
                let paused = l
                    .last_check
                    .replace(now)
                    .is_some_and(|t| now.duration_since(t) > 4 * LIVENESS_CHECK);
                if !leading {
                    l.leader_since = None;
                    if l.deaf {
                        l.deaf = false;
                        self.raft.runtime_config().heartbeat(true);
                    }
                    continue;
                }
                if paused {
                    // This process was stopped (SIGSTOP, a VM pause): the heartbeats brokers
                    // sent meanwhile are still unread, so silence proves nothing yet. Brokers
                    // get a fresh session, as after an election.
                    tracing::warn!("liveness checks were paused: giving brokers a new session");
                    l.leader_since = Some(now);
                }
                let since = *l.leader_since.get_or_insert(now);
                // Every voter is a broker too: a leader hearing fewer than a quorum of them
                // either has no quorum (nothing it decides commits) or cannot receive while
                // its own messages still go out (openraft pushes, so its followers would
                // never elect another). Either way it is the one cut off: it fences no one
                // and stops its Raft heartbeats, so the others elect a leader they can
                // reach (KRaft's leader resigns for the same silence: check quorum).
                let voters: Vec<u64> = self
                    .raft
                    .metrics()
                    .borrow()
                    .membership_config
                    .membership()
                    .voter_ids()
                    .collect();
                let heard_voters = voters
                    .iter()
                    .filter(|v| {
                        **v == self.node_id || l.heard(**v as i32, since, now, self.session_timeout)
                    })
                    .count();
                let deaf = heard_voters < voters.len() / 2 + 1;
                if deaf != l.deaf {
                    l.deaf = deaf;
                    self.raft.runtime_config().heartbeat(!deaf);
                    if deaf {
                        tracing::warn!(
                            heard = heard_voters,
                            voters = voters.len(),
                            "this controller leader hears no quorum of voters' brokers: \
                             stepping aside"
                        );
                    } else {
                        tracing::info!("this controller leader hears a quorum again");
                    }
                }
                if deaf {
                    continue;
                }
                let silent: Vec<i32> = self
                    .image()
                    .brokers
                    .values()
                    .filter(|b| !b.fenced && !l.heard(b.id, since, now, self.session_timeout))
                    .map(|b| b.id)
                    .collect();
                l.fencing.extend(&silent);
                silent
            };
            for id in silent {
                tracing::warn!(broker_id = id, "broker missed its heartbeats: fencing");
                // Written here or nowhere, never forwarded: the silence was measured by this
                // leader. Deposed meanwhile (cut off, it heard no one's heartbeats), its
                // verdict is void; forwarded, it would fence healthy brokers on the new leader.
                let write = self.raft.client_write(Command::FenceBroker { id });
                match tokio::time::timeout(EXECUTE_TIMEOUT, write).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(broker_id = id, error = %e, "fencing failed"),
                    Err(_) => tracing::warn!(broker_id = id, "fencing failed: no quorum"),
                }
                if let Ok(mut l) = self.liveness.lock() {
                    l.fencing.remove(&id);
                }
            }
        }
    }
}

fn not_leader_or_failed(e: RaftError<u64, ClientWriteError<u64, BasicNode>>) -> RemoteError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            RemoteError::NotLeader(f.leader_id)
        }
        other => RemoteError::Failed(other.to_string()),
    }
}

/// A new cluster's id as Kafka writes one: a random UUID in URL-safe base64 without
/// padding (22 characters), never starting with '-' so that command lines take it as a
/// value rather than a flag.
fn new_cluster_id() -> String {
    use base64::Engine;
    loop {
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(uuid::Uuid::new_v4().as_bytes());
        if !id.starts_with('-') {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cluster_ids_look_like_kafkas() {
        for _ in 0..100 {
            let id = super::new_cluster_id();
            assert_eq!(id.len(), 22, "{id}");
            assert!(!id.starts_with('-'), "{id}");
            assert!(id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        }
    }
}
