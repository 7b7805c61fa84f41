//! The group coordinator: classic consumer groups and KIP-848 consumer groups around their
//! pure state machines, with committed offsets kept as records in the compacted
//! `__consumer_offsets` topic. It is the coordinator runtime's first tenant: each offsets
//! partition is a [`shard::GroupShard`] hosted by the partition's leader.
//!
//! A group's coordinator is the leader of its `__consumer_offsets` partition (Java's
//! `abs(groupId.hashCode()) % partitions`, so tools agree with Kafka on the mapping).
//! Joins and syncs that must wait park a oneshot sender; every event and a 100 ms tick
//! deliver the replies the state machine completes.

pub mod consumer;
pub mod membership;
pub mod offsets;
pub mod shard;
pub mod state;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_controller::MetadataImage;

use crate::coordinator::{CoordinatorIo, CoordinatorRuntime, InternalTopic, TxnProducer};
use crate::error::{BrokerError, CoordinatorError, GroupError};
use consumer::{ConsumerGroupView, Heartbeat, HeartbeatReply};
use offsets::{Committed, TopicPartition};
use shard::{Answer, GroupSettings, GroupShard};
use state::{JoinParams, JoinResult, SyncResult};

/// The internal topic holding committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// A group as DescribeGroups/ListGroups show it.
pub struct GroupView {
    /// Group id.
    pub id: String,
    /// State name.
    pub state: &'static str,
    /// "classic" or "consumer" (KIP-848).
    pub group_type: &'static str,
    /// Protocol type.
    pub protocol_type: String,
    /// Chosen assignor.
    pub protocol: String,
    /// (member id, instance id, client id, host, metadata, assignment)
    pub members: Vec<(String, Option<String>, String, String, Bytes, Bytes)>,
}

/// The groups this node coordinates.
pub struct GroupCoordinator {
    runtime: CoordinatorRuntime<GroupShard>,
}

impl GroupCoordinator {
    /// A coordinator with the groups' timings, keeping offsets in `__consumer_offsets`
    /// (`offsets.topic.num.partitions`, `.replication.factor`, `offsets.commit.timeout.ms`).
    pub fn new(
        settings: GroupSettings,
        partitions: i32,
        replication_factor: i16,
        commit_timeout: Duration,
    ) -> Self {
        let topic = InternalTopic {
            name: OFFSETS_TOPIC,
            partitions,
            replication_factor,
            write_timeout: commit_timeout,
            min_isr: 1,
        };
        Self {
            runtime: CoordinatorRuntime::new(topic, move || GroupShard::new(settings)),
        }
    }

    /// The partition of a group, creating `__consumer_offsets` on first use.
    async fn partition_of(
        &self,
        io: CoordinatorIo<'_>,
        group_id: &str,
    ) -> Result<i32, BrokerError> {
        self.runtime.partition_of(io, group_id).await
    }

    /// The partition of a group if `__consumer_offsets` exists.
    fn existing_partition(&self, io: CoordinatorIo<'_>, group_id: &str) -> Option<i32> {
        self.runtime.existing_partition(io, group_id)
    }

    /// The coordinator broker of a group (creating the offsets topic on first use).
    pub async fn coordinator_of(
        &self,
        io: CoordinatorIo<'_>,
        group_id: &str,
    ) -> Result<i32, BrokerError> {
        self.runtime.coordinator_of(io, group_id).await
    }

    /// Runs `f` on the group's shard once it is loaded here, then writes the membership
    /// records it made due.
    async fn on_shard<T>(
        &self,
        io: CoordinatorIo<'_>,
        group_id: &str,
        f: impl FnOnce(&mut GroupShard) -> T,
    ) -> Result<T, GroupError> {
        let partition = self
            .partition_of(io, group_id)
            .await
            .map_err(|_| GroupError::Coordinator(CoordinatorError::NotAvailable))?;
        let out = self.runtime.read(io, partition, f).await?;
        self.persist(io, partition).await;
        Ok(out)
    }

    /// Writes the membership records due in `partition`'s shard, each as its group is when
    /// the write's turn comes (so the last record of a group is its newest state). A failed
    /// write leaves them due for the next tick; a coordinator that lost the partition has
    /// unloaded the shard and has nothing left to write.
    async fn persist(&self, io: CoordinatorIo<'_>, partition: i32) {
        let due = self
            .runtime
            .peek(partition, GroupShard::take_persist_due)
            .unwrap_or_default();
        if due.is_empty() {
            return;
        }
        let written = self
            .runtime
            .write(io, partition, |s| {
                let records = s.membership_records(&due, crate::clock::now_ms());
                Ok::<_, CoordinatorError>((records, ()))
            })
            .await;
        if let Err(e) = written {
            tracing::warn!(partition, groups = ?due, error = %e, "group membership not stored; retrying");
            self.runtime.peek(partition, |s| s.mark_persist_due(&due));
        }
    }

    /// ConsumerGroupHeartbeat (KIP-848).
    pub async fn consumer_heartbeat(
        &self,
        io: CoordinatorIo<'_>,
        group_id: &str,
        hb: Heartbeat,
        image: &MetadataImage,
    ) -> HeartbeatReply {
        let member_id = hb.member_id.clone();
        let reply = self
            .on_shard(io, group_id, |s| {
                s.consumer_heartbeat(group_id, hb, image, Instant::now())
            })
            .await;
        reply.unwrap_or_else(|error| HeartbeatReply {
            error: Some(error),
            message: None,
            member_id,
            member_epoch: -1,
            assignment: None,
        })
    }

    /// JoinGroup: answers at once or when the rebalance completes.
    pub async fn join(
        &self,
        io: CoordinatorIo<'_>,
        group_id: &str,
        params: JoinParams,
    ) -> JoinResult {
        let member = params.member_id.clone();
        let answer = self
            .on_shard(io, group_id, |s| s.join(group_id, params, Instant::now()))
            .await;
        match answer {
            Ok(Answer::Now(r)) => r,
            // A dropped waiter: its member joined again, or the shard was unloaded.
            Ok(Answer::Later(rx)) => rx
                .await
                .unwrap_or_else(|_| join_error(GroupError::RebalanceInProgress, &member)),
            Err(e) => join_error(e, &member),
        }
    }

    /// SyncGroup: the leader's call completes everyone's.
    pub async fn sync(
        &self,
        io: CoordinatorIo<'_>,
        group_id: &str,
        member: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncResult {
        let answer = self
            .on_shard(io, group_id, |s| {
                s.sync(group_id, member, generation, assignments, Instant::now())
            })
            .await;
        let failed = |error| SyncResult {
            error: Some(error),
            protocol_type: None,
            protocol: None,
            assignment: Bytes::new(),
        };
        match answer {
            Ok(Answer::Now(r)) => r,
            Ok(Answer::Later(rx)) => rx
                .await
                .unwrap_or_else(|_| failed(GroupError::RebalanceInProgress)),
            Err(e) => failed(e),
        }
    }

    /// Heartbeat.
    pub async fn heartbeat(
        &self,
        io: CoordinatorIo<'_>,
        group_id: &str,
        member: &str,
        generation: i32,
    ) -> Result<(), GroupError> {
        self.on_shard(io, group_id, |s| {
            s.heartbeat(group_id, member, generation, Instant::now())
        })
        .await?
    }

    /// LeaveGroup for one member.
    pub async fn leave(
        &self,
        io: CoordinatorIo<'_>,
        group_id: &str,
        member: &str,
        instance: Option<&str>,
    ) -> Result<(), GroupError> {
        self.on_shard(io, group_id, |s| {
            s.leave(group_id, member, instance, Instant::now())
        })
        .await?
    }

    /// Expires sessions and finishes timed-out join phases, then stores the memberships
    /// that changed; run every 100 ms.
    pub async fn tick(&self, io: CoordinatorIo<'_>) {
        self.runtime.tick(Instant::now(), &io.controller.image());
        let mut due = Vec::new();
        self.runtime.for_each_partition(|p, s| {
            if s.persist_due() {
                due.push(p);
            }
        });
        for partition in due {
            self.persist(io, partition).await;
        }
    }

    /// OffsetCommit: writes the offsets to `__consumer_offsets`, then makes them visible.
    pub async fn commit(
        &self,
        io: CoordinatorIo<'_>,
        group_id: &str,
        member: &str,
        generation: i32,
        offsets: Vec<(TopicPartition, Committed)>,
    ) -> Result<(), BrokerError> {
        let partition = self.partition_of(io, group_id).await?;
        self.runtime
            .write(io, partition, |s| {
                s.check_commit(group_id, member, generation, false)
                    .map_err(BrokerError::Group)?;
                Ok((GroupShard::commit_records(group_id, &offsets), ()))
            })
            .await
    }

    /// TxnOffsetCommit: writes the offsets as part of `producer`'s transaction; they take
    /// effect at its commit marker. Without a member (generation -1, the pre-KIP-447 form)
    /// the group's membership is not checked, as in Kafka.
    pub async fn txn_commit(
        &self,
        io: CoordinatorIo<'_>,
        group_id: &str,
        member: &str,
        generation: i32,
        producer: TxnProducer,
        offsets: Vec<(TopicPartition, Committed)>,
    ) -> Result<(), BrokerError> {
        let partition = self.partition_of(io, group_id).await?;
        self.runtime
            .write_as(io, partition, Some(producer), |s| {
                if generation >= 0 || !member.is_empty() {
                    s.check_commit(group_id, member, generation, true)
                        .map_err(BrokerError::Group)?;
                }
                Ok((GroupShard::commit_records(group_id, &offsets), ()))
            })
            .await
    }

    /// The `__consumer_offsets` partition of a group (AddOffsetsToTxn adds it to the
    /// transaction), creating the topic on first use.
    pub async fn offsets_partition(
        &self,
        io: CoordinatorIo<'_>,
        group_id: &str,
    ) -> Result<i32, BrokerError> {
        self.partition_of(io, group_id).await
    }

    /// Ends `producer`'s transaction on an offsets partition led here (WriteTxnMarkers).
    pub async fn write_marker(
        &self,
        io: CoordinatorIo<'_>,
        partition: i32,
        producer: TxnProducer,
        commit: bool,
        coordinator_epoch: i32,
    ) -> Result<(), BrokerError> {
        Ok(self
            .runtime
            .write_marker(io, partition, producer, commit, coordinator_epoch)
            .await?)
    }

    /// The group's partitions with offsets pending in open transactions (OffsetFetch's
    /// `require_stable`).
    pub async fn pending(
        &self,
        io: CoordinatorIo<'_>,
        group_id: &str,
    ) -> std::collections::BTreeSet<TopicPartition> {
        let Some(partition) = self.existing_partition(io, group_id) else {
            return Default::default();
        };
        self.runtime
            .read(io, partition, |s| s.pending(group_id))
            .await
            .unwrap_or_default()
    }

    /// Removes committed offsets (all of the group's with `None`).
    pub async fn delete_offsets(
        &self,
        io: CoordinatorIo<'_>,
        group_id: &str,
        only: Option<&[TopicPartition]>,
    ) -> Result<(), BrokerError> {
        let partition = self.partition_of(io, group_id).await?;
        self.runtime
            .write(io, partition, |s| {
                Ok::<_, BrokerError>((s.delete_records(group_id, only), ()))
            })
            .await
    }

    /// Deletes an empty group and its offsets.
    pub async fn delete_group(
        &self,
        io: CoordinatorIo<'_>,
        group_id: &str,
    ) -> Result<(), BrokerError> {
        let partition = self.partition_of(io, group_id).await?;
        self.runtime
            .write(io, partition, |s| {
                s.check_delete(group_id).map_err(BrokerError::Group)?;
                Ok::<_, BrokerError>((s.group_tombstones(group_id), ()))
            })
            .await?;
        self.runtime.peek(partition, |s| s.forget(group_id));
        Ok(())
    }

    /// A group's committed offsets, once this node can answer for them: the offsets
    /// partition may be newly led here and not replayed yet. With no `__consumer_offsets`,
    /// nothing was ever committed anywhere.
    pub async fn committed(
        &self,
        io: CoordinatorIo<'_>,
        group_id: &str,
    ) -> Result<BTreeMap<TopicPartition, Committed>, BrokerError> {
        let Some(partition) = self.existing_partition(io, group_id) else {
            return Ok(BTreeMap::new());
        };
        Ok(self
            .runtime
            .read(io, partition, |s| s.committed(group_id))
            .await?)
    }

    /// Hosts the shards of the offsets partitions this node leads now (at startup, and
    /// after every metadata change); returns the records replayed.
    pub fn follow_leadership(&self, io: CoordinatorIo<'_>) -> Result<usize, BrokerError> {
        self.runtime.follow_leadership(io)
    }

    /// Every group hosted here (with members or committed offsets), with its committed
    /// offsets.
    pub fn list(&self) -> Vec<(GroupView, BTreeMap<TopicPartition, Committed>)> {
        let mut groups = Vec::new();
        self.runtime.for_each(|s| {
            let mut ids = s.group_ids();
            ids.sort();
            ids.dedup();
            groups.extend(
                ids.iter()
                    .filter_map(|id| Some((s.describe(id)?, s.committed(id)))),
            );
        });
        groups.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        groups
    }

    /// Runs `f` on the shard of a group hosted here now, without waiting for a load.
    fn peek<T>(
        &self,
        io: CoordinatorIo<'_>,
        group_id: &str,
        f: impl FnOnce(&mut GroupShard) -> T,
    ) -> Option<T> {
        let partition = self.existing_partition(io, group_id)?;
        self.runtime.peek(partition, f)
    }

    /// A KIP-848 group as ConsumerGroupDescribe shows it, or Kafka's GROUP_ID_NOT_FOUND
    /// message.
    pub fn describe_consumer(
        &self,
        io: CoordinatorIo<'_>,
        group_id: &str,
    ) -> Result<ConsumerGroupView, String> {
        self.peek(io, group_id, |s| s.describe_consumer(group_id))
            .unwrap_or_else(|| Err(format!("Group {group_id} not found.")))
    }

    /// A group's state and members, if it exists here.
    pub fn describe(&self, io: CoordinatorIo<'_>, group_id: &str) -> Option<GroupView> {
        self.peek(io, group_id, |s| s.describe(group_id)).flatten()
    }

    /// Whether a classic group has members (OffsetDelete refuses then).
    pub fn is_active(&self, io: CoordinatorIo<'_>, group_id: &str) -> bool {
        self.peek(io, group_id, |s| s.is_active(group_id))
            .unwrap_or(false)
    }
}

fn join_error(error: GroupError, member: &str) -> JoinResult {
    JoinResult {
        error: Some(error),
        generation: -1,
        protocol_type: None,
        protocol: None,
        leader: String::new(),
        member_id: member.to_string(),
        members: Vec::new(),
    }
}
