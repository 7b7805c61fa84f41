//! Heartbeat: keeps a member's session alive and tells it when to rejoin.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse, RequestHeader};

use super::authorize_group;
use crate::context::Ctx;
use crate::security::authorizer::Operation::Read;

use crate::error::group_code;
use crate::request_scope::RequestScope;

/// Refreshes the member's session.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    _header: &RequestHeader,
    req: HeartbeatRequest,
) -> HeartbeatResponse {
    if let Err(e) = authorize_group(ctx, scope, Read, req.group_id.as_str()) {
        return HeartbeatResponse::default().with_error_code(e.code());
    }
    let outcome = ctx
        .groups
        .heartbeat(
            ctx.coordinator_io(),
            req.group_id.as_str(),
            req.member_id.as_str(),
            req.generation_id,
        )
        .await;
    HeartbeatResponse::default().with_error_code(group_code(outcome.err()))
}
