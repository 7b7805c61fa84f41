//! Authorization with Kafka's names and semantics (`authorizer.class.name=
//! org.apache.kafka.metadata.authorizer.StandardAuthorizer`, `super.users`,
//! `allow.everyone.if.no.acl.found`): `kafka-acls` adds, lists and removes literal, prefixed
//! and wildcard ACLs that outlive a crash and restart; a principal without ACLs gets the right
//! `*_AUTHORIZATION_FAILED` from every API family, both from Kafka's own tools (the Java
//! exceptions they print) and on raw requests (the exact error codes); prefixed ALLOWs, DENYs
//! that override them and host matching decide what alice may produce and consume; topics
//! alice may not DESCRIBE are left out of her metadata; denials are counted.
//!
//! Every node has a PLAINTEXT listener (inter-broker, principal `User:ANONYMOUS`, no rights)
//! and a SASL_PLAINTEXT one with PLAIN and SCRAM-SHA-256. Bootstrap: the listener's JAAS
//! config has one PLAIN user, `admin`, who is the super user (`super.users=User:admin`) and
//! creates the SCRAM users `admin`, `alice` and `bob` with `kafka-configs`; from then on every
//! client logs in with SCRAM-SHA-256 (the super user's principal is `User:admin` whichever
//! mechanism it logs in with). So no test needs ANONYMOUS to be a super user, and one checks
//! that the PLAINTEXT listener gives nothing away.
//!
//! Raw requests go through `Conn`, which logs in with SCRAM-SHA-256 itself (RFC 5802/7677,
//! with `ring`), so an error code can be checked per API without a client's retries and
//! exception mapping in between.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialDeletion;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    alter_client_quotas_request, alter_configs_request, elect_leaders_request,
    incremental_alter_configs_request, AddOffsetsToTxnRequest, AddPartitionsToTxnRequest,
    AlterClientQuotasRequest, AlterConfigsRequest, AlterPartitionReassignmentsRequest,
    AlterUserScramCredentialsRequest, BrokerId, CreateAclsRequest, CreatePartitionsRequest,
    CreateTopicsRequest, DeleteAclsRequest, DeleteGroupsRequest, DeleteRecordsRequest,
    DeleteTopicsRequest, DescribeAclsRequest, DescribeClientQuotasRequest, DescribeClusterRequest,
    DescribeConfigsRequest, DescribeGroupsRequest, DescribeLogDirsRequest,
    DescribeUserScramCredentialsRequest, ElectLeadersRequest, EndTxnRequest, FetchRequest,
    FindCoordinatorRequest, GroupId, IncrementalAlterConfigsRequest, InitProducerIdRequest,
    JoinGroupRequest, ListGroupsRequest, ListOffsetsRequest, ListPartitionReassignmentsRequest,
    MetadataRequest, OffsetCommitRequest, OffsetFetchRequest, ProducerId, RequestHeader,
    ResponseHeader, SaslAuthenticateRequest, SaslHandshakeRequest, TopicName, TransactionalId,
    TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use sluice_compat_tests::{
    launcher, produce_frame, read_produce_response, run, run_ok, scrape_metrics, wait_until, Node,
};

/// A client command's time limit.
const LIMIT: Duration = Duration::from_secs(120);
/// How long an ACL change may take to reach the broker's authorizer.
const PROPAGATION: Duration = Duration::from_secs(30);

const NONE: i16 = 0;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const GROUP_AUTHORIZATION_FAILED: i16 = 30;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;

/// The PLAIN user list of the SASL_PLAINTEXT listener: the super user alone, for bootstrap.
const ADMIN_PLAIN_JAAS: &str = "listener.name.sasl_plaintext.plain.sasl.jaas.config=\
    org.apache.kafka.common.security.plain.PlainLoginModule required \
    user_admin=\"admin-secret\";";

fn password(user: &str) -> String {
    format!("{user}-secret")
}

// --- A node with the authorizer on, and its users ---------------------------------------

/// A node with StandardAuthorizer, `super.users=User:admin` and the SCRAM users admin,
/// alice and bob; plus the Java clients' property files.
struct Secured {
    node: Node,
    dir: tempfile::TempDir,
}

impl Secured {
    /// Starts the node (with more `serve` flags `extra`) and creates the users.
    fn start(extra: &[&str]) -> Self {
        let mut flags = vec![
            "--config",
            "listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
            "--config",
            "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256",
            "--config",
            ADMIN_PLAIN_JAAS,
            "--config",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "--config",
            "super.users=User:admin",
        ];
        flags.extend_from_slice(extra);
        let node = Node::start_with(&flags);
        node.listener("SASL_PLAINTEXT");
        let dir = tempfile::tempdir().unwrap();
        let common = "security.protocol=SASL_PLAINTEXT\n\
                      request.timeout.ms=15000\ndefault.api.timeout.ms=30000\n";
        std::fs::write(
            dir.path().join("admin-plain.properties"),
            format!(
                "{common}sasl.mechanism=PLAIN\nsasl.jaas.config=\
                 org.apache.kafka.common.security.plain.PlainLoginModule required \
                 username=\"admin\" password=\"admin-secret\";\n"
            ),
        )
        .unwrap();
        for user in ["admin", "alice", "bob"] {
            std::fs::write(
                dir.path().join(format!("{user}.properties")),
                format!(
                    "{common}sasl.mechanism=SCRAM-SHA-256\nsasl.jaas.config=\
                     org.apache.kafka.common.security.scram.ScramLoginModule required \
                     username=\"{user}\" password=\"{}\";\n",
                    password(user)
                ),
            )
            .unwrap();
        }
        let secured = Secured { node, dir };
        // One kafka-configs per user (it alters one entity per run), at once.
        std::thread::scope(|scope| {
            for user in ["admin", "alice", "bob"] {
                let mut cmd = secured.tool(
                    "kafka-configs",
                    "admin-plain",
                    &format!(
                        "--alter --add-config SCRAM-SHA-256=[iterations=4096,password={}] \
                         --entity-type users --entity-name {user}",
                        password(user)
                    ),
                );
                scope.spawn(move || run_ok(&mut cmd, LIMIT, None));
            }
        });
        for user in ["admin", "alice", "bob"] {
            // The credentials reach the authenticator through the metadata log.
            wait_until(&format!("{user} logs in"), PROPAGATION, || {
                Conn::login(secured.addr(), user, &password(user)).is_ok()
            });
        }
        secured
    }

    /// The SASL_PLAINTEXT listener.
    fn addr(&self) -> &str {
        self.node.listener("SASL_PLAINTEXT")
    }

    /// A raw connection logged in as `user` (SCRAM-SHA-256).
    fn conn(&self, user: &str) -> Conn {
        Conn::login(self.addr(), user, &password(user))
            .unwrap_or_else(|e| panic!("{user} cannot log in: {e}"))
    }

    /// One of Kafka's tools (a `compat-tests/bin` launcher) connecting as `user` (a
    /// properties file: `admin`, `alice`, `bob` or `admin-plain`), with `args`
    /// (whitespace-separated).
    fn tool(&self, name: &str, user: &str, args: &str) -> Command {
        let mut cmd = Command::new(launcher(name));
        cmd.args(["--bootstrap-server", self.addr(), "--command-config"])
            .arg(self.props(user))
            .args(args.split_whitespace());
        cmd
    }

    fn props(&self, user: &str) -> PathBuf {
        self.dir.path().join(format!("{user}.properties"))
    }

    /// `kafka-acls --add ARGS` (whitespace-separated) as admin; must succeed.
    fn add_acls(&self, args: &str) {
        run_ok(
            &mut self.tool("kafka-acls", "admin", &format!("--add {args}")),
            LIMIT,
            None,
        );
    }

    /// `kafka-acls --remove --force ARGS` as admin; must succeed.
    fn remove_acls(&self, args: &str) {
        run_ok(
            &mut self.tool("kafka-acls", "admin", &format!("--remove --force {args}")),
            LIMIT,
            None,
        );
    }

    /// The bindings `kafka-acls --list ARGS` (as admin) prints; see [`parse_acl_listing`].
    fn list_acls(&self, args: &str) -> BTreeSet<String> {
        let out = run_ok(
            &mut self.tool("kafka-acls", "admin", &format!("--list {args}")),
            LIMIT,
            None,
        );
        parse_acl_listing(&out)
    }

    /// Runs a tool that must fail with `exception` somewhere in its output (Kafka's console
    /// producer and consumer and `kafka-consumer-groups` report it but exit 0, so the exit
    /// status is not checked).
    fn assert_denied(&self, what: &str, mut cmd: Command, stdin: Option<&[u8]>, exception: &str) {
        let out = run(&mut cmd, LIMIT, stdin);
        let text = output_text(&out);
        assert!(
            text.contains(exception),
            "{what}: expected {exception} ({}):\n{text}",
            out.status
        );
    }

    /// Kafka's console producer (idempotent, acks=all) as `user`: `lines` into `topic`;
    /// returns its output.
    fn console_produce(&self, user: &str, topic: &str, lines: &[String]) -> Output {
        let mut cmd = self.tool(
            "kafka-console-producer",
            user,
            &format!("--topic {topic} --command-property acks=all"),
        );
        run(&mut cmd, LIMIT, Some((lines.join("\n") + "\n").as_bytes()))
    }
}

/// A tool's stdout and stderr, for matching and failure messages.
fn output_text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

/// The ACL bindings of a `kafka-acls --list` output, one string each:
/// `RESOURCE_TYPE PATTERN_TYPE name principal host OPERATION PERMISSION`. Kafka 4.4 prints
/// per resource a line "Current ACLs for resource `ResourcePattern(resourceType=TOPIC,
/// name=orders, patternType=LITERAL)`:", then a line per ACL, "\t(principal=User:alice,
/// host=*, operation=READ, permissionType=ALLOW)", then an empty line (`--add` prints the
/// same under "Adding ACLs for resource"; those are skipped).
fn parse_acl_listing(text: &str) -> BTreeSet<String> {
    fn field<'a>(s: &'a str, key: &str) -> &'a str {
        let rest = s
            .split_once(&format!("{key}="))
            .unwrap_or_else(|| panic!("no {key}= in {s:?}"))
            .1;
        rest.split([',', ')']).next().unwrap_or("").trim()
    }
    let mut bindings = BTreeSet::new();
    let mut resource: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Current ACLs for resource `ResourcePattern(") {
            resource = Some(format!(
                "{} {} {}",
                field(rest, "resourceType"),
                field(rest, "patternType"),
                field(rest, "name")
            ));
        } else if line.starts_with("Adding ACLs") || line.trim().is_empty() {
            resource = None;
        } else if let (Some(r), Some(acl)) = (&resource, line.trim().strip_prefix("(principal=")) {
            let acl = format!("principal={acl}");
            bindings.insert(format!(
                "{r} {} {} {} {}",
                field(&acl, "principal"),
                field(&acl, "host"),
                field(&acl, "operation"),
                field(&acl, "permissionType")
            ));
        }
    }
    bindings
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn lines(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Sum of the `sluice_authorization_denied_total` samples for `resource_type` and
/// `operation` (label values compared case-insensitively: Kafka spells them TOPIC, WRITE).
fn denied_total(node: &Node, resource_type: &str, operation: &str) -> f64 {
    let (rt, op) = (
        format!("resource_type=\"{}\"", resource_type.to_ascii_lowercase()),
        format!("operation=\"{}\"", operation.to_ascii_lowercase()),
    );
    scrape_metrics(node)
        .lines()
        .filter(|l| l.starts_with("sluice_authorization_denied_total{"))
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains(&rt) && l.contains(&op)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

// --- Raw requests, logged in with SCRAM-SHA-256 -----------------------------------------

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn topic_name(s: &str) -> TopicName {
    TopicName(sb(s))
}

fn group_id(s: &str) -> GroupId {
    GroupId(sb(s))
}

fn txn_id(s: &str) -> TransactionalId {
    TransactionalId(sb(s))
}

/// The first non-zero error code, or 0.
fn first_error(codes: impl IntoIterator<Item = i16>) -> i16 {
    codes.into_iter().find(|c| *c != 0).unwrap_or(0)
}

/// One connection to a listener, SASL-authenticated by [`Conn::login`].
struct Conn {
    s: TcpStream,
    correlation: i32,
}

impl Conn {
    fn open(addr: &str) -> Result<Conn, String> {
        let s = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        Ok(Conn { s, correlation: 0 })
    }

    /// Connects to `addr` and logs in as `user` with SCRAM-SHA-256 (RFC 5802 / 7677).
    fn login(addr: &str, user: &str, password: &str) -> Result<Conn, String> {
        use ring::{digest, hmac, pbkdf2, rand::SecureRandom};
        let mut c = Conn::open(addr)?;
        let handshake = c.try_ask(
            &SaslHandshakeRequest::default().with_mechanism(sb("SCRAM-SHA-256")),
            1,
        )?;
        if handshake.error_code != NONE {
            return Err(format!("SaslHandshake: error {}", handshake.error_code));
        }
        let mut nonce = [0u8; 18];
        ring::rand::SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| "no randomness")?;
        let client_nonce = B64.encode(nonce);
        let first_bare = format!("n={user},r={client_nonce}");
        let server_first = c.sasl(format!("n,,{first_bare}"))?;
        let attr = |key: &str| {
            server_first
                .split(',')
                .find_map(|f| f.strip_prefix(key))
                .map(str::to_string)
                .ok_or_else(|| format!("no {key} in {server_first:?}"))
        };
        let nonce = attr("r=")?;
        if !nonce.starts_with(&client_nonce) {
            return Err(format!("server nonce {nonce} does not extend ours"));
        }
        let salt = B64.decode(attr("s=")?).map_err(|e| e.to_string())?;
        let iterations: NonZeroU32 = attr("i=")?.parse().map_err(|_| "bad i=")?;
        let mut salted = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            &salt,
            password.as_bytes(),
            &mut salted,
        );
        let mac =
            |key: &[u8], data: &[u8]| hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data);
        let client_key = mac(&salted, b"Client Key");
        let stored_key = digest::digest(&digest::SHA256, client_key.as_ref());
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{first_bare},{server_first},{without_proof}");
        let signature = mac(stored_key.as_ref(), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .as_ref()
            .iter()
            .zip(signature.as_ref())
            .map(|(k, s)| k ^ s)
            .collect();
        let server_final = c.sasl(format!("{without_proof},p={}", B64.encode(proof)))?;
        let server_key = mac(&salted, b"Server Key");
        let verifier = B64.encode(mac(server_key.as_ref(), auth_message.as_bytes()));
        if server_final != format!("v={verifier}") {
            return Err(format!("bad server signature {server_final:?}"));
        }
        Ok(c)
    }

    /// One SaslAuthenticate v2 round: sends `token`, returns the server's.
    fn sasl(&mut self, token: String) -> Result<String, String> {
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
        let response = self.try_ask(&request, 2)?;
        if response.error_code != NONE {
            return Err(format!(
                "SaslAuthenticate: error {} {:?}",
                response.error_code, response.error_message
            ));
        }
        String::from_utf8(response.auth_bytes.to_vec()).map_err(|e| e.to_string())
    }

    fn next_correlation(&mut self) -> i32 {
        self.correlation += 1;
        self.correlation
    }

    fn try_ask<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response, String> {
        let correlation = self.next_correlation();
        let mut payload = bytes::BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(StrBytes::from_static_str("sluice-acls-test")))
            .encode(&mut payload, R::header_version(version))
            .map_err(|e| e.to_string())?;
        request
            .encode(&mut payload, version)
            .map_err(|e| e.to_string())?;
        let mut frame = (payload.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&payload);
        self.s.write_all(&frame).map_err(|e| e.to_string())?;
        let mut len = [0u8; 4];
        self.s.read_exact(&mut len).map_err(|e| e.to_string())?;
        let mut body = vec![0u8; i32::from_be_bytes(len).max(0) as usize];
        self.s.read_exact(&mut body).map_err(|e| e.to_string())?;
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))
            .map_err(|e| e.to_string())?;
        if header.correlation_id != correlation {
            return Err(format!(
                "correlation {} != {correlation}",
                header.correlation_id
            ));
        }
        R::Response::decode(&mut body, version).map_err(|e| e.to_string())
    }

    /// Sends `request` at `version` and returns the response; panics if the connection fails.
    fn ask<R: Request>(&mut self, request: &R, version: i16) -> R::Response {
        self.try_ask(request, version)
            .unwrap_or_else(|e| panic!("{} v{version}: {e}", std::any::type_name::<R>()))
    }

    /// Metadata v12 for `topics` (`None`: all), with auto-creation as `auto_create`:
    /// (name, error code) per topic in the response.
    fn metadata(&mut self, topics: Option<&[&str]>, auto_create: bool) -> Vec<(String, i16)> {
        let request = MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                    .collect()
            }))
            .with_allow_auto_topic_creation(auto_create);
        self.ask(&request, 12)
            .topics
            .iter()
            .map(|t| {
                let name = t.name.as_ref().map_or("", |n| n.0.as_str()).to_string();
                (name, t.error_code)
            })
            .collect()
    }

    /// CreateTopics as [`Conn::create_topics`] (one partition each), then waits until each
    /// partition's leader answers ListOffsets; panics on an error.
    fn create_topics_ready(&mut self, topics: &[&str]) {
        assert_eq!(self.create_topics(topics), NONE, "creating {topics:?}");
        wait_until(&format!("{topics:?} have leaders"), PROPAGATION, || {
            topics.iter().all(|t| self.list_offsets(t) == NONE)
        });
    }

    /// ListOffsets v7 (latest) of partition 0 of `topic`: its error code.
    fn list_offsets(&mut self, topic: &str) -> i16 {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1)])]);
        first_error(
            self.ask(&request, 7)
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
        )
    }

    /// The topics a list-all Metadata request shows (without errors).
    fn visible_topics(&mut self) -> BTreeSet<String> {
        self.metadata(None, false)
            .into_iter()
            .filter(|(_, e)| *e == NONE)
            .map(|(n, _)| n)
            .collect()
    }

    /// The error code of a named Metadata request for `topic` (no auto-creation).
    fn describe_topic(&mut self, topic: &str) -> i16 {
        first_error(
            self.metadata(Some(&[topic]), false)
                .into_iter()
                .map(|t| t.1),
        )
    }

    /// Produce v7 (acks=all) of one record to partition 0 of `topic`: its error code.
    fn produce(&mut self, topic: &str) -> i16 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let correlation = self.next_correlation();
        let frame = produce_frame(topic, &[(now, "raw")], false, correlation);
        self.s.write_all(&frame).unwrap();
        let answer = read_produce_response(&mut self.s);
        assert_eq!(answer.correlation, correlation);
        answer.error_code
    }

    /// Fetch v12 from offset 0 of partition 0 of `topic`: its error code.
    fn fetch(&mut self, topic: &str) -> i16 {
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(100)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20)])]);
        let response = self.ask(&request, 12);
        first_error(
            std::iter::once(response.error_code).chain(
                response
                    .responses
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
            ),
        )
    }

    /// CreateTopics v7: `topics` with one partition each; the first error code.
    fn create_topics(&mut self, topics: &[&str]) -> i16 {
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        CreatableTopic::default()
                            .with_name(topic_name(t))
                            .with_num_partitions(1)
                            .with_replication_factor(1)
                    })
                    .collect(),
            );
        first_error(self.ask(&request, 7).topics.iter().map(|t| t.error_code))
    }

    /// OffsetCommit v8 of offset 0 for partition 0 of `topic` as `group` (a simple,
    /// member-less commit): the first error code.
    fn commit_offset(&mut self, group: &str, topic: &str) -> i16 {
        let request = OffsetCommitRequest::default()
            .with_group_id(group_id(group))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(0)])]);
        first_error(
            self.ask(&request, 8)
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
        )
    }

    /// FindCoordinator v4 for `key` (`key_type` 0: group, 1: transaction): its error code.
    /// Kafka creates its internal topic for offsets or transactions on the first one.
    fn find_coordinator(&mut self, key_type: i8, key: &str) -> i16 {
        let request = FindCoordinatorRequest::default()
            .with_key_type(key_type)
            .with_coordinator_keys(vec![sb(key)]);
        first_error(
            self.ask(&request, 4)
                .coordinators
                .iter()
                .map(|k| k.error_code),
        )
    }

    /// ListGroups v4: the groups listed.
    fn list_groups(&mut self) -> BTreeSet<String> {
        let response = self.ask(&ListGroupsRequest::default(), 4);
        assert_eq!(response.error_code, NONE, "ListGroups");
        response
            .groups
            .iter()
            .map(|g| g.group_id.0.to_string())
            .collect()
    }

    /// InitProducerId v4 for `transactional_id` (`None`: an idempotent producer): (error
    /// code, producer id, epoch).
    fn init_producer_id(&mut self, transactional_id: Option<&str>) -> (i16, i64, i16) {
        let request = InitProducerIdRequest::default()
            .with_transactional_id(transactional_id.map(txn_id))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let r = self.ask(&request, 4);
        (r.error_code, r.producer_id.0, r.producer_epoch)
    }

    /// AddPartitionsToTxn v3 (partition 0 of `topic`): the first error code.
    fn add_partitions_to_txn(&mut self, txn: &str, (id, epoch): (i64, i16), topic: &str) -> i16 {
        let request = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(txn_id(txn))
            .with_v3_and_below_producer_id(ProducerId(id))
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![0])]);
        let response = self.ask(&request, 3);
        first_error(response.results_by_topic_v3_and_below.iter().flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(|p| p.partition_error_code)
        }))
    }

    /// AddOffsetsToTxn v3 for `group`: its error code.
    fn add_offsets_to_txn(&mut self, txn: &str, (id, epoch): (i64, i16), group: &str) -> i16 {
        let request = AddOffsetsToTxnRequest::default()
            .with_transactional_id(txn_id(txn))
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch)
            .with_group_id(group_id(group));
        self.ask(&request, 3).error_code
    }

    /// TxnOffsetCommit v3 (offset 0 of partition 0 of `topic` for `group`): the first error.
    fn txn_offset_commit(
        &mut self,
        txn: &str,
        (id, epoch): (i64, i16),
        group: &str,
        topic: &str,
    ) -> i16 {
        let request = TxnOffsetCommitRequest::default()
            .with_transactional_id(txn_id(txn))
            .with_group_id(group_id(group))
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch)
            .with_generation_id(-1)
            .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(0)])]);
        first_error(
            self.ask(&request, 3)
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
        )
    }
}

/// A raw check: what it is, the error code Kafka answers a principal without ACLs, and the
/// request (returning the code that decides: the top-level one, else the first per-item one).
type Check = (&'static str, i16, Box<dyn Fn(&mut Conn) -> i16>);

/// One request of every API that needs a right, against topic `t`, group `g` and
/// transactional id `tx`, each with the error a principal without any ACL must get.
fn every_api(t: &'static str, g: &'static str, tx: &'static str) -> Vec<Check> {
    let fake_producer = (4242i64, 0i16);
    let mut checks: Vec<Check> = Vec::new();
    macro_rules! check {
        ($what:expr, $code:expr, |$c:ident| $body:expr) => {{
            checks.push(($what, $code, Box::new(move |$c: &mut Conn| $body)));
        }};
    }
    // Topics: data.
    check!("Metadata (named topic)", TOPIC_AUTHORIZATION_FAILED, |c| c
        .describe_topic(t));
    check!("Produce", TOPIC_AUTHORIZATION_FAILED, |c| c.produce(t));
    check!("Fetch", TOPIC_AUTHORIZATION_FAILED, |c| c.fetch(t));
    check!("ListOffsets", TOPIC_AUTHORIZATION_FAILED, |c| c
        .list_offsets(t));
    // Topics: admin.
    check!("CreateTopics", TOPIC_AUTHORIZATION_FAILED, |c| c
        .create_topics(&[&format!("{t}-new")]));
    check!("DeleteTopics", TOPIC_AUTHORIZATION_FAILED, |c| {
        let request = DeleteTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![
                DeleteTopicState::default().with_name(Some(topic_name(t)))
            ]);
        first_error(c.ask(&request, 6).responses.iter().map(|r| r.error_code))
    });
    check!("CreatePartitions", TOPIC_AUTHORIZATION_FAILED, |c| {
        let request = CreatePartitionsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(t))
                .with_count(2)]);
        first_error(c.ask(&request, 3).results.iter().map(|r| r.error_code))
    });
    check!("DeleteRecords", TOPIC_AUTHORIZATION_FAILED, |c| {
        let request = DeleteRecordsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(topic_name(t))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(0)])]);
        first_error(
            c.ask(&request, 2)
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
        )
    });
    // Configs: topic (2) and broker (4) resources.
    for (what, resource_type, name, code) in [
        (
            "DescribeConfigs (topic)",
            2i8,
            t.to_string(),
            TOPIC_AUTHORIZATION_FAILED,
        ),
        (
            "DescribeConfigs (broker)",
            4,
            "1".to_string(),
            CLUSTER_AUTHORIZATION_FAILED,
        ),
    ] {
        checks.push((
            what,
            code,
            Box::new(move |c: &mut Conn| {
                let request = DescribeConfigsRequest::default().with_resources(vec![
                    DescribeConfigsResource::default()
                        .with_resource_type(resource_type)
                        .with_resource_name(sb(&name)),
                ]);
                first_error(c.ask(&request, 4).results.iter().map(|r| r.error_code))
            }),
        ));
    }
    for (what, resource_type, name, key, code) in [
        (
            "AlterConfigs (topic)",
            2i8,
            t.to_string(),
            "retention.ms",
            TOPIC_AUTHORIZATION_FAILED,
        ),
        (
            "AlterConfigs (broker)",
            4,
            "1".to_string(),
            "log.retention.ms",
            CLUSTER_AUTHORIZATION_FAILED,
        ),
    ] {
        checks.push((
            what,
            code,
            Box::new(move |c: &mut Conn| {
                let request = AlterConfigsRequest::default().with_resources(vec![
                    alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(resource_type)
                        .with_resource_name(sb(&name))
                        .with_configs(vec![alter_configs_request::AlterableConfig::default()
                            .with_name(sb(key))
                            .with_value(Some(sb("86400000")))]),
                ]);
                first_error(c.ask(&request, 2).responses.iter().map(|r| r.error_code))
            }),
        ));
    }
    for (what, resource_type, name, key, code) in [
        (
            "IncrementalAlterConfigs (topic)",
            2i8,
            t.to_string(),
            "retention.ms",
            TOPIC_AUTHORIZATION_FAILED,
        ),
        (
            "IncrementalAlterConfigs (broker)",
            4,
            "1".to_string(),
            "log.retention.ms",
            CLUSTER_AUTHORIZATION_FAILED,
        ),
    ] {
        checks.push((
            what,
            code,
            Box::new(move |c: &mut Conn| {
                let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
                    incremental_alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(resource_type)
                        .with_resource_name(sb(&name))
                        .with_configs(vec![
                            incremental_alter_configs_request::AlterableConfig::default()
                                .with_name(sb(key))
                                .with_config_operation(0) // SET
                                .with_value(Some(sb("86400000"))),
                        ]),
                ]);
                first_error(c.ask(&request, 1).responses.iter().map(|r| r.error_code))
            }),
        ));
    }
    // Groups.
    check!("FindCoordinator (group)", GROUP_AUTHORIZATION_FAILED, |c| c
        .find_coordinator(0, g));
    check!("JoinGroup", GROUP_AUTHORIZATION_FAILED, |c| {
        let request = JoinGroupRequest::default()
            .with_group_id(group_id(g))
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(30_000)
            .with_protocol_type(sb("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(sb("range"))
                .with_metadata(Bytes::new())]);
        c.ask(&request, 9).error_code
    });
    check!("OffsetCommit", GROUP_AUTHORIZATION_FAILED, |c| c
        .commit_offset(g, t));
    check!("OffsetFetch", GROUP_AUTHORIZATION_FAILED, |c| {
        let request = OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default().with_group_id(group_id(g)),
        ]);
        let response = c.ask(&request, 8);
        first_error(
            std::iter::once(response.error_code)
                .chain(response.groups.iter().map(|g| g.error_code)),
        )
    });
    check!("DescribeGroups", GROUP_AUTHORIZATION_FAILED, |c| {
        let request = DescribeGroupsRequest::default().with_groups(vec![group_id(g)]);
        first_error(c.ask(&request, 5).groups.iter().map(|g| g.error_code))
    });
    check!("DeleteGroups", GROUP_AUTHORIZATION_FAILED, |c| {
        let request = DeleteGroupsRequest::default().with_groups_names(vec![group_id(g)]);
        first_error(c.ask(&request, 2).results.iter().map(|r| r.error_code))
    });
    // Producers and transactions.
    check!(
        "InitProducerId (idempotent)",
        CLUSTER_AUTHORIZATION_FAILED,
        |c| c.init_producer_id(None).0
    );
    check!(
        "FindCoordinator (transaction)",
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        |c| c.find_coordinator(1, tx)
    );
    check!(
        "InitProducerId (transactional)",
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        |c| c.init_producer_id(Some(tx)).0
    );
    check!(
        "AddPartitionsToTxn",
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        |c| c.add_partitions_to_txn(tx, fake_producer, t)
    );
    check!(
        "AddOffsetsToTxn",
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        |c| c.add_offsets_to_txn(tx, fake_producer, g)
    );
    check!(
        "TxnOffsetCommit",
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        |c| c.txn_offset_commit(tx, fake_producer, g, t)
    );
    check!("EndTxn", TRANSACTIONAL_ID_AUTHORIZATION_FAILED, |c| {
        let request = EndTxnRequest::default()
            .with_transactional_id(txn_id(tx))
            .with_producer_id(ProducerId(fake_producer.0))
            .with_producer_epoch(fake_producer.1)
            .with_committed(false);
        c.ask(&request, 3).error_code
    });
    // The cluster: ACLs, SCRAM credentials, partitions, log dirs, quotas.
    check!("CreateAcls", CLUSTER_AUTHORIZATION_FAILED, |c| {
        let request = CreateAclsRequest::default().with_creations(vec![AclCreation::default()
            .with_resource_type(2) // TOPIC
            .with_resource_name(sb(t))
            .with_resource_pattern_type(3) // LITERAL
            .with_principal(sb("User:alice"))
            .with_host(sb("*"))
            .with_operation(3) // READ
            .with_permission_type(3)]); // ALLOW
        first_error(c.ask(&request, 3).results.iter().map(|r| r.error_code))
    });
    check!("DescribeAcls", CLUSTER_AUTHORIZATION_FAILED, |c| {
        let request = DescribeAclsRequest::default()
            .with_resource_type_filter(1) // ANY
            .with_pattern_type_filter(1)
            .with_operation(1)
            .with_permission_type(1);
        c.ask(&request, 3).error_code
    });
    check!("DeleteAcls", CLUSTER_AUTHORIZATION_FAILED, |c| {
        let request = DeleteAclsRequest::default().with_filters(vec![DeleteAclsFilter::default()
            .with_resource_type_filter(2)
            .with_resource_name_filter(Some(sb(t)))
            .with_pattern_type_filter(3)
            .with_operation(1)
            .with_permission_type(1)]);
        first_error(
            c.ask(&request, 3)
                .filter_results
                .iter()
                .map(|r| r.error_code),
        )
    });
    check!(
        "DescribeUserScramCredentials",
        CLUSTER_AUTHORIZATION_FAILED,
        |c| {
            let response = c.ask(&DescribeUserScramCredentialsRequest::default(), 0);
            first_error(
                std::iter::once(response.error_code)
                    .chain(response.results.iter().map(|r| r.error_code)),
            )
        }
    );
    check!(
        "AlterUserScramCredentials",
        CLUSTER_AUTHORIZATION_FAILED,
        |c| {
            // Deleting a credential bob does not have: harmless even if it were allowed.
            let request = AlterUserScramCredentialsRequest::default().with_deletions(vec![
                ScramCredentialDeletion::default()
                    .with_name(sb("bob"))
                    .with_mechanism(2), // SCRAM-SHA-512
            ]);
            first_error(c.ask(&request, 0).results.iter().map(|r| r.error_code))
        }
    );
    check!("ElectLeaders", CLUSTER_AUTHORIZATION_FAILED, |c| {
        let request = ElectLeadersRequest::default()
            .with_timeout_ms(30_000)
            .with_topic_partitions(Some(vec![elect_leaders_request::TopicPartitions::default(
            )
            .with_topic(topic_name(t))
            .with_partitions(vec![0])]));
        let response = c.ask(&request, 2);
        first_error(
            std::iter::once(response.error_code).chain(
                response
                    .replica_election_results
                    .iter()
                    .flat_map(|r| r.partition_result.iter().map(|p| p.error_code)),
            ),
        )
    });
    check!(
        "AlterPartitionReassignments",
        CLUSTER_AUTHORIZATION_FAILED,
        |c| {
            let request = AlterPartitionReassignmentsRequest::default()
                .with_timeout_ms(30_000)
                .with_topics(vec![ReassignableTopic::default()
                    .with_name(topic_name(t))
                    .with_partitions(vec![ReassignablePartition::default()
                        .with_partition_index(0)
                        .with_replicas(Some(vec![BrokerId(1)]))])]);
            c.ask(&request, 0).error_code
        }
    );
    check!(
        "ListPartitionReassignments",
        CLUSTER_AUTHORIZATION_FAILED,
        |c| {
            let request = ListPartitionReassignmentsRequest::default().with_timeout_ms(30_000);
            c.ask(&request, 0).error_code
        }
    );
    check!("DescribeLogDirs", CLUSTER_AUTHORIZATION_FAILED, |c| c
        .ask(&DescribeLogDirsRequest::default(), 4)
        .error_code);
    check!("DescribeClientQuotas", CLUSTER_AUTHORIZATION_FAILED, |c| c
        .ask(&DescribeClientQuotasRequest::default(), 1)
        .error_code);
    check!("AlterClientQuotas", CLUSTER_AUTHORIZATION_FAILED, |c| {
        let request = AlterClientQuotasRequest::default().with_entries(vec![
            alter_client_quotas_request::EntryData::default()
                .with_entity(vec![alter_client_quotas_request::EntityData::default()
                    .with_entity_type(sb("user"))
                    .with_entity_name(Some(sb("alice")))])
                .with_ops(vec![alter_client_quotas_request::OpData::default()
                    .with_key(sb("producer_byte_rate"))
                    .with_value(1_048_576.0)]),
        ]);
        first_error(c.ask(&request, 1).entries.iter().map(|e| e.error_code))
    });
    checks
}

// --- The tests -----------------------------------------------------------------------------

#[test]
fn kafka_acls_adds_lists_and_removes_literal_prefixed_and_wildcard_acls_that_survive_a_restart() {
    let mut s = Secured::start(&[]);
    s.conn("admin").create_topics_ready(&["orders"]);
    s.add_acls("--allow-principal User:alice --operation Read --operation Write --topic orders");
    s.add_acls(
        "--allow-principal User:alice --operation Write --topic alice- \
         --resource-pattern-type prefixed",
    );
    s.add_acls("--allow-principal User:* --operation Describe --topic *");
    s.add_acls("--allow-principal User:bob --operation Read --group *");
    s.add_acls("--deny-principal User:bob --operation All --group bob-private");
    s.add_acls(
        "--allow-principal User:alice --operation Write --operation Describe \
         --transactional-id alice-tx- --resource-pattern-type prefixed",
    );
    s.add_acls(
        "--allow-principal User:bob --allow-host 127.0.0.1 --operation IdempotentWrite --cluster",
    );
    let all = set(&[
        "TOPIC LITERAL orders User:alice * READ ALLOW",
        "TOPIC LITERAL orders User:alice * WRITE ALLOW",
        "TOPIC PREFIXED alice- User:alice * WRITE ALLOW",
        "TOPIC LITERAL * User:* * DESCRIBE ALLOW",
        "GROUP LITERAL * User:bob * READ ALLOW",
        "GROUP LITERAL bob-private User:bob * ALL DENY",
        "TRANSACTIONAL_ID PREFIXED alice-tx- User:alice * WRITE ALLOW",
        "TRANSACTIONAL_ID PREFIXED alice-tx- User:alice * DESCRIBE ALLOW",
        "CLUSTER LITERAL kafka-cluster User:bob 127.0.0.1 IDEMPOTENT_WRITE ALLOW",
    ]);
    assert_eq!(s.list_acls(""), all, "kafka-acls --list");
    // Filters: one literal resource; everything that applies to a name (match); a principal.
    assert_eq!(
        s.list_acls("--topic orders"),
        set(&[
            "TOPIC LITERAL orders User:alice * READ ALLOW",
            "TOPIC LITERAL orders User:alice * WRITE ALLOW",
        ])
    );
    assert_eq!(
        s.list_acls("--topic alice-orders --resource-pattern-type match"),
        set(&[
            "TOPIC PREFIXED alice- User:alice * WRITE ALLOW",
            "TOPIC LITERAL * User:* * DESCRIBE ALLOW",
        ])
    );
    assert_eq!(
        s.list_acls("--principal User:bob"),
        all.iter()
            .filter(|b| b.contains(" User:bob "))
            .cloned()
            .collect::<BTreeSet<_>>()
    );

    // In force: alice may write to orders, bob may only see it (the wildcard DESCRIBE).
    let mut alice = s.conn("alice");
    let mut bob = s.conn("bob");
    wait_until("alice may produce to orders", PROPAGATION, || {
        alice.produce("orders") == NONE
    });
    assert_eq!(bob.produce("orders"), TOPIC_AUTHORIZATION_FAILED);
    assert!(bob.visible_topics().contains("orders"));

    // Removal removes what matches and nothing else.
    s.remove_acls("--allow-principal User:alice --operation Write --topic orders");
    s.remove_acls("--topic alice- --resource-pattern-type prefixed");
    s.remove_acls("--topic *");
    // Matches nothing (there is no DENY for alice).
    s.remove_acls("--deny-principal User:alice --operation Read --topic orders");
    let remaining: BTreeSet<String> = all
        .iter()
        .filter(|b| {
            !b.starts_with("TOPIC ") || b.as_str() == "TOPIC LITERAL orders User:alice * READ ALLOW"
        })
        .cloned()
        .collect();
    assert_eq!(remaining.len(), 6);
    assert_eq!(s.list_acls(""), remaining, "after the removals");
    wait_until("alice's WRITE on orders is gone", PROPAGATION, || {
        alice.produce("orders") == TOPIC_AUTHORIZATION_FAILED
    });
    assert_eq!(alice.fetch("orders"), NONE, "alice keeps READ on orders");
    wait_until("the wildcard DESCRIBE is gone", PROPAGATION, || {
        !bob.visible_topics().contains("orders")
    });

    // A crash and a restart: the acknowledged changes come back from the metadata log and
    // are in force at once.
    drop((alice, bob));
    s.node.kill9();
    s.node.restart();
    assert_eq!(s.list_acls(""), remaining, "after a restart");
    let mut alice = s.conn("alice");
    assert_eq!(alice.produce("orders"), TOPIC_AUTHORIZATION_FAILED);
    // (The partition's leader may take a moment to come back.)
    wait_until("alice reads orders after the restart", PROPAGATION, || {
        alice.fetch("orders") == NONE
    });
    assert_eq!(
        s.conn("bob").describe_topic("orders"),
        TOPIC_AUTHORIZATION_FAILED
    );
}

#[test]
fn a_principal_without_acls_gets_the_right_authorization_error_from_every_api() {
    let s = Secured::start(&[]);
    let (t, g, tx) = ("payments", "payments-group", "payments-tx");
    let mut admin = s.conn("admin");
    admin.create_topics_ready(&[t]);
    assert_eq!(admin.produce(t), NONE);
    wait_until("admin commits an offset for the group", PROPAGATION, || {
        admin.find_coordinator(0, g) == NONE && admin.commit_offset(g, t) == NONE
    });
    assert!(admin.visible_topics().contains(t));
    assert!(admin.list_groups().contains(g));

    // Raw requests: every API, exact codes. Failures are collected, then reported together.
    let mut alice = s.conn("alice");
    let mut wrong = Vec::new();
    for (what, want, check) in every_api(t, g, tx) {
        let got = check(&mut alice);
        if got != want {
            wrong.push(format!("{what}: got {got}, want {want}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "alice without ACLs:\n{}",
        wrong.join("\n")
    );
    // Kafka answers DescribeCluster to anyone (clients bootstrap with it); without DESCRIBE
    // on the cluster the authorized operations asked for are none.
    let describe_cluster =
        DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
    let cluster = alice.ask(&describe_cluster, 1);
    assert_eq!(
        (
            cluster.error_code,
            cluster.brokers.len(),
            cluster.cluster_authorized_operations
        ),
        (NONE, 1, 0),
        "DescribeCluster as alice"
    );
    let cluster = admin.ask(&describe_cluster, 1);
    assert_eq!(cluster.error_code, NONE);
    assert_ne!(
        cluster.cluster_authorized_operations & (1 << 8), // DESCRIBE
        0,
        "the super user's authorized operations: {:#x}",
        cluster.cluster_authorized_operations
    );
    // Lists are filtered, not refused.
    assert!(
        !alice.visible_topics().contains(t),
        "Metadata lists {t} to alice"
    );
    assert!(
        !alice.list_groups().contains(g),
        "ListGroups lists {g} to alice"
    );

    // Kafka's tools as alice: the exceptions their users see.
    let records = lines("denied", 3);
    let input = (records.join("\n") + "\n").into_bytes();
    s.assert_denied(
        "console producer (not idempotent)",
        s.tool(
            "kafka-console-producer",
            "alice",
            &format!("--topic {t} --command-property enable.idempotence=false"),
        ),
        Some(&input),
        "TopicAuthorizationException",
    );
    s.assert_denied(
        "console consumer (assigned partition)",
        s.tool(
            "kafka-console-consumer",
            "alice",
            &format!(
                "--topic {t} --partition 0 --offset earliest --max-messages 1 --timeout-ms 30000"
            ),
        ),
        None,
        "TopicAuthorizationException",
    );
    s.assert_denied(
        "kafka-topics --create",
        s.tool(
            "kafka-topics",
            "alice",
            "--create --topic alice-new --partitions 1 --replication-factor 1",
        ),
        None,
        "TopicAuthorizationException",
    );
    // Kafka's tools look a topic up before describing or deleting it; one alice may not
    // describe does not exist for her.
    s.assert_denied(
        "kafka-configs --describe (topic)",
        s.tool(
            "kafka-configs",
            "alice",
            &format!("--describe --entity-type topics --entity-name {t}"),
        ),
        None,
        &format!("The topic '{t}' doesn't exist"),
    );
    s.assert_denied(
        "kafka-topics --delete",
        s.tool("kafka-topics", "alice", &format!("--delete --topic {t}")),
        None,
        &format!("Topic '{t}' does not exist as expected"),
    );
    s.assert_denied(
        "kafka-configs --alter (topic)",
        s.tool(
            "kafka-configs",
            "alice",
            &format!(
                "--alter --add-config retention.ms=1000 --entity-type topics --entity-name {t}"
            ),
        ),
        None,
        "TopicAuthorizationException",
    );
    s.assert_denied(
        "kafka-configs --describe (broker)",
        s.tool(
            "kafka-configs",
            "alice",
            "--describe --entity-type brokers --entity-name 1",
        ),
        None,
        "ClusterAuthorizationException",
    );
    for action in ["--describe", "--delete"] {
        s.assert_denied(
            &format!("kafka-consumer-groups {action}"),
            s.tool(
                "kafka-consumer-groups",
                "alice",
                &format!("{action} --group {g}"),
            ),
            None,
            "GroupAuthorizationException",
        );
    }
    s.assert_denied(
        "transactional producer (kafka-producer-perf-test)",
        s.tool(
            "kafka-producer-perf-test",
            "alice",
            &format!(
                "--topic {t} --num-records 10 --record-size 10 \
                 --throughput -1 --transactional-id {tx}"
            ),
        ),
        None,
        "TransactionalIdAuthorizationException",
    );
    s.assert_denied(
        "kafka-acls --list",
        s.tool("kafka-acls", "alice", "--list"),
        None,
        "ClusterAuthorizationException",
    );
    s.assert_denied(
        "kafka-acls --add",
        s.tool(
            "kafka-acls",
            "alice",
            &format!("--add --allow-principal User:alice --operation All --topic {t}"),
        ),
        None,
        "ClusterAuthorizationException",
    );
    // Nothing changed behind the refusals.
    assert_eq!(s.list_acls(""), BTreeSet::new());
    assert!(admin.list_groups().contains(g));

    // With WRITE on the transactional id alone, the transaction's topic and group are
    // still checked.
    s.add_acls(&format!(
        "--allow-principal User:alice --operation Write --transactional-id {tx}"
    ));
    let mut producer = (0, 0);
    wait_until(
        "alice gets a transactional producer id",
        PROPAGATION,
        || {
            if alice.find_coordinator(1, tx) != NONE {
                return false;
            }
            let (error, id, epoch) = alice.init_producer_id(Some(tx));
            producer = (id, epoch);
            // Anything but the authorization error can be a coordinator still loading.
            assert_ne!(error, CLUSTER_AUTHORIZATION_FAILED);
            error == NONE
        },
    );
    assert_eq!(
        alice.add_partitions_to_txn(tx, producer, t),
        TOPIC_AUTHORIZATION_FAILED,
        "AddPartitionsToTxn without WRITE on the topic"
    );
    assert_eq!(
        alice.add_offsets_to_txn(tx, producer, g),
        GROUP_AUTHORIZATION_FAILED,
        "AddOffsetsToTxn without READ on the group"
    );
    assert_eq!(
        alice.txn_offset_commit(tx, producer, g, t),
        GROUP_AUTHORIZATION_FAILED,
        "TxnOffsetCommit without READ on the group"
    );

    // The PLAINTEXT listener's principal (User:ANONYMOUS) is no super user either.
    let mut anonymous = Conn::open(s.node.listener("PLAINTEXT")).unwrap();
    assert!(!anonymous.visible_topics().contains(t));
    assert_eq!(anonymous.produce(t), TOPIC_AUTHORIZATION_FAILED);
}

#[test]
fn prefixed_allows_deny_overrides_and_host_matching_decide_what_alice_may_do() {
    let s = Secured::start(&[]);
    s.conn("admin")
        .create_topics_ready(&["alice-orders", "alice-secret", "bob-orders"]);
    s.add_acls(
        "--allow-principal User:alice --operation Write --topic alice- \
         --resource-pattern-type prefixed",
    );
    s.add_acls(
        "--allow-principal User:alice --operation Read --topic alice-orders --group alice-group",
    );
    s.add_acls("--deny-principal User:alice --operation Write --topic alice-secret");
    s.add_acls(
        "--allow-principal User:alice --allow-host 10.9.9.9 --operation Read \
         --operation Write --topic bob-orders",
    );
    let mut alice = s.conn("alice");
    wait_until("alice may produce to alice-orders", PROPAGATION, || {
        alice.produce("alice-orders") == NONE
    });
    assert_eq!(alice.fetch("alice-orders"), NONE);
    assert_eq!(
        alice.produce("alice-secret"),
        TOPIC_AUTHORIZATION_FAILED,
        "the DENY on alice-secret overrides the prefixed ALLOW"
    );
    for (what, code) in [
        ("produce", alice.produce("bob-orders")),
        ("fetch", alice.fetch("bob-orders")),
    ] {
        assert_eq!(
            code, TOPIC_AUTHORIZATION_FAILED,
            "{what} bob-orders from 127.0.0.1 (allowed from 10.9.9.9 only)"
        );
    }
    // DESCRIBE comes with WRITE (the DENY is for WRITE only) and READ; not from 10.9.9.9's.
    assert_eq!(
        alice.visible_topics(),
        set(&["alice-orders", "alice-secret"]),
        "alice's topics"
    );

    // Kafka's console tools as alice (the producer is idempotent: WRITE on some topic lets
    // it have a producer id).
    let sent = lines("order", 50);
    let out = s.console_produce("alice", "alice-orders", &sent);
    let text = output_text(&out);
    assert!(
        out.status.success() && !text.contains("AuthorizationException"),
        "console producer to alice-orders ({}):\n{text}",
        out.status
    );
    let out = run_ok(
        &mut s.tool(
            "kafka-console-consumer",
            "alice",
            "--topic alice-orders --group alice-group \
             --from-beginning --max-messages 51 --timeout-ms 60000",
        ),
        LIMIT,
        None,
    );
    let got: BTreeSet<&str> = out.lines().collect();
    for line in sent.iter().map(String::as_str).chain(["raw"]) {
        assert!(got.contains(line), "consumed:\n{out}");
    }
    let described = run_ok(
        &mut s.tool(
            "kafka-consumer-groups",
            "alice",
            "--describe --group alice-group",
        ),
        LIMIT,
        None,
    );
    assert!(described.contains("alice-orders"), "{described}");
    for topic in ["bob-orders", "alice-secret"] {
        let out = s.console_produce("alice", topic, &lines(topic, 3));
        let text = output_text(&out);
        assert!(
            text.contains("TopicAuthorizationException"),
            "console producer to {topic}:\n{text}"
        );
    }
    s.assert_denied(
        "console consumer in a group alice may not use",
        s.tool(
            "kafka-console-consumer",
            "alice",
            "--topic alice-orders --group bob-group \
             --from-beginning --max-messages 1 --timeout-ms 30000",
        ),
        None,
        "GroupAuthorizationException",
    );

    // A host that matches lets her in: DESCRIBE on bob-orders from 127.0.0.1.
    s.add_acls(
        "--allow-principal User:alice --allow-host 127.0.0.1 --operation Describe \
         --topic bob-orders",
    );
    wait_until("alice sees bob-orders from 127.0.0.1", PROPAGATION, || {
        alice.visible_topics().contains("bob-orders")
    });
    assert_eq!(alice.fetch("bob-orders"), TOPIC_AUTHORIZATION_FAILED);
}

#[test]
fn allow_everyone_if_no_acl_found_opens_topics_until_an_acl_names_them() {
    let s = Secured::start(&["--config", "allow.everyone.if.no.acl.found=true"]);
    s.conn("admin").create_topics_ready(&["open", "other"]);
    let mut alice = s.conn("alice");
    assert_eq!(alice.produce("open"), NONE);
    assert_eq!(alice.fetch("open"), NONE);
    assert!(alice.visible_topics().is_superset(&set(&["open", "other"])));
    // Real clients: an idempotent producer (no ACL on the cluster either) and a group.
    let sent = lines("open", 20);
    let out = s.console_produce("alice", "open", &sent);
    assert!(
        out.status.success() && !output_text(&out).contains("AuthorizationException"),
        "console producer to open:\n{}",
        output_text(&out)
    );
    let out = run_ok(
        &mut s.tool(
            "kafka-console-consumer",
            "alice",
            "--topic open --group open-group --from-beginning --max-messages 21 --timeout-ms 60000",
        ),
        LIMIT,
        None,
    );
    for line in &sent {
        assert!(out.lines().any(|l| l == line), "consumed:\n{out}");
    }

    // An ACL for someone else on the topic closes it to alice; other topics stay open.
    s.add_acls("--allow-principal User:bob --operation Read --topic open");
    wait_until("open is closed to alice", PROPAGATION, || {
        alice.produce("open") == TOPIC_AUTHORIZATION_FAILED
    });
    assert_eq!(alice.fetch("open"), TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(alice.describe_topic("open"), TOPIC_AUTHORIZATION_FAILED);
    let visible = alice.visible_topics();
    assert!(
        !visible.contains("open") && visible.contains("other"),
        "{visible:?}"
    );
    assert_eq!(alice.produce("other"), NONE);
    let out = s.console_produce("alice", "open", &lines("closed", 3));
    assert!(
        output_text(&out).contains("TopicAuthorizationException"),
        "console producer to open:\n{}",
        output_text(&out)
    );
    // A prefixed ACL names every topic it covers.
    s.add_acls(
        "--allow-principal User:bob --operation Read --topic oth --resource-pattern-type prefixed",
    );
    wait_until("other is closed to alice", PROPAGATION, || {
        alice.produce("other") == TOPIC_AUTHORIZATION_FAILED
    });
}

#[test]
fn metadata_shows_alice_only_the_topics_she_may_describe() {
    let s = Secured::start(&[]);
    let all = ["vis-a", "vis-p-1", "vis-p-2", "hidden-1", "hidden-2"];
    let mut admin = s.conn("admin");
    admin.create_topics_ready(&all);
    s.add_acls("--allow-principal User:alice --operation Describe --topic vis-a");
    s.add_acls(
        "--allow-principal User:alice --operation Describe --topic vis-p- \
         --resource-pattern-type prefixed",
    );
    let visible = set(&["vis-a", "vis-p-1", "vis-p-2"]);
    let mut alice = s.conn("alice");
    wait_until("alice sees her three topics", PROPAGATION, || {
        alice.visible_topics() == visible
    });
    assert!(admin.visible_topics().is_superset(&set(&all)));
    assert_eq!(alice.describe_topic("vis-a"), NONE);
    assert_eq!(alice.describe_topic("hidden-1"), TOPIC_AUTHORIZATION_FAILED);
    // A topic that does not exist: refused too (its absence is not revealed), and not
    // created without CREATE, even where alice may describe it.
    assert_eq!(alice.describe_topic("nope"), TOPIC_AUTHORIZATION_FAILED);
    let auto = alice.metadata(Some(&["vis-p-new"]), true);
    assert_eq!(
        auto,
        vec![("vis-p-new".to_string(), TOPIC_AUTHORIZATION_FAILED)]
    );
    assert!(!admin.visible_topics().contains("vis-p-new"));

    // Kafka's tools list what Metadata shows.
    let listed = run_ok(&mut s.tool("kafka-topics", "alice", "--list"), LIMIT, None);
    let listed: BTreeSet<String> = listed.lines().map(|l| l.trim().to_string()).collect();
    assert_eq!(listed, visible, "kafka-topics --list as alice");

    // CREATE on the prefix: a Metadata request creates the topic (auto.create.topics.enable).
    s.add_acls(
        "--allow-principal User:alice --operation Create --topic vis-p- \
         --resource-pattern-type prefixed",
    );
    wait_until(
        "alice's Metadata request creates vis-p-new",
        PROPAGATION,
        || alice.metadata(Some(&["vis-p-new"]), true) == vec![("vis-p-new".to_string(), NONE)],
    );
    assert!(admin.visible_topics().contains("vis-p-new"));
}

#[test]
fn denials_are_counted_by_resource_type_and_operation() {
    let s = Secured::start(&[]);
    let mut admin = s.conn("admin");
    admin.create_topics_ready(&["counted"]);
    let before = (
        denied_total(&s.node, "topic", "write"),
        denied_total(&s.node, "group", "read"),
        denied_total(&s.node, "cluster", "describe"),
    );
    let mut alice = s.conn("alice");
    for _ in 0..3 {
        assert_eq!(alice.produce("counted"), TOPIC_AUTHORIZATION_FAILED);
    }
    assert_eq!(
        alice.commit_offset("counted-group", "counted"),
        GROUP_AUTHORIZATION_FAILED
    );
    let describe_acls = DescribeAclsRequest::default()
        .with_resource_type_filter(1)
        .with_pattern_type_filter(1)
        .with_operation(1)
        .with_permission_type(1);
    assert_eq!(
        alice.ask(&describe_acls, 3).error_code,
        CLUSTER_AUTHORIZATION_FAILED
    );
    // The super user's requests are not denials.
    assert_eq!(admin.produce("counted"), NONE);
    assert_eq!(admin.ask(&describe_acls, 3).error_code, NONE);
    let after = (
        denied_total(&s.node, "topic", "write"),
        denied_total(&s.node, "group", "read"),
        denied_total(&s.node, "cluster", "describe"),
    );
    let metrics = || {
        scrape_metrics(&s.node)
            .lines()
            .filter(|l| l.contains("authorization"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        after.0 - before.0 >= 3.0,
        "3 produce denials: {before:?} -> {after:?}\n{}",
        metrics()
    );
    assert!(after.1 > before.1, "{before:?} -> {after:?}\n{}", metrics());
    assert!(after.2 > before.2, "{before:?} -> {after:?}\n{}", metrics());
}
