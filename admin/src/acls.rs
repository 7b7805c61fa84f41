//! `sluice admin acls`: list, add and remove ACLs (DescribeAcls, CreateAcls, DeleteAcls),
//! with `kafka-acls`' vocabulary: a resource (`--topic`, `--group`, `--transactional-id`,
//! `--cluster`), literal or `--prefixed`, a principal, a host, an operation, allow or
//! `--deny`.

use clap::{Args, Subcommand};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;
use serde_json::json;

use super::{check, AdminArgs, Output};

/// `acls` subcommands.
#[derive(Debug, Subcommand)]
pub enum AclsCmd {
    /// ACLs matching the flags given (all without any).
    List(AclSpec),
    /// Adds one ACL.
    Add(AclSpec),
    /// Removes every ACL matching the flags given.
    Remove(AclSpec),
}

/// One ACL, or a filter over them (unset flags match anything).
#[derive(Debug, Args)]
pub struct AclSpec {
    #[arg(long, conflicts_with_all = ["group", "transactional_id", "cluster"])]
    topic: Option<String>,
    #[arg(long, conflicts_with_all = ["transactional_id", "cluster"])]
    group: Option<String>,
    #[arg(long, conflicts_with = "cluster")]
    transactional_id: Option<String>,
    #[arg(long)]
    cluster: bool,
    /// The name is a prefix (PREFIXED), not a name or `*` (LITERAL).
    #[arg(long)]
    prefixed: bool,
    /// `User:alice`, or `User:*`.
    #[arg(long)]
    principal: Option<String>,
    /// A client address, or `*`.
    #[arg(long)]
    host: Option<String>,
    /// READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS,
    /// ALTER_CONFIGS, IDEMPOTENT_WRITE or ALL.
    #[arg(long)]
    operation: Option<String>,
    /// DENY instead of ALLOW.
    #[arg(long)]
    deny: bool,
}

const OPERATIONS: [&str; 11] = [
    "ALL",
    "READ",
    "WRITE",
    "CREATE",
    "DELETE",
    "ALTER",
    "DESCRIBE",
    "CLUSTER_ACTION",
    "DESCRIBE_CONFIGS",
    "ALTER_CONFIGS",
    "IDEMPOTENT_WRITE",
];
const RESOURCE_TYPES: [&str; 6] = [
    "TOPIC",
    "GROUP",
    "CLUSTER",
    "TRANSACTIONAL_ID",
    "DELEGATION_TOKEN",
    "USER",
];
/// Kafka's ANY, LITERAL and PREFIXED codes (filters and bindings).
const ANY: i8 = 1;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;

fn operation_code(name: &str) -> anyhow::Result<i8> {
    let upper = name.to_ascii_uppercase().replace('-', "_");
    OPERATIONS
        .iter()
        .position(|o| *o == upper)
        .map(|i| i as i8 + 2)
        .ok_or_else(|| anyhow::anyhow!("unknown operation {name}"))
}

fn name_of(table: &[&'static str], code: i8) -> &'static str {
    usize::try_from(code - 2)
        .ok()
        .and_then(|i| table.get(i))
        .copied()
        .unwrap_or("UNKNOWN")
}

impl AclSpec {
    /// (resource type, name), if a resource is named.
    fn resource(&self) -> Option<(i8, String)> {
        match (
            &self.topic,
            &self.group,
            &self.transactional_id,
            self.cluster,
        ) {
            (Some(t), ..) => Some((2, t.clone())),
            (_, Some(g), ..) => Some((3, g.clone())),
            (_, _, Some(t), _) => Some((5, t.clone())),
            (.., true) => Some((4, "kafka-cluster".into())),
            _ => None,
        }
    }

    fn pattern(&self) -> i8 {
        if self.prefixed {
            PREFIXED
        } else {
            LITERAL
        }
    }

    fn permission(&self) -> i8 {
        if self.deny {
            2
        } else {
            3
        }
    }
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Runs one `acls` command.
pub async fn run(args: &AdminArgs, cmd: &AclsCmd) -> anyhow::Result<Output> {
    let mut client = args.kafka(&args.bootstrap).await?;
    let done = || Output {
        tables: vec![(vec!["DONE"], vec![vec!["ok".into()]])],
        json: json!({"done": true}),
    };
    match cmd {
        AclsCmd::List(spec) => {
            let (ty, name) = spec.resource().map_or((ANY, None), |(t, n)| (t, Some(n)));
            let req = DescribeAclsRequest::default()
                .with_resource_type_filter(ty)
                .with_resource_name_filter(name.as_deref().map(text))
                .with_pattern_type_filter(if spec.prefixed { PREFIXED } else { ANY })
                .with_principal_filter(spec.principal.as_deref().map(text))
                .with_host_filter(spec.host.as_deref().map(text))
                .with_operation(spec.operation.as_deref().map_or(Ok(ANY), operation_code)?)
                .with_permission_type(ANY);
            let resp = client.send(&req, 3).await?;
            check(resp.error_code, resp.error_message.as_ref(), "acls")?;
            let mut rows = Vec::new();
            for r in &resp.resources {
                for a in &r.acls {
                    rows.push(vec![
                        name_of(&RESOURCE_TYPES, r.resource_type).to_string(),
                        r.resource_name.to_string(),
                        if r.pattern_type == PREFIXED {
                            "PREFIXED"
                        } else {
                            "LITERAL"
                        }
                        .into(),
                        a.principal.to_string(),
                        a.host.to_string(),
                        name_of(&OPERATIONS, a.operation).to_string(),
                        if a.permission_type == 2 {
                            "DENY"
                        } else {
                            "ALLOW"
                        }
                        .into(),
                    ]);
                }
            }
            let header = vec![
                "RESOURCE TYPE",
                "NAME",
                "PATTERN",
                "PRINCIPAL",
                "HOST",
                "OPERATION",
                "PERMISSION",
            ];
            let as_json: Vec<_> = rows
                .iter()
                .map(|r| json!({"resource_type": r[0], "name": r[1], "pattern": r[2], "principal": r[3], "host": r[4], "operation": r[5], "permission": r[6]}))
                .collect();
            Ok(Output {
                tables: vec![(header, rows)],
                json: json!(as_json),
            })
        }
        AclsCmd::Add(spec) => {
            let (ty, name) = spec.resource().ok_or_else(|| {
                anyhow::anyhow!(
                    "name a resource: --topic, --group, --transactional-id or --cluster"
                )
            })?;
            let principal = spec
                .principal
                .as_deref()
                .ok_or_else(|| anyhow::anyhow!("--principal is required"))?;
            let operation = spec
                .operation
                .as_deref()
                .ok_or_else(|| anyhow::anyhow!("--operation is required"))?;
            let creation = AclCreation::default()
                .with_resource_type(ty)
                .with_resource_name(text(&name))
                .with_resource_pattern_type(spec.pattern())
                .with_principal(text(principal))
                .with_host(text(spec.host.as_deref().unwrap_or("*")))
                .with_operation(operation_code(operation)?)
                .with_permission_type(spec.permission());
            let resp = client
                .send(
                    &CreateAclsRequest::default().with_creations(vec![creation]),
                    3,
                )
                .await?;
            for r in &resp.results {
                check(r.error_code, r.error_message.as_ref(), "add acl")?;
            }
            Ok(done())
        }
        AclsCmd::Remove(spec) => {
            let (ty, name) = spec.resource().map_or((ANY, None), |(t, n)| (t, Some(n)));
            let filter = DeleteAclsFilter::default()
                .with_resource_type_filter(ty)
                .with_resource_name_filter(name.as_deref().map(text))
                .with_pattern_type_filter(if spec.resource().is_some() {
                    spec.pattern()
                } else {
                    ANY
                })
                .with_principal_filter(spec.principal.as_deref().map(text))
                .with_host_filter(spec.host.as_deref().map(text))
                .with_operation(spec.operation.as_deref().map_or(Ok(ANY), operation_code)?)
                .with_permission_type(ANY);
            let resp = client
                .send(&DeleteAclsRequest::default().with_filters(vec![filter]), 3)
                .await?;
            let mut removed = 0;
            for r in &resp.filter_results {
                check(r.error_code, r.error_message.as_ref(), "remove acls")?;
                removed += r.matching_acls.len();
            }
            Ok(Output {
                tables: vec![(vec!["REMOVED"], vec![vec![removed.to_string()]])],
                json: json!({"removed": removed}),
            })
        }
    }
}
