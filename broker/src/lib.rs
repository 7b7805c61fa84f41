//! # sluice: a Kafka-compatible broker on RocksDB and Raft
//!
//! ## Layout
//!
//! ```text
//! main.rs              the thin binary: CLI (clap: serve, admin), allocator, tracing,
//!                      metrics recorder -> server::run, or sluice_admin::run
//! lib.rs               this file: the broker as a library (server::run, server::serve for
//!                      nodes in process)
//! server.rs            startup (storage, controller, registration), background tasks,
//!                      accept loop, controlled shutdown
//! context.rs           Broker: the node's services a handler reaches (store, controller,
//!                      replicas, coordinators, configs)
//! connection.rs        TLS handshake, size-prefixed framing, frame cap, pipelined produces,
//!                      in-order responses
//! authenticator.rs     the SASL exchange before a SASL connection's first request
//! security/            listeners and security protocols, TLS (rustls), SASL PLAIN and SCRAM,
//!                      principals
//! connection_limits.rs max.connections.per.ip (and its overrides), connection creation rates
//! request_reader.rs    request frames off the socket, within queued.max.request.bytes
//! request_scope.rs     what a handler knows of its request besides header and body
//!                      (peer, listener, principal, the connection's read-ahead, leave to
//!                      start the next request)
//! dispatch.rs          the only match on the API: decode, route to a handler, encode
//! frame.rs             response frames in parts: fetched batches are sent, not copied
//! decode_guard.rs      keeps hostile array counts from aborting the process
//! handlers/<api>.rs    one file per Kafka API; thin, never fail (errors go in the response)
//! replication/         leader/follower roles, high watermark over the ISR, the one
//!                      leader-append path, follower fetchers with truncation (fetcher.rs),
//!                      ISR shrink/expand (isr.rs)
//! coordinator/         the coordinator runtime: a state machine per led partition of an
//!                      internal topic, loaded by replay, written through leader-append
//! group/               the group coordinator (its first tenant): classic and KIP-848 groups
//!                      around pure state machines, committed offsets (transactional too)
//! txn/                 the transaction coordinator (its second tenant): transactional ids'
//!                      state machine (state.rs), markers to partition leaders (markers.rs)
//! fetch_session.rs     incremental fetch sessions (KIP-227)
//! read_ahead.rs        a connection's read-ahead of the logs a consumer fetches next
//! producer_ids.rs      producer-id blocks from the controller
//! retention.rs         retention.ms / retention.bytes: move the log start, reclaim space
//! log_cleaner.rs       cleanup.policy=compact: when to compact which partition
//! flusher.rs           flush.ms: background fsync of the WAL
//! disk_guard.rs        free-space floor: refuse produce below it
//! quota.rs             client quotas: byte rates, request time and controller mutations per
//!                      user / client id, throttle times
//! log_levels.rs        log levels changed at run time (the BROKER_LOGGER resource)
//! topic_config.rs      topic configs by Kafka name: defaults, validation, effective values
//!                      and their synonyms (also used for group configs)
//! group_config.rs      group configs (consumer.session.timeout.ms, ...): bounds, lookups
//! config.rs            flags, SLUICE_* env vars, broker configs by Kafka name
//! error.rs             BrokerError -> Kafka error codes, in one place
//! http/                /healthz, /metrics, and the HTTP admin API /admin/* (admin_api.rs)
//! metrics.rs           every metric name
//! stats.rs             periodic gauges (partitions, lag, Raft, RocksDB, process)
//! clock.rs             wall-clock milliseconds
//! ```
//!
//! A request flows: connection reads a frame and builds its RequestScope -> dispatch decodes
//! header and body -> handlers::<api>::handle(ctx, scope, header, request) calls the replica
//! manager, storage, the controller or a coordinator (group/, on coordinator/, which writes
//! through the replica manager) -> dispatch encodes the response -> connection writes it in
//! order. Modules depend one way: handlers -> context -> txn -> group -> coordinator ->
//! replication -> storage (tests/layout.rs checks there is no circle).
//!
//! The workspace's crates depend one way too: `sluice-storage` <- `sluice-controller` <-
//! this crate; `sluice-client` (a minimal Kafka client and the HTTP admin API's typed
//! replies) is shared by this crate and `sluice-admin` (the `sluice admin` commands).

mod authenticator;
mod clock;
pub mod config;
mod connection;
mod connection_limits;
mod context;
mod coordinator;
pub mod decode_guard;
mod disk_guard;
mod dispatch;
mod error;
mod fetch_session;
mod flusher;
mod frame;
mod group;
mod group_config;
mod handlers;
mod http;
mod log_cleaner;
pub mod log_levels;
pub mod metrics;
mod producer_ids;
mod quota;
mod read_ahead;
mod replication;
mod request_reader;
mod request_scope;
mod retention;
mod security;
pub mod server;
mod stats;
mod topic_config;
mod txn;

// The decode guard's own tests need it as the allocator of the test binary, as the broker's.
#[cfg(test)]
#[global_allocator]
static TEST_ALLOCATOR: decode_guard::GuardedAllocator = decode_guard::GuardedAllocator;
