//! DescribeProducers: the active producers of partitions this node leads, with the start of
//! each one's open transaction (`kafka-transactions describe-producers`, `find-hanging`).

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeProducersResponse, RequestHeader,
};

use super::authorized_topic;
use crate::context::Ctx;
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation::Read;

/// Lists each partition's producers, or says why not.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    _header: &RequestHeader,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let image = ctx.controller.image();
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|p| {
                    let leader = authorized_topic(ctx, scope, &image, Read, t.name.0.as_str())
                        .and_then(|info| ctx.replicas.leader(info, *p));
                    match leader {
                        Ok(l) => PartitionResponse::default()
                            .with_partition_index(*p)
                            .with_active_producers(
                                l.log
                                    .producers()
                                    .into_iter()
                                    .map(|(id, e)| {
                                        let last = e.batches.back();
                                        ProducerState::default()
                                            .with_producer_id(id.into())
                                            .with_producer_epoch(i32::from(e.epoch))
                                            .with_last_sequence(last.map_or(-1, |b| b.last_seq))
                                            .with_last_timestamp(e.last_timestamp.unwrap_or(-1))
                                            .with_coordinator_epoch(
                                                e.coordinator_epoch.unwrap_or(-1),
                                            )
                                            .with_current_txn_start_offset(e.open_txn.unwrap_or(-1))
                                    })
                                    .collect(),
                            ),
                        Err(e) => PartitionResponse::default()
                            .with_partition_index(*p)
                            .with_error_code(e.code())
                            .with_error_message(Some(e.message())),
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
