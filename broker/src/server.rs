//! Node startup and shutdown: storage, controller, registration, listeners, accept loop.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusHandle;
use sluice_controller::{BrokerEndpoint, BrokerInfo, ControllerClient, ControllerConfig};
use sluice_storage::{Store, StoreConfig};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::{parse_voters, BrokerConfig, ServeArgs};
use crate::connection::{self, BoundListener};
use crate::connection_limits::ConnectionLimits;
use crate::context::{Broker, Ctx};
use crate::disk_guard::DiskGuard;
use crate::fetch_session::FetchSessions;
use crate::group::shard::GroupSettings;
use crate::group::GroupCoordinator;
use crate::http::{self, HttpState};
use crate::log_levels::LogLevels;
use crate::producer_ids::ProducerIdAllocator;
use crate::quota::ClientQuotas;
use crate::replication::fetcher::FetcherCtx;
use crate::replication::ReplicaManager;
use crate::request_reader::RequestBudget;
use crate::request_scope::Listener;
use crate::security::authorizer::Authorizer;
use crate::security::listeners::{self, ListenerSpec};
use crate::security::oauth::OAuthValidator;
use crate::security::tls::TlsListener;
use crate::txn::{TxnCoordinator, TxnSettings};

/// Where a started node listens.
#[derive(Debug, Clone)]
pub struct Serving {
    /// The Kafka listener (the inter-broker one, with `listeners`).
    pub kafka_addr: SocketAddr,
    /// Every Kafka listener: its name and the address it is bound to.
    pub listeners: Vec<(String, SocketAddr)>,
    /// The HTTP listener (/healthz, /metrics, /admin).
    pub http_addr: SocketAddr,
    /// The controller listener (peer controllers, `--bootstrap-controller` clients).
    pub controller_addr: SocketAddr,
}

/// Starts a node and runs it until SIGTERM/SIGINT.
pub async fn run(
    args: ServeArgs,
    metrics: Option<PrometheusHandle>,
    log_levels: Arc<LogLevels>,
) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    tokio::spawn(watch_signals(shutdown.clone()));
    serve(args, metrics, log_levels, shutdown, |_| {}).await
}

/// Starts a node and runs it until `signal` is cancelled, then stops it cleanly;
/// `on_ready` learns its listeners once it serves (port 0 in `args` picks free ones), which
/// is how tests run nodes in process.
pub async fn serve(
    args: ServeArgs,
    metrics: Option<PrometheusHandle>,
    log_levels: Arc<LogLevels>,
    signal: CancellationToken,
    on_ready: impl FnOnce(Serving),
) -> anyhow::Result<()> {
    // The stop has two phases: at `signal` the node hands its leadership over (controlled
    // shutdown) while it still serves, and only then `shutdown` stops everything else, so
    // clients and followers move to the new leaders without waiting for timeouts.
    let shutdown = CancellationToken::new();
    let config = BrokerConfig::parse(&args.configs)?;
    if !args.roles.split(',').any(|r| r.trim() == "broker") {
        anyhow::bail!("controller-only nodes are not supported yet: --roles must include broker");
    }
    let node_id = i32::try_from(args.node_id)?;
    // HTTP comes up first so /healthz can tell "starting" from "down".
    let ready = Arc::new(AtomicBool::new(false));
    let broker_cell = Arc::new(std::sync::OnceLock::new());
    let http_listener = TcpListener::bind(&args.http_addr).await?;
    let http_addr = http_listener.local_addr()?;
    let http_task = tokio::spawn(http::serve(
        http_listener,
        HttpState {
            ready: ready.clone(),
            metrics,
            broker: broker_cell.clone(),
        },
        shutdown.clone(),
    ));

    // Reserve the listeners' ports now (so their numbers can be advertised) but listen only
    // once ready: until then connections are refused rather than left hanging.
    let plan = listeners::plan(&config, &args.kafka_addr, args.advertised_addr.as_deref())?;
    let mut reserved = Vec::with_capacity(plan.listeners.len());
    for spec in &plan.listeners {
        reserved.push(reserve(&config, spec).await?);
    }
    let endpoints: Vec<BrokerEndpoint> = reserved.iter().map(|r| r.endpoint.clone()).collect();
    let peer_security =
        listeners::inter_broker_security(&config, &plan.listeners[plan.inter_broker])?;
    let inter_broker = &reserved[plan.inter_broker];
    let kafka_addr = inter_broker.bound;
    let (adv_host, adv_port) = (
        inter_broker.endpoint.host.clone(),
        inter_broker.endpoint.port,
    );

    std::fs::create_dir_all(&args.data_dir)?;
    let store_config = StoreConfig {
        write_buffer_budget: config.write_buffer_budget(),
        write_buffer_size: config.write_buffer_bytes(),
        block_cache_size: config.block_cache_bytes(),
        system_tables: sluice_controller::system_tables(),
        ..StoreConfig::default()
    };
    let db_dir = args.data_dir.join("db");
    let limits = Arc::new(ConnectionLimits::new(&config)?);
    let started = Instant::now();
    let store =
        Arc::new(tokio::task::spawn_blocking(move || Store::open(&db_dir, &store_config)).await??);
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "storage open"
    );

    let voters = match &args.voters {
        Some(spec) => parse_voters(spec)?,
        None => vec![(args.node_id, args.controller_addr.clone())],
    };
    let own_voter_addr = voters
        .iter()
        .find(|(id, _)| *id == args.node_id)
        .map(|(_, addr)| addr.clone());
    let wants_controller = args.roles.split(',').any(|r| r.trim() == "controller");
    if wants_controller != own_voter_addr.is_some() {
        anyhow::bail!(
            "--roles controller and --voters disagree: a node is a controller exactly when \
             --voters lists it (others join as Raft learners with --roles broker)"
        );
    }
    let controller = ControllerClient::start(
        &store,
        &ControllerConfig {
            node_id: args.node_id,
            listen_addr: own_voter_addr.unwrap_or_else(|| args.controller_addr.clone()),
            voters,
            ready_timeout: Duration::from_secs(60),
            broker_session_timeout: config.broker_session_timeout(),
            cluster_secret: config.cluster_secret()?,
        },
    )
    .await?;
    controller
        .register_broker(BrokerInfo {
            id: node_id,
            host: adv_host.clone(),
            port: adv_port,
            rack: config.get("broker.rack").filter(|r| !r.is_empty()),
            fenced: false,
            endpoints: endpoints.clone(),
        })
        .await?;

    let ctx: Ctx = Arc::new(Broker {
        node_id,
        fetch_sessions: FetchSessions::new(config.fetch_session_slots()),
        replicas: Arc::new(ReplicaManager::new(
            node_id,
            store.clone(),
            config.broker_session_timeout(),
        )),
        store: store.clone(),
        controller: controller.clone(),
        producer_ids: ProducerIdAllocator::default(),
        quotas: ClientQuotas::new(&config),
        request_budget: Arc::new(RequestBudget::new(config.queued_max_request_bytes())),
        log_levels,
        groups: GroupCoordinator::new(
            GroupSettings {
                initial_delay: config.group_initial_rebalance_delay(),
                consumer_session: config.consumer_session_timeout(),
            },
            config.offsets_topic_partitions(),
            config.offsets_topic_replication_factor(),
            config.offsets_commit_timeout(),
        ),
        txns: TxnCoordinator::new(
            TxnSettings {
                partitions: config.txn_topic_partitions(),
                replication_factor: config.txn_topic_replication_factor(),
                min_isr: config.txn_topic_min_isr(),
                max_timeout_ms: config.txn_max_timeout_ms(),
                id_expiration_ms: config.txn_id_expiration_ms(),
            },
            peer_security.clone(),
        ),
        disk: DiskGuard::new(args.data_dir.clone(), config.min_free_bytes()),
        authorizer: Authorizer::from_config(&config)?,
        config,
    });
    // The first heartbeat before serving, so that the lease is held from the start.
    let sent = Instant::now();
    match ctx.controller.heartbeat(node_id).await {
        Ok(()) => ctx.replicas.lease().renew(sent),
        Err(e) => tracing::warn!(error = %e, "first broker heartbeat not delivered"),
    }
    ctx.replicas.reconcile(&ctx.controller).await?;
    let loaded = ctx.groups.follow_leadership(ctx.coordinator_io())?;
    tracing::info!(records = loaded, "committed offsets loaded");
    let loaded = ctx.txns.follow_leadership(ctx.coordinator_io())?;
    tracing::info!(records = loaded, "transaction state loaded");
    // Every task that holds the broker is tracked, so that a stop waits for all of them and
    // the store is really closed (its RocksDB lock released) when `serve` returns.
    let background = tokio_util::task::TaskTracker::new();
    background.spawn(follow_metadata(ctx.clone(), shutdown.clone()));
    // Heartbeats stop first: one arriving after the controlled shutdown would unfence it.
    background.spawn(send_heartbeats(ctx.clone(), signal.clone()));
    background.spawn(crate::replication::fetcher::run(
        FetcherCtx {
            node_id,
            store: ctx.store.clone(),
            replicas: ctx.replicas.clone(),
            controller: ctx.controller.clone(),
            security: peer_security.clone(),
        },
        shutdown.clone(),
    ));
    background.spawn(maintain_isr(ctx.clone(), shutdown.clone()));
    if let Some(every) = ctx.config.leader_rebalance_interval() {
        background.spawn(rebalance_leaders(ctx.clone(), every, shutdown.clone()));
    }
    background.spawn(tick_groups(ctx.clone(), shutdown.clone()));
    background.spawn(complete_transactions(ctx.clone(), shutdown.clone()));
    background.spawn(clean_logs(ctx.clone(), shutdown.clone()));
    background.spawn(flush_logs(ctx.clone(), shutdown.clone()));
    background.spawn(watch_disk(ctx.clone(), shutdown.clone()));
    background.spawn(enforce_retention(ctx.clone(), shutdown.clone()));
    crate::metrics::register(
        crate::handlers::api_versions::SUPPORTED_APIS
            .iter()
            .map(|(key, ..)| *key),
    );
    background.spawn(crate::stats::run(ctx.clone(), shutdown.clone()));

    let mut accepting = Vec::with_capacity(reserved.len());
    for r in reserved {
        accepting.push((r.socket.listen(1024)?, r.listener));
    }
    let _ = broker_cell.set(ctx.clone());
    ready.store(true, Ordering::Release);
    let listeners: Vec<(String, SocketAddr)> = endpoints
        .iter()
        .zip(&accepting)
        .filter_map(|(e, (l, _))| Some((e.listener.to_string(), l.local_addr().ok()?)))
        .collect();
    let bound: Vec<String> = listeners
        .iter()
        .map(|(name, addr)| format!("{name}://{addr}"))
        .collect();
    println!(
        "sluice ready: node_id={node_id} kafka={kafka_addr} listeners={} \
         advertised={adv_host}:{adv_port} http={http_addr} data_dir={}",
        bound.join(","),
        args.data_dir.display()
    );
    tracing::info!(%kafka_addr, %http_addr, "serving");
    on_ready(Serving {
        kafka_addr,
        listeners,
        http_addr,
        controller_addr: ctx.controller.listen_addr(),
    });

    if let Some(clients) = ctx.controller.take_kafka_clients() {
        background.spawn(serve_controller_listener(
            ctx.clone(),
            clients,
            shutdown.clone(),
        ));
    }
    // max.connections counts the connections of every listener together.
    let connection_slots = Arc::new(Semaphore::new(
        ctx.config.max_connections().min(Semaphore::MAX_PERMITS),
    ));
    let accept_loops = tokio_util::task::TaskTracker::new();
    for (socket, listener) in accepting {
        accept_loops.spawn(accept_loop(
            ctx.clone(),
            socket,
            Arc::new(listener),
            limits.clone(),
            connection_slots.clone(),
            shutdown.clone(),
        ));
    }
    accept_loops.close();
    signal.cancelled().await;
    tracing::info!("shutting down");
    if hand_over_leadership(&ctx).await {
        tracing::info!("controlled shutdown: leadership moved to other replicas");
    }
    shutdown.cancel();
    accept_loops.wait().await;
    ready.store(false, Ordering::Release);
    background.close();
    let stopped = tokio::time::timeout(Duration::from_secs(10), async {
        background.wait().await;
        let _ = http_task.await;
    });
    if stopped.await.is_err() {
        tracing::warn!("background tasks still running 10 s after the stop began");
    }
    controller.shutdown().await;
    drop(broker_cell);
    drop(ctx);
    tokio::task::spawn_blocking(move || {
        store.close()?;
        if Arc::strong_count(&store) > 1 {
            tracing::warn!(
                "the store is still shared at shutdown: it closes when the last user stops"
            );
        }
        drop(store);
        Ok::<_, anyhow::Error>(())
    })
    .await??;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// A listener's port, bound but not yet listening.
struct Reserved {
    socket: TcpSocket,
    bound: SocketAddr,
    endpoint: BrokerEndpoint,
    listener: BoundListener,
}

/// Binds `spec`'s address and sets up its TLS.
async fn reserve(config: &BrokerConfig, spec: &ListenerSpec) -> anyhow::Result<Reserved> {
    let addr: SocketAddr = tokio::net::lookup_host(&spec.bind)
        .await?
        .next()
        .ok_or_else(|| anyhow::anyhow!("cannot resolve {}", spec.bind))?;
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket
        .bind(addr)
        .map_err(|e| anyhow::anyhow!("listener {} at {addr}: {e}", spec.name))?;
    let bound = socket.local_addr()?;
    let (host, port) = spec
        .advertised
        .clone()
        .unwrap_or_else(|| (bound.ip().to_string(), i32::from(bound.port())));
    let tls = if spec.protocol.uses_tls() {
        Some(TlsListener::from_config(config, &spec.name)?)
    } else {
        None
    };
    let wants_oauth = spec.protocol.uses_sasl()
        && config
            .sasl_enabled_mechanisms()
            .iter()
            .any(|m| m == "OAUTHBEARER");
    let oauth = if wants_oauth {
        let validator = OAuthValidator::from_config(config, &spec.name)?;
        if validator.is_unsecured() {
            tracing::warn!(
                listener = %spec.name,
                "OAUTHBEARER takes unsigned tokens (Kafka's unsecured validator): set \
                 sasl.oauthbearer.jwks.endpoint.url outside development"
            );
        }
        Some(validator)
    } else {
        None
    };
    Ok(Reserved {
        socket,
        bound,
        endpoint: BrokerEndpoint {
            listener: spec.name.clone(),
            host,
            port,
            security_protocol: spec.protocol as i16,
        },
        listener: BoundListener {
            name: spec.name.clone(),
            kind: Listener::Broker,
            protocol: spec.protocol,
            tls,
            oauth,
        },
    })
}

async fn accept_loop(
    ctx: Ctx,
    socket: TcpListener,
    listener: Arc<BoundListener>,
    limits: Arc<ConnectionLimits>,
    limit: Arc<Semaphore>,
    shutdown: CancellationToken,
) {
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = limit.clone().acquire_owned() => p,
        };
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = socket.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                let now = Instant::now();
                let pause = limits.record_created(now);
                let Some(slot) = limits.admit(peer.ip()) else {
                    tracing::info!(%peer, "closing connection: max.connections.per.ip reached");
                    continue;
                };
                let hold = limits.record_created_by(&ctx.controller.image(), peer.ip(), now);
                if hold.is_zero() {
                    let (ctx, listener) = (ctx.clone(), listener.clone());
                    let token = shutdown.clone();
                    connections.spawn(async move {
                        connection::serve(ctx, stream, listener, token).await;
                        drop((slot, permit));
                    });
                } else {
                    tracing::debug!(%peer, ?hold, "closing connection: connection_creation_rate reached");
                    crate::metrics::record_connection_throttled("ip_connection_creation_rate");
                    connections.spawn(async move {
                        tokio::time::sleep(hold).await;
                        drop((stream, slot, permit));
                    });
                }
                if !pause.is_zero() {
                    crate::metrics::record_connection_throttled("max_connection_creation_rate");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    connections.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), connections.wait()).await;
}

/// Kafka clients of the controller listener (`--bootstrap-controller`), handed over by the
/// controller: served the controller's Kafka APIs, a few at a time (they are tools).
async fn serve_controller_listener(
    ctx: Ctx,
    mut clients: tokio::sync::mpsc::Receiver<tokio::net::TcpStream>,
    shutdown: CancellationToken,
) {
    const AT_ONCE: usize = 16;
    let limit = Arc::new(Semaphore::new(AT_ONCE));
    let listener = Arc::new(BoundListener {
        name: "CONTROLLER".into(),
        kind: Listener::Controller,
        protocol: crate::security::SecurityProtocol::Plaintext,
        tls: None,
        oauth: None,
    });
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            s = clients.recv() => match s { Some(s) => s, None => break },
        };
        // Past the limit a client is closed rather than queued.
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            continue;
        };
        let (ctx, token, listener) = (ctx.clone(), shutdown.clone(), listener.clone());
        connections.spawn(async move {
            connection::serve(ctx, stream, listener, token).await;
            drop(permit);
        });
    }
    connections.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), connections.wait()).await;
}

/// Takes this node's dynamic broker configs (and the cluster's defaults) from the metadata.
fn apply_dynamic_configs(ctx: &Ctx) {
    let image = ctx.controller.image();
    ctx.config.set_dynamic(
        image.broker_configs.get(&ctx.node_id.to_string()),
        image.broker_configs.get(""),
    );
}

/// Applies every new metadata image to the local replicas.
async fn follow_metadata(ctx: Ctx, shutdown: CancellationToken) {
    let mut images = ctx.controller.subscribe();
    apply_dynamic_configs(&ctx);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = images.changed() => if changed.is_err() { return },
        }
        images.borrow_and_update();
        apply_dynamic_configs(&ctx);
        if let Err(e) = ctx.replicas.reconcile(&ctx.controller).await {
            tracing::error!(error = %e, "applying metadata to local replicas failed");
        }
        // Coordinator partitions this node now leads (a coordinator elsewhere was lost).
        let task_ctx = ctx.clone();
        match tokio::task::spawn_blocking(move || {
            let io = task_ctx.coordinator_io();
            let groups = task_ctx.groups.follow_leadership(io)?;
            let txns = task_ctx.txns.follow_leadership(io)?;
            Ok::<_, crate::error::BrokerError>((groups, txns))
        })
        .await
        {
            Ok(Ok((0, 0))) => {}
            Ok(Ok((groups, txns))) => {
                tracing::info!(groups, txns, "took over coordination (records replayed)")
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "loading coordinator state failed"),
            Err(e) => tracing::warn!(error = %e, "loading coordinator state"),
        }
    }
}

/// Hands this broker's partition leadership to other ISR members by fencing itself (before
/// stopping, so clients move on without waiting for a session timeout; below the free-space
/// floor). False when no other broker is live or the fencing failed.
async fn hand_over_leadership(ctx: &Ctx) -> bool {
    let image = ctx.controller.image();
    let others = image.live_brokers().iter().any(|b| *b != ctx.node_id);
    if !others {
        return false;
    }
    let fence = ctx
        .controller
        .execute(sluice_controller::Command::FenceBroker { id: ctx.node_id });
    match tokio::time::timeout(Duration::from_secs(5), fence).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "handing leadership over failed");
            return false;
        }
        Err(_) => {
            tracing::warn!("handing leadership over timed out");
            return false;
        }
    }
    // Once this node's image shows it fenced, its replicas step down: writes waiting for
    // acks as leader are answered NOT_LEADER_OR_FOLLOWER now, not at their timeout.
    let fenced = async {
        let mut images = ctx.controller.subscribe();
        loop {
            let me = ctx
                .controller
                .image()
                .brokers
                .get(&ctx.node_id)
                .map(|b| b.fenced);
            if me != Some(false) || images.changed().await.is_err() {
                return;
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(2), fenced)
        .await
        .is_ok()
    {
        if let Err(e) = ctx.replicas.reconcile(&ctx.controller).await {
            tracing::warn!(error = %e, "stepping down as leader");
        }
    }
    true
}

/// Tells the controller leader this broker is alive (it fences brokers that go quiet).
///
/// Below the free-space floor, where this node refuses produce requests, it hands its
/// leadership to replicas with room and stops heartbeating, so the controller keeps it
/// fenced (Kafka's broker stops when its only log dir fails, to the same end: its
/// partitions stay writable elsewhere). Heartbeats resume, and unfence it, once space is
/// back. A node with no live peer keeps serving reads.
async fn send_heartbeats(ctx: Ctx, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(ctx.config.broker_heartbeat_interval());
    let mut stepped_down = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        if ctx.disk.is_below() {
            if !stepped_down && hand_over_leadership(&ctx).await {
                tracing::warn!("disk below log.dir.min.free.bytes: leadership handed over");
                stepped_down = true;
            }
            if stepped_down {
                continue;
            }
        } else if stepped_down {
            tracing::info!("free space is back: heartbeating again");
            stepped_down = false;
        }
        let sent = Instant::now();
        match ctx.controller.heartbeat(ctx.node_id).await {
            Ok(()) => ctx.replicas.lease().renew(sent),
            Err(e) => tracing::debug!(error = %e, "broker heartbeat not delivered"),
        }
    }
}

/// As a leader, shrinks and expands ISRs as followers fall behind and catch up.
async fn maintain_isr(ctx: Ctx, shutdown: CancellationToken) {
    let period = (ctx.config.replica_lag_time_max() / 4)
        .clamp(Duration::from_millis(100), Duration::from_secs(2));
    let mut interval = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        crate::replication::propose_isr_changes(
            &ctx.replicas,
            &ctx.controller,
            ctx.config.replica_lag_time_max(),
        )
        .await;
    }
}

/// On the controller leader: leadership back to preferred replicas, now and then.
async fn rebalance_leaders(ctx: Ctx, every: Duration, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(every);
    interval.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        let moved = crate::replication::rebalance_preferred_leaders(&ctx.controller).await;
        if moved > 0 {
            tracing::info!(
                partitions = moved,
                "leadership moved back to preferred replicas"
            );
        }
    }
}

/// Drives group session expiry and join deadlines.
async fn tick_groups(ctx: Ctx, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => ctx.groups.tick(ctx.coordinator_io()).await,
        }
    }
}

/// Finishes transactions whose markers are not all written and aborts timed-out ones.
async fn complete_transactions(ctx: Ctx, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => ctx.txns.run_timers(ctx.marker_io()).await,
        }
    }
}

/// Fsyncs for topics with a finite `flush.ms`.
async fn flush_logs(ctx: Ctx, shutdown: CancellationToken) {
    loop {
        let task_ctx = ctx.clone();
        let wait = tokio::task::spawn_blocking(move || crate::flusher::flush_due(&task_ctx))
            .await
            .unwrap_or(Duration::from_secs(1));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Re-reads the data directory's free space every second.
async fn watch_disk(ctx: Ctx, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => ctx.disk.check(),
        }
    }
}

/// Compacts `cleanup.policy=compact` topics every `log.cleaner.backoff.ms`.
async fn clean_logs(ctx: Ctx, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(ctx.config.cleaner_backoff());
    let mut cleaner = crate::log_cleaner::LogCleaner::default();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        let task_ctx = ctx.clone();
        let pass = tokio::task::spawn_blocking(move || {
            let stats = cleaner.pass(&task_ctx);
            (stats, cleaner)
        })
        .await;
        match pass {
            Ok((stats, c)) => {
                cleaner = c;
                match stats {
                    Ok(s) if s.records_removed > 0 => {
                        tracing::info!(records = s.records_removed, "log cleaner pass")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "log cleaner pass failed"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "log cleaner task");
                cleaner = crate::log_cleaner::LogCleaner::default();
            }
        }
    }
}

/// Applies `retention.ms` and `retention.bytes` every `log.retention.check.interval.ms`.
async fn enforce_retention(ctx: Ctx, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(ctx.config.retention_check_interval());
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        let task_ctx = ctx.clone();
        match tokio::task::spawn_blocking(move || {
            let image = task_ctx.controller.image();
            crate::retention::enforce(
                &task_ctx.store,
                &task_ctx.replicas,
                &image,
                &task_ctx.config,
            )
        })
        .await
        {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(partitions = n, "retention moved log start offsets"),
            Ok(Err(e)) => tracing::warn!(error = %e, "retention pass failed"),
            Err(e) => tracing::warn!(error = %e, "retention task"),
        }
    }
}

async fn watch_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    shutdown.cancel();
}
