//! DeleteTopics: remove topics by name or id through the controller.

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, RequestHeader};
use sluice_controller::{Command, CommandResult};

use super::{authorize, take_mutation_quota, topic_name};
use crate::context::Ctx;
use crate::error::BrokerError;
use crate::quota::throttle_ms;
use crate::request_scope::RequestScope;
use crate::security::authorizer::{Operation, Resource};

/// Deletes the named topics; their partitions are dropped from every replica.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    header: &RequestHeader,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    // v5+ clients know THROTTLING_QUOTA_EXCEEDED; older ones are only throttled.
    let strict = header.request_api_version >= 5;
    let image = ctx.controller.image();
    // v0-5 name topics in `topic_names`; v6+ in `topics`, by name or by id.
    let mut targets: Vec<(Option<String>, uuid::Uuid)> = req
        .topic_names
        .iter()
        .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
        .collect();
    targets.extend(
        req.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id)),
    );

    let mut results: Vec<(Option<String>, uuid::Uuid, Result<(), BrokerError>)> = Vec::new();
    let mut to_delete = Vec::new();
    for (name, id) in targets {
        let found = match &name {
            Some(n) => image.topics.get(n),
            None => image.topic_by_id(&id),
        };
        // DELETE on the topic; by id, an unauthorized topic is as good as unknown.
        let refused = found.and_then(|t| {
            authorize(
                ctx,
                scope,
                &image,
                Operation::Delete,
                Resource::Topic,
                &t.name,
            )
            .err()
        });
        if let (Some(e), Some(t)) = (refused, found) {
            let name = name.is_some().then(|| t.name.clone());
            let (id, e) = match name {
                Some(_) => (t.id, e),
                None => (id, BrokerError::UnknownTopicId),
            };
            results.push((name, id, Err(e)));
            continue;
        }
        if let (None, Some(n)) = (found, &name) {
            if let Err(e) = authorize(ctx, scope, &image, Operation::Delete, Resource::Topic, n) {
                results.push((name.clone(), id, Err(e)));
                continue;
            }
        }
        match found {
            Some(t) => {
                let quota =
                    take_mutation_quota(ctx, scope, header, t.partitions.len() as i32, strict);
                if quota.is_ok() {
                    to_delete.push(t.name.clone());
                }
                results.push((Some(t.name.clone()), t.id, quota));
            }
            None => {
                let err = if name.is_some() {
                    BrokerError::UnknownTopicOrPartition
                } else {
                    BrokerError::UnknownTopicId
                };
                results.push((name, id, Err(err)));
            }
        }
    }
    if !to_delete.is_empty() {
        let outcome = ctx
            .controller
            .execute(Command::DeleteTopics(to_delete.clone()))
            .await;
        let mut per_topic: Vec<Result<(), BrokerError>> = match outcome {
            Ok(CommandResult::PerItem(items)) => {
                items.into_iter().map(|r| r.map_err(Into::into)).collect()
            }
            Ok(other) => {
                vec![Err(BrokerError::Controller(format!("unexpected {other:?}"))); to_delete.len()]
            }
            Err(e) => vec![Err(e.into()); to_delete.len()],
        };
        per_topic.reverse();
        for r in results.iter_mut().filter(|r| r.2.is_ok()) {
            r.2 = per_topic.pop().unwrap_or(Ok(()));
        }
        if let Err(e) = ctx.replicas.reconcile(&ctx.controller).await {
            tracing::warn!(error = %e, "dropping deleted partitions");
        }
    }
    let responses = results
        .into_iter()
        .map(|(name, id, r)| {
            let mut out = DeletableTopicResult::default()
                .with_name(name.as_deref().map(topic_name))
                .with_topic_id(id);
            if let Err(e) = r {
                out = out
                    .with_error_code(e.code())
                    .with_error_message(Some(e.message()));
            }
            out
        })
        .collect();
    DeleteTopicsResponse::default()
        .with_throttle_time_ms(throttle_ms(scope.throttled()))
        .with_responses(responses)
}
