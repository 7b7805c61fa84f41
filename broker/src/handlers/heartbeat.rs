//! Heartbeat: keeps a member's session alive and tells it when to rejoin.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse, RequestHeader};

use crate::context::Ctx;
use crate::error::group_code;
use crate::request_scope::RequestScope;

/// Refreshes the member's session.
pub async fn handle(
    ctx: &Ctx,
    _scope: &RequestScope,
    _header: &RequestHeader,
    req: HeartbeatRequest,
) -> HeartbeatResponse {
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
