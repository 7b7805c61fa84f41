//! CreateAcls: add ACLs (`kafka-acls --add`), each validated as Kafka's controller does, the
//! valid ones committed together to the metadata log. Needs ALTER on the cluster.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse, RequestHeader};
use sluice_controller::acl::{pattern_type, resource_type};
use sluice_controller::{AclBinding, Command};

use super::authorize_cluster;
use crate::context::Ctx;
use crate::error::BrokerError;
use crate::request_scope::RequestScope;
use crate::security::authorizer::{Operation, CLUSTER_NAME};

/// Adds every valid ACL; each creation gets its own result.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    _header: &RequestHeader,
    req: CreateAclsRequest,
) -> CreateAclsResponse {
    let refused = if !ctx.authorizer.enabled() {
        Some(BrokerError::SecurityDisabled)
    } else {
        authorize_cluster(ctx, scope, Operation::Alter).err()
    };
    let mut outcomes: Vec<Result<(), BrokerError>> = Vec::with_capacity(req.creations.len());
    let mut bindings = Vec::new();
    for creation in &req.creations {
        let outcome = match &refused {
            Some(e) => Err(e.clone()),
            None => validate(creation).map(|b| bindings.push(b)),
        };
        outcomes.push(outcome);
    }
    if !bindings.is_empty() {
        if let Err(e) = ctx.controller.execute(Command::CreateAcls(bindings)).await {
            let e = BrokerError::from(e);
            for outcome in outcomes.iter_mut().filter(|o| o.is_ok()) {
                *outcome = Err(e.clone());
            }
        }
    }
    let results = outcomes
        .into_iter()
        .map(|outcome| match outcome {
            Ok(()) => AclCreationResult::default(),
            Err(e) => AclCreationResult::default()
                .with_error_code(e.code())
                .with_error_message(Some(e.message())),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

/// One creation as a binding, checked as Kafka's `AclControlManager.validateNewAcl`.
fn validate(c: &AclCreation) -> Result<AclBinding, BrokerError> {
    let invalid = |why: &str| Err(BrokerError::InvalidRequest(why.to_string()));
    if !(resource_type::TOPIC..=resource_type::USER).contains(&c.resource_type) {
        return invalid("Invalid resourceType");
    }
    if c.resource_pattern_type != pattern_type::LITERAL
        && c.resource_pattern_type != pattern_type::PREFIXED
    {
        return invalid("Invalid patternType");
    }
    if !(Operation::All as i8..=Operation::IdempotentWrite as i8).contains(&c.operation) {
        return invalid("Invalid operation");
    }
    if c.permission_type != 2 && c.permission_type != 3 {
        return invalid("Invalid permissionType");
    }
    if c.resource_name.is_empty() {
        return invalid("Resource name should not be empty");
    }
    if c.resource_type == resource_type::CLUSTER && c.resource_name.as_str() != CLUSTER_NAME {
        return invalid("The only valid name for the CLUSTER resource is kafka-cluster");
    }
    match c.principal.split_once(':') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
        _ => return invalid("Could not parse principal"),
    }
    if c.host.is_empty() {
        return invalid("Invalid host");
    }
    Ok(AclBinding {
        resource_type: c.resource_type,
        resource_name: c.resource_name.to_string(),
        pattern_type: c.resource_pattern_type,
        principal: c.principal.to_string(),
        host: c.host.to_string(),
        operation: c.operation,
        permission_type: c.permission_type,
    })
}
