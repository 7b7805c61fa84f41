//! Follower side of replication: one task per leader broker fetches (Fetch with this
//! node's replica id) every partition this node follows from it and appends the batches as
//! they are. Before fetching in a new leader epoch, a follower asks the leader where its
//! own last epoch ends (OffsetForLeaderEpoch) and truncates anything past that (KIP-101,
//! KIP-279), so replicas never diverge.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::{
    BrokerId, FetchRequest, ListOffsetsRequest, OffsetForLeaderEpochRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_controller::ControllerClient;
use sluice_storage::{batch, AppendEntry, Store};
use tokio_util::sync::CancellationToken;

use super::Following;
use super::ReplicaManager;
use sluice_client::KafkaClient;

const BACKOFF: Duration = Duration::from_millis(200);

/// What the fetchers work with.
#[derive(Clone)]
pub struct FetcherCtx {
    /// This node's id.
    pub node_id: i32,
    /// Node storage.
    pub store: Arc<Store>,
    /// Local replicas (which partitions are followed from whom).
    pub replicas: Arc<ReplicaManager>,
    /// The metadata controller (where the leaders are).
    pub controller: ControllerClient,
    /// How to connect to leaders (the inter-broker listener's TLS and SASL).
    pub security: sluice_client::ClientSecurity,
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Keeps one fetcher task running per leader this node follows partitions from.
pub async fn run(ctx: FetcherCtx, shutdown: CancellationToken) {
    let mut tasks: HashMap<i32, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut tick = tokio::time::interval(BACKOFF);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        tasks.retain(|_, t| !t.is_finished());
        for leader in ctx.replicas.followed_leaders() {
            tasks
                .entry(leader)
                .or_insert_with(|| tokio::spawn(fetch_from(ctx.clone(), leader, shutdown.clone())));
        }
    }
    for t in tasks.into_values() {
        t.abort();
    }
}

/// Fetches from `leader` until this node follows nothing from it.
async fn fetch_from(ctx: FetcherCtx, leader: i32, shutdown: CancellationToken) {
    let mut conn: Option<KafkaClient> = None;
    while !shutdown.is_cancelled() {
        let parts = ctx.replicas.following_from(leader);
        if parts.is_empty() {
            return;
        }
        let image = ctx.controller.image();
        let Some(addr) = image
            .brokers
            .get(&leader)
            .filter(|b| !b.fenced)
            .map(|b| format!("{}:{}", b.host, b.port))
        else {
            tokio::time::sleep(BACKOFF).await;
            continue;
        };
        if conn.is_none() {
            conn = KafkaClient::connect_with(&addr, &ctx.security).await.ok();
        }
        let Some(client) = conn.as_mut() else {
            tokio::time::sleep(BACKOFF).await;
            continue;
        };
        let round = async {
            truncate_diverged(&ctx, client, &parts).await?;
            fetch_once(&ctx, client, &parts).await
        };
        if let Err(e) = round.await {
            tracing::debug!(leader, error = %e, "replica fetch failed; reconnecting");
            conn = None;
            tokio::time::sleep(BACKOFF).await;
        }
    }
}

/// Truncates partitions new to this epoch to where the leader's log agrees with ours.
async fn truncate_diverged(
    ctx: &FetcherCtx,
    client: &mut KafkaClient,
    parts: &[Following],
) -> anyhow::Result<()> {
    for p in parts.iter().filter(|p| !p.truncated) {
        let Some(&(our_epoch, _)) = p.log.leader_epochs().last() else {
            ctx.replicas.mark_truncated(&p.log.key(), p.leader_epoch);
            continue; // an empty log has nothing to disagree about
        };
        let req = OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(ctx.node_id))
            .with_topics(vec![OffsetForLeaderTopic::default()
                .with_topic(topic_name(&p.topic))
                .with_partitions(vec![OffsetForLeaderPartition::default()
                    .with_partition(p.partition)
                    .with_current_leader_epoch(p.leader_epoch)
                    .with_leader_epoch(our_epoch)])]);
        let resp = client.send(&req, 4).await?;
        let Some(answer) = resp.topics.first().and_then(|t| t.partitions.first()) else {
            continue;
        };
        if answer.error_code != 0 {
            continue; // the leader is not ready for this epoch yet: try again next round
        }
        // No common epoch: nothing of ours is in the leader's log.
        let end = if answer.end_offset < 0 {
            0
        } else {
            answer.end_offset
        };
        if end < p.log.log_end_offset() {
            tracing::info!(
                topic = p.topic,
                partition = p.partition,
                from = p.log.log_end_offset(),
                to = end,
                "truncating a diverged follower log"
            );
            ctx.store.truncate_to(&p.log, end).await?;
        }
        ctx.replicas.mark_truncated(&p.log.key(), p.leader_epoch);
    }
    Ok(())
}

/// One Fetch round for the partitions that are ready; appends what came back.
async fn fetch_once(
    ctx: &FetcherCtx,
    client: &mut KafkaClient,
    parts: &[Following],
) -> anyhow::Result<()> {
    let ready: Vec<&Following> = parts.iter().filter(|p| p.truncated).collect();
    if ready.is_empty() {
        tokio::time::sleep(BACKOFF).await;
        return Ok(());
    }
    let mut topics: Vec<FetchTopic> = Vec::new();
    for p in &ready {
        let partition = FetchPartition::default()
            .with_partition(p.partition)
            .with_current_leader_epoch(p.leader_epoch)
            .with_fetch_offset(p.log.log_end_offset())
            .with_last_fetched_epoch(p.log.leader_epochs().last().map(|e| e.0).unwrap_or(-1))
            .with_log_start_offset(p.log.log_start_offset())
            .with_partition_max_bytes(4 << 20);
        match topics.iter_mut().find(|t| t.topic.0.as_str() == p.topic) {
            Some(t) => t.partitions.push(partition),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(topic_name(&p.topic))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(ctx.node_id))
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(32 << 20)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics);
    let resp = client.send(&req, 12).await?;
    let mut out_of_range = Vec::new();
    for t in resp.responses {
        for data in t.partitions {
            let Some(p) = ready
                .iter()
                .find(|p| p.topic == t.topic.0.as_str() && p.partition == data.partition_index)
            else {
                continue;
            };
            if data.error_code == ResponseError::OffsetOutOfRange.code() {
                out_of_range.push(*p);
                continue;
            }
            if data.error_code != 0 {
                tracing::debug!(
                    topic = p.topic,
                    partition = p.partition,
                    code = data.error_code,
                    "replica fetch error"
                );
                continue;
            }
            let records = data.records.unwrap_or_default();
            if !records.is_empty() {
                let parsed = batch::split_batches(&records)?;
                if let Some((_, first)) = parsed.first() {
                    let end = p.log.log_end_offset();
                    if p.log.log_start_offset() == end
                        && first.base_offset < end
                        && first.last_offset() >= end
                    {
                        // An empty log restarted at the leader's log start, which lies inside
                        // the leader's first batch (DeleteRecords): take that batch whole.
                        ctx.store.restart_at(&p.log, first.base_offset).await?;
                    }
                }
                let batches = parsed
                    .into_iter()
                    .map(|(pos, h)| records.slice(pos..pos + h.total_len()))
                    .collect();
                let entry = AppendEntry {
                    txn_guard: None,
                    log: p.log.clone(),
                    batches,
                    leader_epoch: p.leader_epoch,
                    log_append_time: false,
                    flush_messages: u64::MAX,
                    replicated: true,
                };
                for r in ctx.store.append(vec![entry]).await? {
                    if let Err(e) = r {
                        // Out of step with the leader: truncate again before the next fetch.
                        tracing::warn!(topic = p.topic, partition = p.partition, error = %e,
                            "replicated append refused");
                        ctx.replicas.mark_untruncated(&p.log.key());
                    }
                }
            }
            if data.log_start_offset > p.log.log_start_offset() {
                let (store, log, start) = (ctx.store.clone(), p.log.clone(), data.log_start_offset);
                tokio::task::spawn_blocking(move || store.advance_log_start(&log, start)).await??;
            }
            p.log
                .set_high_watermark(data.high_watermark.min(p.log.log_end_offset()));
        }
    }
    for p in out_of_range {
        recover_out_of_range(ctx, client, p).await?;
    }
    Ok(())
}

/// Kafka's follower rule for OFFSET_OUT_OF_RANGE: a log that ends before the leader's log
/// start (a new replica, or one away longer than retention) can never be continued, so it
/// starts over, empty, at the leader's log start; one that ends past the leader's end
/// truncates again.
async fn recover_out_of_range(
    ctx: &FetcherCtx,
    client: &mut KafkaClient,
    p: &Following,
) -> anyhow::Result<()> {
    const EARLIEST: i64 = -2;
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(&p.topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(p.partition)
                .with_current_leader_epoch(p.leader_epoch)
                .with_timestamp(EARLIEST)])]);
    let resp = client.send(&req, 7).await?;
    let Some(answer) = resp
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .filter(|a| a.error_code == 0)
    else {
        return Ok(());
    };
    if p.log.log_end_offset() < answer.offset {
        tracing::info!(
            topic = p.topic,
            partition = p.partition,
            from = p.log.log_end_offset(),
            to = answer.offset,
            "follower behind the leader's log start: starting over there"
        );
        ctx.store.restart_at(&p.log, answer.offset).await?;
    } else {
        ctx.replicas.mark_untruncated(&p.log.key());
    }
    Ok(())
}
