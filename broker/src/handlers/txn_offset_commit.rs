//! TxnOffsetCommit: a group's offsets committed as part of a transaction (consume-transform-
//! produce): written now, in effect only once the transaction commits. The group's offsets
//! partition must be in the transaction: a version 1 client added it (AddOffsetsToTxn) and
//! this checks it; for a version 2 client (v5+) this adds it (KIP-890).

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{RequestHeader, TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::{authorize, authorize_txn_offsets};
use crate::context::Ctx;
use crate::coordinator::TxnProducer;
use crate::error::{code_of, BrokerError};
use crate::group::offsets::Committed;
use crate::group::OFFSETS_TOPIC;
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation::Read;
use crate::security::authorizer::Resource::Topic;

/// Writes every partition's offset in one transactional write.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    header: &RequestHeader,
    req: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let now = crate::clock::now_ms();
    let image = ctx.controller.image();
    let exists = |topic: &str, p: i32| {
        image
            .topics
            .get(topic)
            .is_some_and(|info| p >= 0 && (p as usize) < info.partitions.len())
    };
    let offsets: Vec<_> = req
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t, p)))
        .filter(|(t, p)| exists(t.name.0.as_str(), p.partition_index))
        .map(|(t, p)| {
            let committed = Committed {
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p
                    .committed_metadata
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
                commit_ms: now,
            };
            ((t.name.0.to_string(), p.partition_index), committed)
        })
        .collect();
    let producer = TxnProducer {
        id: req.producer_id.0,
        epoch: req.producer_epoch,
    };
    // WRITE on the transactional id, READ on the group and on each topic.
    let id = req.transactional_id.as_str();
    let refused =
        authorize_txn_offsets(ctx, scope, &image, id, req.group_id.as_str()).and_then(|_| {
            req.topics
                .iter()
                .try_for_each(|t| authorize(ctx, scope, &image, Read, Topic, t.name.0.as_str()))
        });
    let result = if let Err(e) = refused {
        Err(e)
    } else if offsets.is_empty() {
        Ok(())
    } else {
        let io = ctx.coordinator_io();
        let add = header.request_api_version >= 5;
        let enlisted = match ctx
            .groups
            .offsets_partition(io, req.group_id.as_str())
            .await
        {
            Ok(p) => {
                let partition = (OFFSETS_TOPIC.to_string(), p);
                let id = req.transactional_id.as_str();
                ctx.txns.enlist(io, id, producer, &partition, add).await
            }
            Err(e) => Err(e),
        };
        match enlisted {
            Ok(()) => {
                ctx.groups
                    .txn_commit(
                        io,
                        req.group_id.as_str(),
                        req.member_id.as_str(),
                        req.generation_id,
                        producer,
                        offsets,
                    )
                    .await
            }
            Err(e) => Err(e),
        }
    };
    let code = code_of(&result);
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = if exists(t.name.0.as_str(), p.partition_index) {
                        code
                    } else {
                        BrokerError::UnknownTopicOrPartition.code()
                    };
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
