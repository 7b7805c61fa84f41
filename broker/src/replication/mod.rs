//! Local partition replicas: which ones this node stores, which it leads and which it
//! follows, and Kafka's ISR model.
//!
//! The replica manager follows the controller's metadata image: it creates the column
//! families of partitions assigned to this node (in one batch per change) and drops those of
//! deleted topics. As a leader it tracks every follower's log end offset from its fetches:
//! the high watermark is the minimum over the ISR, a follower lagging for longer than
//! `replica.lag.time.max.ms` is dropped from the ISR and one that caught up is added back
//! (both through the controller, `isr.rs`). As a follower it copies batches from the leader
//! (`fetcher.rs`) after truncating whatever the leader does not have (KIP-101). The controller
//! leader moves leadership back to preferred replicas (`leaders.rs`). Every write to a led
//! partition goes through one path, `leader_append.rs`: one storage write, then the acks.

pub mod fetcher;
mod isr;
mod leader_append;
mod leaders;
mod lease;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use sluice_controller::{ControllerClient, MetadataImage, PartitionInfo, TopicInfo};
use sluice_storage::{PartitionKey, PartitionLog, Store};
use tokio::sync::Mutex;

use crate::error::BrokerError;

pub use isr::propose_isr_changes;
pub use leader_append::{Acks, LeaderAppend};
pub use leaders::rebalance_preferred_leaders;
pub use lease::LeaderLease;

/// A partition this node leads, with its metadata.
pub struct LeaderPartition {
    /// The local log.
    pub log: Arc<PartitionLog>,
    /// Replica set, ISR and epochs from the metadata image.
    pub info: PartitionInfo,
}

impl LeaderPartition {
    /// acks=all: waits until the high watermark passes `last_offset` (at once with a lone
    /// ISR member) or this replica stops leading (the caller's leadership check then answers
    /// NOT_LEADER_OR_FOLLOWER, and the client retries with the new leader);
    /// REQUEST_TIMED_OUT if the ISR does not get there in time, as Kafka answers a delayed
    /// produce that expires.
    pub async fn wait_committed(
        &self,
        last_offset: i64,
        timeout: std::time::Duration,
    ) -> Result<(), BrokerError> {
        let mut hw = self.log.watch_high_watermark();
        // A replica that now follows, or was moved off this node (a reassignment), will not
        // see its high watermark move: the caller answers NOT_LEADER_OR_FOLLOWER at once.
        let done =
            hw.wait_for(|hw| *hw > last_offset || self.log.is_follower() || self.log.is_deleted());
        let reached = tokio::time::timeout(timeout, done).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            _ => Err(BrokerError::ReplicationTimedOut),
        }
    }
}

/// What a leader knows of one follower, from its fetches.
#[derive(Debug, Clone, Copy)]
struct FollowerProgress {
    /// The follower's log end (its last fetch offset).
    log_end: i64,
    /// Last time it was known to have everything the leader had.
    caught_up_at: Instant,
    /// The leader's log end and the time at its previous fetch.
    previous_fetch: (i64, Instant),
}

/// A partition this node follows.
#[derive(Debug, Clone)]
pub struct Following {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The leader's broker id.
    pub leader: i32,
    /// The leader epoch this follower works in.
    pub leader_epoch: i32,
    /// The local log.
    pub log: Arc<PartitionLog>,
    /// Whether the log was truncated to the leader's for this epoch yet.
    pub truncated: bool,
}

/// A led partition: since when, at which epoch, and each follower's progress.
#[derive(Debug)]
struct Led {
    leader_epoch: i32,
    /// The ISR of the newest image: the high watermark is computed over it, never over
    /// the ISR a long-running request saw when it began (a member added since then may not
    /// have what the old members have).
    isr: Vec<i32>,
    since: Instant,
    followers: HashMap<i32, FollowerProgress>,
}

impl Led {
    /// The smallest log end over the ISR, or None while a member has not fetched in this
    /// epoch (it holds the mark back).
    fn high_watermark(&self, node_id: i32, log_end: i64) -> Option<i64> {
        self.isr
            .iter()
            .filter(|r| **r != node_id)
            .try_fold(log_end, |hw, r| {
                Some(hw.min(self.followers.get(r)?.log_end))
            })
    }
}

/// Keeps local replicas in step with the metadata image.
pub struct ReplicaManager {
    node_id: i32,
    store: Arc<Store>,
    reconcile_lock: Mutex<()>,
    /// Led partitions and their followers' progress.
    progress: std::sync::Mutex<HashMap<PartitionKey, Led>>,
    /// Followed partitions.
    following: std::sync::Mutex<HashMap<PartitionKey, Following>>,
    /// Whether the image may still be trusted for serving partitions (see `lease.rs`).
    lease: LeaderLease,
}

impl ReplicaManager {
    /// A manager for `node_id`'s replicas in `store`, whose lease lasts `session` from each
    /// acknowledged heartbeat.
    pub fn new(node_id: i32, store: Arc<Store>, session: std::time::Duration) -> Self {
        Self {
            node_id,
            store,
            reconcile_lock: Mutex::new(()),
            progress: Default::default(),
            following: Default::default(),
            lease: LeaderLease::new(session),
        }
    }

    /// The leader lease, renewed by the heartbeats.
    pub fn lease(&self) -> &LeaderLease {
        &self.lease
    }

    /// Creates local partitions assigned here, drops those no longer in the image, and
    /// updates which partitions are led and followed. The newest image is read under the
    /// lock, so whichever caller comes last applies the newest state: an older image applied
    /// after a newer one would drop the partitions of a topic created in between.
    pub async fn reconcile(&self, controller: &ControllerClient) -> Result<(), BrokerError> {
        let _guard = self.reconcile_lock.lock().await;
        let image = controller.image();
        let image = image.as_ref();
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
        let wanted_set: std::collections::HashSet<&PartitionKey> = wanted.iter().collect();
        let stale: Vec<PartitionKey> = self
            .store
            .partitions()
            .iter()
            .map(|l| l.key())
            .filter(|k| !wanted_set.contains(k))
            .collect();
        let store = self.store.clone();
        let applied = tokio::task::spawn_blocking(move || -> Result<(), BrokerError> {
            // A topic that cannot be created here must not keep the rest from their roles.
            let created = store.create_partitions(&wanted).map(|_| ());
            if !stale.is_empty() {
                store.delete_partitions(&stale)?;
            }
            created.map_err(BrokerError::from)
        })
        .await
        .map_err(|e| BrokerError::Storage(e.to_string()))?;
        self.update_roles(image);
        applied
    }

    /// Reconciles after a request changed `topics`, and says per topic whether it failed:
    /// a failure is the request's only for a topic left without its partitions here (one
    /// that does not fit must not fail the others created alongside).
    pub async fn reconcile_topics(
        &self,
        controller: &ControllerClient,
        topics: &[String],
    ) -> Vec<Result<(), BrokerError>> {
        let reconciled = self.reconcile(controller).await;
        if let Err(e) = &reconciled {
            tracing::warn!(error = %e, "applying metadata to local replicas");
        }
        let image = controller.image();
        topics
            .iter()
            .map(|name| match &reconciled {
                Err(e) if !image.topics.get(name).is_some_and(|t| self.stores(t)) => Err(e.clone()),
                _ => Ok(()),
            })
            .collect()
    }

    /// Whether every partition of `topic` assigned to this node is stored here.
    fn stores(&self, topic: &TopicInfo) -> bool {
        topic
            .partitions
            .iter()
            .enumerate()
            .filter(|(_, p)| p.replicas.contains(&self.node_id))
            .all(|(index, _)| {
                self.store
                    .partition(&PartitionKey {
                        topic_id: topic.id,
                        partition: index as i32,
                    })
                    .is_some()
            })
    }

    fn update_roles(&self, image: &MetadataImage) {
        let (Ok(mut progress), Ok(mut following)) = (self.progress.lock(), self.following.lock())
        else {
            return;
        };
        let mut led = HashMap::new();
        let mut followed = HashMap::new();
        for topic in image.topics.values() {
            for (index, p) in topic.partitions.iter().enumerate() {
                let key = PartitionKey {
                    topic_id: topic.id,
                    partition: index as i32,
                };
                let Some(log) = self.store.partition(&key) else {
                    continue;
                };
                // Set before anything else: from here on the appender takes only the writes
                // of the new role.
                log.set_follower_epoch(p.leader_epoch);
                log.set_follower(p.leader != self.node_id);
                if p.leader == self.node_id {
                    // A new epoch starts with no knowledge of the followers.
                    let mut entry = match progress.remove(&key) {
                        Some(e) if e.leader_epoch == p.leader_epoch => e,
                        _ => Led {
                            leader_epoch: p.leader_epoch,
                            isr: Vec::new(),
                            since: Instant::now(),
                            followers: HashMap::new(),
                        },
                    };
                    entry.isr = p.isr.clone();
                    // A smaller ISR (a member fenced or shut down) may commit at once the
                    // writes that were waiting for it; a lone member commits everything.
                    if let Some(hw) = entry.high_watermark(self.node_id, log.log_end_offset()) {
                        log.advance_high_watermark(hw);
                    }
                    led.insert(key, entry);
                } else if p.replicas.contains(&self.node_id) && p.leader >= 0 {
                    let truncated = following
                        .get(&key)
                        .is_some_and(|f| f.leader_epoch == p.leader_epoch && f.truncated);
                    followed.insert(
                        key,
                        Following {
                            topic: topic.name.clone(),
                            partition: index as i32,
                            leader: p.leader,
                            leader_epoch: p.leader_epoch,
                            log,
                            truncated,
                        },
                    );
                }
            }
        }
        *progress = led;
        *following = followed;
    }

    /// The partitions this node follows from `leader`.
    pub fn following_from(&self, leader: i32) -> Vec<Following> {
        self.following
            .lock()
            .map(|f| f.values().filter(|x| x.leader == leader).cloned().collect())
            .unwrap_or_default()
    }

    /// Leaders this node follows partitions from.
    pub fn followed_leaders(&self) -> Vec<i32> {
        let mut ids: Vec<i32> = self
            .following
            .lock()
            .map(|f| f.values().map(|x| x.leader).collect())
            .unwrap_or_default();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Marks a followed partition as truncated for its current epoch.
    pub fn mark_truncated(&self, key: &PartitionKey, leader_epoch: i32) {
        if let Ok(mut f) = self.following.lock() {
            if let Some(x) = f.get_mut(key).filter(|x| x.leader_epoch == leader_epoch) {
                x.truncated = true;
            }
        }
    }

    /// Makes a followed partition truncate again before its next fetch.
    pub fn mark_untruncated(&self, key: &PartitionKey) {
        if let Ok(mut f) = self.following.lock() {
            if let Some(x) = f.get_mut(key) {
                x.truncated = false;
            }
        }
    }

    /// The partition, if this node leads it and its lease holds; the Kafka error a client
    /// should see otherwise (NOT_LEADER_OR_FOLLOWER while the lease has run out: the image
    /// may be stale).
    pub fn leader(
        &self,
        topic: &TopicInfo,
        partition: i32,
    ) -> Result<LeaderPartition, BrokerError> {
        let led = self.led_here(topic, partition)?;
        self.check_lease()?;
        Ok(led)
    }

    /// The partition, if this node's image says it leads it, lease or not: for the node's own
    /// upkeep (flushing, retention, cleaning, ISR changes, metrics, loading coordinator
    /// shards), never to answer a request.
    pub fn led_here(
        &self,
        topic: &TopicInfo,
        partition: i32,
    ) -> Result<LeaderPartition, BrokerError> {
        let (log, info) =
            self.local_replica(topic, partition, |info| info.leader == self.node_id)?;
        Ok(LeaderPartition { log, info })
    }

    fn check_lease(&self) -> Result<(), BrokerError> {
        if self.lease.held() {
            Ok(())
        } else {
            Err(BrokerError::NotLeaderOrFollower)
        }
    }

    /// A partition this node follows, for a consumer that may read from any replica
    /// (KIP-392): its local log, which such reads see up to the high watermark the leader last
    /// sent (committed records only).
    pub fn follower(
        &self,
        topic: &TopicInfo,
        partition: i32,
    ) -> Result<(Arc<PartitionLog>, PartitionInfo), BrokerError> {
        let followed = self.local_replica(topic, partition, |info| {
            info.leader != self.node_id && info.replicas.contains(&self.node_id)
        })?;
        self.check_lease()?;
        Ok(followed)
    }

    /// The local log of `partition` when this node's role in it is `role`
    /// (NOT_LEADER_OR_FOLLOWER otherwise, or while the log is not open here).
    fn local_replica(
        &self,
        topic: &TopicInfo,
        partition: i32,
        role: impl Fn(&PartitionInfo) -> bool,
    ) -> Result<(Arc<PartitionLog>, PartitionInfo), BrokerError> {
        let info = usize::try_from(partition)
            .ok()
            .and_then(|i| topic.partitions.get(i))
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        if !role(info) {
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
        Ok((log, info.clone()))
    }

    /// Kafka's rack-aware replica selector (KIP-392): where a consumer in `client_rack`
    /// reading from `fetch_offset` should read instead of this leader, if anywhere: an in-sync
    /// follower on a live broker in that rack that already has the offset (the one furthest
    /// along); none when the leader shares the client's rack.
    pub fn preferred_read_replica(
        &self,
        p: &LeaderPartition,
        image: &MetadataImage,
        client_rack: &str,
        fetch_offset: i64,
    ) -> Option<i32> {
        let in_rack = |id: i32| {
            image
                .brokers
                .get(&id)
                .is_some_and(|b| !b.fenced && b.rack.as_deref() == Some(client_rack))
        };
        if client_rack.is_empty() || in_rack(self.node_id) {
            return None;
        }
        let progress = self.progress.lock().ok()?;
        let led = progress.get(&p.log.key())?;
        led.isr
            .iter()
            .filter(|id| **id != self.node_id && in_rack(**id))
            .filter_map(|id| led.followers.get(id).map(|f| (f.log_end, *id)))
            .filter(|(log_end, _)| *log_end >= fetch_offset)
            .max()
            .map(|(_, id)| id)
    }

    /// A follower fetched from `fetch_offset` (its log end): remember its progress and move
    /// the high watermark.
    pub fn on_follower_fetch(&self, p: &LeaderPartition, follower: i32, fetch_offset: i64) {
        let now = Instant::now();
        let leader_end = p.log.log_end_offset();
        if let Ok(mut progress) = self.progress.lock() {
            let Some(led) = progress.get_mut(&p.log.key()) else {
                return;
            };
            let f = led.followers.entry(follower).or_insert(FollowerProgress {
                log_end: fetch_offset,
                caught_up_at: now,
                previous_fetch: (leader_end, now),
            });
            // Kafka's rule: caught up now if it has all the leader has; caught up as of the
            // previous fetch if it has what the leader had then.
            if fetch_offset >= leader_end {
                f.caught_up_at = now;
            } else if fetch_offset >= f.previous_fetch.0 {
                f.caught_up_at = f.caught_up_at.max(f.previous_fetch.1);
            }
            f.log_end = fetch_offset;
            f.previous_fetch = (leader_end, now);
        }
        self.update_high_watermark(p);
    }

    /// Called after an append: moves the high watermark as far as the ISR allows.
    pub fn on_append(&self, p: &LeaderPartition) {
        self.update_high_watermark(p);
    }

    /// High watermark = the smallest log end over the ISR (a member not heard from in this
    /// epoch holds it back).
    fn update_high_watermark(&self, p: &LeaderPartition) {
        let Ok(progress) = self.progress.lock() else {
            return;
        };
        // Not led any more (or not yet): the image moved on; leave the mark alone.
        let Some(led) = progress.get(&p.log.key()) else {
            return;
        };
        if let Some(hw) = led.high_watermark(self.node_id, p.log.log_end_offset()) {
            p.log.advance_high_watermark(hw);
        }
    }

    /// After an acks=all wait: the write is committed only if this node still leads the
    /// partition in the same epoch (a deposed leader's log may since have been truncated and
    /// refilled by the new leader's records, so its high watermark proves nothing about this
    /// write) and the ISR still has `min_isr` members.
    pub fn confirm_committed(
        &self,
        image: &MetadataImage,
        p: &LeaderPartition,
        min_isr: usize,
    ) -> Result<(), BrokerError> {
        let key = p.log.key();
        let current = image.topic_by_id(&key.topic_id).and_then(|t| {
            usize::try_from(key.partition)
                .ok()
                .and_then(|i| t.partitions.get(i))
        });
        match current {
            Some(c) if c.leader == self.node_id && c.leader_epoch == p.info.leader_epoch => {
                if c.isr.len() < min_isr {
                    Err(BrokerError::NotEnoughReplicasAfterAppend)
                } else {
                    Ok(())
                }
            }
            _ => Err(BrokerError::NotLeaderOrFollower),
        }
    }

    /// Checks a client's view of the leader epoch (KIP-320) against the partition's `info`;
    /// -1 means "not given".
    pub fn check_leader_epoch(
        &self,
        info: &PartitionInfo,
        requested: i32,
    ) -> Result<(), BrokerError> {
        if requested < 0 || requested == info.leader_epoch {
            Ok(())
        } else if requested < info.leader_epoch {
            Err(BrokerError::FencedLeaderEpoch)
        } else {
            Err(BrokerError::UnknownLeaderEpoch)
        }
    }
}
