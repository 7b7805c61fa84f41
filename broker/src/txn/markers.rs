//! Transaction markers: written to the partitions this node leads (WriteTxnMarkers, or the
//! coordinator itself), sent to the leaders of the others.
//!
//! A marker goes through the one leader-append path with acks=all, as Kafka writes them: a
//! transaction counts as ended on a partition only once its marker would survive a failover.
//! Markers for `__consumer_offsets` go through the group coordinator, which must replay them
//! in order with its own writes (they make transactional offset commits take effect).

use std::collections::BTreeMap;
use std::time::Duration;

use super::peers::PeerClients;
use super::state::TopicPartition;
use crate::config::BrokerConfig;
use crate::coordinator::{CoordinatorIo, TxnProducer};
use crate::error::BrokerError;
use crate::group::{GroupCoordinator, OFFSETS_TOPIC};
use crate::replication::{Acks, LeaderAppend};
use crate::topic_config::EffectiveConfigs;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{TopicName, WriteTxnMarkersRequest};
use kafka_protocol::protocol::StrBytes;

/// How long a marker waits for its partition's ISR (Kafka's `request.timeout.ms`).
const MARKER_TIMEOUT: Duration = Duration::from_secs(30);

/// One transaction's end, as its markers carry it.
#[derive(Debug, Clone, Copy)]
pub struct Marker {
    /// The producer whose transaction ends, at the epoch that writes the markers.
    pub producer: TxnProducer,
    /// Commit (true) or abort.
    pub commit: bool,
    /// The coordinator's epoch (its `__transaction_state` partition's leader epoch).
    pub coordinator_epoch: i32,
}

/// What writing markers locally reads and writes through.
#[derive(Clone, Copy)]
pub struct MarkerIo<'a> {
    /// Storage, replicas and metadata.
    pub io: CoordinatorIo<'a>,
    /// The group coordinator, for `__consumer_offsets` partitions.
    pub groups: &'a GroupCoordinator,
    /// Broker configs (topic defaults such as `min.insync.replicas`).
    pub config: &'a BrokerConfig,
}

/// Writes `marker` to each of `partitions` this node leads; the outcome per partition, in
/// order.
pub async fn write_local(
    mio: MarkerIo<'_>,
    marker: Marker,
    partitions: &[TopicPartition],
) -> Vec<Result<(), BrokerError>> {
    let image = mio.io.controller.image();
    let mut results: Vec<Option<Result<(), BrokerError>>> = vec![None; partitions.len()];
    let mut appends = Vec::new();
    let mut positions = Vec::new();
    for (i, (topic, partition)) in partitions.iter().enumerate() {
        if topic == OFFSETS_TOPIC {
            let written = mio
                .groups
                .write_marker(
                    mio.io,
                    *partition,
                    marker.producer,
                    marker.commit,
                    marker.coordinator_epoch,
                )
                .await;
            results[i] = Some(written);
            continue;
        }
        let prepared = image
            .topics
            .get(topic)
            .ok_or(BrokerError::UnknownTopicOrPartition)
            .and_then(|info| {
                let leader = mio.io.replicas.leader(info, *partition)?;
                let configs = EffectiveConfigs::new(&info.configs, mio.config);
                Ok(LeaderAppend {
                    leader,
                    batches: vec![sluice_storage::control::marker_batch(
                        marker.producer.id,
                        marker.producer.epoch,
                        marker.commit,
                        marker.coordinator_epoch,
                        crate::clock::now_ms(),
                    )],
                    log_append_time: false,
                    flush_messages: configs.flush_messages().max(1) as u64,
                    min_isr: configs.min_insync_replicas(),
                    txn_guard: None,
                })
            });
        match prepared {
            Ok(append) => {
                appends.push(append);
                positions.push(i);
            }
            Err(e) => results[i] = Some(Err(e)),
        }
    }
    if !appends.is_empty() {
        let acks = Acks::All {
            timeout: MARKER_TIMEOUT,
        };
        let outcomes = mio
            .io
            .replicas
            .append_as_leader(mio.io.controller, appends, acks, || {})
            .await;
        for (i, outcome) in positions.into_iter().zip(outcomes) {
            results[i] = Some(outcome.map(|_| ()));
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or(Err(BrokerError::NotLeaderOrFollower)))
        .collect()
}

/// Connections to the other brokers, for the markers of the partitions they lead.
#[derive(Default)]
pub struct MarkerClients {
    peers: PeerClients,
}

impl MarkerClients {
    /// Connections made with `security` (the inter-broker listener's).
    pub fn new(security: sluice_client::ClientSecurity) -> Self {
        Self {
            peers: PeerClients::new(security),
        }
    }

    /// Writes `marker` to every partition, wherever it is led; fails if any partition did
    /// not get it (the caller retries them all: a second marker is harmless).
    pub async fn send(
        &self,
        mio: MarkerIo<'_>,
        marker: Marker,
        partitions: &[TopicPartition],
    ) -> Result<(), BrokerError> {
        let image = mio.io.controller.image();
        let mut by_leader: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
        for (topic, partition) in partitions {
            // A deleted topic needs no marker.
            let Some(info) = image.topics.get(topic) else {
                continue;
            };
            let leader = usize::try_from(*partition)
                .ok()
                .and_then(|i| info.partitions.get(i))
                .map_or(-1, |p| p.leader);
            by_leader
                .entry(leader)
                .or_default()
                .push((topic.clone(), *partition));
        }
        for (leader, partitions) in by_leader {
            if leader < 0 {
                return Err(BrokerError::LeaderNotAvailable);
            }
            if leader == mio.io.node_id {
                write_local(mio, marker, &partitions)
                    .await
                    .into_iter()
                    .try_for_each(|r| r)?;
                continue;
            }
            let addr = image
                .brokers
                .get(&leader)
                .map(|b| format!("{}:{}", b.host, b.port))
                .ok_or(BrokerError::LeaderNotAvailable)?;
            self.send_remote(leader, &addr, marker, &partitions).await?;
        }
        Ok(())
    }

    async fn send_remote(
        &self,
        node: i32,
        addr: &str,
        marker: Marker,
        partitions: &[TopicPartition],
    ) -> Result<(), BrokerError> {
        let mut topics: Vec<WritableTxnMarkerTopic> = Vec::new();
        for (topic, partition) in partitions {
            match topics.last_mut() {
                Some(t) if t.name.0.as_str() == topic => t.partition_indexes.push(*partition),
                _ => topics.push(
                    WritableTxnMarkerTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.clone())))
                        .with_partition_indexes(vec![*partition]),
                ),
            }
        }
        let request =
            WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
                .with_producer_id(marker.producer.id.into())
                .with_producer_epoch(marker.producer.epoch)
                .with_transaction_result(marker.commit)
                .with_coordinator_epoch(marker.coordinator_epoch)
                .with_topics(topics)]);
        let response = self.peers.call(node, addr, &request, 1).await?;
        let failed = response
            .markers
            .iter()
            .flat_map(|m| m.topics.iter())
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.error_code != 0);
        match failed {
            Some(_) => Err(BrokerError::NotLeaderOrFollower),
            None => Ok(()),
        }
    }
}
