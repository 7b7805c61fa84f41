//! CreatePartitions: grow topics through the controller.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse, RequestHeader};
use sluice_controller::{Command, CommandResult};

use super::authorized_topic;
use super::take_mutation_quota;
use crate::context::Ctx;
use crate::error::BrokerError;
use crate::quota::throttle_ms;
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation::Alter;

/// Grows each topic to its requested partition count.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    header: &RequestHeader,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    // v3+ clients know THROTTLING_QUOTA_EXCEEDED; older ones are only throttled.
    let strict = header.request_api_version >= 3;
    let mut results = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let command = Command::CreatePartitions {
            topic: t.name.0.to_string(),
            total: t.count,
            assignment: t.assignments.as_ref().map(|a| {
                a.iter()
                    .map(|x| x.broker_ids.iter().map(|b| b.0).collect())
                    .collect()
            }),
        };
        let added = ctx
            .controller
            .image()
            .topics
            .get(t.name.0.as_str())
            .map_or(0, |topic| t.count - topic.partitions.len() as i32);
        let image = ctx.controller.image();
        let outcome = if let Err(e) = authorized_topic(ctx, scope, &image, Alter, t.name.0.as_str())
        {
            Err(e)
        } else if req.validate_only {
            let mut image = (*ctx.controller.image()).clone();
            Ok(image.apply(&command))
        } else {
            match take_mutation_quota(ctx, scope, header, added, strict) {
                Ok(()) => ctx.controller.execute(command).await.map_err(Into::into),
                Err(e) => Err(e),
            }
        };
        let r = match outcome {
            Ok(CommandResult::Failed(e)) => Err(BrokerError::from(e)),
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        let mut out = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        if let Err(e) = r {
            out = out
                .with_error_code(e.code())
                .with_error_message(Some(e.message()));
        }
        results.push(out);
    }
    if !req.validate_only {
        // Grown in the metadata but not here: the request did not do what it asked.
        let names: Vec<String> = results.iter().map(|o| o.name.0.to_string()).collect();
        let local = ctx.replicas.reconcile_topics(&ctx.controller, &names).await;
        for (out, local) in results.iter_mut().zip(local) {
            if let (0, Err(e)) = (out.error_code, local) {
                out.error_code = e.code();
                out.error_message = Some(e.message());
            }
        }
    }
    CreatePartitionsResponse::default()
        .with_throttle_time_ms(throttle_ms(scope.throttled()))
        .with_results(results)
}
