//! ElectLeaders (`kafka-leader-election`): preferred or unclean leader election, decided by
//! the controller. No partitions listed (null) means every partition.

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, RequestHeader};
use sluice_controller::{Command, CommandResult, MetadataError};

use super::authorize_cluster;
use super::topic_name;
use crate::context::Ctx;
use crate::error::BrokerError;
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation::Alter;

const UNCLEAN: i8 = 1;

/// Elects the requested partitions' leaders; one result per partition.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    header: &RequestHeader,
    req: ElectLeadersRequest,
) -> ElectLeadersResponse {
    if let Err(e) = authorize_cluster(ctx, scope, Alter) {
        return ElectLeadersResponse::default().with_error_code(e.code());
    }
    let image = ctx.controller.image();
    let wanted: Vec<(String, i32)> = match &req.topic_partitions {
        Some(tps) => tps
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| (t.topic.0.to_string(), *p))
            })
            .collect(),
        None => image
            .topics
            .values()
            .flat_map(|t| (0..t.partitions.len() as i32).map(move |p| (t.name.clone(), p)))
            .collect(),
    };
    let unclean = header.request_api_version >= 1 && req.election_type == UNCLEAN;
    let command = Command::ElectLeaders {
        partitions: wanted.clone(),
        unclean,
    };
    let outcomes: Vec<Result<(), BrokerError>> = match ctx.controller.execute(command).await {
        Ok(CommandResult::PerItem(r)) => r
            .into_iter()
            .map(|x| x.map_err(BrokerError::from))
            .collect(),
        Ok(_) => vec![Err(BrokerError::from(MetadataError::ElectionNotNeeded)); wanted.len()],
        Err(e) => vec![Err(BrokerError::Controller(e.to_string())); wanted.len()],
    };
    let mut results: Vec<ReplicaElectionResult> = Vec::new();
    for ((topic, partition), outcome) in wanted.into_iter().zip(outcomes) {
        let (code, message) = match &outcome {
            Ok(()) => (0, None),
            Err(e) => (e.code(), Some(e.message())),
        };
        let r = PartitionResult::default()
            .with_partition_id(partition)
            .with_error_code(code)
            .with_error_message(message);
        match results.last_mut() {
            Some(last) if last.topic.0.as_str() == topic => last.partition_result.push(r),
            _ => results.push(
                ReplicaElectionResult::default()
                    .with_topic(topic_name(&topic))
                    .with_partition_result(vec![r]),
            ),
        }
    }
    ElectLeadersResponse::default().with_replica_election_results(results)
}
