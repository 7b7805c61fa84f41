//! InitProducerId: producer ids for idempotent producers, and for transactional ones the
//! transactional id's producer id with a new epoch (fencing older instances).

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, RequestHeader};

use super::authorize;
use crate::context::Ctx;
use crate::coordinator::TxnProducer;
use crate::error::BrokerError;
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation::{IdempotentWrite, Write};
use crate::security::authorizer::Resource::{self, TransactionalId};
use crate::security::authorizer::CLUSTER_NAME;

/// Hands an idempotent producer a fresh id with epoch 0; a transactional one its id's.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    _header: &RequestHeader,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    // WRITE on the transactional id; an idempotent producer IDEMPOTENT_WRITE on the
    // cluster or WRITE on some topic (Kafka 3's rule).
    let image = ctx.controller.image();
    let refused = match &req.transactional_id {
        Some(id) => authorize(ctx, scope, &image, Write, TransactionalId, id.as_str()).err(),
        None => {
            let who = scope.requester();
            let writes_somewhere = || {
                image.topics.keys().any(|t| {
                    ctx.authorizer
                        .allows(&image, who, Write, Resource::Topic, t)
                })
            };
            let idempotent = ctx.authorizer.allows(
                &image,
                who,
                IdempotentWrite,
                Resource::Cluster,
                CLUSTER_NAME,
            );
            let refused = !idempotent && !writes_somewhere();
            if refused {
                crate::metrics::record_authorization_denied("CLUSTER", "IDEMPOTENT_WRITE");
            }
            refused.then_some(BrokerError::ClusterAuthorizationFailed)
        }
    };
    let result = match (refused, &req.transactional_id) {
        (Some(e), _) => Err(e),
        (None, Some(id)) => {
            let producer = ctx
                .txns
                .init_producer_id(
                    ctx.marker_io(),
                    &ctx.producer_ids,
                    id.as_str(),
                    req.transaction_timeout_ms,
                    running_producer(&req),
                )
                .await;
            if producer.is_ok() {
                crate::metrics::record_txn_init();
            }
            producer
        }
        (None, None) => ctx
            .producer_ids
            .next(&ctx.controller)
            .await
            .map(|id| TxnProducer { id, epoch: 0 }),
    };
    match result {
        Ok(p) => InitProducerIdResponse::default()
            .with_producer_id(p.id.into())
            .with_producer_epoch(p.epoch),
        Err(e) => failed(&e),
    }
}

/// The producer a running client says it is (v3+, KIP-360), when it bumps its own epoch.
fn running_producer(req: &InitProducerIdRequest) -> Option<TxnProducer> {
    (req.producer_id.0 >= 0).then_some(TxnProducer {
        id: req.producer_id.0,
        epoch: req.producer_epoch,
    })
}

fn failed(e: &BrokerError) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_error_code(e.code())
        .with_producer_id((-1).into())
        .with_producer_epoch(-1)
}
