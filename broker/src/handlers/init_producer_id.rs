//! InitProducerId: producer ids for idempotent producers.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, RequestHeader};

use crate::context::Ctx;
use crate::error::BrokerError;
use crate::request_scope::RequestScope;

/// Hands an idempotent producer a fresh id with epoch 0.
pub async fn handle(
    ctx: &Ctx,
    _scope: &RequestScope,
    _header: &RequestHeader,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    if req.transactional_id.is_some() {
        // Transactions need a transaction coordinator, which Sluice does not have yet.
        return InitProducerIdResponse::default()
            .with_error_code(
                BrokerError::InvalidRequest("transactions are not supported".into()).code(),
            )
            .with_producer_id((-1).into())
            .with_producer_epoch(-1);
    }
    match ctx.producer_ids.next(&ctx.controller).await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(id.into())
            .with_producer_epoch(0),
        Err(e) => InitProducerIdResponse::default()
            .with_error_code(e.code())
            .with_producer_id((-1).into())
            .with_producer_epoch(-1),
    }
}
