//! Storage metrics, recorded where the I/O happens (the broker registers and exports them).

use std::time::Instant;

/// Latency of appends written with fsync (`flush.messages`), histogram.
pub const SYNC_DURATION: &str = "sluice_storage_sync_duration_seconds";
/// Latency of write-ahead-log flushes (`flush.ms`, shutdown, reclaiming space), histogram.
pub const FLUSH_DURATION: &str = "sluice_storage_flush_duration_seconds";

/// Records the time since `started` in histogram `name`.
pub(crate) fn record_since(name: &'static str, started: Instant) {
    metrics::histogram!(name).record(started.elapsed().as_secs_f64());
}
