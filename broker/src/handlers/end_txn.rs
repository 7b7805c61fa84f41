//! EndTxn: commit or abort the producer's transaction.

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, RequestHeader};

use super::authorize;
use crate::context::Ctx;
use crate::error::code_of;
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation::Write;
use crate::security::authorizer::Resource::TransactionalId;
use crate::txn::state::{EndRequest, TV1, TV2};

/// Decides the transaction and writes its markers; v5+ (transaction version 2) answers the
/// producer's next epoch.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    header: &RequestHeader,
    req: EndTxnRequest,
) -> EndTxnResponse {
    let end = EndRequest {
        producer_id: req.producer_id.0,
        epoch: req.producer_epoch,
        commit: req.committed,
        client_version: if header.request_api_version >= 5 {
            TV2
        } else {
            TV1
        },
    };
    let image = ctx.controller.image();
    let id = req.transactional_id.as_str();
    if let Err(e) = authorize(ctx, scope, &image, Write, TransactionalId, id) {
        return EndTxnResponse::default()
            .with_error_code(e.code())
            .with_producer_id(req.producer_id)
            .with_producer_epoch(req.producer_epoch);
    }
    let result = ctx
        .txns
        .end_txn(
            ctx.marker_io(),
            &ctx.producer_ids,
            req.transactional_id.as_str(),
            end,
        )
        .await;
    let (producer_id, producer_epoch) = match &result {
        Ok(p) => (p.id, p.epoch),
        Err(_) => (req.producer_id.0, req.producer_epoch),
    };
    EndTxnResponse::default()
        .with_error_code(code_of(&result))
        .with_producer_id(producer_id.into())
        .with_producer_epoch(producer_epoch)
}
