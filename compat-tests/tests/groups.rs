//! Consumer groups with real clients: the Java client sharing a topic across members,
//! surviving the loss of a member and of the broker; a KIP-848 member subscribed by regex;
//! librdkafka (kcat -G) committing and resuming; Kafka's `kafka-consumer-groups` tool, which
//! describes KIP-848 groups with ConsumerGroupDescribe.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_compat_tests::{
    commit_offsets, launcher, metric_sample, run_ok, scrape_metrics, topic, Node,
};

/// A running group-java member and everything it printed.
struct Member {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Member {
    fn start(node: &Node, topic: &str, group: &str, protocol: &str) -> Self {
        Self::subscribed(node, ["--topic", topic], group, protocol)
    }

    /// A member subscribed with `--topic NAME` or `--pattern REGEX`.
    fn subscribed(node: &Node, subscription: [&str; 2], group: &str, protocol: &str) -> Self {
        let mut child = Command::new(launcher("group-java"))
            .args(["--bootstrap", &node.kafka, "--group", group])
            .args(subscription)
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

/// A group's own `consumer.session.timeout.ms`, set with `kafka-configs`, is the one its
/// coordinator drops silent members by: a SIGKILLed KIP-848 member's partition moves to the
/// other member within seconds, where the broker's default would take 45 s.
#[test]
fn a_groups_session_timeout_config_decides_when_a_dead_member_is_dropped() {
    let node = Node::start_with(&[
        "--config",
        "num.partitions=2",
        "--config",
        "group.consumer.min.session.timeout.ms=1000",
        "--config",
        "group.consumer.min.heartbeat.interval.ms=500",
    ]);
    let topic = topic("group-session-config");
    let group = "g-session-config";
    run_ok(
        Command::new(launcher("kafka-configs"))
            .args(["--bootstrap-server", &node.kafka, "--alter"])
            .args(["--entity-type", "groups", "--entity-name", group])
            .args([
                "--add-config",
                "consumer.session.timeout.ms=3000,consumer.heartbeat.interval.ms=500",
            ]),
        Duration::from_secs(90),
        None,
    );
    produce(&node, &topic, 0..100);
    let dying = Member::start(&node, &topic, group, "consumer");
    let survivor = Member::start(&node, &topic, group, "consumer");
    let assigned = |m: &Member| -> std::collections::BTreeSet<String> {
        m.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l.strip_prefix("ASSIGNED "))
            .flat_map(|ps| ps.split(',').filter(|p| !p.is_empty()).map(String::from))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while assigned(&dying).is_empty() || assigned(&survivor).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the two members never shared the partitions"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(dying);
    let killed = Instant::now();
    while assigned(&survivor).len() < 2 {
        assert!(
            killed.elapsed() < Duration::from_secs(20),
            "the dead member's partition did not move within 20 s (group session 3 s)"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("partition moved {:?} after the SIGKILL", killed.elapsed());
}

/// `kafka-consumer-groups --describe` of `group` through `node`, with `what` (`--state`,
/// `--members`): the rows of its table as column maps.
fn describe_group(node: &Node, group: &str, what: &str) -> Vec<HashMap<String, String>> {
    let out = run_ok(
        Command::new(launcher("kafka-consumer-groups"))
            .args(["--bootstrap-server", &node.kafka, "--describe", what])
            .args(["--group", group]),
        Duration::from_secs(90),
        None,
    );
    let mut lines = out.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .by_ref()
        .find(|l| l.starts_with("GROUP"))
        .map(|h| h.split_whitespace().collect())
        .unwrap_or_default();
    // "COORDINATOR (ID)" is two words in the header and "host:port (id)" two in a row.
    lines
        .map(|l| {
            header
                .iter()
                .copied()
                .filter(|c| *c != "(ID)")
                .zip(l.split_whitespace().filter(|w| !w.starts_with('(')))
                .map(|(c, v)| (c.to_string(), v.to_string()))
                .chain(
                    l.split_whitespace()
                        .find(|w| w.starts_with('('))
                        .map(|id| ("COORDINATOR-ID".into(), id.trim_matches(['(', ')']).into())),
                )
                .collect()
        })
        .collect()
}

/// The coordinator of a classic group takes it over from its last membership record: when
/// the node coordinating a two-member Java group is SIGKILLed, the members go on with the
/// next coordinator in the same generation (same member ids, no new assignment) and keep
/// consuming; before memberships were stored, every coordinator failover rebalanced the group
/// (and failed commits of the old generation in flight).
#[test]
fn a_classic_group_keeps_its_members_when_its_coordinator_dies() {
    let mut nodes = Node::start_cluster(3, 0, sluice_compat_tests::FAST_FAILOVER);
    let topic = topic("group-failover");
    let group = "g-coordinator-failover";
    run_ok(
        Command::new(launcher("kafka-topics"))
            .args([
                "--bootstrap-server",
                &nodes[0].kafka,
                "--create",
                "--topic",
                &topic,
            ])
            .args(["--partitions", "2", "--replication-factor", "3"]),
        Duration::from_secs(90),
        None,
    );
    produce(&nodes[0], &topic, 0..200);
    let members = [
        Member::start(&nodes[0], &topic, group, "classic"),
        Member::start(&nodes[1], &topic, group, "classic"),
    ];
    let all: Vec<&Member> = members.iter().collect();
    wait_all(&all, 0..200, Duration::from_secs(90), "before the failover");
    let assignments = |m: &Member| {
        m.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("ASSIGNED "))
            .count()
    };
    // Both members hold a partition, in one settled generation.
    let deadline = Instant::now() + Duration::from_secs(60);
    let ids_before = loop {
        let rows = describe_group(&nodes[2], group, "--members");
        let holding = rows.iter().filter(|r| r["#PARTITIONS"] == "1").count();
        if holding == 2 {
            break rows
                .iter()
                .map(|r| r["CONSUMER-ID"].clone())
                .collect::<std::collections::BTreeSet<_>>();
        }
        assert!(
            Instant::now() < deadline,
            "the members never shared: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let assigned_before: Vec<usize> = members.iter().map(assignments).collect();
    let state = describe_group(&nodes[2], group, "--state");
    let coordinator: usize = state[0]["COORDINATOR-ID"].parse().expect("coordinator id");
    eprintln!("group coordinator: node {coordinator}; members {ids_before:?}");

    nodes[coordinator - 1].kill9();
    let survivor = &nodes[coordinator % 3];
    produce(survivor, &topic, 200..400);
    wait_all(
        &all,
        200..400,
        Duration::from_secs(60),
        "after the failover",
    );
    // Heartbeats (every second) have reached the new coordinator by now.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = describe_group(survivor, group, "--state");
        let moved = state
            .first()
            .is_some_and(|r| r["COORDINATOR-ID"] != coordinator.to_string());
        if moved && state[0]["STATE"] == "Stable" {
            break;
        }
        assert!(Instant::now() < deadline, "no new coordinator: {state:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(5));
    let ids_after: std::collections::BTreeSet<String> =
        describe_group(survivor, group, "--members")
            .iter()
            .map(|r| r["CONSUMER-ID"].clone())
            .collect();
    let assigned_after: Vec<usize> = members.iter().map(assignments).collect();
    assert_eq!(ids_after, ids_before, "the same members after the failover");
    assert_eq!(
        assigned_after, assigned_before,
        "no rebalance after the failover (ASSIGNED lines per member)"
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
    if protocol == "consumer" {
        cli_describes_consumer_group(&node, &format!("g-java-{protocol}"), &[&topic], 3, 6);
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

/// Kafka's CLI on a KIP-848 group (the Java Admin client asks ConsumerGroupDescribe): once
/// `--members --verbose` shows every member holding its target, the per-partition view names
/// the owners and `--state` reports Stable.
fn cli_describes_consumer_group(
    node: &Node,
    group: &str,
    topics: &[&str],
    members: usize,
    partitions: usize,
) {
    let describe = |args: &[&str]| {
        run_ok(
            Command::new(launcher("kafka-consumer-groups"))
                .args([
                    "--bootstrap-server",
                    &node.kafka,
                    "--describe",
                    "--group",
                    group,
                ])
                .args(args),
            Duration::from_secs(90),
            None,
        )
    };
    let rows_of = |out: &str| -> Vec<Vec<String>> {
        out.lines()
            .filter(|l| l.starts_with(&format!("{group} ")))
            .map(|l| l.split_whitespace().map(String::from).collect())
            .collect()
    };
    // GROUP CONSUMER-ID HOST CLIENT-ID #PARTITIONS CURRENT-EPOCH CURRENT-ASSIGNMENT
    // TARGET-EPOCH TARGET-ASSIGNMENT
    let deadline = Instant::now() + Duration::from_secs(90);
    let (verbose, member_rows) = loop {
        let out = describe(&["--members", "--verbose"]);
        let rows = rows_of(&out);
        let held: usize = rows
            .iter()
            .filter_map(|r| r.get(4)?.parse::<usize>().ok())
            .sum();
        let settled = rows.len() == members
            && held == partitions
            && rows
                .iter()
                .all(|r| r.len() == 9 && r[5] == r[7] && r[6] == r[8]);
        if settled {
            break (out, rows);
        }
        assert!(
            Instant::now() < deadline,
            "members never settled on their targets:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    for t in topics {
        assert!(
            member_rows.iter().any(|r| r[6].contains(&format!("{t}:"))),
            "{t} is assigned: {verbose}"
        );
    }
    assert!(
        member_rows.iter().all(|r| r[2] == "/127.0.0.1"),
        "{verbose}"
    );

    // GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID
    let offsets = describe(&[]);
    let ids: Vec<&String> = member_rows.iter().map(|r| &r[1]).collect();
    let partition_rows = rows_of(&offsets);
    assert_eq!(partition_rows.len(), partitions, "{offsets}");
    assert!(
        partition_rows
            .iter()
            .all(|r| r.len() == 9 && ids.contains(&&r[6])),
        "every partition shows its owner: {offsets}"
    );

    // GROUP COORDINATOR (ID) ASSIGNMENT-STRATEGY STATE GROUP-EPOCH TARGET-ASSIGNMENT-EPOCH
    // #MEMBERS, the coordinator column being "host:port  (id)"
    let state = describe(&["--state", "--verbose"]);
    let row = rows_of(&state).pop().expect("a state row");
    assert_eq!(row.len(), 8, "{state}");
    assert_eq!(&row[3..5], ["uniform", "Stable"], "{state}");
    assert_eq!(
        row[5], row[6],
        "target assignment at the group epoch: {state}"
    );
    assert_eq!(row[7], members.to_string(), "{state}");

    let metrics = scrape_metrics(node);
    let asked = metric_sample(
        &metrics,
        "sluice_requests_total{api=\"ConsumerGroupDescribe\"}",
    );
    assert!(
        asked.unwrap_or(0.0) >= 3.0,
        "the CLI used ConsumerGroupDescribe: {asked:?}"
    );
}

#[test]
fn java_consumer_subscribed_by_regex_reads_matching_topics_created_later() {
    let node = Node::start_with(&[
        "--config",
        "num.partitions=3",
        "--config",
        "group.consumer.heartbeat.interval.ms=1000",
    ]);
    let base = topic("regex");
    let (first, later) = (format!("{base}-a"), format!("{base}-b"));
    let unmatched = topic("unmatched");
    produce(&node, &first, 0..100);
    produce(&node, &unmatched, 5000..5010);

    let member = Member::subscribed(
        &node,
        ["--pattern", &format!("{base}-.*")],
        "g-regex",
        "consumer",
    );
    wait_all(
        &[&member],
        0..100,
        Duration::from_secs(90),
        "the topic matching at the start",
    );
    // Created only now: the broker re-evaluates the pattern when topics appear.
    produce(&node, &later, 1000..1100);
    wait_all(
        &[&member],
        1000..1100,
        Duration::from_secs(60),
        "a matching topic created later",
    );
    cli_describes_consumer_group(&node, "g-regex", &[&first, &later], 1, 6);
    let c = counts(&[&member]);
    assert!(
        (5000..5010).all(|i| !c.contains_key(&format!("v{i}"))),
        "a topic the pattern does not match is not consumed"
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

/// The first commits of several groups while `__consumer_offsets` is still being created
/// (1000 partitions take seconds): librdkafka asks for the coordinator again after a second,
/// gets it from the new metadata, and its commits must wait for the partitions to exist and
/// load here instead of failing with NOT_COORDINATOR, which librdkafka does not retry.
#[test]
fn first_commits_wait_for_the_offsets_topic_to_load() {
    let node = Node::start_with(&["--config", "offsets.topic.num.partitions=1000"]);
    let topic = topic("first-commits");
    produce(&node, &topic, 0..3);
    let committers: Vec<_> = (0..3)
        .map(|g| {
            let (kafka, topic) = (node.kafka.clone(), topic.clone());
            std::thread::spawn(move || {
                run_ok(
                    Command::new(launcher("commit-loop")).args([
                        "--bootstrap",
                        &kafka,
                        "--topic",
                        &topic,
                        "--group",
                        &format!("g-first-{g}"),
                        "--commits",
                        "3",
                    ]),
                    Duration::from_secs(120),
                    None,
                )
            })
        })
        .collect();
    for c in committers {
        let out = c.join().expect("committer thread");
        assert!(out.contains("OK 3"), "{out}");
    }
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
