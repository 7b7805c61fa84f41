//! AlterUserScramCredentials: set and delete users' SCRAM credentials (what
//! `kafka-configs --entity-type users --alter --add-config 'SCRAM-SHA-512=[password=...]'`
//! sends: the client salts and hashes the password, the broker keeps the keys derived from
//! it), validated as Kafka's controller does and stored in the metadata log.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, RequestHeader,
};
use sluice_controller::{Command, ScramChange};

use super::{authorize_cluster, str_bytes};
use crate::context::Ctx;
use crate::error::BrokerError;
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation;
use crate::security::scram::{ScramHash, MAX_ITERATIONS, MIN_ITERATIONS};

/// Validates each user's changes; the valid ones commit together.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    _header: &RequestHeader,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let image = ctx.controller.image();
    let refused = authorize_cluster(ctx, scope, Operation::Alter).err();
    // Every user named, in order, with the first failure of any of its changes.
    let mut outcomes: BTreeMap<String, Option<BrokerError>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut changes: Vec<ScramChange> = Vec::new();
    let named = req
        .deletions
        .iter()
        .map(|d| (d.name.to_string(), d.mechanism, None))
        .chain(req.upsertions.iter().map(|u| {
            (
                u.name.to_string(),
                u.mechanism,
                Some((u.iterations, &u.salt, &u.salted_password)),
            )
        }));
    for (user, mechanism, upsert) in named {
        if !outcomes.contains_key(&user) {
            order.push(user.clone());
        }
        let checked = match &refused {
            Some(e) => Err(e.clone()),
            None => check(&image, &user, mechanism, upsert, &mut seen),
        };
        let outcome = outcomes.entry(user).or_insert(None);
        match checked {
            Ok(change) if outcome.is_none() => changes.push(change),
            Ok(_) => {}
            Err(e) => {
                outcome.get_or_insert(e);
            }
        }
    }
    // A user with any refused change gets none of its changes.
    changes.retain(|c| matches!(outcomes.get(&c.user), Some(None)));
    if !changes.is_empty() {
        if let Err(e) = ctx
            .controller
            .execute(Command::AlterScramCredentials(changes))
            .await
        {
            let e = BrokerError::from(e);
            for outcome in outcomes.values_mut() {
                outcome.get_or_insert_with(|| e.clone());
            }
        }
    }
    let results = order
        .into_iter()
        .map(|user| {
            let result = AlterUserScramCredentialsResult::default().with_user(str_bytes(&user));
            match outcomes.get(&user).and_then(Option::as_ref) {
                None => result,
                Some(e) => result
                    .with_error_code(e.code())
                    .with_error_message(Some(e.message())),
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

/// One deletion (`upsert` None) or upsertion, checked as Kafka's ScramControlManager does.
fn check(
    image: &sluice_controller::MetadataImage,
    user: &str,
    mechanism: i8,
    upsert: Option<(i32, &bytes::Bytes, &bytes::Bytes)>,
    seen: &mut BTreeSet<String>,
) -> Result<ScramChange, BrokerError> {
    if user.is_empty() {
        return Err(BrokerError::UnacceptableCredential(
            "Username must not be empty".into(),
        ));
    }
    let hash = ScramHash::from_id(mechanism)
        .ok_or_else(|| BrokerError::UnsupportedSaslMechanism("Unknown SCRAM mechanism".into()))?;
    // Per user, not per mechanism, as Kafka 4's controller counts them: both mechanisms of
    // one user take two requests.
    if !seen.insert(user.to_string()) {
        return Err(BrokerError::DuplicateResource(
            "A user credential cannot be altered twice in the same request".into(),
        ));
    }
    let name = hash.mechanism_name();
    let Some((iterations, salt, salted_password)) = upsert else {
        let exists = image
            .scram_credentials
            .get(user)
            .is_some_and(|m| m.contains_key(name));
        if !exists {
            return Err(BrokerError::ResourceNotFound(
                "Attempt to delete a user credential that does not exist".into(),
            ));
        }
        return Ok(ScramChange {
            user: user.to_string(),
            mechanism: name.to_string(),
            credential: None,
        });
    };
    if iterations < MIN_ITERATIONS {
        return Err(BrokerError::UnacceptableCredential(format!(
            "Too few iterations: minimum is {MIN_ITERATIONS}"
        )));
    }
    if iterations > MAX_ITERATIONS {
        return Err(BrokerError::UnacceptableCredential(format!(
            "Too many iterations: maximum is {MAX_ITERATIONS}"
        )));
    }
    if salt.is_empty() || salted_password.len() != hash.output_len() {
        return Err(BrokerError::UnacceptableCredential(
            "The salt must not be empty and the salted password must be one hash long".into(),
        ));
    }
    Ok(ScramChange {
        user: user.to_string(),
        mechanism: name.to_string(),
        credential: Some(hash.credential(salt, salted_password, iterations)),
    })
}
