//! `flush.ms`: fsyncs the write-ahead log once a partition of a topic with a finite
//! `flush.ms` has held unsynced records for that long. All partitions share one WAL, so one
//! sync covers every topic. (`flush.messages` is enforced by the appender itself.)

use std::time::Duration;

use crate::context::Broker;
use crate::topic_config::EffectiveConfigs;

/// Syncs if some partition is due; returns how long to wait before looking again.
pub fn flush_due(ctx: &Broker) -> Duration {
    const IDLE: Duration = Duration::from_secs(1);
    let now = crate::clock::now_ms();
    let image = ctx.controller.image();
    let mut shortest = i64::MAX;
    let mut due = false;
    for topic in image.topics.values() {
        let flush_ms = EffectiveConfigs::new(&topic.configs, &ctx.config).flush_ms();
        if flush_ms == i64::MAX {
            continue;
        }
        shortest = shortest.min(flush_ms);
        for p in 0..topic.partitions.len() as i32 {
            if let Ok(leader) = ctx.replicas.led_here(topic, p) {
                let (pending, since) = leader.log.unflushed();
                due |= pending > 0 && now - since >= flush_ms;
            }
        }
    }
    if due {
        if let Err(e) = ctx.store.sync() {
            tracing::warn!(error = %e, "flush.ms sync failed");
        }
    }
    if shortest == i64::MAX {
        IDLE
    } else {
        Duration::from_millis((shortest / 2).clamp(5, 1000) as u64)
    }
}
