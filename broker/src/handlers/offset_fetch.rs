//! OffsetFetch: a group's committed offsets (one group in v1-7, several in v8+).

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, RequestHeader, TopicName};

use super::{authorize_group, visible};
use super::{str_bytes, topic_name};
use crate::context::Ctx;
use crate::error::BrokerError;
use crate::group::offsets::Committed;
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation::Describe;
use crate::security::authorizer::Resource::Topic;

/// (topic, [(partition, committed)]) for the requested partitions (offset -1 where nothing
/// was committed), or all committed ones.
type Answer = Vec<(String, Vec<(i32, Committed)>)>;

fn answer(
    committed: BTreeMap<(String, i32), Committed>,
    wanted: Option<Vec<(String, Vec<i32>)>>,
) -> Answer {
    match wanted {
        Some(topics) => topics
            .into_iter()
            .map(|(t, parts)| {
                let ps = parts
                    .into_iter()
                    .map(|p| {
                        let c = committed.get(&(t.clone(), p)).cloned();
                        (p, c.unwrap_or_else(Committed::none))
                    })
                    .collect();
                (t, ps)
            })
            .collect(),
        None => {
            let mut by_topic: BTreeMap<String, Vec<(i32, Committed)>> = BTreeMap::new();
            for ((t, p), c) in committed {
                by_topic.entry(t).or_default().push((p, c));
            }
            by_topic.into_iter().collect()
        }
    }
}

/// With `require_stable` (read_committed consumers), the partitions whose offsets an open
/// transaction is still committing.
async fn unstable(ctx: &Ctx, group: &str, require_stable: bool) -> BTreeSet<(String, i32)> {
    if !require_stable {
        return BTreeSet::new();
    }
    ctx.groups.pending(ctx.coordinator_io(), group).await
}

fn unstable_code(unstable: &BTreeSet<(String, i32)>, topic: &str, partition: i32) -> i16 {
    if unstable.contains(&(topic.to_string(), partition)) {
        BrokerError::UnstableOffsetCommit.code()
    } else {
        0
    }
}

/// Looks the offsets up on the group's coordinator shard, once it is loaded.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    header: &RequestHeader,
    req: OffsetFetchRequest,
) -> OffsetFetchResponse {
    if header.request_api_version >= 8 {
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in &req.groups {
            let committed = match authorize_group(ctx, scope, Describe, g.group_id.as_str()) {
                Ok(()) => {
                    ctx.groups
                        .committed(ctx.coordinator_io(), g.group_id.as_str())
                        .await
                }
                Err(e) => Err(e),
            };
            let committed = committed.map(|c| readable(ctx, scope, c));
            let committed = match committed {
                Ok(c) => c,
                Err(e) => {
                    groups.push(
                        OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id.clone())
                            .with_error_code(e.code()),
                    );
                    continue;
                }
            };
            let unstable = unstable(ctx, g.group_id.as_str(), req.require_stable).await;
            let wanted = g.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                    .collect()
            });
            let topics = answer(committed, wanted)
                .into_iter()
                .map(|(t, ps)| {
                    let partitions = ps
                        .into_iter()
                        .map(|(p, c)| {
                            OffsetFetchResponsePartitions::default()
                                .with_partition_index(p)
                                .with_error_code(unstable_code(&unstable, &t, p))
                                .with_committed_offset(c.offset)
                                .with_committed_leader_epoch(c.leader_epoch)
                                .with_metadata(Some(str_bytes(c.metadata)))
                        })
                        .collect();
                    OffsetFetchResponseTopics::default()
                        .with_name(topic_name(&t))
                        .with_partitions(partitions)
                })
                .collect();
            groups.push(
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id.clone())
                    .with_topics(topics),
            );
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let committed = match authorize_group(ctx, scope, Describe, req.group_id.as_str()) {
        Ok(()) => {
            ctx.groups
                .committed(ctx.coordinator_io(), req.group_id.as_str())
                .await
        }
        Err(e) => Err(e),
    };
    let committed = committed.map(|c| readable(ctx, scope, c));
    // v0-1 have no top-level error: each partition asked for carries it.
    let (committed, partition_error) = match committed {
        Ok(c) => (c, 0),
        Err(e) if header.request_api_version >= 2 => {
            return OffsetFetchResponse::default().with_error_code(e.code())
        }
        Err(e) => (BTreeMap::new(), e.code()),
    };
    let unstable = unstable(ctx, req.group_id.as_str(), req.require_stable).await;
    let wanted = req.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    let topics = answer(committed, wanted)
        .into_iter()
        .map(|(t, ps)| {
            let partitions = ps
                .into_iter()
                .map(|(p, c)| {
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(c.offset)
                        .with_committed_leader_epoch(c.leader_epoch)
                        .with_metadata(Some(str_bytes(c.metadata)))
                        .with_error_code(match unstable_code(&unstable, &t, p) {
                            0 => partition_error,
                            code => code,
                        })
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(str_bytes(t)))
                .with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

/// The committed offsets of the topics the principal may DESCRIBE (Kafka leaves the others
/// out).
fn readable<V>(
    ctx: &Ctx,
    scope: &RequestScope,
    committed: BTreeMap<(String, i32), V>,
) -> BTreeMap<(String, i32), V> {
    if !ctx.authorizer.enabled() {
        return committed;
    }
    let image = ctx.controller.image();
    committed
        .into_iter()
        .filter(|((topic, _), _)| visible(ctx, scope, &image, Describe, Topic, topic))
        .collect()
}
