//! DescribeGroups: state, protocol and members of each group.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, RequestHeader};

use super::str_bytes;
use super::{authorize_group, authorized_operations};
use crate::context::Ctx;
use crate::error::{BrokerError, GroupError};
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation::Describe;
use crate::security::authorizer::Resource;

/// Describes each group; an unknown one is reported as Dead, as Kafka does (from v6 with
/// GROUP_ID_NOT_FOUND and a message, KIP-1043).
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    header: &RequestHeader,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let says_not_found = header.request_api_version >= 6;
    let groups = req
        .groups
        .iter()
        .map(|id| {
            let mut out = DescribedGroup::default().with_group_id(id.clone());
            if req.include_authorized_operations {
                let image = ctx.controller.image();
                out.authorized_operations =
                    authorized_operations(ctx, scope, &image, Resource::Group, id.as_str());
            }
            if let Err(e) = authorize_group(ctx, scope, Describe, id.as_str()) {
                return out.with_error_code(e.code());
            }
            match ctx.groups.describe(ctx.coordinator_io(), id.as_str()) {
                Some(g) => out
                    .with_group_state(str_bytes(g.state))
                    .with_protocol_type(str_bytes(g.protocol_type))
                    .with_protocol_data(str_bytes(g.protocol))
                    .with_members(
                        g.members
                            .into_iter()
                            .map(|(member, instance, client, host, metadata, assignment)| {
                                DescribedGroupMember::default()
                                    .with_member_id(str_bytes(member))
                                    .with_group_instance_id(instance.map(str_bytes))
                                    .with_client_id(str_bytes(client))
                                    .with_client_host(str_bytes(host))
                                    .with_member_metadata(metadata)
                                    .with_member_assignment(assignment)
                            })
                            .collect(),
                    ),
                None if says_not_found => out
                    .with_group_state(str_bytes("Dead"))
                    .with_error_code(BrokerError::Group(GroupError::GroupIdNotFound).code())
                    .with_error_message(Some(str_bytes(format!("Group {} not found.", id.0)))),
                None => out.with_group_state(str_bytes("Dead")),
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}
