//! ListGroups: the groups this coordinator knows, filtered by state and type.

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse, RequestHeader};

use super::str_bytes;
use super::visible;
use crate::context::Ctx;
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation::Describe;
use crate::security::authorizer::Resource::{Cluster, Group};
use crate::security::authorizer::CLUSTER_NAME;

/// Lists classic groups (with members or committed offsets).
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    _header: &RequestHeader,
    req: ListGroupsRequest,
) -> ListGroupsResponse {
    let wants = |filter: &[kafka_protocol::protocol::StrBytes], value: &str| {
        filter.is_empty()
            || filter
                .iter()
                .any(|f| f.as_str().eq_ignore_ascii_case(value))
    };
    // DESCRIBE on the cluster shows every group; else those the principal may DESCRIBE.
    let image = ctx.controller.image();
    let all = visible(ctx, scope, &image, Describe, Cluster, CLUSTER_NAME);
    let groups = ctx
        .groups
        .list()
        .into_iter()
        .map(|(g, _)| g)
        .filter(|g| wants(&req.states_filter, g.state) && wants(&req.types_filter, g.group_type))
        .filter(|g| all || visible(ctx, scope, &image, Describe, Group, &g.id))
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(str_bytes(g.id)))
                .with_protocol_type(str_bytes(g.protocol_type))
                .with_group_state(str_bytes(g.state))
                .with_group_type(str_bytes(g.group_type))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
