//! DescribeLogDirs (`kafka-log-dirs`, and `kafka-reassign-partitions`, which asks where each
//! replica lives): Sluice has one log directory, the RocksDB data directory; each stored
//! partition's size is RocksDB's estimate for its column family.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use super::authorize_cluster;
use super::topic_name;
use crate::context::Ctx;
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation::Describe;

/// Describes the one log directory and the replicas in it (all, or the ones asked for).
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    _header: &RequestHeader,
    req: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    if let Err(e) = authorize_cluster(ctx, scope, Describe) {
        return DescribeLogDirsResponse::default().with_error_code(e.code());
    }
    let image = ctx.controller.image();
    let wanted = |topic: &str, partition: i32| match &req.topics {
        None => true,
        Some(ts) => ts
            .iter()
            .any(|t| t.topic.0.as_str() == topic && t.partitions.contains(&partition)),
    };
    let mut by_topic: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for log in ctx.store.partitions() {
        let key = log.key();
        let Some(topic) = image.topic_by_id(&key.topic_id) else {
            continue;
        };
        if !wanted(&topic.name, key.partition) {
            continue;
        }
        let size = ctx.store.partition_size_estimate(&log);
        by_topic.entry(topic.name.clone()).or_default().push(
            DescribeLogDirsPartition::default()
                .with_partition_index(key.partition)
                .with_partition_size(i64::try_from(size).unwrap_or(i64::MAX))
                .with_offset_lag(0),
        );
    }
    let (total, usable) = ctx.disk.space().unwrap_or((0, 0));
    let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let dir = ctx.disk.dir();
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let result = DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(dir.display().to_string()))
        .with_total_bytes(as_i64(total))
        .with_usable_bytes(as_i64(usable))
        .with_topics(
            by_topic
                .into_iter()
                .map(|(name, mut partitions)| {
                    partitions.sort_by_key(|p| p.partition_index);
                    DescribeLogDirsTopic::default()
                        .with_name(topic_name(&name))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    DescribeLogDirsResponse::default().with_results(vec![result])
}
