//! Every metric name Sluice exports, in one place.

use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests handled, by API.
pub const REQUESTS_TOTAL: &str = "sluice_requests_total";
/// Request latency, by API.
pub const REQUEST_DURATION: &str = "sluice_request_duration_seconds";
/// Open client connections.
pub const CONNECTIONS_ACTIVE: &str = "sluice_connections_active";
/// New connections held back by a connection creation rate, by limit.
pub const CONNECTIONS_THROTTLED: &str = "sluice_connections_throttled_total";
/// Requests (or parts of them) refused by the authorizer, by resource type and operation.
pub const AUTHORIZATION_DENIED: &str = "sluice_authorization_denied_total";
/// SASL authentications by listener, mechanism and outcome (success, failure).
pub const AUTHENTICATIONS: &str = "sluice_authentications_total";
/// SASL re-authentications (KIP-368) of open connections, by listener and outcome.
pub const REAUTHENTICATIONS: &str = "sluice_reauthentications_total";
/// Connections closed because their SASL session expired before they re-authenticated.
pub const EXPIRED_SESSIONS: &str = "sluice_expired_sessions_closed_total";
/// Bytes produced, by topic.
pub const BYTES_IN: &str = "sluice_bytes_in_total";
/// Records produced, by topic.
pub const RECORDS_IN: &str = "sluice_records_in_total";
/// Bytes consumers fetched from this node (leader or follower), by topic.
pub const BYTES_OUT: &str = "sluice_bytes_out_total";
/// Bytes followers fetched from this node's led partitions, by topic.
pub const REPLICATION_BYTES_OUT: &str = "sluice_replication_bytes_out_total";
/// Stretches of partitions read ahead for consumers, by outcome: `used` by the partition's
/// next fetch, or `dropped` (not asked for, or asked from another offset or limit).
pub const FETCH_READ_AHEAD: &str = "sluice_fetch_read_ahead_total";

/// Errors answered, by API and Kafka error code.
pub const REQUEST_ERRORS_TOTAL: &str = "sluice_request_errors_total";
/// Partitions this node leads.
pub const PARTITIONS_LEADER: &str = "sluice_partitions_leader";
/// Led partitions whose ISR is smaller than their replica set.
pub const PARTITIONS_UNDER_REPLICATED: &str = "sluice_partitions_under_replicated";
/// Partitions without a leader.
pub const PARTITIONS_OFFLINE: &str = "sluice_partitions_offline";
/// Led partitions whose ISR is below min.insync.replicas.
pub const PARTITIONS_UNDER_MIN_ISR: &str = "sluice_partitions_under_min_isr";
/// Log end offset per partition.
pub const LOG_END_OFFSET: &str = "sluice_partition_log_end_offset";
/// High watermark per partition.
pub const HIGH_WATERMARK: &str = "sluice_partition_high_watermark";
/// Log start offset per partition.
pub const LOG_START_OFFSET: &str = "sluice_partition_log_start_offset";
/// Per partition, how far the last stable offset trails the high watermark: records of
/// open transactions that read_committed consumers wait for (a hanging transaction grows it).
pub const LSO_LAG: &str = "sluice_partition_last_stable_offset_lag";
/// Consumer lag per group, topic and partition (high watermark minus committed offset).
pub const GROUP_LAG: &str = "sluice_consumer_group_lag";
/// Members per group.
pub const GROUP_MEMBERS: &str = "sluice_consumer_group_members";
/// Current Raft term.
pub const RAFT_TERM: &str = "sluice_raft_term";
/// Current Raft leader (-1 when unknown).
pub const RAFT_LEADER: &str = "sluice_raft_leader_id";
/// Index of the last entry applied to the metadata image.
pub const RAFT_APPLIED_INDEX: &str = "sluice_raft_applied_index";
/// Index of the last committed Raft entry (see `RaftStatus::commit_index`).
pub const RAFT_COMMIT_INDEX: &str = "sluice_raft_commit_index";
/// RocksDB write stalls (delays and stops) so far.
pub const ROCKSDB_WRITE_STALLS: &str = "sluice_rocksdb_write_stalls_total";
/// Index of the last entry in the local Raft log.
pub const RAFT_LAST_LOG_INDEX: &str = "sluice_raft_last_log_index";
/// Elections seen (term changes).
pub const RAFT_ELECTIONS: &str = "sluice_raft_elections_total";
/// RocksDB estimated live data.
pub const ROCKSDB_LIVE_DATA: &str = "sluice_rocksdb_live_data_bytes";
/// RocksDB memtables.
pub const ROCKSDB_MEMTABLE: &str = "sluice_rocksdb_memtable_bytes";
/// RocksDB bytes waiting for compaction.
pub const ROCKSDB_PENDING_COMPACTION: &str = "sluice_rocksdb_pending_compaction_bytes";
/// ISR shrinks this node committed as a leader.
pub const ISR_SHRINKS: &str = "sluice_isr_shrinks_total";
/// ISR expansions this node committed as a leader.
pub const ISR_EXPANDS: &str = "sluice_isr_expands_total";
/// Records removed by log compaction, by topic.
pub const COMPACTED_RECORDS: &str = "sluice_log_cleaner_records_removed_total";
/// Stored bytes freed by log compaction, by topic.
pub const COMPACTED_BYTES: &str = "sluice_log_cleaner_bytes_freed_total";
/// 1 while produce requests are refused because the data directory is below its free-space
/// floor.
pub const DISK_FULL: &str = "sluice_log_dir_below_free_space_floor";
/// Free bytes on the data directory's file system.
pub const DISK_FREE: &str = "sluice_log_dir_free_bytes";
/// Transactions ended by their coordinator here, by outcome (commit, abort).
pub const TXNS_ENDED: &str = "sluice_transactions_ended_total";
/// Open transactions aborted by their coordinator for passing their timeout.
pub const TXNS_TIMED_OUT: &str = "sluice_transactions_timed_out_total";
/// Transactions begun (their first partition added) at their coordinator here.
pub const TXNS_BEGUN: &str = "sluice_transactions_begun_total";
/// Transactions open (ongoing or being ended) at their coordinator here.
pub const TXNS_OPEN: &str = "sluice_transactions_open";
/// Transactional producers initialised (InitProducerId with a transactional id answered here).
pub const TXN_PRODUCERS_INITIALISED: &str = "sluice_transactional_producers_initialised_total";
/// Milliseconds clients were throttled for passing their quota, by quota (produce, fetch)
/// and the user and client id the quota applies to (empty when it names neither).
pub const QUOTA_THROTTLE: &str = "sluice_client_quota_throttle_milliseconds_total";
/// Resident memory of the process.
pub const PROCESS_RSS: &str = "process_resident_memory_bytes";
/// Open file descriptors of the process.
pub const PROCESS_OPEN_FDS: &str = "process_open_fds";

/// Installs the Prometheus recorder; the handle renders `/metrics`.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let io_buckets = [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    ];
    let buckets = [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0,
    ];
    Ok(PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.into()), &buckets)?
        .set_buckets_for_metric(
            Matcher::Full(sluice_storage::metrics::SYNC_DURATION.into()),
            &io_buckets,
        )?
        .set_buckets_for_metric(
            Matcher::Full(sluice_storage::metrics::FLUSH_DURATION.into()),
            &io_buckets,
        )?
        .install_recorder()?)
}

/// Registers the unlabelled families at zero, so a scrape shows them before any event, and
/// the labelled ones for the label values known at start (Prometheus' advice: a panel then
/// shows 0, not "No data", on a healthy node): every API served, each with error code 0
/// (NONE, as Kafka's ErrorsPerSec has error=NONE; it stays 0), and both read-ahead outcomes.
pub fn register(apis: impl Iterator<Item = ApiKey>) {
    for key in apis {
        let api = format!("{key:?}");
        metrics::counter!(REQUESTS_TOTAL, "api" => api.clone()).absolute(0);
        metrics::counter!(REQUEST_ERRORS_TOTAL, "api" => api, "code" => "0").absolute(0);
    }
    for outcome in ["used", "dropped"] {
        metrics::counter!(FETCH_READ_AHEAD, "outcome" => outcome).absolute(0);
    }
    for limit in [
        "max_connection_creation_rate",
        "ip_connection_creation_rate",
    ] {
        metrics::counter!(CONNECTIONS_THROTTLED, "limit" => limit).absolute(0);
    }
    for g in [
        CONNECTIONS_ACTIVE,
        PARTITIONS_LEADER,
        PARTITIONS_UNDER_REPLICATED,
        PARTITIONS_OFFLINE,
        PARTITIONS_UNDER_MIN_ISR,
        RAFT_TERM,
        RAFT_LEADER,
        RAFT_APPLIED_INDEX,
        RAFT_COMMIT_INDEX,
        RAFT_LAST_LOG_INDEX,
        ROCKSDB_LIVE_DATA,
        ROCKSDB_MEMTABLE,
        ROCKSDB_PENDING_COMPACTION,
        PROCESS_RSS,
        PROCESS_OPEN_FDS,
        DISK_FULL,
        DISK_FREE,
    ] {
        metrics::gauge!(g).increment(0.0);
    }
    metrics::counter!(RAFT_ELECTIONS).absolute(0);
    metrics::counter!(ISR_SHRINKS).absolute(0);
    metrics::counter!(ROCKSDB_WRITE_STALLS).absolute(0);
    // The exporter shows a histogram only once it has a sample: one zero-length sample at
    // start makes the family visible before the first fsync (count 1, sum 0).
    for h in [
        sluice_storage::metrics::SYNC_DURATION,
        sluice_storage::metrics::FLUSH_DURATION,
    ] {
        metrics::histogram!(h).record(0.0);
    }
    metrics::counter!(ISR_EXPANDS).absolute(0);
    for outcome in ["commit", "abort"] {
        metrics::counter!(TXNS_ENDED, "outcome" => outcome).absolute(0);
    }
    metrics::counter!(TXNS_TIMED_OUT).absolute(0);
    metrics::counter!(TXN_PRODUCERS_INITIALISED).absolute(0);
    metrics::counter!(TXNS_BEGUN).absolute(0);
    metrics::gauge!(TXNS_OPEN).set(0.0);
}

/// Counts a transaction begun at its coordinator.
pub fn record_txn_begin() {
    metrics::counter!(TXNS_BEGUN).increment(1);
}

/// Counts a transaction ended by its coordinator.
pub fn record_txn_end(commit: bool) {
    let outcome = if commit { "commit" } else { "abort" };
    metrics::counter!(TXNS_ENDED, "outcome" => outcome).increment(1);
}

/// Counts an open transaction aborted for passing its timeout.
pub fn record_txn_timeout() {
    metrics::counter!(TXNS_TIMED_OUT).increment(1);
}

/// Counts a transactional producer initialised.
pub fn record_txn_init() {
    metrics::counter!(TXN_PRODUCERS_INITIALISED).increment(1);
}

/// Counts one error code answered for an API.
pub fn record_error(key: ApiKey, code: i16) {
    metrics::counter!(REQUEST_ERRORS_TOTAL, "api" => format!("{key:?}"), "code" => code.to_string()).increment(1);
}

/// Counts one handled request and its latency.
pub fn record_request(key: ApiKey, elapsed: Duration) {
    let api = format!("{key:?}");
    metrics::counter!(REQUESTS_TOTAL, "api" => api.clone()).increment(1);
    metrics::histogram!(REQUEST_DURATION, "api" => api).record(elapsed.as_secs_f64());
}

/// Counts produced bytes and records of one topic.
pub fn record_produce(topic: &str, bytes: usize, records: i64) {
    metrics::counter!(BYTES_IN, "topic" => topic.to_string()).increment(bytes as u64);
    metrics::counter!(RECORDS_IN, "topic" => topic.to_string()).increment(records.max(0) as u64);
}

/// Counts fetched bytes of one topic.
pub fn record_fetch(topic: &str, bytes: usize) {
    if bytes > 0 {
        metrics::counter!(BYTES_OUT, "topic" => topic.to_string()).increment(bytes as u64);
    }
}

/// Counts bytes a follower fetched from this leader (apart from consumers', as Kafka's
/// ReplicationBytesOutPerSec is apart from BytesOutPerSec).
pub fn record_replication_fetch(topic: &str, bytes: usize) {
    if bytes > 0 {
        metrics::counter!(REPLICATION_BYTES_OUT, "topic" => topic.to_string())
            .increment(bytes as u64);
    }
}

/// Adds a throttle answered to a client over its quota.
pub fn record_throttle(quota: &'static str, user: &str, client_id: &str, throttle: Duration) {
    metrics::counter!(
        QUOTA_THROTTLE,
        "quota" => quota,
        "user" => user.to_string(),
        "client_id" => client_id.to_string()
    )
    .increment(throttle.as_millis() as u64);
}

/// Counts a new connection held back by a connection creation rate: the broker-wide
/// `max_connection_creation_rate` (the accept loop paused) or an address's
/// `ip_connection_creation_rate` quota (the connection closed after the throttle time).
pub fn record_connection_throttled(limit: &'static str) {
    metrics::counter!(CONNECTIONS_THROTTLED, "limit" => limit).increment(1);
}

/// Counts one refusal of the authorizer.
pub fn record_authorization_denied(resource_type: &'static str, operation: &'static str) {
    metrics::counter!(
        AUTHORIZATION_DENIED,
        "resource_type" => resource_type,
        "operation" => operation
    )
    .increment(1);
}

/// Counts one SASL exchange that ended, on `listener` with `mechanism`.
pub fn record_authentication(listener: &str, mechanism: &str, success: bool) {
    let outcome = if success { "success" } else { "failure" };
    metrics::counter!(
        AUTHENTICATIONS,
        "listener" => listener.to_string(),
        "mechanism" => mechanism.to_string(),
        "outcome" => outcome
    )
    .increment(1);
}

/// Counts one re-authentication of an open connection on `listener`.
pub fn record_reauthentication(listener: &str, success: bool) {
    let outcome = if success { "success" } else { "failure" };
    metrics::counter!(REAUTHENTICATIONS, "listener" => listener.to_string(), "outcome" => outcome)
        .increment(1);
}

/// Counts one connection on `listener` closed because its SASL session expired.
pub fn record_expired_session(listener: &str) {
    metrics::counter!(EXPIRED_SESSIONS, "listener" => listener.to_string()).increment(1);
}

/// Counts one read-ahead stretch that a fetch used (or that was dropped unused).
pub fn record_read_ahead(used: bool) {
    let outcome = if used { "used" } else { "dropped" };
    metrics::counter!(FETCH_READ_AHEAD, "outcome" => outcome).increment(1);
}

/// Counts one committed ISR change.
pub fn record_isr_change(shrink: bool) {
    metrics::counter!(if shrink { ISR_SHRINKS } else { ISR_EXPANDS }).increment(1);
}

/// Counts what one compaction pass of a partition removed.
pub fn record_compaction(topic: &str, stats: &sluice_storage::CompactStats) {
    if stats.records_removed > 0 {
        metrics::counter!(COMPACTED_RECORDS, "topic" => topic.to_string())
            .increment(stats.records_removed as u64);
        let freed = stats.bytes_before.saturating_sub(stats.bytes_after);
        metrics::counter!(COMPACTED_BYTES, "topic" => topic.to_string()).increment(freed as u64);
    }
}

/// Publishes the data directory's free space and whether it is below the floor.
pub fn record_disk(free: u64, below_floor: bool) {
    metrics::gauge!(DISK_FREE).set(free as f64);
    metrics::gauge!(DISK_FULL).set(f64::from(u8::from(below_floor)));
}

/// Keeps `sluice_connections_active` right for as long as it lives.
pub struct ConnectionGauge;

impl ConnectionGauge {
    /// Counts a connection opening.
    pub fn open() -> Self {
        metrics::gauge!(CONNECTIONS_ACTIVE).increment(1.0);
        Self
    }
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        metrics::gauge!(CONNECTIONS_ACTIVE).decrement(1.0);
    }
}
