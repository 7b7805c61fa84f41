//! Retention: `retention.ms` removes batches whose newest record is older than the topic
//! allows, `retention.bytes` removes the oldest batches while the rest of the partition still
//! holds at least that many bytes (Kafka's rule, at batch rather than segment granularity).
//! The log start offset moves past what is removed; consumers positioned before it get
//! OFFSET_OUT_OF_RANGE and reset per their policy. The freed key range is then compacted, so
//! the space goes back to the file system at once.

use std::sync::Arc;

use sluice_controller::MetadataImage;
use sluice_storage::{PartitionLog, Store};

use crate::config::BrokerConfig;
use crate::error::BrokerError;
use crate::replication::ReplicaManager;
use crate::topic_config::EffectiveConfigs;

/// One pass over the partitions this node leads; returns how many moved their log start.
pub fn enforce(
    store: &Store,
    replicas: &ReplicaManager,
    image: &MetadataImage,
    config: &BrokerConfig,
) -> Result<usize, BrokerError> {
    let now = crate::clock::now_ms();
    let mut advanced = Vec::new();
    for topic in image.topics.values() {
        let configs = EffectiveConfigs::new(&topic.configs, config);
        if !configs.cleanup_policy_has("delete") {
            continue;
        }
        let retention_ms = configs.retention_ms();
        let retention_bytes = configs.retention_bytes();
        if retention_ms < 0 && retention_bytes < 0 {
            continue;
        }
        for p in 0..topic.partitions.len() as i32 {
            let Ok(leader) = replicas.led_here(topic, p) else {
                continue;
            };
            let log = &leader.log;
            // Never past the high watermark: unreplicated data is not the leader's to drop.
            let hw = log.high_watermark();
            let mut new_start = log.log_start_offset();
            if retention_ms >= 0 {
                let cutoff = now.saturating_sub(retention_ms);
                let by_time = store.first_offset_newer_than(log, cutoff, hw)?;
                new_start = new_start.max(by_time.unwrap_or(hw));
            }
            if retention_bytes >= 0 {
                let by_size = store.start_for_size(log, retention_bytes as u64, hw)?;
                new_start = new_start.max(by_size.unwrap_or(0));
            }
            if store.advance_log_start(log, new_start)? {
                advanced.push(log.clone());
            }
        }
    }
    reclaim(store, &advanced);
    Ok(advanced.len())
}

/// Returns the space below these partitions' log starts to the file system (logged, never
/// fatal): each partition's removed range is compacted, then the WAL is released once.
pub fn reclaim(store: &Store, logs: &[Arc<PartitionLog>]) {
    if logs.is_empty() {
        return;
    }
    for log in logs {
        if let Err(e) = store.reclaim(log) {
            tracing::warn!(partition = log.cf_name(), error = %e, "reclaiming space");
        }
    }
    if let Err(e) = store.release_wal() {
        tracing::warn!(error = %e, "releasing WAL files");
    }
}
