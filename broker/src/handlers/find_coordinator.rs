//! FindCoordinator: which broker coordinates a group (the leader of its offsets partition)
//! or a transactional id (the leader of its transaction-state partition).

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use super::str_bytes;
use super::{authorize, authorize_group};
use crate::context::Ctx;
use crate::error::{BrokerError, CoordinatorError};
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation::Describe;
use crate::security::authorizer::Resource::TransactionalId;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;
const KEY_TYPE_SHARE: i8 = 2;

/// Answers one key (v0-3) or a batch of keys (v4+).
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    header: &RequestHeader,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    if header.request_api_version >= 4 {
        let mut coordinators = Vec::with_capacity(req.coordinator_keys.len());
        for key in &req.coordinator_keys {
            let c = Coordinator::default().with_key(key.clone());
            coordinators.push(match locate(ctx, scope, req.key_type, key).await {
                Ok((id, host, port)) => c
                    .with_node_id(id.into())
                    .with_host(str_bytes(host))
                    .with_port(port),
                Err(e) => c
                    .with_error_code(e.code())
                    .with_error_message(Some(e.message()))
                    .with_node_id((-1).into())
                    .with_port(-1),
            });
        }
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match locate(ctx, scope, req.key_type, &req.key).await {
        Ok((id, host, port)) => FindCoordinatorResponse::default()
            .with_node_id(id.into())
            .with_host(str_bytes(host))
            .with_port(port),
        Err(e) => FindCoordinatorResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(e.message()))
            .with_node_id((-1).into())
            .with_port(-1),
    }
}

async fn locate(
    ctx: &Ctx,
    scope: &RequestScope,
    key_type: i8,
    key: &StrBytes,
) -> Result<(i32, String, i32), BrokerError> {
    // A coordinator that does not exist must not look like one that is briefly away: clients
    // retry COORDINATOR_NOT_AVAILABLE as fast as they can, so fail them for good instead.
    let node = match key_type {
        KEY_TYPE_GROUP => {
            authorize_group(ctx, scope, Describe, key.as_str())?;
            ctx.groups
                .coordinator_of(ctx.coordinator_io(), key.as_str())
                .await?
        }
        KEY_TYPE_TRANSACTION => {
            let image = ctx.controller.image();
            authorize(ctx, scope, &image, Describe, TransactionalId, key.as_str())?;
            ctx.txns
                .coordinator_of(ctx.coordinator_io(), key.as_str())
                .await?
        }
        KEY_TYPE_SHARE => {
            return Err(BrokerError::UnsupportedVersion(
                "this broker has no share group coordinator".into(),
            ))
        }
        other => {
            return Err(BrokerError::InvalidRequest(format!(
                "Unknown coordinator type {other} in FindCoordinator request"
            )))
        }
    };
    let image = ctx.controller.image();
    let broker = image
        .brokers
        .get(&node)
        .ok_or(BrokerError::Coordinator(CoordinatorError::NotAvailable))?;
    let (host, port) = broker
        .endpoint(scope.listener_name())
        .ok_or(BrokerError::Coordinator(CoordinatorError::NotAvailable))?;
    Ok((broker.id, host.to_string(), port))
}
