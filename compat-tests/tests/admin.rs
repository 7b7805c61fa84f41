//! `sluice admin` against a running node: topics through the Kafka protocol, the
//! controller's state through the HTTP admin API, tables and JSON.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sluice_compat_tests::{
    admin_command, commit_offsets, kcat_produce, launcher, run, run_ok, sluice_bin, topic, Node,
};

fn admin(node: &Node, args: &[&str]) -> String {
    run_ok(
        Command::new(sluice_bin())
            .args(["admin", "--bootstrap", &node.kafka, "--http", &node.http])
            .args(args),
        Duration::from_secs(30),
        None,
    )
}

/// What a command printed, stdout then stderr.
fn all_output(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
}

fn admin_json(node: &Node, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&admin(node, &all)).unwrap()
}

#[test]
fn admin_manages_topics_and_shows_partitions_lag_and_the_quorum() {
    let node = Node::start();
    let status = admin(&node, &["status"]);
    assert!(status.contains("voter (leader)"), "{status}");
    assert_eq!(admin_json(&node, &["brokers"])[0]["fenced"], false);

    let t = topic("admin");
    admin(
        &node,
        &[
            "topics",
            "create",
            &t,
            "--partitions",
            "3",
            "--config",
            "retention.ms=600000",
        ],
    );
    let list = admin_json(&node, &["topics", "list"]);
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["name"] == t.as_str() && x["partitions"] == 3));

    let input: String = (0..30).map(|i| format!("k{i}:v{i}\n")).collect();
    kcat_produce(&node, &t, input.as_bytes(), &["-K:"]);
    let described = admin_json(&node, &["topics", "describe", &t]);
    let ends: i64 = described["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["end_offset"].as_i64().unwrap())
        .sum();
    assert_eq!(ends, 30, "end offsets per partition: {described}");
    let table = admin(&node, &["topics", "describe", &t]);
    assert!(table.starts_with("PARTITION"), "{table}");

    admin(&node, &["topics", "add-partitions", &t, "--total", "5"]);
    admin(
        &node,
        &["topics", "alter-config", &t, "--set", "retention.ms=1000"],
    );
    assert_eq!(
        admin_json(&node, &["topics", "describe", &t])["partitions"]
            .as_array()
            .unwrap()
            .len(),
        5
    );

    // A backlog: a group that committed 10 of partition 0's records shows the rest as lag.
    let single = topic("lag");
    admin(&node, &["topics", "create", &single]);
    let input: String = (0..25).map(|i| format!("m{i}\n")).collect();
    kcat_produce(&node, &single, input.as_bytes(), &[]);
    commit_offsets(&node, &single, "g-admin", 10);
    let lag = admin_json(&node, &["groups", "describe", "g-admin"]);
    let row = &lag["partitions"][0];
    assert_eq!(
        (row["committed"].as_i64(), row["lag"].as_i64()),
        (Some(10), Some(15)),
        "{lag}"
    );
    assert!(admin(&node, &["groups", "list"]).contains("g-admin"));
    // ... and `topics describe` shows the same backlog next to the end offsets.
    let topic_view = admin_json(&node, &["topics", "describe", &single]);
    assert_eq!(topic_view["group_lag"][0]["group"], "g-admin");
    assert_eq!(topic_view["group_lag"][0]["lag"], 15, "{topic_view}");

    admin(&node, &["topics", "delete", &t]);
    let gone = run(
        Command::new(sluice_bin())
            .args(["admin", "--bootstrap", &node.kafka, "--http", &node.http])
            .args(["topics", "describe", &t]),
        Duration::from_secs(30),
        None,
    );
    assert!(!gone.status.success(), "describing a deleted topic fails");
    assert!(String::from_utf8_lossy(&gone.stderr).contains("UnknownTopicOrPartition"));
}

#[test]
fn admin_top_shows_the_rates_of_traffic_while_it_flows() {
    let node = Node::start();
    let t = topic("top");
    admin(&node, &["topics", "create", &t]);
    // One 3-second window, with 2000 records produced inside it.
    let top = admin_command(&node)
        .args(["top", "--interval", "3", "--iterations", "1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let input: String = (0..2000).map(|i| format!("m{i}\n")).collect();
    kcat_produce(&node, &t, input.as_bytes(), &[]);
    let out = top.wait_with_output().unwrap();
    assert!(out.status.success());
    let view: Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = view["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["topic"] == t.as_str())
        .unwrap_or_else(|| panic!("{view}"))
        .clone();
    let secs = view["interval_s"].as_f64().unwrap();
    let records = row["in_records_s"].as_f64().unwrap() * secs;
    assert!((records - 2000.0).abs() < 1.0, "{view}");
    assert!(view["apis"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["api"] == "Produce" && a["requests_s"].as_f64().unwrap() > 0.0));
    // Gauges the node exports from its start are read (missing ones would be null).
    assert!(view["gauges"]["partitions led"].is_f64(), "{view}");
    assert!(
        view["gauges"]["RSS bytes"].as_f64().unwrap() > 1e6,
        "{view}"
    );
}

/// RocksDB holds a descriptor per partition, so under the common default soft limit of 1024
/// open files a topic of 1,500 partitions could not be created; the broker raises its soft
/// limit to the hard one, as the JVM does for Kafka.
#[test]
fn a_thousand_partitions_fit_under_the_default_open_files_limit() {
    let node = Node::start_under(&["prlimit", "--nofile=1024:"], &[]);
    let topic = topic("many-partitions");
    admin(&node, &["topics", "create", &topic, "--partitions", "1500"]);
    kcat_produce(&node, &topic, b"last", &["-p", "1499"]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", node.pid())).unwrap();
    let row = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[3], cols[4], "soft limit raised to the hard one: {row}");
}

/// A topic too large for the open files limit (here a hard one the broker cannot raise) is
/// refused whole with a message that says so, and the node keeps creating and serving other
/// topics; a creation that ran out of descriptors part-way used to leave column families
/// without handles, failing every later creation until a restart.
#[test]
fn a_topic_beyond_the_open_files_limit_is_refused_and_others_still_work() {
    let node = Node::start_under(&["prlimit", "--nofile=400:400"], &[]);
    let big = topic("too-many");
    let refused = run(
        Command::new(sluice_bin())
            .args(["admin", "--bootstrap", &node.kafka, "--http", &node.http])
            .args(["topics", "create", &big, "--partitions", "500"]),
        Duration::from_secs(30),
        None,
    );
    let said = all_output(&refused);
    assert!(!refused.status.success(), "{said}");
    assert!(said.contains("open files limit"), "{said}");
    for round in 0..2 {
        let small = topic(&format!("fits-{round}"));
        admin(&node, &["topics", "create", &small, "--partitions", "20"]);
        kcat_produce(&node, &small, b"fits", &["-p", "19"]);
    }
    // Growing a topic past the limit is refused the same way.
    let grown = topic("grown");
    admin(&node, &["topics", "create", &grown, "--partitions", "2"]);
    let alter = run(
        Command::new(launcher("kafka-topics"))
            .args([
                "--bootstrap-server",
                &node.kafka,
                "--alter",
                "--topic",
                &grown,
            ])
            .args(["--partitions", "600"]),
        Duration::from_secs(60),
        None,
    );
    let said = all_output(&alter);
    assert!(said.contains("open files limit"), "{said}");
    kcat_produce(&node, &grown, b"still", &["-p", "1"]);
    admin(&node, &["topics", "delete", &big]);
}

#[test]
fn describing_an_unknown_transactional_id_fails_at_once_without_retrying() {
    // FindCoordinator for a transactional id once answered the retriable
    // COORDINATOR_NOT_AVAILABLE: `kafka-transactions describe` then sent about 16,000 of them
    // a second until its minute ran out. Now the coordinator answers, and the id is unknown.
    let node = Node::start();
    let out = run(
        Command::new(launcher("kafka-run-class")).args([
            "org.apache.kafka.tools.TransactionsCommand",
            "--bootstrap-server",
            &node.kafka,
            "describe",
            "--transactional-id",
            "tx-1",
        ]),
        Duration::from_secs(50),
        None,
    );
    let text = all_output(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("could not be found") && !text.contains("imed out"),
        "{text}"
    );
    let metrics = sluice_compat_tests::scrape_metrics(&node);
    let asked = sluice_compat_tests::metric_sample(
        &metrics,
        "sluice_requests_total{api=\"FindCoordinator\"}",
    )
    .unwrap_or(0.0);
    assert!(asked <= 5.0, "FindCoordinator asked {asked} times");
}
