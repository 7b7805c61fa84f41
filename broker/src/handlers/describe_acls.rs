//! DescribeAcls: the ACLs a filter matches (`kafka-acls --list`), grouped by resource
//! pattern. Needs DESCRIBE on the cluster.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse, RequestHeader};
use sluice_controller::AclFilter;

use super::{authorize_cluster, str_bytes};
use crate::context::Ctx;
use crate::error::BrokerError;
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation;

/// Every binding the filter matches.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    _header: &RequestHeader,
    req: DescribeAclsRequest,
) -> DescribeAclsResponse {
    let refused = if !ctx.authorizer.enabled() {
        Err(BrokerError::SecurityDisabled)
    } else {
        authorize_cluster(ctx, scope, Operation::Describe)
    };
    if let Err(e) = refused {
        return DescribeAclsResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(e.message()));
    }
    let filter = AclFilter {
        resource_type: req.resource_type_filter,
        resource_name: req.resource_name_filter.map(|n| n.to_string()),
        pattern_type: req.pattern_type_filter,
        principal: req.principal_filter.map(|p| p.to_string()),
        host: req.host_filter.map(|h| h.to_string()),
        operation: req.operation,
        permission_type: req.permission_type,
    };
    let image = ctx.controller.image();
    let mut resources: BTreeMap<(i8, &str, i8), Vec<AclDescription>> = BTreeMap::new();
    for b in image.acls.iter().filter(|b| filter.matches(b)) {
        resources
            .entry((b.resource_type, &b.resource_name, b.pattern_type))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(str_bytes(&b.principal))
                    .with_host(str_bytes(&b.host))
                    .with_operation(b.operation)
                    .with_permission_type(b.permission_type),
            );
    }
    let resources = resources
        .into_iter()
        .map(|((ty, name, pattern), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(ty)
                .with_resource_name(str_bytes(name))
                .with_pattern_type(pattern)
                .with_acls(acls)
        })
        .collect();
    DescribeAclsResponse::default().with_resources(resources)
}
