//! EndTxn: commit or abort the producer's transaction.

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, RequestHeader};

use crate::context::Ctx;
use crate::coordinator::TxnProducer;
use crate::error::code_of;
use crate::request_scope::RequestScope;

/// Decides the transaction and writes its markers.
pub async fn handle(
    ctx: &Ctx,
    _scope: &RequestScope,
    _header: &RequestHeader,
    req: EndTxnRequest,
) -> EndTxnResponse {
    let producer = TxnProducer {
        id: req.producer_id.0,
        epoch: req.producer_epoch,
    };
    let result = ctx
        .txns
        .end_txn(
            ctx.marker_io(),
            req.transactional_id.as_str(),
            producer,
            req.committed,
        )
        .await;
    EndTxnResponse::default()
        .with_error_code(code_of(&result))
        .with_producer_id(req.producer_id)
        .with_producer_epoch(req.producer_epoch)
}
