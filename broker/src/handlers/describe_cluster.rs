//! DescribeCluster: cluster id, controller and brokers (the admin client's view).

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse, RequestHeader};

use super::{str_bytes, AUTHORIZED_OPS_OMITTED};
use crate::context::Ctx;
use crate::request_scope::RequestScope;

/// Describes the registered brokers.
pub async fn handle(
    ctx: &Ctx,
    _scope: &RequestScope,
    header: &RequestHeader,
    _req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let with_fenced = header.request_api_version >= 2;
    let image = ctx.controller.image();
    let controller = ctx
        .controller
        .status()
        .leader
        .map(|l| l as i32)
        .unwrap_or(-1);
    let brokers = image
        .brokers
        .values()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(b.id.into())
                .with_host(str_bytes(&b.host))
                .with_port(b.port)
                .with_rack(b.rack.clone().map(str_bytes))
                .with_is_fenced(with_fenced && b.fenced)
        })
        .collect();
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(&image.cluster_id))
        .with_controller_id(controller.into())
        .with_brokers(brokers)
        .with_cluster_authorized_operations(AUTHORIZED_OPS_OMITTED)
}
