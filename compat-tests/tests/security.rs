//! TLS and SASL with real clients, on Kafka's four kinds of listener (PLAINTEXT,
//! SASL_PLAINTEXT, SSL, SASL_SSL) configured with Kafka's names: kcat and confluent-kafka
//! (librdkafka), Kafka's console tools (Java), kafka-python and franz-go's own SCRAM tests log
//! in with PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or a client certificate and move records;
//! `kafka-configs` manages SCRAM users; wrong passwords, unknown users, plaintext on a TLS
//! port, requests before authentication and oversized frames are refused, closed and
//! counted. Certificates are made per test (`sluice_compat_tests::tls`).
//!
//! kcat is used for PLAIN and TLS only: its librdkafka (2.0.2) repeats the client nonce in
//! its SCRAM client-final-message, which Kafka 4 refuses as RFC 5802 says (librdkafka fixed
//! it in 2.6.1). SCRAM through librdkafka goes through confluent-kafka's bundled 2.x.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{
    ApiVersionsRequest, MetadataRequest, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use sluice_compat_tests::tls::Certs;
use sluice_compat_tests::{
    compat_dir, launcher, roundtrip_at, run, run_ok, scrape_metrics, topic, wait_until, Node,
};

const LIMIT: Duration = Duration::from_secs(120);

/// Every listener kind, each on an ephemeral port.
const LISTENERS: &str = "listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0,\
                         SSL://127.0.0.1:0,SASL_SSL://127.0.0.1:0";
const MECHANISMS: &str = "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512";
/// The PLAIN users of a listener, in Kafka's JAAS syntax.
const PLAIN_USERS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                           user_alice=\"alice-secret\" user_bob=\"bob-secret\";";
/// Error code SASL_AUTHENTICATION_FAILED.
const SASL_AUTHENTICATION_FAILED: i16 = 58;
/// Error code UNSUPPORTED_SASL_MECHANISM.
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;

/// A node with every listener kind, PLAIN users alice and bob on both SASL listeners, the
/// SCRAM mechanisms enabled (users come from `kafka-configs`), `certs`' server certificate,
/// `ssl.client.auth=<client_auth>`, plus `extra` flags.
fn secure_node(certs: &Certs, client_auth: &str, extra: &[&str]) -> Node {
    let mut flags: Vec<String> = ["--config", LISTENERS, "--config", MECHANISMS]
        .map(String::from)
        .into();
    for listener in ["sasl_plaintext", "sasl_ssl"] {
        flags.push("--config".into());
        flags.push(format!(
            "listener.name.{listener}.plain.sasl.jaas.config={PLAIN_USERS}"
        ));
    }
    flags.extend(certs.broker_flags(client_auth));
    flags.extend(extra.iter().map(|s| s.to_string()));
    let node = Node::start_with(&flags.iter().map(String::as_str).collect::<Vec<_>>());
    for l in ["PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL"] {
        node.listener(l); // panics with the listeners it has if one is missing
    }
    node
}

/// Creates (or updates) SCRAM user `user` with both mechanisms through the PLAINTEXT
/// listener: SCRAM-SHA-256 with 8192 iterations, SCRAM-SHA-512 with Kafka's default 4096.
/// One `kafka-configs` call per mechanism: Kafka refuses two changes to one user in one
/// AlterUserScramCredentials request (DUPLICATE_RESOURCE).
fn add_scram_user(node: &Node, user: &str, password: &str) {
    for credential in [
        format!("SCRAM-SHA-256=[iterations=8192,password={password}]"),
        format!("SCRAM-SHA-512=[password={password}]"),
    ] {
        kafka_configs(node, &["--alter", "--add-config", &credential], user);
    }
}

/// `kafka-configs --bootstrap-server <PLAINTEXT listener> ARGS --entity-type users
/// --entity-name <user>`; must succeed.
fn kafka_configs(node: &Node, args: &[&str], user: &str) -> String {
    run_ok(
        Command::new(launcher("kafka-configs"))
            .args(["--bootstrap-server", node.listener("PLAINTEXT")])
            .args(args)
            .args(["--entity-type", "users", "--entity-name", user]),
        LIMIT,
        None,
    )
}

/// How a client connects: the listener (named after its security protocol), and for SASL
/// the mechanism, user name and password.
#[derive(Clone, Copy, Debug)]
struct Login<'a> {
    listener: &'a str,
    sasl: Option<(&'a str, &'a str, &'a str)>,
}

impl<'a> Login<'a> {
    fn ssl() -> Self {
        Login {
            listener: "SSL",
            sasl: None,
        }
    }

    fn sasl(listener: &'a str, mechanism: &'a str, user: &'a str, password: &'a str) -> Self {
        Login {
            listener,
            sasl: Some((mechanism, user, password)),
        }
    }

    fn tls(&self) -> bool {
        self.listener.ends_with("SSL")
    }

    /// librdkafka properties, as `-X KEY=VALUE` flags (kcat, `roundtrip-confluent`,
    /// `metadata-confluent`).
    fn librdkafka(&self, certs: &Certs) -> Vec<String> {
        let mut props = vec![format!("security.protocol={}", self.listener)];
        if let Some((mechanism, user, password)) = self.sasl {
            props.push(format!("sasl.mechanisms={mechanism}"));
            props.push(format!("sasl.username={user}"));
            props.push(format!("sasl.password={password}"));
        }
        if self.tls() {
            props.push(format!("ssl.ca.location={}", certs.ca().display()));
        }
        props.into_iter().flat_map(|p| ["-X".into(), p]).collect()
    }

    /// A Java client's properties (`--command-config` of Kafka's tools).
    fn java_properties(&self, certs: &Certs) -> String {
        let mut props = format!("security.protocol={}\n", self.listener);
        if let Some((mechanism, user, password)) = self.sasl {
            let module = if mechanism == "PLAIN" {
                "org.apache.kafka.common.security.plain.PlainLoginModule"
            } else {
                "org.apache.kafka.common.security.scram.ScramLoginModule"
            };
            props += &format!(
                "sasl.mechanism={mechanism}\n\
                 sasl.jaas.config={module} required username=\"{user}\" password=\"{password}\";\n"
            );
        }
        if self.tls() {
            props += &format!(
                "ssl.truststore.type=PEM\nssl.truststore.location={}\n",
                certs.ca().display()
            );
        }
        // Fail within the tools' time limits rather than retry for minutes.
        props + "request.timeout.ms=15000\ndefault.api.timeout.ms=30000\n"
    }

    /// The security flags of `roundtrip-kafka-python` and `roundtrip-kafkajs`.
    fn roundtrip_flags(&self, certs: &Certs) -> Vec<String> {
        let mut args = vec!["--security-protocol".to_string(), self.listener.into()];
        if let Some((mechanism, user, password)) = self.sasl {
            args.extend(
                [
                    "--sasl-mechanism",
                    mechanism,
                    "--username",
                    user,
                    "--password",
                    password,
                ]
                .map(String::from),
            );
        }
        if self.tls() {
            args.extend(["--ca-file".to_string(), certs.ca().display().to_string()]);
        }
        args
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Asks for metadata through `login`'s listener with confluent-kafka (`metadata-confluent`,
/// like `kcat -L`); `extra` are more `-X` flags. Fails fast on an authentication error.
fn metadata(node: &Node, certs: &Certs, login: Login, extra: &[&str]) -> Output {
    run(
        Command::new(launcher("metadata-confluent"))
            .args(["-b", node.listener(login.listener), "--timeout", "10"])
            .args(login.librdkafka(certs))
            .args(extra),
        LIMIT,
        None,
    )
}

/// Waits until `login` succeeds (SCRAM credentials reach the broker through the metadata log
/// a moment after `kafka-configs` returns).
fn await_login(node: &Node, certs: &Certs, login: Login) {
    wait_until(
        &format!("{login:?} logs in"),
        Duration::from_secs(30),
        || metadata(node, certs, login, &[]).status.success(),
    );
}

/// Asserts that `login` fails with an authentication error, and fast.
fn assert_refused(node: &Node, certs: &Certs, login: Login) {
    let started = Instant::now();
    let out = metadata(node, certs, login, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("_AUTHENTICATION"),
        "{login:?} must fail to authenticate ({}):\n{text}",
        out.status
    );
    assert!(started.elapsed() < Duration::from_secs(10), "{login:?}");
}

/// Produces `n` lines with kcat (acks=all) through `login` and reads them back with it;
/// `extra` are more `-X` flags.
fn kcat_roundtrip(node: &Node, certs: &Certs, login: Login, n: usize, extra: &[String]) {
    let topic = topic(&format!("kcat-{}", login.listener.to_lowercase()));
    let lines: Vec<String> = (0..n).map(|i| format!("{topic}-{i}")).collect();
    let addr = node.listener(login.listener);
    run_ok(
        Command::new("kcat")
            .args(["-P", "-b", addr, "-t", &topic, "-X", "acks=all"])
            .args(login.librdkafka(certs))
            .args(extra),
        LIMIT,
        Some((lines.join("\n") + "\n").as_bytes()),
    );
    let out = run_ok(
        Command::new("kcat")
            .args([
                "-C",
                "-b",
                addr,
                "-t",
                &topic,
                "-e",
                "-q",
                "-o",
                "beginning",
            ])
            .args(["-f", "%s\n"])
            .args(login.librdkafka(certs))
            .args(extra),
        LIMIT,
        None,
    );
    assert_same_lines(&lines, &out, &format!("kcat {login:?}"));
}

fn assert_same_lines(sent: &[String], out: &str, what: &str) {
    let mut got: Vec<&str> = out.lines().collect();
    let mut want: Vec<&str> = sent.iter().map(String::as_str).collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want, "{what}: every record comes back once");
}

/// Writes `login`'s Java client properties (plus `extra` lines) into `dir`; returns the
/// file's path.
fn java_config(dir: &Path, certs: &Certs, login: Login, extra: &str) -> String {
    let path = dir.join(format!(
        "{}-{}.properties",
        login.listener,
        login.sasl.map_or("tls", |s| s.0)
    ));
    std::fs::write(&path, login.java_properties(certs) + extra).unwrap();
    path.display().to_string()
}

/// Kafka's `kafka-topics --create`, console producer and console consumer through `login`:
/// `n` records in, the same `n` out.
fn java_console_roundtrip(node: &Node, certs: &Certs, login: Login, n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let config = java_config(dir.path(), certs, login, "");
    let addr = node.listener(login.listener);
    let topic = topic(&format!("console-{}", login.listener.to_lowercase()));
    let common = ["--bootstrap-server", addr, "--command-config", &config];
    run_ok(
        Command::new(launcher("kafka-topics"))
            .args(common)
            .args(["--create", "--topic", &topic, "--partitions", "2"])
            .args(["--replication-factor", "1"]),
        LIMIT,
        None,
    );
    let lines: Vec<String> = (0..n).map(|i| format!("{topic}-{i}")).collect();
    run_ok(
        Command::new(launcher("kafka-console-producer"))
            .args(common)
            .args(["--topic", &topic, "--command-property", "acks=all"]),
        LIMIT,
        Some((lines.join("\n") + "\n").as_bytes()),
    );
    let out = run_ok(
        Command::new(launcher("kafka-console-consumer"))
            .args(common)
            .args(["--topic", &topic, "--from-beginning"])
            .args(["--max-messages", &n.to_string(), "--timeout-ms", "60000"]),
        LIMIT,
        None,
    );
    assert_same_lines(&lines, &out, &format!("console tools {login:?}"));
}

/// Sum of the `sluice_authentications_total` samples with `outcome="<outcome>"`, over every
/// listener and mechanism.
fn authentications(node: &Node, outcome: &str) -> f64 {
    counter(
        node,
        "sluice_authentications_total",
        &format!("outcome=\"{outcome}\""),
    )
}

/// Sum of the samples of counter `name` whose labels contain `label` (any if empty).
fn counter(node: &Node, name: &str, label: &str) -> f64 {
    scrape_metrics(node)
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn librdkafka_round_trips_over_sasl_ssl_with_every_mechanism_over_ssl_and_sasl_plaintext() {
    let certs = Certs::generate();
    let node = secure_node(&certs, "none", &[]);
    let successes = authentications(&node, "success");
    // kcat: PLAIN and TLS.
    for login in [
        Login::sasl("SASL_SSL", "PLAIN", "alice", "alice-secret"),
        Login::ssl(),
        Login::sasl("SASL_PLAINTEXT", "PLAIN", "bob", "bob-secret"),
    ] {
        kcat_roundtrip(&node, &certs, login, 1000, &[]);
    }
    // confluent-kafka: SCRAM.
    add_scram_user(&node, "carol", "carol-secret");
    let first = Login::sasl("SASL_SSL", "SCRAM-SHA-512", "carol", "carol-secret");
    await_login(&node, &certs, first);
    for login in [
        first,
        Login::sasl("SASL_SSL", "SCRAM-SHA-256", "carol", "carol-secret"),
        Login::sasl("SASL_PLAINTEXT", "SCRAM-SHA-256", "carol", "carol-secret"),
        Login::sasl("SASL_SSL", "PLAIN", "alice", "alice-secret"),
    ] {
        let flags = login.librdkafka(&certs);
        roundtrip_at(
            node.listener(login.listener),
            "confluent",
            1000,
            &strs(&flags),
        );
    }
    assert!(
        authentications(&node, "success") >= successes + 6.0,
        "SASL logins are counted:\n{}",
        scrape_metrics(&node)
    );
}

#[test]
fn kafka_console_tools_round_trip_over_sasl_ssl_ssl_and_sasl_plaintext() {
    let certs = Certs::generate();
    let node = secure_node(&certs, "none", &[]);
    add_scram_user(&node, "carol", "carol-secret");
    let scram = Login::sasl("SASL_SSL", "SCRAM-SHA-512", "carol", "carol-secret");
    await_login(&node, &certs, scram);
    for login in [
        scram,
        Login::sasl("SASL_SSL", "PLAIN", "alice", "alice-secret"),
        Login::ssl(),
        Login::sasl("SASL_PLAINTEXT", "SCRAM-SHA-256", "carol", "carol-secret"),
    ] {
        java_console_roundtrip(&node, &certs, login, 200);
    }
}

#[test]
fn kafka_python_and_kafkajs_round_trip_over_sasl_ssl_ssl_and_sasl_plaintext() {
    let certs = Certs::generate();
    let node = secure_node(&certs, "none", &[]);
    add_scram_user(&node, "carol", "carol-secret");
    let scram = Login::sasl("SASL_SSL", "SCRAM-SHA-256", "carol", "carol-secret");
    await_login(&node, &certs, scram);
    for login in [
        scram,
        Login::sasl("SASL_SSL", "SCRAM-SHA-512", "carol", "carol-secret"),
        Login::ssl(),
        Login::sasl("SASL_PLAINTEXT", "PLAIN", "alice", "alice-secret"),
    ] {
        // Both take Kafka-style flags (`--security-protocol`, `--sasl-mechanism`, ...).
        let args = login.roundtrip_flags(&certs);
        for client in ["kafka-python", "kafkajs"] {
            roundtrip_at(node.listener(login.listener), client, 500, &strs(&args));
        }
    }
}

#[test]
fn kafka_configs_creates_describes_and_deletes_scram_credentials() {
    let certs = Certs::generate();
    let node = secure_node(&certs, "none", &[]);
    // As in Kafka (ScramControlManager keys a request's changes by user name), two
    // mechanisms of one user in one request are refused and neither is applied.
    let out = run(
        Command::new(launcher("kafka-configs"))
            .args(["--bootstrap-server", node.listener("PLAINTEXT"), "--alter"])
            .args([
                "--add-config",
                "SCRAM-SHA-256=[password=x],SCRAM-SHA-512=[password=x]",
            ])
            .args(["--entity-type", "users", "--entity-name", "dave"]),
        LIMIT,
        None,
    );
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && text.contains("A user credential cannot be altered twice in the same request"),
        "{text}"
    );

    add_scram_user(&node, "dave", "dave-secret");
    let described = kafka_configs(&node, &["--describe"], "dave");
    assert!(
        described.contains(
            "SCRAM credential configs for user-principal 'dave' are \
             SCRAM-SHA-256=iterations=8192, SCRAM-SHA-512=iterations=4096"
        ),
        "{described}"
    );
    let all = run_ok(
        Command::new(launcher("kafka-configs"))
            .args(["--bootstrap-server", node.listener("PLAINTEXT")])
            .args(["--describe", "--entity-type", "users"]),
        LIMIT,
        None,
    );
    assert!(all.contains("user-principal 'dave'"), "{all}");

    let sha512 = Login::sasl("SASL_SSL", "SCRAM-SHA-512", "dave", "dave-secret");
    let sha256 = Login::sasl("SASL_PLAINTEXT", "SCRAM-SHA-256", "dave", "dave-secret");
    await_login(&node, &certs, sha512);
    await_login(&node, &certs, sha256);

    kafka_configs(
        &node,
        &["--alter", "--delete-config", "SCRAM-SHA-512"],
        "dave",
    );
    let described = kafka_configs(&node, &["--describe"], "dave");
    assert!(
        described.contains("SCRAM-SHA-256=iterations=8192") && !described.contains("SCRAM-SHA-512"),
        "{described}"
    );
    wait_until(
        "the deleted SCRAM-SHA-512 credential stops working",
        Duration::from_secs(30),
        || !metadata(&node, &certs, sha512, &[]).status.success(),
    );
    assert_refused(&node, &certs, sha512);
    await_login(&node, &certs, sha256);

    // A new password replaces the old one.
    add_scram_user(&node, "dave", "dave-new-secret");
    await_login(
        &node,
        &certs,
        Login::sasl("SASL_SSL", "SCRAM-SHA-512", "dave", "dave-new-secret"),
    );
    assert_refused(&node, &certs, sha256);

    // Without credentials the user is gone from the listing.
    kafka_configs(
        &node,
        &["--alter", "--delete-config", "SCRAM-SHA-512"],
        "dave",
    );
    kafka_configs(
        &node,
        &["--alter", "--delete-config", "SCRAM-SHA-256"],
        "dave",
    );
    let described = kafka_configs(&node, &["--describe"], "dave");
    assert!(!described.contains("SCRAM-SHA"), "{described}");
}

#[test]
fn wrong_passwords_and_unknown_users_are_refused_and_counted() {
    let certs = Certs::generate();
    let node = secure_node(&certs, "none", &[]);
    add_scram_user(&node, "carol", "carol-secret");
    await_login(
        &node,
        &certs,
        Login::sasl("SASL_SSL", "SCRAM-SHA-512", "carol", "carol-secret"),
    );
    let failures = authentications(&node, "failure");
    for login in [
        Login::sasl("SASL_SSL", "SCRAM-SHA-512", "carol", "wrong"),
        Login::sasl("SASL_SSL", "SCRAM-SHA-256", "mallory", "carol-secret"),
        Login::sasl("SASL_SSL", "PLAIN", "alice", "bob-secret"),
        Login::sasl("SASL_PLAINTEXT", "PLAIN", "mallory", "x"),
        // PLAIN users are not SCRAM users, nor the other way round.
        Login::sasl("SASL_PLAINTEXT", "SCRAM-SHA-256", "alice", "alice-secret"),
        Login::sasl("SASL_PLAINTEXT", "PLAIN", "carol", "carol-secret"),
    ] {
        assert_refused(&node, &certs, login);
    }

    // kcat reports the broker's reason.
    let wrong = Login::sasl("SASL_SSL", "PLAIN", "alice", "wrong");
    let out = run(
        Command::new("kcat")
            .args(["-L", "-b", node.listener("SASL_SSL"), "-m", "5"])
            .args(wrong.librdkafka(&certs)),
        LIMIT,
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("SASL authentication error"),
        "kcat with a wrong password ({}): {stderr}",
        out.status
    );

    // Java: the admin client gives up at once with SaslAuthenticationException.
    let dir = tempfile::tempdir().unwrap();
    let wrong = Login::sasl("SASL_SSL", "SCRAM-SHA-512", "carol", "carol-wrong");
    let out = run(
        Command::new(launcher("kafka-topics"))
            .args(["--bootstrap-server", node.listener("SASL_SSL"), "--list"])
            .args([
                "--command-config",
                &java_config(dir.path(), &certs, wrong, ""),
            ]),
        LIMIT,
        None,
    );
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("SaslAuthenticationException"),
        "kafka-topics with a wrong password must fail ({}): {text}",
        out.status
    );

    let counted = authentications(&node, "failure") - failures;
    assert!(
        counted >= 8.0,
        "8 failed logins (at least), {counted} counted:\n{}",
        scrape_metrics(&node)
    );
}

#[test]
fn mutual_tls_requires_a_client_certificate_signed_by_the_trusted_ca() {
    let certs = Certs::generate();
    let other = Certs::generate();
    let node = secure_node(&certs, "required", &[]);
    let cert_flags = |c: &Certs| {
        vec![
            "-X".to_string(),
            format!("ssl.certificate.location={}", c.client_cert().display()),
            "-X".to_string(),
            format!("ssl.key.location={}", c.client_key().display()),
        ]
    };
    let kcat = |extra: &[String]| {
        run(
            Command::new("kcat")
                .args(["-L", "-b", node.listener("SSL"), "-m", "5"])
                .args(Login::ssl().librdkafka(&certs))
                .args(extra),
            LIMIT,
            None,
        )
    };
    let out = kcat(&cert_flags(&certs));
    assert!(
        out.status.success(),
        "kcat with a client certificate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    kcat_roundtrip(&node, &certs, Login::ssl(), 100, &cert_flags(&certs));
    let out = kcat(&[]);
    assert!(
        !out.status.success(),
        "kcat without a client certificate must fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = kcat(&cert_flags(&other));
    assert!(
        !out.status.success(),
        "kcat with a certificate from another CA must fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // kafka-python, kafkajs and a Java client (PEM key store) with the client certificate.
    let (ca, cert, key) = (
        certs.ca().display().to_string(),
        certs.client_cert().display().to_string(),
        certs.client_key().display().to_string(),
    );
    for client in ["kafka-python", "kafkajs"] {
        roundtrip_at(
            node.listener("SSL"),
            client,
            100,
            &[
                "--security-protocol",
                "SSL",
                "--ca-file",
                &ca,
                "--cert-file",
                &cert,
                "--key-file",
                &key,
            ],
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let keystore = format!(
        "ssl.keystore.type=PEM\nssl.keystore.location={}\n",
        certs.client_keystore().display()
    );
    run_ok(
        Command::new(launcher("kafka-topics"))
            .args(["--bootstrap-server", node.listener("SSL"), "--list"])
            .args([
                "--command-config",
                &java_config(dir.path(), &certs, Login::ssl(), &keystore),
            ]),
        LIMIT,
        None,
    );
}

// --- Below the clients: raw frames on the SASL and TLS ports --------------------------

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// One request frame: length, header (the version `R` needs at `version`), body.
fn frame<R: Request>(request: &R, version: i16, correlation: i32) -> Vec<u8> {
    use kafka_protocol::messages::RequestHeader;
    let mut payload = bytes::BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str("sluice-security-test")))
        .encode(&mut payload, R::header_version(version))
        .unwrap();
    request.encode(&mut payload, version).unwrap();
    let mut f = (payload.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&payload);
    f
}

/// Sends `request` at `version` and reads its response; `None` if the connection closed
/// (or stayed silent for the read timeout) instead.
fn ask<R: Request>(s: &mut TcpStream, request: &R, version: i16) -> Option<R::Response> {
    use kafka_protocol::messages::ResponseHeader;
    s.write_all(&frame(request, version, 7)).ok()?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).ok()?;
    let mut body = bytes::Bytes::from(body);
    let header = ResponseHeader::decode(&mut body, R::Response::header_version(version)).unwrap();
    assert_eq!(header.correlation_id, 7);
    Some(R::Response::decode(&mut body, version).unwrap())
}

/// True once the peer has closed the connection (EOF or reset) within the read timeout;
/// bytes before that (a TLS alert) are skipped.
fn is_closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => return !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        }
    }
}

fn api_versions() -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("sluice-security-test"))
        .with_client_software_version(StrBytes::from_static_str("1.0"))
}

fn handshake(s: &mut TcpStream, mechanism: &'static str) -> i16 {
    let request =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
    let response = ask(s, &request, 1).expect("SaslHandshake answered");
    if response.error_code == 0 {
        let offered: Vec<&str> = response.mechanisms.iter().map(|m| m.as_str()).collect();
        assert!(offered.contains(&mechanism), "{offered:?}");
    }
    response.error_code
}

/// SaslAuthenticate v2 with a PLAIN token for `user`/`password`: (error code, time taken).
fn plain_login(s: &mut TcpStream, user: &str, password: &str) -> (i16, Duration) {
    let started = Instant::now();
    let response = plain_authenticate(s, user, password);
    (response.error_code, started.elapsed())
}

/// SaslAuthenticate v2 with a PLAIN token for `user`/`password`: the answer.
fn plain_authenticate(s: &mut TcpStream, user: &str, password: &str) -> SaslAuthenticateResponse {
    let token = format!("\0{user}\0{password}");
    let request =
        SaslAuthenticateRequest::default().with_auth_bytes(bytes::Bytes::from(token.into_bytes()));
    ask(s, &request, 2).expect("SaslAuthenticate answered")
}

#[test]
fn sasl_sessions_end_after_connections_max_reauth_ms_unless_the_client_re_authenticates() {
    let certs = Certs::generate();
    let lifetime = Duration::from_millis(3000);
    let node = secure_node(
        &certs,
        "none",
        &[
            "--config",
            &format!("connections.max.reauth.ms={}", lifetime.as_millis()),
        ],
    );
    let addr = node.listener("SASL_PLAINTEXT");
    let metadata = || MetadataRequest::default();

    // The login's answer says how long the session lasts (KIP-368).
    let mut s = connect(addr);
    assert_eq!(handshake(&mut s, "PLAIN"), 0);
    let login = plain_authenticate(&mut s, "alice", "alice-secret");
    assert_eq!(login.error_code, 0);
    let told = login.session_lifetime_ms;
    assert!((2000..=3000).contains(&told), "session lifetime {told} ms");
    // The same user again on the open connection renews it; requests go on past the first
    // session's end.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(handshake(&mut s, "PLAIN"), 0);
    let renewed = plain_authenticate(&mut s, "alice", "alice-secret");
    assert_eq!(renewed.error_code, 0);
    assert!(renewed.session_lifetime_ms > 2000, "{renewed:?}");
    std::thread::sleep(Duration::from_millis(2000));
    assert!(
        ask(&mut s, &metadata(), 12).is_some(),
        "served after renewal"
    );

    // A client that does not re-authenticate is cut off at its first request after the end.
    let expired = counter(&node, "sluice_expired_sessions_closed_total", "");
    let mut late = connect(addr);
    assert_eq!(handshake(&mut late, "PLAIN"), 0);
    assert_eq!(plain_login(&mut late, "alice", "alice-secret").0, 0);
    assert!(ask(&mut late, &metadata(), 12).is_some());
    std::thread::sleep(lifetime + Duration::from_millis(300));
    assert!(
        ask(&mut late, &metadata(), 12).is_none(),
        "served after expiry"
    );
    assert_eq!(
        counter(&node, "sluice_expired_sessions_closed_total", ""),
        expired + 1.0
    );

    // Re-authentication keeps the principal and the mechanism.
    let mut other = connect(addr);
    assert_eq!(handshake(&mut other, "PLAIN"), 0);
    assert_eq!(plain_login(&mut other, "alice", "alice-secret").0, 0);
    assert_eq!(handshake(&mut other, "PLAIN"), 0);
    let (error, _) = plain_login(&mut other, "bob", "bob-secret");
    assert_eq!(error, SASL_AUTHENTICATION_FAILED, "became bob");
    assert!(is_closed(&mut other));
    let mut switch = connect(addr);
    assert_eq!(handshake(&mut switch, "PLAIN"), 0);
    assert_eq!(plain_login(&mut switch, "alice", "alice-secret").0, 0);
    assert_eq!(
        handshake(&mut switch, "SCRAM-SHA-256"),
        UNSUPPORTED_SASL_MECHANISM
    );
    assert!(is_closed(&mut switch));
    let failed = counter(
        &node,
        "sluice_reauthentications_total",
        "outcome=\"failure\"",
    );
    assert_eq!(
        failed, 2.0,
        "the two refused re-authentications are counted"
    );

    // Kafka's Java producer re-authenticates its connections by itself: 10 s of records at
    // a 3 s session lifetime, every one acknowledged and no connection cut off.
    let renewals = counter(
        &node,
        "sluice_reauthentications_total",
        "outcome=\"success\"",
    );
    let expired = counter(&node, "sluice_expired_sessions_closed_total", "");
    let dir = tempfile::tempdir().unwrap();
    let java = Login::sasl("SASL_PLAINTEXT", "PLAIN", "alice", "alice-secret");
    let config = java_config(dir.path(), &certs, java, "acks=all\n");
    let topic = topic("reauth");
    run_ok(
        Command::new(launcher("kafka-topics"))
            .args(["--bootstrap-server", addr, "--command-config", &config])
            .args(["--create", "--topic", &topic, "--partitions", "1"])
            .args(["--replication-factor", "1"]),
        LIMIT,
        None,
    );
    let out = run_ok(
        Command::new(launcher("kafka-producer-perf-test"))
            .args(["--bootstrap-server", addr, "--topic", &topic])
            .args(["--num-records", "1000", "--throughput", "100"])
            .args(["--record-size", "100", "--producer.config", &config]),
        LIMIT,
        None,
    );
    assert!(out.contains("1000 records sent"), "{out}");
    let renewed = counter(
        &node,
        "sluice_reauthentications_total",
        "outcome=\"success\"",
    );
    assert!(
        renewed >= renewals + 2.0,
        "the producer re-authenticated {} times",
        renewed - renewals
    );
    assert_eq!(
        counter(&node, "sluice_expired_sessions_closed_total", ""),
        expired,
        "a Java client's connection was cut off"
    );
}

#[test]
fn a_failed_plain_login_gets_sasl_authentication_failed_after_the_delay_then_a_close() {
    let certs = Certs::generate();
    let delay = Duration::from_millis(700);
    let node = secure_node(
        &certs,
        "none",
        &[
            "--config",
            &format!(
                "connection.failed.authentication.delay.ms={}",
                delay.as_millis()
            ),
        ],
    );
    let addr = node.listener("SASL_PLAINTEXT");
    let failures = authentications(&node, "failure");

    // ApiVersions is answered before authentication and offers the SASL APIs.
    let mut s = connect(addr);
    let versions = ask(&mut s, &api_versions(), 3).expect("ApiVersions answered");
    assert_eq!(versions.error_code, 0);
    let keys: Vec<i16> = versions.api_keys.iter().map(|k| k.api_key).collect();
    assert!(keys.contains(&17) && keys.contains(&36), "{keys:?}");
    assert_eq!(handshake(&mut s, "PLAIN"), 0);
    let (error, took) = plain_login(&mut s, "alice", "wrong");
    assert_eq!(error, SASL_AUTHENTICATION_FAILED);
    assert!(
        took >= delay - Duration::from_millis(50),
        "answered after {took:?}"
    );
    assert!(is_closed(&mut s), "closed after a failed login");

    // An unknown mechanism is refused with the list of the enabled ones.
    let mut s = connect(addr);
    assert_eq!(handshake(&mut s, "GSSAPI"), UNSUPPORTED_SASL_MECHANISM);

    // The right password: authenticated, then any request is served.
    let mut s = connect(addr);
    assert_eq!(handshake(&mut s, "PLAIN"), 0);
    let (error, _) = plain_login(&mut s, "alice", "alice-secret");
    assert_eq!(error, 0);
    let metadata = ask(&mut s, &MetadataRequest::default(), 12).expect("Metadata answered");
    assert_eq!(metadata.brokers.len(), 1);
    assert_eq!(
        format!(
            "{}:{}",
            metadata.brokers[0].host.as_str(),
            metadata.brokers[0].port
        ),
        addr,
        "the broker is advertised at the listener the client came in on"
    );
    assert!(
        authentications(&node, "failure") > failures,
        "the failed login is counted:\n{}",
        scrape_metrics(&node)
    );
}

#[test]
fn a_sasl_listener_closes_a_connection_that_sends_other_requests_before_authenticating() {
    let certs = Certs::generate();
    let node = secure_node(&certs, "none", &[]);
    let addr = node.listener("SASL_PLAINTEXT");
    // Metadata first.
    let mut s = connect(addr);
    assert!(
        ask(&mut s, &MetadataRequest::default(), 4).is_none(),
        "answered"
    );
    assert!(is_closed(&mut s));
    // Metadata after the handshake, before SaslAuthenticate: closed, after an error
    // response or none (Kafka answers with ILLEGAL_SASL_STATE, then closes).
    let mut s = connect(addr);
    assert_eq!(handshake(&mut s, "PLAIN"), 0);
    let _ = ask(&mut s, &MetadataRequest::default(), 4);
    assert!(is_closed(&mut s));
    // The same request is served on the PLAINTEXT listener.
    let mut s = connect(node.listener("PLAINTEXT"));
    assert!(ask(&mut s, &MetadataRequest::default(), 4).is_some());
}

#[test]
fn oversized_frames_before_authentication_close_the_connection_without_allocating() {
    let certs = Certs::generate();
    let node = secure_node(&certs, "none", &[]);
    let addr = node.listener("SASL_PLAINTEXT");
    // Warm up (threads, buffers) before taking the baseline.
    let mut s = connect(addr);
    ask(&mut s, &api_versions(), 3).expect("ApiVersions answered");
    drop(s);
    std::thread::sleep(Duration::from_millis(300));
    let rss_before = node.rss_kib();

    // Past sasl.server.max.receive.size (512 KiB): 600 KiB, 2 GiB - 1 and 2 GiB (negative
    // as a Kafka INT32), each followed by a stream of bytes the broker must not buffer.
    // Writing stops when the broker closes.
    for claimed in [600 * 1024, 0x7fff_ffff, 0x8000_0000u32] {
        let mut s = connect(addr);
        s.write_all(&claimed.to_be_bytes()).unwrap();
        let chunk = vec![0x41u8; 64 * 1024];
        let mut written = 0usize;
        while written < 32 << 20 {
            match s.write(&chunk) {
                Ok(n) => written += n,
                Err(_) => break, // closed (or not read from for the write timeout)
            }
        }
        assert!(
            written < 32 << 20,
            "a frame claiming {claimed} bytes: the broker read 32 MiB of it"
        );
        assert!(
            is_closed(&mut s),
            "a frame claiming {claimed} bytes is closed"
        );
    }
    let grown = node.rss_kib().saturating_sub(rss_before);
    assert!(grown < 8 * 1024, "RSS grew by {grown} KiB");
    // The broker carries on.
    let mut s = connect(addr);
    assert!(ask(&mut s, &api_versions(), 3).is_some());
}

#[test]
fn a_plaintext_client_on_the_ssl_port_fails_quickly() {
    let certs = Certs::generate();
    let node = secure_node(&certs, "none", &[]);
    for listener in ["SSL", "SASL_SSL"] {
        let started = Instant::now();
        let out = run(
            Command::new("kcat").args(["-L", "-b", node.listener(listener), "-m", "5"]),
            LIMIT,
            None,
        );
        assert!(
            !out.status.success(),
            "kcat without TLS on {listener}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(started.elapsed() < Duration::from_secs(30), "{listener}");
        // A raw Kafka request is not a TLS ClientHello: the broker closes the connection.
        let mut s = connect(node.listener(listener));
        s.write_all(&frame(&api_versions(), 3, 7)).unwrap();
        assert!(is_closed(&mut s), "{listener}: closed");
    }
}

#[test]
fn franz_go_kgo_scram_tests_pass_against_a_sasl_plaintext_listener() {
    // pkg/kgo's TestSCRAMAuth logs in with KGO_TEST_SCRAM (user:password[:256|512]) at
    // KGO_TEST_SCRAM_SEEDS, without TLS, and sends Metadata; TestSCRAMAuthBadCredentials
    // logs in there as an unknown user with SCRAM-SHA-256 and must fail.
    let node = Node::start_with(&[
        "--config",
        "listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        "--config",
        "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512",
    ]);
    add_scram_user(&node, "kgo", "kgo-secret");
    let no_tls = Certs::generate(); // unused by SASL_PLAINTEXT logins
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let login = Login::sasl("SASL_PLAINTEXT", mechanism, "kgo", "kgo-secret");
        await_login(&node, &no_tls, login);
    }
    let dir = tempfile::tempdir().unwrap();
    let allowlist = dir.path().join("scram.txt");
    std::fs::write(&allowlist, "TestSCRAMAuth\nTestSCRAMAuthBadCredentials\n").unwrap();
    for bits in ["256", "512"] {
        let out = run(
            Command::new(launcher("kgo-suite"))
                .args(["--bootstrap", node.listener("PLAINTEXT"), "--allowlist"])
                .arg(&allowlist)
                .args(["--timeout", "2m"])
                .env("KGO_TEST_SCRAM", format!("kgo:kgo-secret:{bits}"))
                .env("KGO_TEST_SCRAM_SEEDS", node.listener("SASL_PLAINTEXT"))
                .current_dir(compat_dir()),
            Duration::from_secs(180),
            None,
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        for test in ["TestSCRAMAuth", "TestSCRAMAuthBadCredentials"] {
            assert!(
                stdout.contains(&format!("--- PASS: {test} ")),
                "SCRAM-SHA-{bits}: {test} did not pass ({}):\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Writes one controller RPC frame (4-byte length, then JSON).
fn send_rpc(s: &mut TcpStream, json: &str) {
    let mut frame = (json.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(json.as_bytes());
    s.write_all(&frame).expect("write");
}

/// Reads one controller RPC frame's JSON; None if the connection closed instead.
fn read_rpc(s: &mut TcpStream) -> Option<String> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len).min(1 << 20) as usize];
    s.read_exact(&mut body).ok()?;
    Some(String::from_utf8_lossy(&body).into_owned())
}

/// Sends one controller RPC to `addr`; whether the connection answered it (false: closed
/// without an answer).
fn controller_rpc(addr: &str, json: &str) -> bool {
    let mut s = connect(addr);
    send_rpc(&mut s, json);
    read_rpc(&mut s).is_some()
}

/// Topic names a node's Metadata shows.
fn topic_names(node: &Node) -> Vec<String> {
    let out = run_ok(
        Command::new(launcher("kafka-topics")).args(["--bootstrap-server", &node.kafka, "--list"]),
        LIMIT,
        None,
    );
    out.lines().map(str::to_string).collect()
}

#[test]
fn the_cluster_secret_keeps_processes_without_it_out_of_the_controller_quorum() {
    // Without a secret the controller port takes commands from anyone: a raw Execute deletes
    // a topic (what the secret is for, and proof that this test can tell).
    let open = Node::start_cluster(1, 0, &[]).remove(0);
    let doomed = topic("doomed");
    run_ok(
        Command::new(launcher("kafka-topics")).args([
            "--bootstrap-server",
            &open.kafka,
            "--create",
            "--topic",
            &doomed,
        ]),
        LIMIT,
        None,
    );
    assert!(controller_rpc(
        &open.controller,
        &format!(r#"{{"Execute":{{"DeleteTopics":["{doomed}"]}}}}"#)
    ));
    wait_until("the open node deletes the topic", LIMIT, || {
        !topic_names(&open).contains(&doomed)
    });

    // A three-node cluster sharing a secret forms, replicates and serves.
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("cluster.secret");
    std::fs::write(&secret, "a-cluster-secret-of-32-characters\n").expect("secret");
    let flag = format!("sluice.cluster.secret.file={}", secret.display());
    let nodes = Node::start_cluster(3, 0, &["--config", &flag]);
    let kept = topic("kept");
    run_ok(
        Command::new(launcher("kafka-topics")).args([
            "--bootstrap-server",
            &nodes[0].kafka,
            "--create",
            "--topic",
            &kept,
            "--replication-factor",
            "3",
        ]),
        LIMIT,
        None,
    );
    roundtrip_at(&nodes[1].kafka, "kafka-python", 100, &[]);

    // Without the secret: commands, learner joins and Raft votes are refused (closed
    // unanswered), on every voter, and change nothing.
    for n in &nodes {
        let addr = n.controller.clone();
        let rpcs = [
            format!(r#"{{"Execute":{{"DeleteTopics":["{kept}"]}}}}"#),
            r#"{"AddLearner":{"id":99,"addr":"127.0.0.1:1"}}"#.to_string(),
            r#"{"BrokerHeartbeat":{"broker_id":1}}"#.to_string(),
        ];
        for rpc in rpcs {
            assert!(!controller_rpc(&addr, &rpc), "{addr} answered {rpc}");
        }
        // Starting the exchange gets a challenge; a made-up proof gets the connection closed
        // before any command is read.
        let mut s = connect(&addr);
        send_rpc(&mut s, r#"{"Hello":{"nonce":"AAAA"}}"#);
        let challenge = read_rpc(&mut s).expect("a challenge");
        assert!(challenge.contains("Challenge"), "{challenge}");
        send_rpc(&mut s, r#"{"Proof":{"proof":"AAAA"}}"#);
        send_rpc(
            &mut s,
            &format!(r#"{{"Execute":{{"DeleteTopics":["{kept}"]}}}}"#),
        );
        assert_eq!(
            read_rpc(&mut s),
            None,
            "{addr} took a command after a wrong proof"
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        topic_names(&nodes[2]).contains(&kept),
        "the topic is still there"
    );
    let status = nodes[0].admin_status();
    assert!(
        !status.to_string().contains("\"id\":99"),
        "no node 99 joined: {status}"
    );
    let refused = nodes
        .iter()
        .filter(|n| n.log_tail().contains("controller connection refused"))
        .count();
    assert_eq!(refused, 3, "every voter logged the refusals");
}

/// `sluice admin` on `bootstrap` with a client properties file; its output, or its stderr
/// as the error.
fn sluice_admin(bootstrap: &str, config: &Path, args: &[&str]) -> Result<String, String> {
    let mut command = Command::new(sluice_compat_tests::sluice_bin());
    command
        .args(["admin", "--bootstrap", bootstrap, "--command-config"])
        .arg(config)
        .args(args);
    let out = run(&mut command, LIMIT, None);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn sluice_admin_manages_users_and_acls_over_sasl_ssl_with_a_command_config() {
    let certs = Certs::generate();
    let node = secure_node(
        &certs,
        "none",
        &[
            "--config",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "--config",
            "super.users=User:alice",
        ],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let config = |name: &str, mechanism: &str, user: &str, password: &str| {
        let module = if mechanism == "PLAIN" {
            "org.apache.kafka.common.security.plain.PlainLoginModule"
        } else {
            "org.apache.kafka.common.security.scram.ScramLoginModule"
        };
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "security.protocol=SASL_SSL\nsasl.mechanism={mechanism}\n\
                 sasl.jaas.config={module} required username=\"{user}\" password=\"{password}\";\n\
                 ssl.truststore.type=PEM\nssl.truststore.location={}\n",
                certs.ca().display()
            ),
        )
        .expect("properties");
        path
    };
    let alice = config("alice.properties", "PLAIN", "alice", "alice-secret");
    let carol = config("carol.properties", "SCRAM-SHA-256", "carol", "carol-secret");
    let bootstrap = node.listener("SASL_SSL");
    let admin = |args: &[&str]| sluice_admin(bootstrap, &alice, args).expect("sluice admin");

    // The super user (PLAIN over TLS) creates a topic and the SCRAM user carol.
    let mine = topic("carol-");
    let other = topic("other");
    admin(&["topics", "create", &mine]);
    admin(&["topics", "create", &other]);
    admin(&[
        "users",
        "add",
        "carol",
        "--password",
        "carol-secret",
        "--mechanism",
        "SCRAM-SHA-256",
    ]);
    let users: serde_json::Value =
        serde_json::from_str(&admin(&["--json", "users", "list"])).expect("json");
    assert_eq!(
        users,
        serde_json::json!([{"user": "carol", "mechanism": "SCRAM-SHA-256", "iterations": 4096}])
    );

    // Carol logs in with SCRAM but sees nothing until an ACL lets her.
    let carol_topics = || sluice_admin(bootstrap, &carol, &["topics", "list"]);
    let seen = carol_topics().expect("carol logs in");
    assert!(!seen.contains(&mine) && !seen.contains(&other), "{seen}");
    admin(&[
        "acls",
        "add",
        "--topic",
        "carol-",
        "--prefixed",
        "--principal",
        "User:carol",
        "--operation",
        "WRITE",
    ]);
    let listed = admin(&["acls", "list", "--principal", "User:carol"]);
    assert!(
        listed.contains("carol-") && listed.contains("PREFIXED") && listed.contains("WRITE"),
        "{listed}"
    );
    // Kafka's own tool sees the same ACL.
    let props = dir.path().join("alice-java.properties");
    std::fs::copy(&alice, &props).expect("copy");
    let kafka_listed = run_ok(
        Command::new(launcher("kafka-acls"))
            .args(["--bootstrap-server", bootstrap, "--command-config"])
            .arg(&props)
            .args(["--list", "--principal", "User:carol"]),
        LIMIT,
        None,
    );
    assert!(
        kafka_listed.contains("patternType=PREFIXED") && kafka_listed.contains("operation=WRITE"),
        "{kafka_listed}"
    );
    // WRITE implies DESCRIBE: her topic shows, the other does not.
    let seen = carol_topics().expect("carol logs in");
    assert!(seen.contains(&mine) && !seen.contains(&other), "{seen}");

    let removed = admin(&["--json", "acls", "remove", "--principal", "User:carol"]);
    assert!(removed.contains("\"removed\": 1"), "{removed}");
    assert!(!carol_topics().expect("carol logs in").contains(&mine));

    // Without her credential carol cannot log in; with a wrong password neither.
    let wrong = config("wrong.properties", "SCRAM-SHA-256", "carol", "guess");
    let refused = sluice_admin(bootstrap, &wrong, &["topics", "list"]).expect_err("refused");
    assert!(refused.contains("authentication failed"), "{refused}");
    admin(&["users", "delete", "carol", "--mechanism", "SCRAM-SHA-256"]);
    assert!(carol_topics().is_err(), "a deleted user cannot log in");
}

/// An RSA key (made by openssl) that signs RS256 JWTs, and its JWKS.
struct Signer {
    key: ring::signature::RsaKeyPair,
    kid: String,
}

impl Signer {
    fn new(dir: &Path, kid: &str) -> Self {
        let pem = dir.join(format!("{kid}.pem"));
        let der = dir.join(format!("{kid}.der"));
        run_ok(
            Command::new("openssl")
                .args([
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                    "-out",
                ])
                .arg(&pem),
            LIMIT,
            None,
        );
        run_ok(
            Command::new("openssl")
                .args(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in"])
                .arg(&pem)
                .arg("-out")
                .arg(&der),
            LIMIT,
            None,
        );
        let key = ring::signature::RsaKeyPair::from_pkcs8(&std::fs::read(der).unwrap()).unwrap();
        Self {
            key,
            kid: kid.into(),
        }
    }

    fn jwk(&self) -> serde_json::Value {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let public: ring::rsa::PublicKeyComponents<Vec<u8>> = self.key.public().into();
        serde_json::json!({"kty": "RSA", "kid": self.kid, "alg": "RS256", "use": "sig",
            "n": b64.encode(public.n), "e": b64.encode(public.e)})
    }

    fn token(&self, claims: serde_json::Value) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": self.kid});
        let signed = format!(
            "{}.{}",
            b64.encode(header.to_string()),
            b64.encode(claims.to_string())
        );
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                signed.as_bytes(),
                &mut signature,
            )
            .unwrap();
        format!("{signed}.{}", b64.encode(signature))
    }
}

/// Whether confluent-kafka logs in to `bootstrap` (SASL_PLAINTEXT) with `token`.
fn oauth_login(bootstrap: &str, token: &str) -> bool {
    let out = run(
        Command::new(launcher("metadata-confluent"))
            .args(["-b", bootstrap, "-X", "security.protocol=SASL_PLAINTEXT"])
            .args(["--oauth-token", token, "--timeout", "15"]),
        LIMIT,
        None,
    );
    out.status.success()
}

#[test]
fn oauthbearer_takes_only_tokens_the_jwks_signed_and_franz_go_passes_its_oauth_test() {
    // Kafka's default (unsecured) validator: franz-go's own TestOAuthAuth logs in with an
    // unsigned token, and is refused with an expired one; librdkafka's unsecured JWTs too.
    let open = Node::start_with(&[
        "--config",
        "listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        "--config",
        "sasl.enabled.mechanisms=OAUTHBEARER",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let allowlist = dir.path().join("oauth.txt");
    std::fs::write(&allowlist, "TestOAuthAuth\n").unwrap();
    let out = run(
        Command::new(launcher("kgo-suite"))
            .args(["--bootstrap", open.listener("PLAINTEXT"), "--allowlist"])
            .arg(&allowlist)
            .args(["--timeout", "2m"])
            .env("KGO_TEST_OAUTH_SEEDS", open.listener("SASL_PLAINTEXT"))
            .current_dir(compat_dir()),
        Duration::from_secs(180),
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("--- PASS: TestOAuthAuth "),
        "TestOAuthAuth did not pass:\n{stdout}"
    );
    let unsecured = |node: &Node| {
        run(
            Command::new(launcher("metadata-confluent"))
                .args(["-b", node.listener("SASL_PLAINTEXT")])
                .args(["-X", "security.protocol=SASL_PLAINTEXT"])
                .args(["-X", "sasl.mechanisms=OAUTHBEARER"])
                .args(["-X", "enable.sasl.oauthbearer.unsecure.jwt=true"])
                .args(["-X", "sasl.oauthbearer.config=principal=admin"])
                .args(["--timeout", "15"]),
            LIMIT,
            None,
        )
        .status
        .success()
    };
    assert!(
        unsecured(&open),
        "librdkafka's unsecured JWT on the unsecured validator"
    );

    // With a JWKS: only tokens its key signed, unexpired, for this issuer and audience.
    let signer = Signer::new(dir.path(), "key-1");
    let stranger = Signer::new(dir.path(), "key-2");
    let jwks = dir.path().join("jwks.json");
    std::fs::write(
        &jwks,
        serde_json::json!({"keys": [signer.jwk()]}).to_string(),
    )
    .unwrap();
    let url = format!(
        "sasl.oauthbearer.jwks.endpoint.url=file://{}",
        jwks.display()
    );
    let node = Node::start_with(&[
        "--config",
        "listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        "--config",
        "sasl.enabled.mechanisms=OAUTHBEARER",
        "--config",
        &url,
        "--config",
        "sasl.oauthbearer.expected.issuer=https://idp.example",
        "--config",
        "sasl.oauthbearer.expected.audience=kafka",
    ]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = |sub: &str, iss: &str, aud: &str, exp: u64| serde_json::json!({"sub": sub, "iss": iss, "aud": aud, "exp": exp, "iat": now});
    let bootstrap = node.listener("SASL_PLAINTEXT");
    let good = signer.token(claims("carol", "https://idp.example", "kafka", now + 300));
    assert!(oauth_login(bootstrap, &good), "a token the JWKS key signed");
    let refused = [
        (
            "another key",
            stranger.token(claims("carol", "https://idp.example", "kafka", now + 300)),
        ),
        (
            "expired",
            signer.token(claims("carol", "https://idp.example", "kafka", now - 600)),
        ),
        (
            "another audience",
            signer.token(claims("carol", "https://idp.example", "web", now + 300)),
        ),
        (
            "another issuer",
            signer.token(claims("carol", "https://evil.example", "kafka", now + 300)),
        ),
    ];
    for (why, token) in refused {
        assert!(
            !oauth_login(bootstrap, &token),
            "a token from {why} was taken"
        );
    }
    assert!(
        !unsecured(&node),
        "an unsigned token was taken by the JWKS validator"
    );
    assert!(
        authentications(&node, "failure") >= 5.0,
        "every refused token is counted"
    );
}

#[test]
fn brokers_replicate_over_a_sasl_ssl_inter_broker_listener_with_no_plaintext_port() {
    // Three nodes whose only listeners are SASL_SSL: INTERNAL, where they authenticate to
    // each other as User:broker (PLAIN, their own JAAS username/password), and EXTERNAL for
    // clients; ACLs on, the controller port closed by the cluster secret.
    let certs = Certs::generate();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("cluster.secret");
    std::fs::write(&secret, "another-cluster-secret-of-32-chars").unwrap();
    let module = "org.apache.kafka.common.security.plain.PlainLoginModule required";
    let mut flags: Vec<String> = [
        "listeners=INTERNAL://127.0.0.1:0,EXTERNAL://127.0.0.1:0".to_string(),
        "listener.security.protocol.map=INTERNAL:SASL_SSL,EXTERNAL:SASL_SSL".into(),
        "inter.broker.listener.name=INTERNAL".into(),
        "sasl.mechanism.inter.broker.protocol=PLAIN".into(),
        "sasl.enabled.mechanisms=PLAIN".into(),
        format!(
            "listener.name.internal.plain.sasl.jaas.config={module} username=\"broker\" \
             password=\"broker-secret\" user_broker=\"broker-secret\";"
        ),
        format!(
            "listener.name.external.plain.sasl.jaas.config={module} user_admin=\"admin-secret\" \
             user_alice=\"alice-secret\";"
        ),
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer".into(),
        "super.users=User:broker;User:admin".into(),
        format!("sluice.cluster.secret.file={}", secret.display()),
    ]
    .into_iter()
    .flat_map(|c| ["--config".to_string(), c])
    .collect();
    flags.extend(certs.broker_flags("none"));
    let nodes = Node::start_cluster(3, 0, &strs(&flags));
    let external = nodes[0].listener("EXTERNAL").to_string();
    assert!(
        !nodes[0].listeners.contains_key("PLAINTEXT"),
        "no plaintext port: {:?}",
        nodes[0].listeners
    );
    let admin = dir.path().join("admin.properties");
    std::fs::write(
        &admin,
        format!(
            "security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\n\
             sasl.jaas.config={module} username=\"admin\" password=\"admin-secret\";\n\
             ssl.truststore.type=PEM\nssl.truststore.location={}\n",
            certs.ca().display()
        ),
    )
    .unwrap();
    let replicated = topic("replicated");
    run_ok(
        Command::new(launcher("kafka-topics"))
            .args(["--bootstrap-server", &external, "--command-config"])
            .arg(&admin)
            .args(["--create", "--topic", &replicated, "--partitions", "3"])
            .args([
                "--replication-factor",
                "3",
                "--config",
                "min.insync.replicas=3",
            ]),
        LIMIT,
        None,
    );
    // acks=all with min.insync.replicas=3: every record is on all three nodes, copied over
    // the INTERNAL listener, before it is acknowledged.
    let client = [
        "security.protocol=SASL_SSL",
        "sasl.mechanisms=PLAIN",
        "sasl.username=admin",
        "sasl.password=admin-secret",
    ]
    .map(String::from)
    .into_iter()
    .chain([format!("ssl.ca.location={}", certs.ca().display())])
    .flat_map(|p| ["-X".to_string(), p])
    .collect::<Vec<_>>();
    let input: String = (0..300).map(|i| format!("r{i}\n")).collect();
    let mut produce = Command::new("kcat");
    produce
        .args(["-P", "-b", &external, "-t", &replicated, "-X", "acks=all"])
        .args(&client);
    run_ok(&mut produce, LIMIT, Some(input.as_bytes()));
    for node in &nodes {
        let mut consume = Command::new("kcat");
        consume
            .args([
                "-C",
                "-e",
                "-q",
                "-b",
                node.listener("EXTERNAL"),
                "-t",
                &replicated,
            ])
            .args(["-f", "%s\n"])
            .args(&client);
        let out = run_ok(&mut consume, LIMIT, None);
        assert_eq!(
            out.lines().count(),
            300,
            "all records through {}",
            node.node_id
        );
    }
    let described = sluice_admin(
        &external,
        &admin,
        &["--json", "topics", "describe", &replicated],
    )
    .expect("describe");
    let partitions: serde_json::Value = serde_json::from_str(&described).expect("json");
    for p in partitions["partitions"].as_array().expect("partitions") {
        assert_eq!(p["isr"].as_array().map(Vec::len), Some(3), "in sync: {p}");
    }
}
