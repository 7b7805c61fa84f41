//! WriteTxnMarkers: a transaction coordinator on another node ends a transaction on the
//! partitions this node leads.

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{RequestHeader, WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use super::authorize_cluster;
use crate::context::Ctx;
use crate::coordinator::TxnProducer;
use crate::error::code_of;
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation::ClusterAction;
use crate::txn::markers::{self, Marker};
use crate::txn::state::TopicPartition;

/// Writes each marker to its partitions; an error per partition that did not get it.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    _header: &RequestHeader,
    req: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    // Only brokers write markers.
    let refused = authorize_cluster(ctx, scope, ClusterAction).err();
    let mut results = Vec::with_capacity(req.markers.len());
    for m in &req.markers {
        let marker = Marker {
            producer: TxnProducer {
                id: m.producer_id.0,
                epoch: m.producer_epoch,
            },
            commit: m.transaction_result,
            coordinator_epoch: m.coordinator_epoch,
        };
        let partitions: Vec<TopicPartition> = m
            .topics
            .iter()
            .flat_map(|t| {
                t.partition_indexes
                    .iter()
                    .map(|p| (t.name.0.to_string(), *p))
            })
            .collect();
        let mut outcomes = match &refused {
            Some(e) => vec![Err(e.clone()); partitions.len()],
            None => markers::write_local(ctx.marker_io(), marker, &partitions).await,
        }
        .into_iter();
        let topics = m
            .topics
            .iter()
            .map(|t| {
                let partitions = t
                    .partition_indexes
                    .iter()
                    .map(|p| {
                        let code = outcomes.next().map_or(0, |r| code_of(&r));
                        WritableTxnMarkerPartitionResult::default()
                            .with_partition_index(*p)
                            .with_error_code(code)
                    })
                    .collect();
                WritableTxnMarkerTopicResult::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        results.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(topics),
        );
    }
    WriteTxnMarkersResponse::default().with_markers(results)
}
