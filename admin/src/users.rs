//! `sluice admin users`: SCRAM users (DescribeUserScramCredentials,
//! AlterUserScramCredentials). The password is salted and hashed here, as Kafka's admin
//! client does; only the result reaches the broker.

use clap::Subcommand;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::json;
use sluice_client::security::{random_bytes, salted_password};

use super::{check, AdminArgs, Output};

/// `users` subcommands.
#[derive(Debug, Subcommand)]
pub enum UsersCmd {
    /// SCRAM users and their mechanisms.
    List,
    /// Sets a user's SCRAM credential (a new user, or a new password).
    Add {
        name: String,
        #[arg(long)]
        password: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512.
        #[arg(long, default_value = "SCRAM-SHA-512")]
        mechanism: String,
        #[arg(long, default_value_t = 4096)]
        iterations: i32,
    },
    /// Deletes a user's credential for one mechanism.
    Delete {
        name: String,
        #[arg(long, default_value = "SCRAM-SHA-512")]
        mechanism: String,
    },
}

/// Kafka's ids of the SCRAM mechanisms.
fn mechanism_id(name: &str) -> anyhow::Result<i8> {
    match name.to_ascii_uppercase().as_str() {
        "SCRAM-SHA-256" => Ok(1),
        "SCRAM-SHA-512" => Ok(2),
        other => anyhow::bail!("{other}: SCRAM-SHA-256 or SCRAM-SHA-512"),
    }
}

fn mechanism_name(id: i8) -> &'static str {
    match id {
        1 => "SCRAM-SHA-256",
        2 => "SCRAM-SHA-512",
        _ => "UNKNOWN",
    }
}

/// Runs one `users` command.
pub async fn run(args: &AdminArgs, cmd: &UsersCmd) -> anyhow::Result<Output> {
    let mut client = args.kafka(&args.bootstrap).await?;
    let alter = |deletions, upsertions| {
        AlterUserScramCredentialsRequest::default()
            .with_deletions(deletions)
            .with_upsertions(upsertions)
    };
    let request = match cmd {
        UsersCmd::List => {
            let resp = client
                .send(
                    &DescribeUserScramCredentialsRequest::default()
                        .with_users(None::<Vec<UserName>>),
                    0,
                )
                .await?;
            check(resp.error_code, resp.error_message.as_ref(), "users")?;
            let mut rows = Vec::new();
            let mut users = Vec::new();
            for u in &resp.results {
                check(u.error_code, u.error_message.as_ref(), u.user.as_str())?;
                for c in &u.credential_infos {
                    let mechanism = mechanism_name(c.mechanism);
                    rows.push(vec![
                        u.user.to_string(),
                        mechanism.into(),
                        c.iterations.to_string(),
                    ]);
                    users.push(json!({"user": u.user.as_str(), "mechanism": mechanism, "iterations": c.iterations}));
                }
            }
            return Ok(Output {
                tables: vec![(vec!["USER", "MECHANISM", "ITERATIONS"], rows)],
                json: json!(users),
            });
        }
        UsersCmd::Add {
            name,
            password,
            mechanism,
            iterations,
        } => {
            let salt = random_bytes::<32>()?;
            let rounds = u32::try_from(*iterations)?;
            let salted = salted_password(&mechanism.to_ascii_uppercase(), password, &salt, rounds)?;
            alter(
                Vec::new(),
                vec![ScramCredentialUpsertion::default()
                    .with_name(StrBytes::from_string(name.clone()))
                    .with_mechanism(mechanism_id(mechanism)?)
                    .with_iterations(*iterations)
                    .with_salt(salt.to_vec().into())
                    .with_salted_password(salted.into())],
            )
        }
        UsersCmd::Delete { name, mechanism } => alter(
            vec![ScramCredentialDeletion::default()
                .with_name(StrBytes::from_string(name.clone()))
                .with_mechanism(mechanism_id(mechanism)?)],
            Vec::new(),
        ),
    };
    let resp = client.send(&request, 0).await?;
    for r in &resp.results {
        check(r.error_code, r.error_message.as_ref(), r.user.as_str())?;
    }
    Ok(Output {
        tables: vec![(vec!["DONE"], vec![vec!["ok".into()]])],
        json: json!({"done": true}),
    })
}
