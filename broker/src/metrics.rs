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
/// Bytes produced, by topic.
pub const BYTES_IN: &str = "sluice_bytes_in_total";
/// Records produced, by topic.
pub const RECORDS_IN: &str = "sluice_records_in_total";
/// Bytes fetched, by topic.
pub const BYTES_OUT: &str = "sluice_bytes_out_total";

/// Installs the Prometheus recorder; the handle renders `/metrics`.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let buckets = [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0,
    ];
    Ok(PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.into()), &buckets)?
        .install_recorder()?)
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
