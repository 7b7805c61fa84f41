//! Time retention (`retention.ms`): batches whose newest record is older than the topic's
//! retention are removed in the background and the log start offset moves past them.
//! Consumers positioned before it then get OFFSET_OUT_OF_RANGE and reset per their policy.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::context::Broker;
use crate::error::BrokerError;
use crate::topic_config::TopicConfigs;

/// One pass over the partitions this node leads; returns how many moved their log start.
pub fn enforce(ctx: &Broker) -> Result<usize, BrokerError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let image = ctx.controller.image();
    let mut advanced = 0;
    for topic in image.topics.values() {
        let configs = TopicConfigs::new(&topic.configs, &ctx.config);
        let deletes = configs
            .get("cleanup.policy")
            .is_some_and(|p| p.split(',').any(|x| x.trim() == "delete"));
        let retention_ms = configs
            .get("retention.ms")
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(-1);
        if !deletes || retention_ms < 0 {
            continue;
        }
        let cutoff = now.saturating_sub(retention_ms);
        for p in 0..topic.partitions.len() as i32 {
            let Ok(leader) = ctx.replicas.leader(topic, p) else {
                continue;
            };
            let hw = leader.log.high_watermark();
            // Never past the high watermark: unreplicated data is not the leader's to drop.
            let new_start = ctx
                .store
                .first_offset_newer_than(&leader.log, cutoff, hw)?
                .unwrap_or(hw);
            if ctx.store.advance_log_start(&leader.log, new_start)? {
                advanced += 1;
            }
        }
    }
    Ok(advanced)
}
