//! Replica reassignment (KIP-455), as a part of the metadata state machine.
//!
//! A reassignment first widens the replica set to target ∪ current: the new replicas are
//! `adding`, the ones that go are `removing`. The new replicas fetch like any follower and
//! the leader adds them to the ISR once caught up (AlterPartition); the moment every target
//! replica is in the ISR the partition switches to the target set, and leadership moves if
//! the leader was among the removed. Cancelling goes back to the replicas before.

use std::collections::BTreeSet;

use crate::metadata::{MetadataError, MetadataImage, PartitionInfo};

impl MetadataImage {
    /// Starts, replaces (`Some`) or cancels (`None`) the reassignment of one partition.
    pub(crate) fn reassign(
        &mut self,
        topic: &str,
        partition: i32,
        target: Option<&[i32]>,
    ) -> Result<(), MetadataError> {
        if let Some(target) = target {
            self.check_assignment(&[target.to_vec()], None)?;
        }
        let live: BTreeSet<i32> = self.live_brokers().into_iter().collect();
        let p = self.partition_mut(topic, partition)?;
        let moving = !p.adding.is_empty() || !p.removing.is_empty();
        // The replicas before any ongoing reassignment.
        let original: Vec<i32> = p
            .replicas
            .iter()
            .copied()
            .filter(|r| !p.adding.contains(r))
            .collect();
        match target {
            None if !moving => return Err(MetadataError::NoReassignmentInProgress),
            None => set_replicas(p, original, &live),
            Some(target) if target == original.as_slice() => set_replicas(p, original, &live),
            Some(target) => {
                p.adding = target
                    .iter()
                    .copied()
                    .filter(|r| !original.contains(r))
                    .collect();
                p.removing = original
                    .iter()
                    .copied()
                    .filter(|r| !target.contains(r))
                    .collect();
                p.replicas = target.iter().chain(&p.removing).copied().collect();
                // Replicas a replaced reassignment was adding leave the ISR with it.
                let replicas = p.replicas.clone();
                p.isr.retain(|r| replicas.contains(r));
                p.partition_epoch += 1;
                complete_reassignment(p, &live);
            }
        }
        Ok(())
    }
}

/// Switches a reassigned partition to its target replicas once all of them are in sync.
pub(crate) fn complete_reassignment(p: &mut PartitionInfo, live: &BTreeSet<i32>) {
    if p.adding.is_empty() && p.removing.is_empty() {
        return;
    }
    let target: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| !p.removing.contains(r))
        .collect();
    if target.iter().all(|r| p.isr.contains(r)) {
        set_replicas(p, target, live);
    }
}

/// Makes `replicas` the partition's replica set, ending any reassignment: the ISR keeps its
/// members among them, and a leader outside them hands over to the first live ISR member.
fn set_replicas(p: &mut PartitionInfo, replicas: Vec<i32>, live: &BTreeSet<i32>) {
    let unchanged = p.replicas == replicas && p.adding.is_empty() && p.removing.is_empty();
    if unchanged {
        return;
    }
    p.isr.retain(|r| replicas.contains(r));
    if p.isr.is_empty() && replicas.contains(&p.leader) {
        p.isr.push(p.leader);
    }
    p.isr.sort_by_key(|r| replicas.iter().position(|x| x == r));
    if !replicas.contains(&p.leader) {
        p.leader = replicas
            .iter()
            .copied()
            .find(|r| p.isr.contains(r) && live.contains(r))
            .unwrap_or(-1);
        p.leader_epoch += 1;
    }
    p.replicas = replicas;
    p.adding.clear();
    p.removing.clear();
    p.partition_epoch += 1;
}

#[cfg(test)]
mod tests {
    use crate::metadata::tests::{image_with_brokers, new_topic};
    use crate::metadata::{Command, CommandResult, MetadataError, Reassignment};

    fn reassign(topic: &str, target: Option<Vec<i32>>) -> Command {
        Command::ReassignPartitions(vec![Reassignment {
            topic: topic.into(),
            partition: 0,
            target,
        }])
    }

    fn expand_isr(img: &mut crate::MetadataImage, isr: Vec<i32>) {
        let p = img.topics["t"].partitions[0].clone();
        let r = img.apply(&Command::AlterPartition {
            topic: "t".into(),
            partition: 0,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr,
        });
        assert_eq!(r, CommandResult::Done);
    }

    #[test]
    fn a_moved_partition_switches_to_its_target_once_the_new_replicas_are_in_sync() {
        let mut img = image_with_brokers(4);
        img.apply(&Command::CreateTopics(vec![new_topic("t", 1, 2)]));
        let before = img.topics["t"].partitions[0].clone();
        let old_leader = before.leader;
        let newcomer = (1..=4).find(|b| !before.replicas.contains(b)).unwrap();
        let kept = before.replicas[1];
        let ok = CommandResult::PerItem(vec![Ok(())]);
        // Replace the leader's replica by the newcomer.
        assert_eq!(img.apply(&reassign("t", Some(vec![newcomer, kept]))), ok);
        let moving = img.topics["t"].partitions[0].clone();
        assert_eq!(moving.adding, vec![newcomer]);
        assert_eq!(moving.removing, vec![old_leader]);
        assert_eq!(moving.replicas, vec![newcomer, kept, old_leader]);
        assert_eq!(
            moving.leader, old_leader,
            "the old leader serves until the move ends"
        );

        // The newcomer catches up and joins the ISR: the move completes.
        expand_isr(&mut img, vec![old_leader, kept, newcomer]);
        let done = img.topics["t"].partitions[0].clone();
        assert_eq!(done.replicas, vec![newcomer, kept]);
        assert!(done.adding.is_empty() && done.removing.is_empty());
        assert_eq!(done.isr, vec![newcomer, kept]);
        assert_eq!(done.leader, newcomer, "leadership left the removed replica");
        assert_eq!(done.leader_epoch, before.leader_epoch + 1);
        assert_eq!(
            img.apply(&reassign("t", None)),
            CommandResult::PerItem(vec![Err(MetadataError::NoReassignmentInProgress)])
        );
    }

    #[test]
    fn cancelling_restores_the_replicas_from_before() {
        let mut img = image_with_brokers(3);
        img.apply(&Command::CreateTopics(vec![new_topic("t", 1, 1)]));
        let before = img.topics["t"].partitions[0].clone();
        let other = (1..=3).find(|b| !before.replicas.contains(b)).unwrap();
        img.apply(&reassign("t", Some(vec![other])));
        assert_eq!(img.topics["t"].partitions[0].adding, vec![other]);
        assert_eq!(
            img.apply(&reassign("t", None)),
            CommandResult::PerItem(vec![Ok(())])
        );
        let after = &img.topics["t"].partitions[0];
        assert_eq!(after.replicas, before.replicas);
        assert_eq!(after.isr, before.isr);
        assert_eq!(after.leader, before.leader);
        assert!(after.adding.is_empty() && after.removing.is_empty());
    }

    #[test]
    fn shrinking_to_replicas_already_in_sync_completes_at_once() {
        let mut img = image_with_brokers(3);
        img.apply(&Command::CreateTopics(vec![new_topic("t", 1, 3)]));
        let before = img.topics["t"].partitions[0].clone();
        let target = vec![before.replicas[2], before.replicas[1]];
        img.apply(&reassign("t", Some(target.clone())));
        let after = &img.topics["t"].partitions[0];
        assert_eq!(after.replicas, target);
        assert_eq!(after.leader, target[0]);
        assert!(matches!(
            img.apply(&reassign("t", Some(vec![9]))),
            CommandResult::PerItem(ref r) if matches!(r[0], Err(MetadataError::InvalidReplicaAssignment(_)))
        ));
    }
}
