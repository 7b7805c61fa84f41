//! Periodic gauges: partitions, offsets, consumer lag, Raft and RocksDB state, process.
//!
//! Sampled every few seconds rather than on every request: these are states, not events.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::context::Ctx;
use crate::metrics::*;
use crate::topic_config::EffectiveConfigs;

/// How often the gauges are refreshed.
const INTERVAL: Duration = Duration::from_secs(5);

/// Refreshes the gauges until shutdown.
pub async fn run(ctx: Ctx, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(INTERVAL);
    let mut last_term = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        let task_ctx = ctx.clone();
        last_term = tokio::task::spawn_blocking(move || sample(&task_ctx, last_term))
            .await
            .unwrap_or(last_term);
    }
}

fn sample(ctx: &Ctx, last_term: Option<u64>) -> Option<u64> {
    let image = ctx.controller.image();
    let (mut led, mut under_replicated, mut offline, mut under_min_isr) = (0u64, 0u64, 0u64, 0u64);
    for topic in image.topics.values() {
        let min_isr = EffectiveConfigs::new(&topic.configs, &ctx.config).min_insync_replicas();
        for (i, p) in topic.partitions.iter().enumerate() {
            if p.leader < 0 {
                offline += 1;
            }
            let Ok(leader) = ctx.replicas.led_here(topic, i as i32) else {
                continue;
            };
            led += 1;
            under_replicated += u64::from(p.isr.len() < p.replicas.len());
            under_min_isr += u64::from(p.isr.len() < min_isr);
            let labels = [("topic", topic.name.clone()), ("partition", i.to_string())];
            metrics::gauge!(LOG_END_OFFSET, &labels).set(leader.log.log_end_offset() as f64);
            metrics::gauge!(HIGH_WATERMARK, &labels).set(leader.log.high_watermark() as f64);
            metrics::gauge!(LOG_START_OFFSET, &labels).set(leader.log.log_start_offset() as f64);
            let lso_lag = leader.log.high_watermark() - leader.log.last_stable_offset();
            metrics::gauge!(LSO_LAG, &labels).set(lso_lag.max(0) as f64);
        }
    }
    metrics::gauge!(PARTITIONS_LEADER).set(led as f64);
    metrics::gauge!(PARTITIONS_UNDER_REPLICATED).set(under_replicated as f64);
    metrics::gauge!(PARTITIONS_OFFLINE).set(offline as f64);
    metrics::gauge!(PARTITIONS_UNDER_MIN_ISR).set(under_min_isr as f64);
    metrics::gauge!(TXNS_OPEN).set(ctx.txns.open_count() as f64);

    for (group, committed) in ctx.groups.list() {
        metrics::gauge!(GROUP_MEMBERS, "group" => group.id.clone()).set(group.members.len() as f64);
        for ((topic, partition), committed) in committed {
            let Some(info) = image.topics.get(&topic) else {
                continue;
            };
            let Ok(leader) = ctx.replicas.led_here(info, partition) else {
                continue;
            };
            let lag = (leader.log.high_watermark() - committed.offset).max(0);
            let labels = [
                ("group", group.id.clone()),
                ("topic", topic),
                ("partition", partition.to_string()),
            ];
            metrics::gauge!(GROUP_LAG, &labels).set(lag as f64);
        }
    }

    let raft = ctx.controller.status();
    metrics::gauge!(RAFT_TERM).set(raft.term as f64);
    metrics::gauge!(RAFT_LEADER).set(raft.leader.map(|l| l as f64).unwrap_or(-1.0));
    metrics::gauge!(RAFT_APPLIED_INDEX).set(raft.applied_index as f64);
    metrics::gauge!(RAFT_COMMIT_INDEX).set(raft.commit_index as f64);
    metrics::counter!(ROCKSDB_WRITE_STALLS).absolute(ctx.store.write_stalls());
    metrics::gauge!(RAFT_LAST_LOG_INDEX).set(raft.last_log_index as f64);
    if last_term.is_some_and(|t| t != raft.term) {
        metrics::counter!(RAFT_ELECTIONS).increment(1);
    }

    metrics::gauge!(ROCKSDB_LIVE_DATA)
        .set(ctx.store.int_property("rocksdb.estimate-live-data-size") as f64);
    metrics::gauge!(ROCKSDB_MEMTABLE)
        .set(ctx.store.int_property("rocksdb.cur-size-all-mem-tables") as f64);
    metrics::gauge!(ROCKSDB_PENDING_COMPACTION).set(
        ctx.store
            .int_property("rocksdb.estimate-pending-compaction-bytes") as f64,
    );

    if let Some(rss) = resident_bytes() {
        metrics::gauge!(PROCESS_RSS).set(rss as f64);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        metrics::gauge!(PROCESS_OPEN_FDS).set(fds.count() as f64);
    }
    Some(raft.term)
}

fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}
