//! JoinGroup: enter a group's rebalance; answered when the join phase completes.

use std::time::Duration;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse, RequestHeader};

use super::authorize_group;
use super::{client_identity, str_bytes};
use crate::context::Ctx;
use crate::security::authorizer::Operation::Read;

use crate::error::group_code;
use crate::group::state::JoinParams;
use crate::request_scope::RequestScope;

/// Joins (or rejoins) the member; waits for the rebalance.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    header: &RequestHeader,
    req: JoinGroupRequest,
) -> JoinGroupResponse {
    if let Err(e) = authorize_group(ctx, scope, Read, req.group_id.as_str()) {
        return JoinGroupResponse::default()
            .with_error_code(e.code())
            .with_generation_id(-1);
    }
    let version = header.request_api_version;
    let rebalance_ms = if version >= 1 {
        req.rebalance_timeout_ms
    } else {
        req.session_timeout_ms
    };
    let (client_id, client_host) = client_identity(scope, header);
    let params = JoinParams {
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id,
        client_host,
        session_timeout: Duration::from_millis(req.session_timeout_ms.max(0) as u64),
        rebalance_timeout: Duration::from_millis(rebalance_ms.max(0) as u64),
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let r = ctx
        .groups
        .join(ctx.coordinator_io(), req.group_id.as_str(), params)
        .await;
    JoinGroupResponse::default()
        .with_error_code(group_code(r.error))
        .with_generation_id(r.generation)
        .with_protocol_type(r.protocol_type.map(str_bytes))
        .with_protocol_name(Some(str_bytes(r.protocol.unwrap_or_default())))
        .with_leader(str_bytes(r.leader))
        .with_member_id(str_bytes(r.member_id))
        .with_members(
            r.members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(m.member_id))
                        .with_group_instance_id(m.instance_id.map(str_bytes))
                        .with_metadata(m.metadata)
                })
                .collect(),
        )
}
