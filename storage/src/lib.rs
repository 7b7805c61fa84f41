//! # sluice-storage: partition logs and node-local state in one RocksDB
//!
//! ## Layout
//!
//! ```text
//! store/       Store: partition lifecycle (batched CF creation) and appends (mod.rs),
//!              open + recovery (open.rs), reads (read.rs), log start moves, truncation
//!              and reclaim (maintenance.rs), system tables for the controller
//!              (system.rs), RocksDB properties for metrics (stats.rs)
//! appender.rs  the single writer thread: group commit, offsets, producer checks, fsync
//! log.rs       PartitionLog: log start/end, high watermark, leader-epoch cache
//! batch.rs     RecordBatch v2 header parsing, CRC-32C validation, in-place rewrites
//! records.rs   the records inside a batch: keys and tombstones, rewrites keeping some
//! compact.rs   log compaction: latest value per key, tombstones expire, offsets kept
//! producer.rs  idempotent-producer state (pure)
//! keys.rs      column-family names and meta key layout
//! error.rs     StorageError
//! metrics.rs   the storage metric names (fsync and WAL flush latency)
//! ```
//!
//! A produce flows: the broker validates each batch (`batch::validate`), then
//! `Store::append` hands it to the appender, which stamps offsets, writes one WriteBatch for
//! everything queued and publishes the new log end. A fetch calls `Store::read`, which
//! seeks to the batch holding the offset and returns stored bytes untouched.

pub mod appender;
pub mod batch;
mod compact;
pub mod control;
mod error;
pub mod keys;
mod log;
pub mod metrics;
pub mod producer;
pub mod records;
mod store;

pub use appender::{AppendEntry, AppendError, AppendOutcome, AppendResults};
pub use compact::{CompactPlan, CompactStats};
pub use error::{Result, StorageError};
pub use keys::PartitionKey;
pub use log::PartitionLog;
pub use producer::TxnGuard;
pub use store::{Store, StoreConfig, SystemTable, FORMAT_VERSION};

#[cfg(test)]
mod tests;
