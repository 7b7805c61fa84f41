//! ListTransactions: the transactional ids this node coordinates, filtered by state,
//! producer id, age and (v2) id pattern (`kafka-transactions list`).

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{ListTransactionsRequest, ListTransactionsResponse, RequestHeader};

use super::str_bytes;
use super::visible;
use crate::context::Ctx;
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation::Describe;
use crate::security::authorizer::Resource::TransactionalId;
use crate::txn::state::TxnState;

const STATES: [TxnState; 6] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
];

/// Lists the ids hosted here that pass every filter given.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    _header: &RequestHeader,
    req: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let known = |f: &str| STATES.iter().any(|s| s.name() == f);
    let unknown: Vec<_> = req
        .state_filters
        .iter()
        .filter(|f| !known(f.as_str()))
        .cloned()
        .collect();
    let pattern = match req
        .transactional_id_pattern
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        Some(p) => match regex::Regex::new(&format!("^(?:{p})$")) {
            Ok(re) => Some(re),
            Err(_) => {
                return ListTransactionsResponse::default().with_error_code(
                    kafka_protocol::error::ResponseError::InvalidRegularExpression.code(),
                )
            }
        },
        None => None,
    };
    let now = crate::clock::now_ms();
    // Only the ids the principal may DESCRIBE.
    let image = ctx.controller.image();
    let states = ctx
        .txns
        .list()
        .into_iter()
        .filter(|v| visible(ctx, scope, &image, Describe, TransactionalId, &v.id))
        .filter(|v| {
            req.state_filters.is_empty()
                || req
                    .state_filters
                    .iter()
                    .any(|f| f.as_str() == v.meta.state.name())
        })
        .filter(|v| {
            req.producer_id_filters.is_empty()
                || req
                    .producer_id_filters
                    .iter()
                    .any(|p| p.0 == v.meta.producer_id)
        })
        // Transactions running longer than the filter (v1); only open ones have an age.
        .filter(|v| {
            req.duration_filter < 0
                || (v.meta.start_ms >= 0 && now - v.meta.start_ms >= req.duration_filter)
        })
        .filter(|v| pattern.as_ref().is_none_or(|re| re.is_match(&v.id)))
        .map(|v| {
            TransactionState::default()
                .with_transactional_id(str_bytes(v.id).into())
                .with_producer_id(v.meta.producer_id.into())
                .with_transaction_state(str_bytes(v.meta.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(states)
}
