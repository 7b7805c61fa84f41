//! DescribeCluster: cluster id, controller and brokers (the admin client's view); on the
//! controller listener, the controllers (what `--bootstrap-controller` tools connect to).

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse, RequestHeader};

use super::{authorized_operations, str_bytes, AUTHORIZED_OPS_OMITTED};
use crate::context::Ctx;
use crate::error::BrokerError;
use crate::request_scope::{Listener, RequestScope};
use crate::security::authorizer::{Resource, CLUSTER_NAME};

/// `endpoint_type` of brokers (the default) and of controllers (v1+).
const BROKERS: i8 = 1;
const CONTROLLERS: i8 = 2;

/// Describes the registered brokers, or the Raft voters on the controller listener.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    header: &RequestHeader,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    // Not checked, as in Kafka 4: the authorized-operations field says what the principal
    // may do with the cluster.
    let with_fenced = header.request_api_version >= 2;
    let image = ctx.controller.image();
    let status = ctx.controller.status();
    let controller = status.leader.map(|l| l as i32).unwrap_or(-1);
    let response = DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(&image.cluster_id))
        .with_controller_id(controller.into())
        .with_endpoint_type(req.endpoint_type)
        .with_cluster_authorized_operations(if req.include_cluster_authorized_operations {
            authorized_operations(ctx, scope, &image, Resource::Cluster, CLUSTER_NAME)
        } else {
            AUTHORIZED_OPS_OMITTED
        });
    let wanted = match scope.listener() {
        Listener::Broker => BROKERS,
        Listener::Controller => CONTROLLERS,
    };
    if req.endpoint_type != wanted {
        let e = BrokerError::MismatchedEndpointType;
        return response
            .with_error_code(e.code())
            .with_error_message(Some(e.message()));
    }
    if wanted == CONTROLLERS {
        let voters = status.voters.iter().filter_map(|(id, addr)| {
            let (host, port) = addr.rsplit_once(':')?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(i32::try_from(*id).ok()?.into())
                    .with_host(str_bytes(host))
                    .with_port(port.parse().ok()?),
            )
        });
        return response.with_brokers(voters.collect());
    }
    let brokers = image
        .brokers
        .values()
        .filter_map(|b| Some((b, b.endpoint(scope.listener_name())?)))
        .map(|(b, (host, port))| {
            DescribeClusterBroker::default()
                .with_broker_id(b.id.into())
                .with_host(str_bytes(host))
                .with_port(port)
                .with_rack(b.rack.clone().map(str_bytes))
                .with_is_fenced(with_fenced && b.fenced)
        })
        .collect();
    response.with_brokers(brokers)
}
