//! AddOffsetsToTxn: a group's offsets partition joins the transaction, so that the offsets
//! the producer commits in it (TxnOffsetCommit) get the transaction's marker.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, RequestHeader};

use super::authorize_txn_offsets;
use crate::context::Ctx;
use crate::coordinator::TxnProducer;
use crate::error::code_of;
use crate::group::OFFSETS_TOPIC;
use crate::request_scope::RequestScope;
use crate::txn::state::TV1;

/// Adds the group's `__consumer_offsets` partition to the transaction.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    _header: &RequestHeader,
    req: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let io = ctx.coordinator_io();
    let producer = TxnProducer {
        id: req.producer_id.0,
        epoch: req.producer_epoch,
    };
    let image = ctx.controller.image();
    let refused = authorize_txn_offsets(
        ctx,
        scope,
        &image,
        req.transactional_id.as_str(),
        req.group_id.as_str(),
    );
    if let Err(e) = refused {
        return AddOffsetsToTxnResponse::default().with_error_code(e.code());
    }
    let result = match ctx
        .groups
        .offsets_partition(io, req.group_id.as_str())
        .await
    {
        Ok(p) => {
            let partition = (OFFSETS_TOPIC.to_string(), p);
            ctx.txns
                .add_partitions(
                    io,
                    req.transactional_id.as_str(),
                    producer,
                    &[partition],
                    TV1,
                )
                .await
        }
        Err(e) => Err(e),
    };
    AddOffsetsToTxnResponse::default().with_error_code(code_of(&result))
}
