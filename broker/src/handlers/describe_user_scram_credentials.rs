//! DescribeUserScramCredentials: which SCRAM mechanisms (and iteration counts) users have
//! credentials for; never the credentials themselves.

use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse, RequestHeader,
};

use super::{authorize_cluster, str_bytes};
use crate::context::Ctx;
use crate::error::BrokerError;
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation;
use crate::security::scram::ScramHash;

/// Every user with credentials when none are named; each named one otherwise.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    _header: &RequestHeader,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    if let Err(e) = authorize_cluster(ctx, scope, Operation::Describe) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(e.message()));
    }
    let image = ctx.controller.image();
    let users: Vec<String> = match &req.users {
        Some(named) if !named.is_empty() => named.iter().map(|u| u.name.to_string()).collect(),
        _ => image.scram_credentials.keys().cloned().collect(),
    };
    let results = users
        .iter()
        .enumerate()
        .map(|(i, user)| {
            let result = DescribeUserScramCredentialsResult::default().with_user(str_bytes(user));
            let outcome = if users[..i].contains(user) {
                Err(BrokerError::DuplicateResource(format!(
                    "Cannot describe SCRAM credentials for the same user twice in a single \
                     request: {user}"
                )))
            } else {
                image
                    .scram_credentials
                    .get(user)
                    .map(|mechanisms| {
                        ScramHash::ALL
                            .into_iter()
                            .filter_map(|h| {
                                let c = mechanisms.get(h.mechanism_name())?;
                                Some(
                                    CredentialInfo::default()
                                        .with_mechanism(h.id())
                                        .with_iterations(c.iterations),
                                )
                            })
                            .collect::<Vec<_>>()
                    })
                    .ok_or_else(|| {
                        BrokerError::ResourceNotFound(format!(
                            "Attempt to describe a user credential that does not exist: {user}"
                        ))
                    })
            };
            match outcome {
                Ok(infos) => result.with_credential_infos(infos),
                Err(e) => result
                    .with_error_code(e.code())
                    .with_error_message(Some(e.message())),
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}
