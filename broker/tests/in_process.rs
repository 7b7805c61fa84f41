//! Protocol-level tests of a node run in this process (`server::serve` on port 0), spoken to
//! over a real socket with the broker's own minimal client: produce and fetch, and a group
//! round trip whose committed offset survives a restart (replayed by the coordinator
//! runtime), and the transaction protocol's partition-leader checks (KIP-890). The
//! process-level and real-client tests live in compat-tests.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiVersionsRequest, CreateTopicsRequest, DescribeGroupsRequest, EndTxnRequest, FetchRequest,
    FindCoordinatorRequest, GroupId, HeartbeatRequest, InitProducerIdRequest, JoinGroupRequest,
    LeaveGroupRequest, OffsetCommitRequest, OffsetFetchRequest, ProduceRequest, SyncGroupRequest,
    TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use sluice::server::{self, Serving};
use sluice_client::KafkaClient;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

mod support;

/// Every test here gives up after this long.
const TEST_LIMIT: Duration = Duration::from_secs(60);

/// A node running in this process.
struct InProcessNode {
    serving: Serving,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl InProcessNode {
    async fn start(data_dir: &Path) -> anyhow::Result<Self> {
        let args = support::one_node_args(data_dir);
        let shutdown = CancellationToken::new();
        // The test process' subscriber is not the node's to change.
        let log_levels = std::sync::Arc::new(sluice::log_levels::LogLevels::new("info", None));
        let (ready_tx, ready_rx) = oneshot::channel();
        let task = tokio::spawn(server::serve(
            args,
            None,
            log_levels,
            shutdown.clone(),
            move |s| {
                let _ = ready_tx.send(s);
            },
        ));
        let serving = match ready_rx.await {
            Ok(serving) => serving,
            // The node's own error says why it stopped.
            Err(_) => match task.await? {
                Ok(()) => bail!("the node stopped before serving, without an error"),
                Err(e) => return Err(e.context("the node stopped before serving")),
            },
        };
        Ok(Self {
            serving,
            shutdown,
            task,
        })
    }

    async fn client(&self) -> anyhow::Result<KafkaClient> {
        KafkaClient::connect(&self.serving.kafka_addr.to_string()).await
    }

    /// Stops the node the way SIGTERM does and waits for its clean stop.
    async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.await?
    }
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn batch(values: &[&str]) -> anyhow::Result<Bytes> {
    encode_batch(values, None)
}

/// A batch of `values` written in a transaction by (producer id, epoch, first sequence).
fn txn_batch(values: &[&str], producer: (i64, i16, i32)) -> anyhow::Result<Bytes> {
    encode_batch(values, Some(producer))
}

fn encode_batch(values: &[&str], txn: Option<(i64, i16, i32)>) -> anyhow::Result<Bytes> {
    let (producer_id, producer_epoch, first_seq) = txn.unwrap_or((-1, -1, -1));
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: txn.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if txn.is_some() {
                first_seq + i as i32
            } else {
                -1
            },
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from(v.to_string())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )?;
    Ok(buf.freeze())
}

async fn create_topic(client: &mut KafkaClient, name: &str) -> anyhow::Result<()> {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(s(name)))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    let resp = client.send(&req, 7).await?;
    let code = resp.topics.first().map_or(-1, |t| t.error_code);
    if code != 0 {
        bail!("CreateTopics answered {code}");
    }
    Ok(())
}

/// Fetches partition 0 of `topic` from `offset`; the values and the high watermark.
async fn fetch(
    client: &mut KafkaClient,
    topic: &str,
    offset: i64,
) -> anyhow::Result<(Vec<String>, i64)> {
    let req = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(s(topic)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let resp = client.send(&req, 12).await?;
    let part = resp
        .responses
        .first()
        .and_then(|t| t.partitions.first())
        .context("no partition in the fetch response")?;
    if part.error_code != 0 {
        bail!("Fetch answered {}", part.error_code);
    }
    let mut values = Vec::new();
    if let Some(mut records) = part.records.clone() {
        for b in RecordBatchDecoder::decode_all(&mut records)? {
            for r in b.records {
                let v = r.value.unwrap_or_default();
                values.push(String::from_utf8_lossy(&v).into_owned());
            }
        }
    }
    Ok((values, part.high_watermark))
}

/// Runs a test body within TEST_LIMIT; its error, or the timeout, fails the test.
async fn within_limit(test: impl std::future::Future<Output = anyhow::Result<()>>) {
    match tokio::time::timeout(TEST_LIMIT, test).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e:#}"),
        Err(_) => panic!("timed out after {TEST_LIMIT:?}"),
    }
}

#[tokio::test]
async fn records_produced_in_process_are_fetched_back_in_order_and_survive_a_restart() {
    within_limit(async {
        let dir = tempfile::tempdir()?;
        let node = InProcessNode::start(dir.path()).await?;
        let mut client = node.client().await?;
        create_topic(&mut client, "in-process").await?;
        for values in [&["a", "b", "c"][..], &["d"][..]] {
            let req = ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(10_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(s("in-process")))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch(values)?))])]);
            let resp = client.send(&req, 9).await?;
            let p = resp
                .responses
                .first()
                .and_then(|t| t.partition_responses.first())
                .context("no partition in the produce response")?;
            assert_eq!(p.error_code, 0, "produce");
        }
        let (values, hw) = fetch(&mut client, "in-process", 0)
            .await
            .context("fetch before the restart")?;
        assert_eq!(values, ["a", "b", "c", "d"]);
        assert_eq!(hw, 4);
        let (values, _) = fetch(&mut client, "in-process", 3).await?;
        assert_eq!(
            values,
            ["d"],
            "a fetch from inside the log starts at its offset"
        );
        drop(client);
        node.stop().await?;

        let node = InProcessNode::start(dir.path()).await?;
        let mut client = node.client().await?;
        let (values, hw) = fetch(&mut client, "in-process", 0)
            .await
            .context("fetch after the restart")?;
        assert_eq!(values, ["a", "b", "c", "d"], "after a restart");
        assert_eq!(hw, 4);
        drop(client);
        node.stop().await
    })
    .await;
}

/// OffsetFetch v7 for one partition of one topic: the committed offset (-1 for none).
async fn committed(client: &mut KafkaClient, group: &str, topic: &str) -> anyhow::Result<i64> {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partition_indexes(vec![0])]));
    let resp = client.send(&req, 7).await?;
    if resp.error_code != 0 {
        bail!("OffsetFetch answered {}", resp.error_code);
    }
    resp.topics
        .first()
        .and_then(|t| t.partitions.first())
        .map(|p| p.committed_offset)
        .context("no partition in the OffsetFetch response")
}

#[tokio::test]
async fn api_versions_leaves_features_from_zero_out_for_clients_before_v4() {
    within_limit(async {
        let dir = tempfile::tempdir()?;
        let node = InProcessNode::start(dir.path()).await?;
        let mut client = node.client().await?;
        // Java clients before 3.9 send v3 and drop the connection on a range from 0
        // (Apicurio Registry's kafka-clients 3.7 did); Kafka leaves those out below v4.
        let request = ApiVersionsRequest::default()
            .with_client_software_name(s("test"))
            .with_client_software_version(s("1"));
        let v3 = client.send(&request, 3).await?;
        let names = |r: &kafka_protocol::messages::ApiVersionsResponse| -> Vec<String> {
            r.supported_features
                .iter()
                .map(|f| f.name.to_string())
                .collect()
        };
        assert_eq!(names(&v3), ["metadata.version"]);
        assert!(v3.supported_features.iter().all(|f| f.min_version >= 1));
        assert!(v3
            .finalized_features
            .iter()
            .all(|f| f.min_version_level >= 1));
        let v4 = client.send(&request, 4).await?;
        assert!(
            names(&v4).contains(&"transaction.version".to_string()),
            "{v4:?}"
        );
        node.stop().await
    })
    .await
}

#[tokio::test]
async fn a_group_round_trip_in_process_keeps_its_commit_across_a_restart() {
    within_limit(async {
        let dir = tempfile::tempdir()?;
        let node = InProcessNode::start(dir.path()).await?;
        let mut client = node.client().await?;
        create_topic(&mut client, "orders").await?;

        let find = FindCoordinatorRequest::default()
            .with_key_type(0)
            .with_coordinator_keys(vec![s("billing")]);
        let found = client.send(&find, 4).await?;
        let c = found.coordinators.first().context("no coordinator")?;
        assert_eq!((c.error_code, c.node_id.0), (0, 1));
        assert_eq!(c.port, i32::from(node.serving.kafka_addr.port()));

        // KIP-394: the first join is answered MEMBER_ID_REQUIRED with the member's id.
        let join = |member: &str| {
            JoinGroupRequest::default()
                .with_group_id(GroupId(s("billing")))
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(10_000)
                .with_member_id(s(member))
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(s("range"))
                    .with_metadata(Bytes::from_static(b"subscription"))])
        };
        let first = client.send(&join(""), 5).await?;
        assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED");
        let member = first.member_id.to_string();
        let joined = client.send(&join(&member), 5).await?;
        assert_eq!(joined.error_code, 0, "join");
        assert_eq!(joined.leader.as_str(), member);
        assert_eq!(joined.members.len(), 1);
        let generation = joined.generation_id;

        let sync = SyncGroupRequest::default()
            .with_group_id(GroupId(s("billing")))
            .with_generation_id(generation)
            .with_member_id(s(&member))
            .with_assignments(vec![SyncGroupRequestAssignment::default()
                .with_member_id(s(&member))
                .with_assignment(Bytes::from_static(b"orders-0"))]);
        let synced = client.send(&sync, 3).await?;
        assert_eq!(synced.error_code, 0, "sync");
        assert_eq!(&synced.assignment[..], b"orders-0");

        let beat = HeartbeatRequest::default()
            .with_group_id(GroupId(s("billing")))
            .with_generation_id(generation)
            .with_member_id(s(&member));
        assert_eq!(client.send(&beat, 3).await?.error_code, 0, "heartbeat");

        let commit = |generation: i32, offset: i64| {
            OffsetCommitRequest::default()
                .with_group_id(GroupId(s("billing")))
                .with_generation_id_or_member_epoch(generation)
                .with_member_id(s(&member))
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s("orders")))
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)])])
        };
        let stale = client.send(&commit(generation + 1, 7), 8).await?;
        let code = stale.topics[0].partitions[0].error_code;
        assert_eq!(
            code, 22,
            "a commit from another generation is ILLEGAL_GENERATION"
        );
        assert_eq!(committed(&mut client, "billing", "orders").await?, -1);
        let done = client.send(&commit(generation, 42), 8).await?;
        assert_eq!(done.topics[0].partitions[0].error_code, 0, "commit");
        assert_eq!(committed(&mut client, "billing", "orders").await?, 42);

        let leave = LeaveGroupRequest::default()
            .with_group_id(GroupId(s("billing")))
            .with_member_id(s(&member));
        assert_eq!(client.send(&leave, 2).await?.error_code, 0, "leave");
        let describe = DescribeGroupsRequest::default().with_groups(vec![GroupId(s("billing"))]);
        let described = client.send(&describe, 5).await?;
        assert_eq!(described.groups[0].group_state.as_str(), "Empty");
        drop(client);
        node.stop().await?;

        // A new coordinator replays __consumer_offsets; the member's session is gone.
        let node = InProcessNode::start(dir.path()).await?;
        let mut client = node.client().await?;
        assert_eq!(committed(&mut client, "billing", "orders").await?, 42);
        assert_eq!(
            client.send(&beat, 3).await?.error_code,
            25,
            "UNKNOWN_MEMBER_ID after the restart"
        );
        drop(client);
        node.stop().await
    })
    .await;
}

#[tokio::test]
async fn find_coordinator_serves_transactions_and_refuses_share_groups_for_good() {
    within_limit(async {
        let dir = tempfile::tempdir()?;
        let node = InProcessNode::start(dir.path()).await?;
        let mut client = node.client().await?;
        let find = |key_type: i8| {
            FindCoordinatorRequest::default()
                .with_key_type(key_type)
                .with_coordinator_keys(vec![s("tx-or-share")])
        };
        let txn = client.send(&find(1), 4).await?;
        let c = txn.coordinators.first().context("no coordinator")?;
        assert_eq!((c.error_code, c.node_id.0), (0, 1));
        // Share groups have no coordinator here: a non-retriable error (UNSUPPORTED_VERSION),
        // so that no client loops on it as on COORDINATOR_NOT_AVAILABLE.
        let share = client.send(&find(2), 4).await?;
        let c = share.coordinators.first().context("no coordinator")?;
        assert_eq!((c.error_code, c.node_id.0), (35, -1));
        node.stop().await
    })
    .await;
}

/// A zigzag varint, as records encode their lengths.
fn varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// A valid zstd batch of one record keyed "k" whose value is `len` zero bytes, compressed as
/// it is written, so the test never holds the inflated record itself.
fn zstd_bomb(len: usize) -> anyhow::Result<Bytes> {
    use std::io::Write;
    let mut head = vec![0u8]; // attributes
    varint(&mut head, 0); // timestamp delta
    varint(&mut head, 0); // offset delta
    varint(&mut head, 1);
    head.push(b'k');
    varint(&mut head, len as i64);
    let mut record = Vec::new();
    varint(&mut record, (head.len() + len + 1) as i64);
    record.extend_from_slice(&head);
    let mut z = zstd::stream::Encoder::new(Vec::new(), 1)?;
    z.write_all(&record)?;
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..len / zeros.len() {
        z.write_all(&zeros)?;
    }
    z.write_all(&zeros[..len % zeros.len()])?;
    z.write_all(&[0])?; // no headers
    let section = z.finish()?;
    // The header of a real one-record zstd batch, its records swapped for the bomb's.
    let one = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1_700_000_000_000,
        key: Some(Bytes::from_static(b"k")),
        value: Some(Bytes::from_static(b"v")),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        [one].iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::Zstd,
        },
    )?;
    let mut batch = buf[..sluice_storage::batch::HEADER_LEN].to_vec();
    batch.extend_from_slice(&section);
    sluice_storage::batch::set_records_count(&mut batch, 1);
    Ok(Bytes::from(batch))
}

#[tokio::test]
async fn a_decompression_bomb_to_a_compacted_topic_is_refused_without_inflating_it() {
    within_limit(async {
        let dir = tempfile::tempdir()?;
        let node = InProcessNode::start(dir.path()).await?;
        let mut client = node.client().await?;
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(s("keyed")))
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(vec![CreatableTopicConfig::default()
                    .with_name(s("cleanup.policy"))
                    .with_value(Some(s("compact")))])]);
        let code = client
            .send(&req, 7)
            .await?
            .topics
            .first()
            .map_or(-1, |t| t.error_code);
        anyhow::ensure!(code == 0, "CreateTopics answered {code}");
        // 1 GiB of record in about 32 KiB of zstd, well under message.max.bytes.
        let bomb = zstd_bomb(1 << 30)?;
        anyhow::ensure!(bomb.len() < 1 << 20, "the bomb is {} bytes", bomb.len());
        let before = support::request_fuzz::rss_mib();
        let code = produce_code(&mut client, "keyed", bomb, "", 7).await?;
        let grown = support::request_fuzz::rss_mib().saturating_sub(before);
        // Checking for keyless records is what decompresses on produce.
        assert_eq!(
            code, 87,
            "INVALID_RECORD for records inflating past the bound"
        );
        assert!(grown < 256, "RSS grew {grown} MiB answering a 1 GiB bomb");
        let keyed = zstd_bomb(1 << 20)?;
        assert_eq!(produce_code(&mut client, "keyed", keyed, "", 7).await?, 0);
        node.stop().await
    })
    .await;
}

/// Produces one batch to partition 0 of `topic` at `version`; the partition's error code.
async fn produce_code(
    client: &mut KafkaClient,
    topic: &str,
    records: Bytes,
    transactional_id: &str,
    version: i16,
) -> anyhow::Result<i16> {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        // "" for none.
        .with_transactional_id(
            (!transactional_id.is_empty()).then(|| TransactionalId(s(transactional_id))),
        )
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let resp = client.send(&req, version).await?;
    resp.responses
        .first()
        .and_then(|t| t.partition_responses.first())
        .map(|p| p.error_code)
        .context("no partition in the produce response")
}

#[tokio::test]
async fn leaders_ask_the_transaction_coordinator_and_version_2_moves_the_epoch_on() {
    within_limit(async {
        let dir = tempfile::tempdir()?;
        let node = InProcessNode::start(dir.path()).await?;
        let mut client = node.client().await?;
        create_topic(&mut client, "txn-guard").await?;
        let id = "tx-guard";
        let init = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s(id))))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id((-1).into())
            .with_producer_epoch(-1);
        let init = client.send(&init, 5).await?;
        assert_eq!(init.error_code, 0, "InitProducerId");
        let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
        assert_eq!(epoch, 0);

        // Version 1: a write to a partition the client never added would open a
        // transaction no coordinator knows of; the leader refuses it.
        let first = txn_batch(&["a"], (pid, 0, 0))?;
        let code = produce_code(&mut client, "txn-guard", first.clone(), id, 11).await?;
        assert_eq!(code, 48, "INVALID_TXN_STATE for an unadded partition");
        // Version 2 (Produce v12): the leader adds the partition itself.
        let code = produce_code(&mut client, "txn-guard", first, id, 12).await?;
        assert_eq!(code, 0, "Produce v12 adds the partition");
        let end = |epoch: i16, commit: bool| {
            EndTxnRequest::default()
                .with_transactional_id(TransactionalId(s(id)))
                .with_producer_id(pid.into())
                .with_producer_epoch(epoch)
                .with_committed(commit)
        };
        let ended = client.send(&end(0, true), 5).await?;
        assert_eq!(
            (ended.error_code, ended.producer_id.0, ended.producer_epoch),
            (0, pid, 1),
            "EndTxn v5 answers the next epoch"
        );
        // A retry with the old epoch is answered, not fenced.
        let retried = client.send(&end(0, true), 5).await?;
        assert_eq!((retried.error_code, retried.producer_epoch), (0, 1));
        // A late write of the ended transaction is stale everywhere.
        let late = txn_batch(&["late"], (pid, 0, 1))?;
        let code = produce_code(&mut client, "txn-guard", late, id, 12).await?;
        assert_eq!(code, 47, "INVALID_PRODUCER_EPOCH for the old epoch");
        let next = txn_batch(&["b"], (pid, 1, 0))?;
        let code = produce_code(&mut client, "txn-guard", next, id, 12).await?;
        assert_eq!(
            code, 0,
            "the next transaction at the new epoch, sequences from 0"
        );
        let aborted = client.send(&end(1, false), 5).await?;
        assert_eq!((aborted.error_code, aborted.producer_epoch), (0, 2));
        drop(client);
        node.stop().await
    })
    .await;
}

#[tokio::test]
async fn a_producer_bumps_its_own_epoch_but_a_fenced_instance_cannot() {
    within_limit(async {
        let dir = tempfile::tempdir()?;
        let node = InProcessNode::start(dir.path()).await?;
        let mut client = node.client().await?;
        let init = |producer: (i64, i16)| {
            InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(s("tx-bump"))))
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(producer.0.into())
                .with_producer_epoch(producer.1)
        };
        let mut answer = async |producer: (i64, i16)| -> anyhow::Result<(i16, i64, i16)> {
            let r = client.send(&init(producer), 4).await?;
            Ok((r.error_code, r.producer_id.0, r.producer_epoch))
        };
        let (code, pid, epoch) = answer((-1, -1)).await?;
        assert_eq!((code, epoch), (0, 0), "the first instance");
        assert_eq!(answer((-1, -1)).await?, (0, pid, 1), "a new instance");
        // KIP-360: the old instance may not bump; the current one may, and its retry gets
        // the same epoch.
        assert_eq!(answer((pid, 0)).await?.0, 90, "PRODUCER_FENCED");
        assert_eq!(answer((pid, 1)).await?, (0, pid, 2));
        assert_eq!(answer((pid, 1)).await?, (0, pid, 2), "a retried bump");
        assert_eq!(answer((pid + 1, 2)).await?.0, 90, "another producer id");
        drop(client);
        node.stop().await
    })
    .await;
}
