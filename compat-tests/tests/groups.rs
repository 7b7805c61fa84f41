//! Consumer groups with real clients: the Java client sharing a topic across members,
//! surviving the loss of a member and of the broker; librdkafka (kcat -G) committing and
//! resuming; Kafka's `kafka-consumer-groups` tool.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_compat_tests::{commit_offsets, launcher, run_ok, topic, Node};

/// A running group-java member and everything it printed.
struct Member {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Member {
    fn start(node: &Node, topic: &str, group: &str, protocol: &str) -> Self {
        let mut child = Command::new(launcher("group-java"))
            .args([
                "--bootstrap",
                &node.kafka,
                "--topic",
                topic,
                "--group",
                group,
            ])
            .args(["--seconds", "170", "--protocol", protocol])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("group-java");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(l);
            }
        });
        Member { child, lines }
    }

    fn values(&self) -> Vec<String> {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .filter_map(|l| l.strip_prefix("R "))
            .filter_map(|r| r.splitn(3, ' ').nth(2))
            .map(String::from)
            .collect()
    }

    fn last_assignment(&self) -> Option<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("ASSIGNED ").map(String::from))
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn produce(node: &Node, topic: &str, range: std::ops::Range<usize>) {
    let input: String = range.map(|i| format!("k{i}:v{i}\n")).collect();
    run_ok(
        Command::new("kcat").args([
            "-P",
            "-b",
            &node.kafka,
            "-t",
            topic,
            "-K:",
            "-X",
            "acks=all",
        ]),
        Duration::from_secs(60),
        Some(input.as_bytes()),
    );
}

/// Counts how often each value was processed across the members.
fn counts(members: &[&Member]) -> HashMap<String, usize> {
    let mut c = HashMap::new();
    for m in members {
        for v in m.values() {
            *c.entry(v).or_insert(0) += 1;
        }
    }
    c
}

fn wait_all(members: &[&Member], range: std::ops::Range<usize>, limit: Duration, what: &str) {
    let deadline = Instant::now() + limit;
    loop {
        let c = counts(members);
        let missing = range
            .clone()
            .filter(|i| !c.contains_key(&format!("v{i}")))
            .count();
        if missing == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {missing} records never consumed within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn java_group_shares_partitions_and_survives_member_and_broker_loss() {
    java_group("classic", &["--config", "num.partitions=6"]);
}

#[test]
fn java_consumer_protocol_group_shares_partitions_and_survives_member_and_broker_loss() {
    java_group(
        "consumer",
        &[
            "--config",
            "num.partitions=6",
            "--config",
            "group.consumer.session.timeout.ms=10000",
            "--config",
            "group.consumer.heartbeat.interval.ms=1000",
        ],
    );
}

/// Three members of one group (classic or KIP-848 protocol) on a 6-partition topic.
fn java_group(protocol: &str, node_args: &[&str]) {
    let mut node = Node::start_with(node_args);
    let topic = topic(&format!("group-{protocol}"));
    produce(&node, &topic, 0..3000);

    let members: Vec<Member> = (0..3)
        .map(|_| Member::start(&node, &topic, &format!("g-java-{protocol}"), protocol))
        .collect();
    let all: Vec<&Member> = members.iter().collect();
    wait_all(
        &all,
        0..3000,
        Duration::from_secs(90),
        "initial consumption",
    );
    let c = counts(&all);
    assert!(
        c.values().all(|n| *n == 1),
        "every record consumed exactly once across the group"
    );
    // Classic groups land in one generation (initial rebalance delay): 2 partitions each, and
    // the CLI describes them. KIP-848 members get partitions incrementally instead.
    if protocol == "classic" {
        for m in &members {
            let a = m.last_assignment().expect("each member got partitions");
            assert_eq!(
                a.matches(',').count(),
                2,
                "6 partitions over 3 members: {a}"
            );
        }

        let described = run_ok(
            Command::new(launcher("kafka-consumer-groups"))
                .args(["--bootstrap-server", &node.kafka, "--describe", "--group"])
                .arg(format!("g-java-{protocol}")),
            Duration::from_secs(90),
            None,
        );
        let rows: Vec<&str> = described.lines().filter(|l| l.contains(&topic)).collect();
        assert_eq!(rows.len(), 6, "{described}");
        assert!(
            rows.iter().all(|r| r.contains("/127.0.0.1")),
            "members' hosts are shown: {described}"
        );
    }

    // One member dies: its partitions move to the others within the session timeout.
    let mut members = members;
    // Every member must own partitions before one is killed, so the kill moves some.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !members.iter().all(|m| {
        m.lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("ASSIGNED ") && l.len() > 9)
    }) {
        assert!(
            Instant::now() < deadline,
            "the group did not spread its partitions over all members"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let dead = members.remove(0);
    drop(dead);
    produce(&node, &topic, 3000..3600);
    let alive: Vec<&Member> = members.iter().collect();
    wait_all(
        &alive,
        3000..3600,
        Duration::from_secs(60),
        "after a member was killed",
    );

    // The broker dies: the group resumes from its committed offsets, nothing skipped.
    let before_crash = counts(&alive);
    node.kill9();
    node.restart();
    produce(&node, &topic, 3600..4200);
    wait_all(
        &alive,
        3600..4200,
        Duration::from_secs(90),
        "after the broker restarted",
    );
    let after = counts(&alive);
    let replayed = before_crash
        .iter()
        .filter(|(v, n)| after.get(*v).copied().unwrap_or(0) > **n)
        .count();
    let failures: Vec<String> = alive
        .iter()
        .flat_map(|m| {
            m.lines
                .lock()
                .unwrap()
                .iter()
                .filter(|l| !l.starts_with("R "))
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        replayed < 600,
        "resumed from committed offsets, not from the start: {replayed} records replayed; member log: {failures:?}"
    );
}

#[test]
fn kcat_group_commits_and_resumes_and_cli_shows_lag() {
    let node = Node::start();
    let topic = topic("kcatgroup");
    produce(&node, &topic, 0..500);
    let consume = || {
        run_ok(
            Command::new("kcat")
                .args([
                    "-b",
                    &node.kafka,
                    "-G",
                    "g-kcat",
                    &topic,
                    "-e",
                    "-q",
                    "-f",
                    "%s\n",
                ])
                .args(["-X", "auto.offset.reset=earliest"]),
            Duration::from_secs(90),
            None,
        )
    };
    assert_eq!(consume().lines().count(), 500);
    produce(&node, &topic, 500..510);
    let again: Vec<String> = consume().lines().map(String::from).collect();
    assert_eq!(
        again,
        (500..510).map(|i| format!("v{i}")).collect::<Vec<_>>(),
        "resumes after its commit"
    );

    let groups = |args: &[&str]| {
        run_ok(
            Command::new(launcher("kafka-consumer-groups"))
                .args(["--bootstrap-server", &node.kafka])
                .args(args),
            Duration::from_secs(90),
            None,
        )
    };
    assert!(groups(&["--list"]).lines().any(|l| l == "g-kcat"));
    let described = groups(&["--describe", "--group", "g-kcat"]);
    let row = described
        .lines()
        .find(|l| l.contains(&topic))
        .expect("a row for the topic");
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cols[3..6],
        &["510", "510", "0"],
        "current offset, log end, lag: {row}"
    );
    groups(&[
        "--reset-offsets",
        "--group",
        "g-kcat",
        "--topic",
        &topic,
        "--to-offset",
        "505",
        "--execute",
    ]);
    assert_eq!(consume().lines().count(), 5, "reset offsets are honoured");
    let deleted = groups(&["--delete", "--group", "g-kcat"]);
    assert!(deleted.contains("successful"), "{deleted}");
    assert!(!groups(&["--list"]).lines().any(|l| l == "g-kcat"));
}

#[test]
fn committed_offsets_stay_bounded_and_survive_restart() {
    let mut node = Node::start_with(&["--config", "log.cleaner.backoff.ms=100"]);
    let topic = topic("commits");
    produce(&node, &topic, 0..10);
    commit_offsets(&node, &topic, "g-loop", 2000);
    // 2000 commits of one key: compaction leaves a handful of records, not thousands.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stored = run_ok(
            Command::new("kcat").args([
                "-C",
                "-b",
                &node.kafka,
                "-t",
                "__consumer_offsets",
                "-e",
                "-q",
                "-f",
                "%o\n",
            ]),
            Duration::from_secs(60),
            None,
        );
        let n = stored.lines().count();
        if n <= 150 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "__consumer_offsets still holds {n} records"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    node.kill9();
    node.restart();
    let described = run_ok(
        Command::new(launcher("kafka-consumer-groups")).args([
            "--bootstrap-server",
            &node.kafka,
            "--describe",
            "--group",
            "g-loop",
        ]),
        Duration::from_secs(90),
        None,
    );
    let row = described
        .lines()
        .find(|l| l.contains(&topic))
        .expect("a row for the topic");
    assert_eq!(
        row.split_whitespace().nth(3),
        Some("2000"),
        "the last commit survives compaction and restart: {row}"
    );
}
