//! `sluice admin`: operator commands against a running cluster. Topics and groups go
//! through the Kafka protocol (as Kafka's own tools do); the controller's own state
//! (quorum status, brokers, voters) through the HTTP admin API. Tables by default, `--json`
//! for scripts.
//!
//! ```text
//! lib.rs           the subcommands (topics, groups, status, brokers, voters, ...) and their
//!                  output; `--command-config` for TLS/SASL on the Kafka listener
//! reassign.rs      `admin reassign`: partition moves through the Kafka reassignment APIs
//! transactions.rs  `admin transactions`: transactional ids and their open transactions
//! users.rs         `admin users`: SCRAM credentials (salted here, as Kafka's tools do)
//! acls.rs          `admin acls`: list, add, remove ACLs
//! top.rs       `admin top`: live rates from a node's /metrics
//! table.rs     plain-text tables
//! ```
//!
//! It depends on sluice-client only (the Kafka client and the admin API's typed replies),
//! never on the broker: the binary `sluice` links both and hands `admin` its arguments.

mod acls;
mod reassign;
mod top;
mod transactions;
mod users;

mod table;

use std::collections::BTreeMap;

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, GroupId,
    IncrementalAlterConfigsRequest, ListGroupsRequest, ListOffsetsRequest, MetadataRequest,
    MetadataResponse, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::{json, Value};

use sluice_client::admin_api::{
    self, BrokerEntry, Done, LeaderTransfer, LeaderTransferred, Status, VotersChange,
};
use sluice_client::{http, KafkaClient};
use table::print_table;

/// Flags of `sluice admin`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// A broker's Kafka listener.
    #[arg(long, env = "SLUICE_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// A node's HTTP listener (admin API).
    #[arg(long, env = "SLUICE_HTTP", default_value = "127.0.0.1:9644")]
    pub http: String,
    /// A Kafka client properties file for the Kafka listener (as Kafka tools'
    /// `--command-config`): `security.protocol`, `sasl.mechanism`, `sasl.jaas.config`,
    /// `ssl.truststore.location` (PEM).
    #[arg(long, env = "SLUICE_COMMAND_CONFIG")]
    pub command_config: Option<std::path::PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    command: AdminCmd,
}

#[derive(Debug, Subcommand)]
enum AdminCmd {
    /// Controller quorum: voters, learners, leader, term, log indexes.
    Status,
    /// Registered brokers and whether they are fenced.
    Brokers,
    /// Topics: list, describe, create, delete, add-partitions, alter-config.
    #[command(subcommand)]
    Topics(TopicsCmd),
    /// Consumer groups: list, describe (with lag).
    #[command(subcommand)]
    Groups(GroupsCmd),
    /// Transactions: list transactional ids, describe one.
    #[command(subcommand)]
    Transactions(transactions::TransactionsCmd),
    /// Partition reassignment: move a partition to new replicas, cancel, list moves.
    #[command(subcommand)]
    Reassign(reassign::ReassignCmd),
    /// Controller voters: add or remove a node (it must have joined as a learner first).
    #[command(subcommand)]
    Voters(VotersCmd),
    /// Live throughput per topic and request rates per API, from the node's metrics.
    Top(top::TopArgs),
    /// SCRAM users: list, add (or change a password), delete.
    #[command(subcommand)]
    Users(users::UsersCmd),
    /// ACLs: list, add, remove.
    #[command(subcommand)]
    Acls(acls::AclsCmd),
    /// Moves Raft (controller) leadership to another voter.
    TransferLeader {
        /// The voter to lead.
        to: u64,
    },
}

#[derive(Debug, Subcommand)]
enum TopicsCmd {
    /// All topics with partition counts.
    List,
    /// Partitions of a topic: leader, epoch, replicas, ISR, log start and end offsets.
    Describe { name: String },
    /// Creates a topic.
    Create {
        name: String,
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        #[arg(long, default_value_t = 1)]
        replication_factor: i16,
        /// KEY=VALUE (repeatable).
        #[arg(long = "config")]
        configs: Vec<String>,
    },
    /// Deletes a topic.
    Delete { name: String },
    /// Grows a topic to `--total` partitions.
    AddPartitions {
        name: String,
        #[arg(long)]
        total: i32,
    },
    /// Sets (`--set K=V`) or removes (`--delete K`) topic configs.
    AlterConfig {
        name: String,
        #[arg(long)]
        set: Vec<String>,
        #[arg(long)]
        delete: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum GroupsCmd {
    /// Groups known to the coordinators.
    List,
    /// Committed offsets, end offsets and lag per partition.
    Describe { group: String },
}

#[derive(Debug, Subcommand)]
enum VotersCmd {
    /// Makes a learner a voter.
    Add { id: u64 },
    /// Turns a voter back into a learner.
    Remove { id: u64 },
}

impl AdminArgs {
    /// A connection to `addr` with the security of `--command-config`.
    pub(crate) async fn kafka(&self, addr: &str) -> anyhow::Result<KafkaClient> {
        let security = match &self.command_config {
            Some(path) => sluice_client::ClientSecurity::from_file(path)?,
            None => sluice_client::ClientSecurity::default(),
        };
        KafkaClient::connect_with(addr, &security).await
    }
}

/// Runs one admin command.
pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let out = match &args.command {
        AdminCmd::Status => status(&args).await?,
        AdminCmd::Brokers => brokers(&args).await?,
        AdminCmd::Topics(cmd) => topics(&args, cmd).await?,
        AdminCmd::Groups(cmd) => groups(&args, cmd).await?,
        AdminCmd::Transactions(cmd) => transactions::run(&args, cmd).await?,
        AdminCmd::Reassign(cmd) => reassign::run(&args, cmd).await?,
        AdminCmd::Voters(cmd) => voters(&args, cmd).await?,
        AdminCmd::Users(cmd) => users::run(&args, cmd).await?,
        AdminCmd::Acls(cmd) => acls::run(&args, cmd).await?,
        AdminCmd::Top(top_args) => return top::run(&args, top_args).await,
        AdminCmd::TransferLeader { to } => {
            let body = LeaderTransfer { to: *to };
            let out: LeaderTransferred = http::post(&args.http, admin_api::LEADER, &body).await?;
            Output {
                tables: vec![(
                    vec!["CONTROLLER LEADER"],
                    vec![vec![out.leader.to_string()]],
                )],
                json: serde_json::to_value(out)?,
            }
        }
    };
    out.print(args.json)
}

/// What a command prints: JSON for scripts, tables for people.
struct Output {
    json: Value,
    tables: Vec<(Vec<&'static str>, Vec<Vec<String>>)>,
}

impl Output {
    fn print(self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string_pretty(&self.json)?);
        } else {
            for (header, rows) in self.tables {
                print_table(&header, &rows);
            }
        }
        Ok(())
    }
}

/// A table cell for an optional value.
fn cell<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

async fn status(args: &AdminArgs) -> anyhow::Result<Output> {
    let st: Status = http::get(&args.http, admin_api::STATUS).await?;
    let raft = &st.raft;
    let mut rows = Vec::new();
    for (role, members) in [("voter", &raft.voters), ("learner", &raft.learners)] {
        for (id, addr) in members {
            let role = if raft.leader == Some(*id) {
                format!("{role} (leader)")
            } else {
                role.to_string()
            };
            let replicated = raft.replication.get(id).copied().flatten();
            rows.push(vec![id.to_string(), role, addr.clone(), cell(replicated)]);
        }
    }
    let summary = vec![vec![
        st.cluster_id.clone(),
        cell(raft.leader),
        raft.term.to_string(),
        raft.last_log_index.to_string(),
        raft.applied_index.to_string(),
    ]];
    Ok(Output {
        tables: vec![
            (
                vec![
                    "CLUSTER",
                    "LEADER",
                    "TERM",
                    "LAST LOG INDEX",
                    "APPLIED INDEX",
                ],
                summary,
            ),
            (
                vec!["NODE", "ROLE", "CONTROLLER ADDRESS", "REPLICATED TO"],
                rows,
            ),
        ],
        json: serde_json::to_value(st)?,
    })
}

async fn brokers(args: &AdminArgs) -> anyhow::Result<Output> {
    let bs: Vec<BrokerEntry> = http::get(&args.http, admin_api::BROKERS).await?;
    let rows = bs
        .iter()
        .map(|b| {
            let state = if b.fenced { "fenced" } else { "live" };
            vec![
                b.id.to_string(),
                format!("{}:{}", b.host, b.port),
                cell(b.rack.as_ref()),
                state.into(),
            ]
        })
        .collect();
    Ok(Output {
        tables: vec![(vec!["ID", "ENDPOINT", "RACK", "STATE"], rows)],
        json: serde_json::to_value(bs)?,
    })
}

async fn metadata(
    client: &mut KafkaClient,
    topics: Option<&[&str]>,
) -> anyhow::Result<MetadataResponse> {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    // Looking a topic up must never create it.
    let req = MetadataRequest::default()
        .with_allow_auto_topic_creation(false)
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                .collect()
        }));
    client.send(&req, 12).await
}

fn topic_name(t: &str) -> TopicName {
    TopicName(StrBytes::from_string(t.to_string()))
}

fn check(code: i16, message: Option<&StrBytes>, what: &str) -> anyhow::Result<()> {
    if code == 0 {
        return Ok(());
    }
    let name = kafka_protocol::error::ResponseError::try_from_code(code)
        .map(|e| format!("{e:?}"))
        .unwrap_or_else(|| format!("error {code}"));
    match message {
        Some(m) if !m.is_empty() => bail!("{what}: {name}: {m}"),
        _ => bail!("{what}: {name}"),
    }
}

fn key_value(pair: &str) -> anyhow::Result<(String, String)> {
    pair.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .ok_or_else(|| anyhow!("expected KEY=VALUE, got '{pair}'"))
}

/// End offsets (high watermarks) of partitions, asked of each partition's leader.
async fn end_offsets(
    via: &KafkaClient,
    meta: &MetadataResponse,
    wanted: &[(String, i32)],
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let brokers: BTreeMap<i32, String> = meta
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
        .collect();
    let mut by_leader: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
    for t in &meta.topics {
        let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
        for p in &t.partitions {
            if wanted.contains(&(name.clone(), p.partition_index)) && p.leader_id.0 >= 0 {
                by_leader
                    .entry(p.leader_id.0)
                    .or_default()
                    .push((name.clone(), p.partition_index));
            }
        }
    }
    let mut out = BTreeMap::new();
    for (leader, tps) in by_leader {
        let Some(addr) = brokers.get(&leader) else {
            continue;
        };
        let mut grouped: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (t, p) in tps {
            grouped.entry(t).or_default().push(p);
        }
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(
                grouped
                    .iter()
                    .map(|(t, ps)| {
                        ListOffsetsTopic::default()
                            .with_name(topic_name(t))
                            .with_partitions(
                                ps.iter()
                                    .map(|p| {
                                        ListOffsetsPartition::default()
                                            .with_partition_index(*p)
                                            .with_timestamp(-1)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let mut client = via.connect_like(addr).await?;
        let resp = client.send(&req, 7).await?;
        for t in resp.topics {
            for p in t.partitions {
                if p.error_code == 0 {
                    out.insert((t.name.0.to_string(), p.partition_index), p.offset);
                }
            }
        }
    }
    Ok(out)
}

async fn topics(args: &AdminArgs, cmd: &TopicsCmd) -> anyhow::Result<Output> {
    let mut client = args.kafka(&args.bootstrap).await?;
    let done = |what: String| Output {
        tables: vec![(vec!["RESULT"], vec![vec![what.clone()]])],
        json: json!({"ok": true, "result": what}),
    };
    match cmd {
        TopicsCmd::List => {
            let meta = metadata(&mut client, None).await?;
            let mut list: Vec<(String, usize)> = meta
                .topics
                .iter()
                .map(|t| {
                    (
                        t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                        t.partitions.len(),
                    )
                })
                .collect();
            list.sort();
            Ok(Output {
                tables: vec![(
                    vec!["TOPIC", "PARTITIONS"],
                    list.iter()
                        .map(|(n, c)| vec![n.clone(), c.to_string()])
                        .collect(),
                )],
                json: json!(list
                    .iter()
                    .map(|(n, c)| json!({"name": n, "partitions": c}))
                    .collect::<Vec<_>>()),
            })
        }
        TopicsCmd::Describe { name } => {
            let meta = metadata(&mut client, Some(&[name.as_str()])).await?;
            let t = meta
                .topics
                .first()
                .ok_or_else(|| anyhow!("no such topic"))?;
            check(t.error_code, None, name)?;
            let wanted: Vec<(String, i32)> = t
                .partitions
                .iter()
                .map(|p| (name.clone(), p.partition_index))
                .collect();
            let ends = end_offsets(&client, &meta, &wanted).await?;
            let mut rows = Vec::new();
            let mut parts = Vec::new();
            for p in &t.partitions {
                let ids = |v: &[BrokerId]| {
                    v.iter()
                        .map(|b| b.0.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                };
                let end = ends.get(&(name.clone(), p.partition_index)).copied();
                rows.push(vec![
                    p.partition_index.to_string(),
                    p.leader_id.0.to_string(),
                    p.leader_epoch.to_string(),
                    ids(&p.replica_nodes),
                    ids(&p.isr_nodes),
                    end.map(|e| e.to_string()).unwrap_or_else(|| "-".into()),
                ]);
                parts.push(json!({
                    "partition": p.partition_index, "leader": p.leader_id.0,
                    "leader_epoch": p.leader_epoch,
                    "replicas": p.replica_nodes.iter().map(|b| b.0).collect::<Vec<_>>(),
                    "isr": p.isr_nodes.iter().map(|b| b.0).collect::<Vec<_>>(),
                    "end_offset": end,
                }));
            }
            // The backlog: every group's lag on this topic.
            let mut lag_rows = Vec::new();
            let mut lag_json = Vec::new();
            for group in all_groups(&client, &meta).await? {
                for (t, p, c) in committed_offsets(&mut client, &group).await? {
                    if t != *name {
                        continue;
                    }
                    let lag = ends.get(&(t, p)).map(|e| (e - c).max(0));
                    let shown = lag.map(|l| l.to_string()).unwrap_or_else(|| "-".into());
                    lag_rows.push(vec![group.clone(), p.to_string(), c.to_string(), shown]);
                    lag_json
                        .push(json!({"group": group, "partition": p, "committed": c, "lag": lag}));
                }
            }
            Ok(Output {
                tables: vec![
                    (
                        vec![
                            "PARTITION",
                            "LEADER",
                            "EPOCH",
                            "REPLICAS",
                            "ISR",
                            "END OFFSET",
                        ],
                        rows,
                    ),
                    (vec!["GROUP", "PARTITION", "COMMITTED", "LAG"], lag_rows),
                ],
                json: json!({
                    "name": name, "id": t.topic_id.to_string(), "partitions": parts,
                    "group_lag": lag_json,
                }),
            })
        }
        TopicsCmd::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            let configs = configs
                .iter()
                .map(|c| {
                    key_value(c).map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k))
                            .with_value(Some(StrBytes::from_string(v)))
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let req = CreateTopicsRequest::default()
                .with_timeout_ms(30_000)
                .with_topics(vec![CreatableTopic::default()
                    .with_name(topic_name(name))
                    .with_num_partitions(*partitions)
                    .with_replication_factor(*replication_factor)
                    .with_configs(configs)]);
            let resp = client.send(&req, 7).await?;
            for t in &resp.topics {
                check(t.error_code, t.error_message.as_ref(), name)?;
            }
            Ok(done(format!("created topic {name}")))
        }
        TopicsCmd::Delete { name } => {
            let req = DeleteTopicsRequest::default()
                .with_timeout_ms(30_000)
                .with_topic_names(vec![topic_name(name)]);
            let resp = client.send(&req, 5).await?;
            for t in &resp.responses {
                check(t.error_code, t.error_message.as_ref(), name)?;
            }
            Ok(done(format!("deleted topic {name}")))
        }
        TopicsCmd::AddPartitions { name, total } => {
            let req = CreatePartitionsRequest::default()
                .with_timeout_ms(30_000)
                .with_topics(vec![CreatePartitionsTopic::default()
                    .with_name(topic_name(name))
                    .with_count(*total)
                    .with_assignments(None)]);
            let resp = client.send(&req, 3).await?;
            for r in &resp.results {
                check(r.error_code, r.error_message.as_ref(), name)?;
            }
            Ok(done(format!("{name} now has {total} partitions")))
        }
        TopicsCmd::AlterConfig { name, set, delete } => {
            let mut configs = Vec::new();
            for c in set {
                let (k, v) = key_value(c)?;
                configs.push(
                    AlterableConfig::default()
                        .with_name(StrBytes::from_string(k))
                        .with_config_operation(0)
                        .with_value(Some(StrBytes::from_string(v))),
                );
            }
            for k in delete {
                configs.push(
                    AlterableConfig::default()
                        .with_name(StrBytes::from_string(k.clone()))
                        .with_config_operation(1),
                );
            }
            let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(2) // topic
                    .with_resource_name(StrBytes::from_string(name.clone()))
                    .with_configs(configs),
            ]);
            let resp = client.send(&req, 1).await?;
            for r in &resp.responses {
                check(r.error_code, r.error_message.as_ref(), name)?;
            }
            Ok(done(format!("altered configs of {name}")))
        }
    }
}

async fn groups(args: &AdminArgs, cmd: &GroupsCmd) -> anyhow::Result<Output> {
    let mut client = args.kafka(&args.bootstrap).await?;
    match cmd {
        GroupsCmd::List => {
            let resp = client.send(&ListGroupsRequest::default(), 4).await?;
            check(resp.error_code, None, "list groups")?;
            let mut rows: Vec<Vec<String>> = resp
                .groups
                .iter()
                .map(|g| {
                    vec![
                        g.group_id.to_string(),
                        g.protocol_type.to_string(),
                        g.group_state.to_string(),
                    ]
                })
                .collect();
            rows.sort();
            let json = json!(rows
                .iter()
                .map(|r| json!({"group": r[0], "protocol_type": r[1], "state": r[2]}))
                .collect::<Vec<_>>());
            Ok(Output {
                tables: vec![(vec!["GROUP", "PROTOCOL TYPE", "STATE"], rows)],
                json,
            })
        }
        GroupsCmd::Describe { group } => {
            let committed = committed_offsets(&mut client, group).await?;
            let names: Vec<&str> = committed.iter().map(|(t, _, _)| t.as_str()).collect();
            let meta = metadata(&mut client, Some(&names)).await?;
            let wanted: Vec<(String, i32)> =
                committed.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
            let ends = end_offsets(&client, &meta, &wanted).await?;
            let mut rows = Vec::new();
            let mut json_rows = Vec::new();
            for (t, p, c) in &committed {
                let end = ends.get(&(t.clone(), *p)).copied();
                let lag = end.map(|e| (e - c).max(0));
                rows.push(vec![
                    t.clone(),
                    p.to_string(),
                    c.to_string(),
                    end.map(|e| e.to_string()).unwrap_or_else(|| "-".into()),
                    lag.map(|l| l.to_string()).unwrap_or_else(|| "-".into()),
                ]);
                json_rows.push(json!({"topic": t, "partition": p, "committed": c, "end_offset": end, "lag": lag}));
            }
            Ok(Output {
                tables: vec![(
                    vec!["TOPIC", "PARTITION", "COMMITTED", "END OFFSET", "LAG"],
                    rows,
                )],
                json: json!({"group": group, "partitions": json_rows}),
            })
        }
    }
}

/// A group's committed offsets, from its coordinator: (topic, partition, offset).
async fn committed_offsets(
    client: &mut KafkaClient,
    group: &str,
) -> anyhow::Result<Vec<(String, i32, i64)>> {
    let coordinator = coordinator_of(client, group, GROUP_KEY).await?;
    let mut coord = client.connect_like(&coordinator).await?;
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_topics(None::<Vec<OffsetFetchRequestTopic>>);
    let resp = coord.send(&req, 7).await?;
    check(resp.error_code, None, group)?;
    Ok(resp
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index, p.committed_offset))
        })
        .filter(|(_, _, o)| *o >= 0)
        .collect())
}

/// Every group id, asked of every broker (each lists the groups it coordinates).
async fn all_groups(via: &KafkaClient, meta: &MetadataResponse) -> anyhow::Result<Vec<String>> {
    let mut groups = Vec::new();
    for b in &meta.brokers {
        let mut c = via.connect_like(&format!("{}:{}", b.host, b.port)).await?;
        let resp = c.send(&ListGroupsRequest::default(), 4).await?;
        groups.extend(resp.groups.iter().map(|g| g.group_id.to_string()));
    }
    groups.sort();
    groups.dedup();
    Ok(groups)
}

/// FindCoordinator's key types.
const GROUP_KEY: i8 = 0;
const TRANSACTION_KEY: i8 = 1;

/// The coordinator of a group or transactional id (`key_type`), as host:port.
async fn coordinator_of(
    client: &mut KafkaClient,
    key: &str,
    key_type: i8,
) -> anyhow::Result<String> {
    use kafka_protocol::messages::FindCoordinatorRequest;
    let req = FindCoordinatorRequest::default()
        .with_key_type(key_type)
        .with_coordinator_keys(vec![StrBytes::from_string(key.to_string())]);
    let resp = client.send(&req, 4).await?;
    let c = resp
        .coordinators
        .first()
        .ok_or_else(|| anyhow!("no coordinator answer"))?;
    check(c.error_code, c.error_message.as_ref(), "find coordinator")?;
    Ok(format!("{}:{}", c.host, c.port))
}

async fn voters(args: &AdminArgs, cmd: &VotersCmd) -> anyhow::Result<Output> {
    let st: Status = http::get(&args.http, admin_api::STATUS).await?;
    let mut voters: Vec<u64> = st.raft.voters.keys().copied().collect();
    match cmd {
        VotersCmd::Add { id } => {
            if !st.raft.learners.contains_key(id) {
                bail!("node {id} is not a learner: start it with --roles broker first");
            }
            voters.push(*id);
        }
        VotersCmd::Remove { id } => {
            if !voters.contains(id) {
                bail!("node {id} is not a voter");
            }
            voters.retain(|v| v != id);
        }
    }
    let body = VotersChange {
        voters: voters.clone(),
    };
    let _: Done = http::post(&args.http, admin_api::VOTERS, &body).await?;
    Ok(Output {
        tables: vec![(vec!["VOTERS"], vec![vec![format!("{voters:?}")]])],
        json: json!({"voters": voters}),
    })
}
