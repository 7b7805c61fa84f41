//! DescribeTransactions: the state of transactional ids this node coordinates
//! (`kafka-transactions describe`).

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, RequestHeader,
};

use super::authorize;
use super::{str_bytes, topic_name};
use crate::context::Ctx;
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation::Describe;
use crate::security::authorizer::Resource::TransactionalId;

/// Describes each id, or says why not.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    _header: &RequestHeader,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let image = ctx.controller.image();
    let mut states = Vec::with_capacity(req.transactional_ids.len());
    for id in &req.transactional_ids {
        let state = TransactionState::default().with_transactional_id(id.clone());
        if let Err(e) = authorize(ctx, scope, &image, Describe, TransactionalId, id.as_str()) {
            states.push(state.with_error_code(e.code()));
            continue;
        }
        states.push(
            match ctx.txns.describe(ctx.coordinator_io(), id.as_str()).await {
                Ok(view) => {
                    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
                    for (t, p) in &view.meta.partitions {
                        topics.entry(t).or_default().push(*p);
                    }
                    state
                        .with_transaction_state(str_bytes(view.meta.state.name()))
                        .with_transaction_timeout_ms(view.meta.timeout_ms)
                        .with_transaction_start_time_ms(view.meta.start_ms)
                        .with_producer_id(view.meta.producer_id.into())
                        .with_producer_epoch(view.meta.producer_epoch)
                        .with_topics(
                            topics
                                .into_iter()
                                .map(|(t, ps)| {
                                    TopicData::default()
                                        .with_topic(topic_name(t))
                                        .with_partitions(ps)
                                })
                                .collect(),
                        )
                }
                Err(e) => state
                    .with_error_code(e.code())
                    .with_producer_id((-1).into())
                    .with_producer_epoch(-1),
            },
        );
    }
    DescribeTransactionsResponse::default().with_transaction_states(states)
}
