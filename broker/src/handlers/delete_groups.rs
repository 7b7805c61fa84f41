//! DeleteGroups: remove empty groups and their committed offsets.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, RequestHeader};

use super::authorize_group;
use crate::context::Ctx;
use crate::error::code_of;
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation::Delete;

/// Deletes each group that has no members.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    _header: &RequestHeader,
    req: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for g in &req.groups_names {
        let r = match authorize_group(ctx, scope, Delete, g.as_str()) {
            Ok(()) => {
                ctx.groups
                    .delete_group(ctx.coordinator_io(), g.as_str())
                    .await
            }
            Err(e) => Err(e),
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(g.clone())
                .with_error_code(code_of(&r)),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
