//! `sluice admin reassign`: moves a partition to new replicas, cancels a move, or lists the
//! moves in progress (AlterPartitionReassignments / ListPartitionReassignments, the APIs
//! `kafka-reassign-partitions` uses).

use clap::Subcommand;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ListPartitionReassignmentsRequest,
};
use serde_json::json;

use super::{check, topic_name, AdminArgs, Output};
use sluice_client::KafkaClient;

#[derive(Debug, Subcommand)]
pub(super) enum ReassignCmd {
    /// Moves a partition to `--replicas` (preferred leader first).
    Start {
        topic: String,
        #[arg(long)]
        partition: i32,
        /// Broker ids, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        replicas: Vec<i32>,
    },
    /// Cancels a partition's move: it goes back to the replicas it had.
    Cancel {
        topic: String,
        #[arg(long)]
        partition: i32,
    },
    /// Moves in progress: replicas, the ones being added and the ones being removed.
    List,
}

pub(super) async fn run(args: &AdminArgs, cmd: &ReassignCmd) -> anyhow::Result<Output> {
    let mut client = args.kafka(&args.bootstrap).await?;
    let (topic, partition, replicas) = match cmd {
        ReassignCmd::List => return list(&mut client).await,
        ReassignCmd::Start {
            topic,
            partition,
            replicas,
        } => (topic, *partition, Some(replicas)),
        ReassignCmd::Cancel { topic, partition } => (topic, *partition, None),
    };
    let req = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_allow_replication_factor_change(true)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(partition)
                .with_replicas(replicas.map(|r| {
                    r.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>()
                }))])]);
    let resp = client.send(&req, 0).await?;
    check(resp.error_code, resp.error_message.as_ref(), topic)?;
    for p in resp.responses.iter().flat_map(|t| &t.partitions) {
        check(p.error_code, p.error_message.as_ref(), topic)?;
    }
    let what = match replicas {
        Some(r) => format!("{topic}-{partition} moving to replicas {r:?}"),
        None => format!("{topic}-{partition}: move cancelled"),
    };
    Ok(Output {
        tables: vec![(vec!["RESULT"], vec![vec![what.clone()]])],
        json: json!({"ok": true, "result": what}),
    })
}

async fn list(client: &mut KafkaClient) -> anyhow::Result<Output> {
    let req = ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(None);
    let resp = client.send(&req, 0).await?;
    check(
        resp.error_code,
        resp.error_message.as_ref(),
        "reassignments",
    )?;
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<i32>>();
    let mut rows = Vec::new();
    let mut moves = Vec::new();
    for t in &resp.topics {
        for p in &t.partitions {
            let (replicas, adding, removing) = (
                ids(&p.replicas),
                ids(&p.adding_replicas),
                ids(&p.removing_replicas),
            );
            rows.push(vec![
                t.name.0.to_string(),
                p.partition_index.to_string(),
                format!("{replicas:?}"),
                format!("{adding:?}"),
                format!("{removing:?}"),
            ]);
            moves.push(json!({
                "topic": t.name.0.as_str(), "partition": p.partition_index,
                "replicas": replicas, "adding": adding, "removing": removing,
            }));
        }
    }
    Ok(Output {
        tables: vec![(
            vec!["TOPIC", "PARTITION", "REPLICAS", "ADDING", "REMOVING"],
            rows,
        )],
        json: json!(moves),
    })
}
