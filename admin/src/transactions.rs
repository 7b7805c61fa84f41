//! `admin transactions`: the transactional ids the coordinators know (ListTransactions to
//! every broker) and one id's open transaction (FindCoordinator with the transaction key
//! type, then DescribeTransactions), as Kafka's `kafka-transactions list/describe` do.

use anyhow::anyhow;
use clap::Subcommand;
use kafka_protocol::messages::{
    DescribeTransactionsRequest, ListTransactionsRequest, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::json;

use crate::{check, coordinator_of, metadata, AdminArgs, Output, TRANSACTION_KEY};

#[derive(Debug, Subcommand)]
pub enum TransactionsCmd {
    /// Every transactional id with its producer id, state and coordinator.
    List,
    /// One transactional id: state, producer id and epoch, timeout, partitions.
    Describe { id: String },
}

/// Runs `admin transactions ...`.
pub async fn run(args: &AdminArgs, cmd: &TransactionsCmd) -> anyhow::Result<Output> {
    let mut client = args.kafka(&args.bootstrap).await?;
    match cmd {
        TransactionsCmd::List => {
            let no_topics: &[&str] = &[];
            let meta = metadata(&mut client, Some(no_topics)).await?;
            let mut rows = Vec::new();
            for broker in &meta.brokers {
                let addr = format!("{}:{}", broker.host, broker.port);
                let mut c = client.connect_like(&addr).await?;
                let resp = c.send(&ListTransactionsRequest::default(), 0).await?;
                check(resp.error_code, None, "list transactions")?;
                for t in resp.transaction_states {
                    rows.push(vec![
                        t.transactional_id.to_string(),
                        broker.node_id.0.to_string(),
                        t.producer_id.0.to_string(),
                        t.transaction_state.to_string(),
                    ]);
                }
            }
            rows.sort();
            let json = json!(rows
                .iter()
                .map(|r| json!({"transactional_id": r[0], "coordinator": r[1],
                    "producer_id": r[2], "state": r[3]}))
                .collect::<Vec<_>>());
            Ok(Output {
                tables: vec![(
                    vec!["TRANSACTIONAL ID", "COORDINATOR", "PRODUCER ID", "STATE"],
                    rows,
                )],
                json,
            })
        }
        TransactionsCmd::Describe { id } => {
            let coordinator = coordinator_of(&mut client, id, TRANSACTION_KEY).await?;
            let mut c = client.connect_like(&coordinator).await?;
            let req = DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![TransactionalId(StrBytes::from_string(id.clone()))]);
            let resp = c.send(&req, 0).await?;
            let t = resp
                .transaction_states
                .first()
                .ok_or_else(|| anyhow!("no answer for {id}"))?;
            check(t.error_code, None, id)?;
            let partitions: Vec<String> = t
                .topics
                .iter()
                .flat_map(|topic| {
                    topic
                        .partitions
                        .iter()
                        .map(move |p| format!("{}-{p}", topic.topic.0))
                })
                .collect();
            let row = vec![
                id.clone(),
                t.transaction_state.to_string(),
                t.producer_id.0.to_string(),
                t.producer_epoch.to_string(),
                t.transaction_timeout_ms.to_string(),
                t.transaction_start_time_ms.to_string(),
                partitions.join(","),
            ];
            Ok(Output {
                tables: vec![(
                    vec![
                        "TRANSACTIONAL ID",
                        "STATE",
                        "PRODUCER ID",
                        "EPOCH",
                        "TIMEOUT MS",
                        "START MS",
                        "PARTITIONS",
                    ],
                    vec![row],
                )],
                json: json!({
                    "transactional_id": id,
                    "state": t.transaction_state.to_string(),
                    "producer_id": t.producer_id.0,
                    "producer_epoch": t.producer_epoch,
                    "timeout_ms": t.transaction_timeout_ms,
                    "start_ms": t.transaction_start_time_ms,
                    "partitions": partitions,
                }),
            })
        }
    }
}
