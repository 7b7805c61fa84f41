//! ISR changes a leader proposes to the controller (AlterPartition): a follower that has not
//! caught up for `replica.lag.time.max.ms` leaves the ISR; one that reached the high
//! watermark rejoins it.

use std::time::{Duration, Instant};

use sluice_controller::{Command, CommandResult, ControllerClient};

use super::ReplicaManager;
use crate::metrics;

/// Proposes the ISR changes due on partitions this node leads (`lag_max`:
/// `replica.lag.time.max.ms`); returns how many committed.
pub async fn propose_isr_changes(
    replicas: &ReplicaManager,
    controller: &ControllerClient,
    lag_max: Duration,
) -> usize {
    let image = controller.image();
    let live = image.live_brokers();
    let now = Instant::now();
    let mut proposals = Vec::new();
    for topic in image.topics.values() {
        for (index, p) in topic.partitions.iter().enumerate() {
            if p.leader != replicas.node_id || p.replicas.len() < 2 {
                continue;
            }
            let Ok(leader) = replicas.led_here(topic, index as i32) else {
                continue;
            };
            let hw = leader.log.high_watermark();
            let Ok(progress) = replicas.progress.lock() else {
                continue;
            };
            let Some(led) = progress.get(&leader.log.key()) else {
                continue;
            };
            let mut isr = p.isr.clone();
            for r in p.replicas.iter().filter(|r| **r != p.leader) {
                let f = led.followers.get(r);
                let lagging = match f {
                    Some(f) => now.duration_since(f.caught_up_at) > lag_max,
                    None => now.duration_since(led.since) > lag_max,
                };
                if isr.contains(r) && lagging {
                    isr.retain(|x| x != r);
                } else if !isr.contains(r)
                    && live.contains(r)
                    && f.is_some_and(|f| f.log_end >= hw && !lagging)
                {
                    isr.push(*r);
                }
            }
            if isr.len() != p.isr.len() {
                proposals.push((topic.name.clone(), index as i32, p.clone(), isr));
            }
        }
    }
    let mut committed = 0;
    for (topic, partition, p, isr) in proposals {
        let shrink = isr.len() < p.isr.len();
        let command = Command::AlterPartition {
            topic: topic.clone(),
            partition,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: isr.clone(),
        };
        match controller.execute(command).await {
            Ok(CommandResult::Done) => {
                committed += 1;
                metrics::record_isr_change(shrink);
                tracing::info!(topic, partition, ?isr, old = ?p.isr, "ISR changed");
            }
            Ok(other) => tracing::debug!(topic, partition, ?other, "ISR change refused"),
            Err(e) => tracing::warn!(topic, partition, error = %e, "ISR change not committed"),
        }
    }
    committed
}
