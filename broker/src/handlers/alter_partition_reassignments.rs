//! AlterPartitionReassignments (`kafka-reassign-partitions --execute/--cancel`): moves
//! partitions to new replica sets. The controller widens each replica set, the new replicas
//! catch up by fetching, and the move completes once they are in sync (controller
//! `reassign.rs`).

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, RequestHeader,
};
use sluice_controller::{Command, CommandResult, Reassignment};

use super::authorize_cluster;
use crate::context::Ctx;
use crate::error::BrokerError;
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation::Alter;

/// Starts or cancels each listed partition's reassignment; one result per partition.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    _header: &RequestHeader,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    if let Err(e) = authorize_cluster(ctx, scope, Alter) {
        return AlterPartitionReassignmentsResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(e.message()));
    }
    let image = ctx.controller.image();
    let mut moves = Vec::new();
    // Per requested partition: refused up front, or the index of its move.
    let mut slots: Vec<(String, i32, Result<usize, BrokerError>)> = Vec::new();
    for t in &req.topics {
        let topic = t.name.0.to_string();
        for p in &t.partitions {
            let target: Option<Vec<i32>> =
                p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect());
            let current_rf = image
                .topics
                .get(&topic)
                .and_then(|info| {
                    info.partitions
                        .get(usize::try_from(p.partition_index).ok()?)
                })
                .map(|info| info.replicas.len() - info.removing.len());
            let slot = match (&target, current_rf) {
                (_, None) => Err(BrokerError::UnknownTopicOrPartition),
                (Some(r), Some(rf)) if !req.allow_replication_factor_change && r.len() != rf => {
                    Err(BrokerError::InvalidReplicationFactor(
                        "The replication factor would change; allow it to move".into(),
                    ))
                }
                _ => {
                    moves.push(Reassignment {
                        topic: topic.clone(),
                        partition: p.partition_index,
                        target,
                    });
                    Ok(moves.len() - 1)
                }
            };
            slots.push((topic.clone(), p.partition_index, slot));
        }
    }
    let outcomes: Vec<Result<(), BrokerError>> = if moves.is_empty() {
        Vec::new()
    } else {
        let n = moves.len();
        match ctx
            .controller
            .execute(Command::ReassignPartitions(moves))
            .await
        {
            Ok(CommandResult::PerItem(r)) => r
                .into_iter()
                .map(|x| x.map_err(BrokerError::from))
                .collect(),
            Ok(other) => vec![Err(BrokerError::Controller(format!("{other:?}"))); n],
            Err(e) => vec![Err(BrokerError::Controller(e.to_string())); n],
        }
    };
    let mut responses: Vec<ReassignableTopicResponse> = Vec::new();
    for (topic, partition, slot) in slots {
        let result = slot.and_then(|i| {
            outcomes
                .get(i)
                .cloned()
                .unwrap_or_else(|| Err(BrokerError::Controller("no result".into())))
        });
        let (code, message) = match &result {
            Ok(()) => (0, None),
            Err(e) => (e.code(), Some(e.message())),
        };
        let r = ReassignablePartitionResponse::default()
            .with_partition_index(partition)
            .with_error_code(code)
            .with_error_message(message);
        match responses.last_mut() {
            Some(last) if last.name.0.as_str() == topic => last.partitions.push(r),
            _ => responses.push(
                ReassignableTopicResponse::default()
                    .with_name(super::topic_name(&topic))
                    .with_partitions(vec![r]),
            ),
        }
    }
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(req.allow_replication_factor_change)
        .with_responses(responses)
}
