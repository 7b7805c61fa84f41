//! SyncGroup: the leader hands out assignments; every member receives its own.

use kafka_protocol::messages::{RequestHeader, SyncGroupRequest, SyncGroupResponse};

use super::authorize_group;
use super::str_bytes;
use crate::context::Ctx;
use crate::security::authorizer::Operation::Read;

use crate::error::group_code;
use crate::request_scope::RequestScope;

/// Waits for the leader's assignment (or returns it at once in a stable group).
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    _header: &RequestHeader,
    req: SyncGroupRequest,
) -> SyncGroupResponse {
    if let Err(e) = authorize_group(ctx, scope, Read, req.group_id.as_str()) {
        return SyncGroupResponse::default().with_error_code(e.code());
    }
    let assignments = req
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
        .collect();
    let r = ctx
        .groups
        .sync(
            ctx.coordinator_io(),
            req.group_id.as_str(),
            req.member_id.as_str(),
            req.generation_id,
            assignments,
        )
        .await;
    SyncGroupResponse::default()
        .with_error_code(group_code(r.error))
        .with_protocol_type(r.protocol_type.map(str_bytes))
        .with_protocol_name(r.protocol.map(str_bytes))
        .with_assignment(r.assignment)
}
