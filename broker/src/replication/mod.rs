//! Local partition replicas: which ones this node stores, and which it leads.
//!
//! The replica manager follows the controller's metadata image: it creates the column
//! families of partitions assigned to this node (in one batch per change) and drops those of
//! deleted topics. With a single replica the high watermark follows the log end at once;
//! follower fetching and ISR management build on this for multi-node replication.

use std::sync::Arc;

use sluice_controller::{MetadataImage, PartitionInfo, TopicInfo};
use sluice_storage::{PartitionKey, PartitionLog, Store};
use tokio::sync::Mutex;

use crate::error::BrokerError;

/// A partition this node leads, with its metadata.
pub struct LeaderPartition {
    /// The local log.
    pub log: Arc<PartitionLog>,
    /// Replica set, ISR and epochs from the metadata image.
    pub info: PartitionInfo,
}

/// Keeps local replicas in step with the metadata image.
pub struct ReplicaManager {
    node_id: i32,
    store: Arc<Store>,
    reconcile_lock: Mutex<()>,
}

impl ReplicaManager {
    /// A manager for `node_id`'s replicas in `store`.
    pub fn new(node_id: i32, store: Arc<Store>) -> Self {
        Self {
            node_id,
            store,
            reconcile_lock: Mutex::new(()),
        }
    }

    /// Creates local partitions assigned here and drops those no longer in the image.
    pub async fn reconcile(&self, image: &MetadataImage) -> Result<(), BrokerError> {
        let _guard = self.reconcile_lock.lock().await;
        let mut wanted = Vec::new();
        for topic in image.topics.values() {
            for (index, p) in topic.partitions.iter().enumerate() {
                if p.replicas.contains(&self.node_id) {
                    wanted.push(PartitionKey {
                        topic_id: topic.id,
                        partition: index as i32,
                    });
                }
            }
        }
        let stale: Vec<PartitionKey> = self
            .store
            .partitions()
            .iter()
            .map(|l| l.key())
            .filter(|k| !wanted.contains(k))
            .collect();
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || -> Result<(), BrokerError> {
            store.create_partitions(&wanted)?;
            if !stale.is_empty() {
                store.delete_partitions(&stale)?;
            }
            for log in store.partitions() {
                // A lone replica is the whole ISR: everything it stores is committed.
                log.advance_high_watermark(log.log_end_offset());
            }
            Ok(())
        })
        .await
        .map_err(|e| BrokerError::Storage(e.to_string()))?
    }

    /// The partition, if this node leads it; the Kafka error a client should see otherwise.
    pub fn leader(
        &self,
        topic: &TopicInfo,
        partition: i32,
    ) -> Result<LeaderPartition, BrokerError> {
        let info = usize::try_from(partition)
            .ok()
            .and_then(|i| topic.partitions.get(i))
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        if info.leader != self.node_id {
            return Err(BrokerError::NotLeaderOrFollower);
        }
        let key = PartitionKey {
            topic_id: topic.id,
            partition,
        };
        let log = self
            .store
            .partition(&key)
            .ok_or(BrokerError::NotLeaderOrFollower)?;
        Ok(LeaderPartition {
            log,
            info: info.clone(),
        })
    }

    /// Called after an append: moves the high watermark as far as the ISR allows.
    pub fn on_append(&self, p: &LeaderPartition) {
        if p.info.isr.as_slice() == [self.node_id] {
            p.log.advance_high_watermark(p.log.log_end_offset());
        }
    }

    /// Checks a client's view of the leader epoch (KIP-320); -1 means "not given".
    pub fn check_leader_epoch(
        &self,
        p: &LeaderPartition,
        requested: i32,
    ) -> Result<(), BrokerError> {
        if requested < 0 || requested == p.info.leader_epoch {
            Ok(())
        } else if requested < p.info.leader_epoch {
            Err(BrokerError::FencedLeaderEpoch)
        } else {
            Err(BrokerError::UnknownLeaderEpoch)
        }
    }
}
