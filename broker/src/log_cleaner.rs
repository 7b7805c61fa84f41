//! The log cleaner: compacts every partition this node leads whose topic has
//! `cleanup.policy=compact` (`__consumer_offsets` included), once enough of it was written
//! since its last pass (`min.cleanable.dirty.ratio`, measured in offsets). Records younger
//! than `min.compaction.lag.ms` are left alone; tombstones go `delete.retention.ms` after
//! they were written. The mechanics are in `sluice_storage::compact`.

use std::collections::HashMap;

use sluice_storage::{CompactPlan, CompactStats, PartitionKey};

use crate::context::Broker;
use crate::error::BrokerError;
use crate::topic_config::EffectiveConfigs;

/// Per partition: where its last pass ended, what it left, and when a tombstone it still
/// holds expires (forgotten on restart: one full pass then).
#[derive(Debug, Default)]
pub struct LogCleaner {
    cleaned: HashMap<PartitionKey, Cleaned>,
}

#[derive(Debug, Clone, Copy)]
struct Cleaned {
    /// The pass covered offsets below this.
    upto: i64,
    /// Records it left there.
    records: usize,
    /// When the oldest tombstone it kept may go.
    tombstone_expiry_ms: Option<i64>,
}

impl LogCleaner {
    /// One pass over every compacted partition this node leads.
    pub fn pass(&mut self, ctx: &Broker) -> Result<CompactStats, BrokerError> {
        let now = crate::clock::now_ms();
        let image = ctx.controller.image();
        let mut total = CompactStats::default();
        let mut rewritten = false;
        for topic in image.topics.values() {
            let configs = EffectiveConfigs::new(&topic.configs, &ctx.config);
            if !configs.cleanup_policy_has("compact") {
                continue;
            }
            for p in 0..topic.partitions.len() as i32 {
                let Ok(leader) = ctx.replicas.led_here(topic, p) else {
                    continue;
                };
                let log = &leader.log;
                let (start, end) = (log.log_start_offset(), log.high_watermark());
                let last = self.cleaned.get(&log.key()).copied().unwrap_or(Cleaned {
                    upto: start,
                    records: 0,
                    tombstone_expiry_ms: None,
                });
                let dirty = end - last.upto.max(start);
                let ratio = configs.min_cleanable_dirty_ratio();
                let tombstones_due = last.tombstone_expiry_ms.is_some_and(|t| t <= now);
                if !tombstones_due && !worth_cleaning(last.records, dirty, ratio) {
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
                    // Give the space back now, not whenever RocksDB gets to it.
                    ctx.store.reclaim_all(log)?;
                    rewritten = true;
                }
                crate::metrics::record_compaction(&topic.name, &stats);
                add(&mut total, &stats);
                let cleaned = Cleaned {
                    upto: stats.cleaned_upto,
                    records: stats.records_kept,
                    tombstone_expiry_ms: stats
                        .oldest_tombstone_ms
                        .map(|t| t.saturating_add(configs.delete_retention_ms())),
                };
                self.cleaned.insert(log.key(), cleaned);
            }
        }
        if rewritten {
            ctx.store.release_wal()?;
        }
        Ok(total)
    }
}

/// Whether the records written since the last pass (`dirty`) are at least the dirty ratio
/// of all records (those the last pass left plus the dirty ones), as Kafka's cleaner
/// decides by bytes.
fn worth_cleaning(clean: usize, dirty: i64, min_dirty_ratio: f64) -> bool {
    dirty > 0 && dirty as f64 >= min_dirty_ratio * (clean as f64 + dirty as f64)
}

fn add(total: &mut CompactStats, s: &CompactStats) {
    total.batches_rewritten += s.batches_rewritten;
    total.batches_removed += s.batches_removed;
    total.records_removed += s.records_removed;
    total.records_kept += s.records_kept;
    total.bytes_before += s.bytes_before;
    total.bytes_after += s.bytes_after;
}

#[cfg(test)]
mod tests {
    use super::worth_cleaning;

    #[test]
    fn the_dirty_ratio_decides_when_to_clean_again() {
        assert!(worth_cleaning(0, 10, 0.5), "never cleaned: all dirty");
        assert!(!worth_cleaning(10, 0, 0.0), "nothing new");
        assert!(!worth_cleaning(8, 2, 0.5), "20% dirty");
        assert!(worth_cleaning(5, 5, 0.5), "50% dirty");
        assert!(
            worth_cleaning(1, 3, 0.5),
            "compaction left little: a few new records suffice"
        );
    }
}
