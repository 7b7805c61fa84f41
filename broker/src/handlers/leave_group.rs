//! LeaveGroup: members leave (one in v0-2, a batch by member or instance id in v3+).

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse, RequestHeader};

use super::authorize_group;
use crate::context::Ctx;
use crate::security::authorizer::Operation::Read;

use crate::error::group_code;
use crate::request_scope::RequestScope;

/// Removes the members and rebalances the rest.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    header: &RequestHeader,
    req: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let group = req.group_id.as_str();
    if let Err(e) = authorize_group(ctx, scope, Read, group) {
        return LeaveGroupResponse::default().with_error_code(e.code());
    }
    if header.request_api_version < 3 {
        let outcome = ctx
            .groups
            .leave(ctx.coordinator_io(), group, req.member_id.as_str(), None)
            .await;
        return LeaveGroupResponse::default().with_error_code(group_code(outcome.err()));
    }
    let mut members = Vec::with_capacity(req.members.len());
    for m in &req.members {
        let outcome = ctx
            .groups
            .leave(
                ctx.coordinator_io(),
                group,
                m.member_id.as_str(),
                m.group_instance_id.as_ref().map(|s| s.as_str()),
            )
            .await;
        members.push(
            MemberResponse::default()
                .with_member_id(m.member_id.clone())
                .with_group_instance_id(m.group_instance_id.clone())
                .with_error_code(group_code(outcome.err())),
        );
    }
    LeaveGroupResponse::default().with_members(members)
}
