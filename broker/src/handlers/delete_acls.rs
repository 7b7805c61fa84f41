//! DeleteAcls: remove the ACLs each filter matches (`kafka-acls --remove`), in one metadata
//! command; each filter's result lists what it removed. Needs ALTER on the cluster.

use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse, RequestHeader};
use sluice_controller::{AclFilter, Command, CommandResult};

use super::{authorize_cluster, str_bytes};
use crate::context::Ctx;
use crate::error::BrokerError;
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation;

/// Deletes what every filter matches.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    _header: &RequestHeader,
    req: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let failed = |e: BrokerError| {
        let result = DeleteAclsFilterResult::default()
            .with_error_code(e.code())
            .with_error_message(Some(e.message()));
        DeleteAclsResponse::default().with_filter_results(vec![result; req.filters.len()])
    };
    let refused = if !ctx.authorizer.enabled() {
        Err(BrokerError::SecurityDisabled)
    } else {
        authorize_cluster(ctx, scope, Operation::Alter)
    };
    if let Err(e) = refused {
        return failed(e);
    }
    let filters = req
        .filters
        .iter()
        .map(|f| AclFilter {
            resource_type: f.resource_type_filter,
            resource_name: f.resource_name_filter.as_ref().map(|n| n.to_string()),
            pattern_type: f.pattern_type_filter,
            principal: f.principal_filter.as_ref().map(|p| p.to_string()),
            host: f.host_filter.as_ref().map(|h| h.to_string()),
            operation: f.operation,
            permission_type: f.permission_type,
        })
        .collect();
    let deleted = match ctx.controller.execute(Command::DeleteAcls(filters)).await {
        Ok(CommandResult::DeletedAcls(deleted)) => deleted,
        Ok(_) => Vec::new(),
        Err(e) => return failed(BrokerError::from(e)),
    };
    let results = deleted
        .into_iter()
        .map(|bindings| {
            DeleteAclsFilterResult::default().with_matching_acls(
                bindings
                    .into_iter()
                    .map(|b| {
                        DeleteAclsMatchingAcl::default()
                            .with_resource_type(b.resource_type)
                            .with_resource_name(str_bytes(b.resource_name))
                            .with_pattern_type(b.pattern_type)
                            .with_principal(str_bytes(b.principal))
                            .with_host(str_bytes(b.host))
                            .with_operation(b.operation)
                            .with_permission_type(b.permission_type)
                    })
                    .collect(),
            )
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
