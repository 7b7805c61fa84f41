//! The log cleaner: compacts every partition this node leads whose topic has
//! `cleanup.policy=compact` (`__consumer_offsets` included), once enough of it was written
//! since its last pass (`min.cleanable.dirty.ratio`, measured in offsets). Records younger
//! than `min.compaction.lag.ms` are left alone; tombstones go `delete.retention.ms` after
//! they were written. The mechanics are in `sluice_storage::compact`.

use std::collections::HashMap;

use sluice_storage::{CompactPlan, CompactStats, PartitionKey};

use crate::context::Broker;
use crate::error::BrokerError;
use crate::topic_config::TopicConfigs;

/// Per partition: the offset it was last compacted up to, and when a tombstone it still
/// holds expires (forgotten on restart: one full pass then).
#[derive(Debug, Default)]
pub struct LogCleaner {
    cleaned_to: HashMap<PartitionKey, (i64, Option<i64>)>,
}

impl LogCleaner {
    /// One pass over every compacted partition this node leads.
    pub fn pass(&mut self, ctx: &Broker) -> Result<CompactStats, BrokerError> {
        let now = crate::clock::now_ms();
        let image = ctx.controller.image();
        let mut total = CompactStats::default();
        for topic in image.topics.values() {
            let configs = TopicConfigs::new(&topic.configs, &ctx.config);
            if !configs.cleanup_policy_has("compact") {
                continue;
            }
            for p in 0..topic.partitions.len() as i32 {
                let Ok(leader) = ctx.replicas.leader(topic, p) else {
                    continue;
                };
                let log = &leader.log;
                let (start, end) = (log.log_start_offset(), log.high_watermark());
                let (cleaned, tombstone_expiry) = self
                    .cleaned_to
                    .get(&log.key())
                    .copied()
                    .unwrap_or((start, None));
                let ratio = configs.min_cleanable_dirty_ratio();
                let tombstones_due = tombstone_expiry.is_some_and(|t| t <= now);
                if !tombstones_due && !worth_cleaning(start, cleaned, end, ratio) {
                    continue;
                }
                let plan = CompactPlan {
                    upper: end,
                    tombstone_cutoff_ms: now.saturating_sub(configs.delete_retention_ms()),
                    newest_cleanable_ms: now.saturating_sub(configs.min_compaction_lag_ms()),
                };
                let stats = ctx.store.compact(log, &plan)?;
                if stats.records_removed > 0 {
                    tracing::debug!(partition = log.cf_name(), ?stats, "compacted");
                }
                crate::metrics::record_compaction(&topic.name, &stats);
                add(&mut total, &stats);
                let expiry = stats
                    .oldest_tombstone_ms
                    .map(|t| t.saturating_add(configs.delete_retention_ms()));
                self.cleaned_to.insert(log.key(), (end, expiry));
            }
        }
        Ok(total)
    }
}

/// Whether the share of offsets written since the last pass reaches the dirty ratio.
fn worth_cleaning(start: i64, cleaned_to: i64, end: i64, min_dirty_ratio: f64) -> bool {
    let size = end - start;
    let dirty = end - cleaned_to.max(start);
    size > 0 && dirty > 0 && dirty as f64 >= min_dirty_ratio * size as f64
}

fn add(total: &mut CompactStats, s: &CompactStats) {
    total.batches_rewritten += s.batches_rewritten;
    total.batches_removed += s.batches_removed;
    total.records_removed += s.records_removed;
    total.bytes_before += s.bytes_before;
    total.bytes_after += s.bytes_after;
}

#[cfg(test)]
mod tests {
    use super::worth_cleaning;

    #[test]
    fn the_dirty_ratio_decides_when_to_clean_again() {
        assert!(worth_cleaning(0, 0, 10, 0.5), "never cleaned: all dirty");
        assert!(!worth_cleaning(0, 10, 10, 0.0), "nothing new");
        assert!(!worth_cleaning(0, 8, 10, 0.5), "20% dirty");
        assert!(worth_cleaning(0, 5, 10, 0.5), "50% dirty");
        assert!(!worth_cleaning(5, 5, 5, 0.5), "empty");
    }
}
