//! ListPartitionReassignments (`kafka-reassign-partitions --verify/--list`): the partitions
//! being moved, with the replicas they are gaining and losing.

use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, RequestHeader,
};

use super::authorize_cluster;
use crate::context::Ctx;
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation::Describe;

/// Lists ongoing reassignments, of every partition or of the ones asked for.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    _header: &RequestHeader,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    if let Err(e) = authorize_cluster(ctx, scope, Describe) {
        return ListPartitionReassignmentsResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(e.message()));
    }
    let image = ctx.controller.image();
    let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    let wanted = |topic: &str, partition: i32| match &req.topics {
        None => true,
        Some(ts) => ts
            .iter()
            .any(|t| t.name.0.as_str() == topic && t.partition_indexes.contains(&partition)),
    };
    let topics = image
        .topics
        .values()
        .filter_map(|t| {
            let partitions: Vec<OngoingPartitionReassignment> = t
                .partitions
                .iter()
                .zip(0..)
                .filter(|(p, i)| {
                    (!p.adding.is_empty() || !p.removing.is_empty()) && wanted(&t.name, *i)
                })
                .map(|(p, i)| {
                    OngoingPartitionReassignment::default()
                        .with_partition_index(i)
                        .with_replicas(ids(&p.replicas))
                        .with_adding_replicas(ids(&p.adding))
                        .with_removing_replicas(ids(&p.removing))
                })
                .collect();
            (!partitions.is_empty()).then(|| {
                OngoingTopicReassignment::default()
                    .with_name(super::topic_name(&t.name))
                    .with_partitions(partitions)
            })
        })
        .collect();
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}
