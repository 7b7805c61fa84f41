//! Automatic preferred-leader election (`auto.leader.rebalance.enable`): the controller
//! leader moves leadership back to each partition's first replica once it is alive and in
//! sync, so leaders stay spread after failovers.

use sluice_controller::{Command, CommandResult, ControllerClient};

/// On the controller leader: moves leadership back to preferred replicas that are alive
/// and in sync (`auto.leader.rebalance.enable`); returns how many moved.
pub async fn rebalance_preferred_leaders(controller: &ControllerClient) -> usize {
    if !controller.status().is_leader {
        return 0;
    }
    let image = controller.image();
    let live = image.live_brokers();
    let due: Vec<(String, i32)> = image
        .topics
        .values()
        .flat_map(|t| {
            t.partitions.iter().enumerate().filter_map(|(i, p)| {
                let preferred = *p.replicas.first()?;
                (p.leader != preferred && live.contains(&preferred) && p.isr.contains(&preferred))
                    .then(|| (t.name.clone(), i as i32))
            })
        })
        .collect();
    if due.is_empty() {
        return 0;
    }
    let command = Command::ElectLeaders {
        partitions: due,
        unclean: false,
    };
    match controller.execute(command).await {
        Ok(CommandResult::PerItem(r)) => r.iter().filter(|x| x.is_ok()).count(),
        _ => 0,
    }
}
