//! AddPartitionsToTxn: partitions join a producer's transaction before it writes to them.
//! v0-3 carry one transaction (clients); v4+ a batch of them from partition leaders
//! (KIP-890): `verify_only` checks of a version 1 producer's write, or (v5) the adds of a
//! version 2 producer's partitions.

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, RequestHeader,
};

use super::{allowed, authorize_cluster};
use crate::context::Ctx;
use crate::coordinator::TxnProducer;
use crate::error::{code_of, BrokerError};
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation::{ClusterAction, Write};
use crate::security::authorizer::Resource::{Topic, TransactionalId};
use crate::txn::state::{TopicPartition, TV1, TV2};

/// Adds (or verifies) each transaction's partitions.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    header: &RequestHeader,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    if header.request_api_version <= 3 {
        let producer = TxnProducer {
            id: req.v3_and_below_producer_id.0,
            epoch: req.v3_and_below_producer_epoch,
        };
        let topics = add(
            ctx,
            scope,
            req.v3_and_below_transactional_id.as_str(),
            producer,
            &req.v3_and_below_topics,
            Enlist::Add(TV1),
        )
        .await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topics);
    }
    let version = if header.request_api_version >= 5 {
        TV2
    } else {
        TV1
    };
    // From v4 the request is a broker's (a partition leader's verification).
    if let Err(e) = authorize_cluster(ctx, scope, ClusterAction) {
        return AddPartitionsToTxnResponse::default().with_error_code(e.code());
    }
    let mut results = Vec::with_capacity(req.transactions.len());
    for t in &req.transactions {
        let producer = TxnProducer {
            id: t.producer_id.0,
            epoch: t.producer_epoch,
        };
        let topics = add(
            ctx,
            scope,
            t.transactional_id.as_str(),
            producer,
            &t.topics,
            if t.verify_only {
                Enlist::Verify
            } else {
                Enlist::Add(version)
            },
        )
        .await;
        results.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(topics),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}

/// What is asked of one transaction's partitions.
#[derive(Clone, Copy)]
enum Enlist {
    /// Add them, for a client of this transaction version.
    Add(i16),
    /// Only check that they were added.
    Verify,
}

/// One transaction's partitions: all added in one write, so they share its outcome; a
/// partition that does not exist fails alone and the others are not added (as in Kafka:
/// OPERATION_NOT_ATTEMPTED for them).
async fn add(
    ctx: &Ctx,
    scope: &RequestScope,
    id: &str,
    producer: TxnProducer,
    topics: &[AddPartitionsToTxnTopic],
    enlist: Enlist,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let image = ctx.controller.image();
    let io = ctx.coordinator_io();
    let wanted: Vec<TopicPartition> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
        .collect();
    let exists = |(topic, p): &TopicPartition| {
        image
            .topics
            .get(topic)
            .is_some_and(|info| *p >= 0 && (*p as usize) < info.partitions.len())
    };
    let missing = wanted.iter().any(|tp| !exists(tp));
    let mut codes: Vec<i16> = Vec::with_capacity(wanted.len());
    let not_attempted = kafka_protocol::error::ResponseError::OperationNotAttempted.code();
    // A client adding partitions needs WRITE on the transactional id and on each topic.
    let adding = matches!(enlist, Enlist::Add(_));
    let txn_refused = adding && !allowed(ctx, scope, &image, Write, TransactionalId, id);
    let topic_refused: Vec<bool> = wanted
        .iter()
        .map(|(topic, _)| {
            adding && !txn_refused && !allowed(ctx, scope, &image, Write, Topic, topic)
        })
        .collect();
    if txn_refused {
        codes = vec![BrokerError::TransactionalIdAuthorizationFailed.code(); wanted.len()];
    } else if topic_refused.iter().any(|r| *r) {
        codes = topic_refused
            .iter()
            .map(|refused| {
                if *refused {
                    BrokerError::TopicAuthorizationFailed.code()
                } else {
                    not_attempted
                }
            })
            .collect();
    } else if let Enlist::Verify = enlist {
        for tp in &wanted {
            codes.push(code_of(&ctx.txns.verify(io, id, producer, tp).await));
        }
    } else if missing {
        codes = wanted
            .iter()
            .map(|tp| {
                if exists(tp) {
                    not_attempted
                } else {
                    BrokerError::UnknownTopicOrPartition.code()
                }
            })
            .collect();
    } else if let Enlist::Add(version) = enlist {
        let added = ctx
            .txns
            .add_partitions(io, id, producer, &wanted, version)
            .await;
        codes = vec![code_of(&added); wanted.len()];
    }
    let mut codes = codes.into_iter();
    topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*p)
                        .with_partition_error_code(codes.next().unwrap_or(0))
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(partitions)
        })
        .collect()
}
