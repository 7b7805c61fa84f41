//! DescribeQuorum: the metadata quorum (`kafka-metadata-quorum describe --status` and
//! `--replication`) from the Raft state. Only the Raft leader knows how far each member has
//! replicated, so another node passes the request on to the leader's Kafka listener, as a
//! Kafka broker forwards it to the active controller.

use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_client::KafkaClient;
use sluice_controller::RaftStatus;

use super::authorize_cluster;
use crate::context::Ctx;
use crate::error::BrokerError;
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation::Describe;

/// The one topic and partition a quorum is asked about.
const METADATA_TOPIC: &str = "__cluster_metadata";

/// The listener name voters' endpoints are reported under.
const CONTROLLER_LISTENER: &str = "CONTROLLER";

/// The client id of a request one node forwards to the node it believes leads, so the
/// receiver answers it itself instead of forwarding again (two nodes that each think the
/// other leads, in the moment after an election, would otherwise pass it back and forth).
const FORWARDED_CLIENT_ID: &str = "sluice-forwarded";

/// Describes the quorum here on the Raft leader, or asks the leader.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    header: &RequestHeader,
    req: DescribeQuorumRequest,
) -> DescribeQuorumResponse {
    let asks_metadata_partition = req.topics.iter().all(|t| {
        t.topic_name.0.as_str() == METADATA_TOPIC
            && t.partitions.iter().all(|p| p.partition_index == 0)
    });
    if let Err(e) = authorize_cluster(ctx, scope, Describe) {
        return failed(&e);
    }
    if !asks_metadata_partition {
        return failed(&BrokerError::UnknownTopicOrPartition);
    }
    let status = ctx.controller.status();
    if status.is_leader {
        return describe(&status, crate::clock::now_ms());
    }
    if header.client_id.as_deref() == Some(FORWARDED_CLIENT_ID) {
        return failed(&BrokerError::NotLeaderOrFollower);
    }
    match forward_to_leader(ctx, &status, header.request_api_version, &req).await {
        Ok(response) => response,
        Err(e) => failed(&e),
    }
}

async fn forward_to_leader(
    ctx: &Ctx,
    status: &RaftStatus,
    version: i16,
    req: &DescribeQuorumRequest,
) -> Result<DescribeQuorumResponse, BrokerError> {
    let leader = status
        .leader
        .and_then(|id| i32::try_from(id).ok())
        .ok_or(BrokerError::NotLeaderOrFollower)?;
    let image = ctx.controller.image();
    let broker = image
        .brokers
        .get(&leader)
        .ok_or(BrokerError::NotLeaderOrFollower)?;
    let addr = format!("{}:{}", broker.host, broker.port);
    let mut client = KafkaClient::connect(&addr)
        .await
        .map_err(|_| BrokerError::NotLeaderOrFollower)?
        .with_client_id(FORWARDED_CLIENT_ID);
    client
        .send(req, version)
        .await
        .map_err(|_| BrokerError::NotLeaderOrFollower)
}

/// The leader's view: every voter's and learner's replicated log end. Openraft does not
/// time followers' fetches, so a member that holds the whole log counts as caught up now
/// and one that lags has no caught-up time (-1, "unknown" to the tool).
fn describe(status: &RaftStatus, now_ms: i64) -> DescribeQuorumResponse {
    let member = |id: u64| {
        let end = if id == status.node_id {
            Some(status.last_log_index)
        } else {
            status.replication.get(&id).copied().flatten()
        };
        let caught_up = end == Some(status.last_log_index);
        ReplicaState::default()
            .with_replica_id(BrokerId(i32::try_from(id).unwrap_or(-1)))
            .with_log_end_offset(end.map_or(-1, offset))
            .with_last_fetch_timestamp(if end.is_some() { now_ms } else { -1 })
            .with_last_caught_up_timestamp(if caught_up { now_ms } else { -1 })
    };
    let partition = PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(i32::try_from(status.node_id).unwrap_or(-1)))
        .with_leader_epoch(i32::try_from(status.term).unwrap_or(i32::MAX))
        .with_high_watermark(offset(status.commit_index))
        .with_current_voters(status.voters.keys().map(|id| member(*id)).collect())
        .with_observers(status.learners.keys().map(|id| member(*id)).collect());
    let nodes = status
        .voters
        .iter()
        .chain(status.learners.iter())
        .map(|(id, addr)| {
            let listeners = addr
                .rsplit_once(':')
                .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
                .map(|(host, port)| {
                    Listener::default()
                        .with_name(StrBytes::from_static_str(CONTROLLER_LISTENER))
                        .with_host(StrBytes::from_string(host.to_string()))
                        .with_port(port)
                })
                .into_iter()
                .collect();
            Node::default()
                .with_node_id(BrokerId(i32::try_from(*id).unwrap_or(-1)))
                .with_listeners(listeners)
        })
        .collect();
    DescribeQuorumResponse::default()
        .with_topics(vec![TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
            .with_partitions(vec![partition])])
        .with_nodes(nodes)
}

/// A Raft log index as the offset Kafka reports: the next offset after it.
fn offset(index: u64) -> i64 {
    i64::try_from(index).map_or(i64::MAX, |i| i + 1)
}

fn failed(e: &BrokerError) -> DescribeQuorumResponse {
    DescribeQuorumResponse::default()
        .with_error_code(e.code())
        .with_error_message(Some(e.message()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn the_leader_reports_every_member_and_its_lag() {
        let status = RaftStatus {
            node_id: 1,
            term: 4,
            leader: Some(1),
            last_log_index: 20,
            applied_index: 20,
            commit_index: 19,
            is_leader: true,
            voters: BTreeMap::from([
                (1, "127.0.0.1:9001".to_string()),
                (2, "127.0.0.1:9002".to_string()),
                (3, "127.0.0.1:9003".to_string()),
            ]),
            learners: BTreeMap::from([(4, "127.0.0.1:9004".to_string())]),
            replication: BTreeMap::from([(2, Some(20)), (3, Some(12)), (4, None)]),
        };
        let r = describe(&status, 1_000);
        let p = &r.topics[0].partitions[0];
        assert_eq!(
            (p.leader_id.0, p.leader_epoch, p.high_watermark),
            (1, 4, 20)
        );
        let ends: Vec<(i32, i64, i64)> = p
            .current_voters
            .iter()
            .chain(&p.observers)
            .map(|v| (v.replica_id.0, v.log_end_offset, v.last_caught_up_timestamp))
            .collect();
        assert_eq!(
            ends,
            [(1, 21, 1_000), (2, 21, 1_000), (3, 13, -1), (4, -1, -1)]
        );
        assert_eq!(r.nodes.len(), 4);
        assert_eq!(r.nodes[2].listeners[0].port, 9003);
    }
}
