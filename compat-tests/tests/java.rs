//! The Java client 4.x (default, idempotent producer) and Kafka's own CLI tools.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::process::Command;
use std::time::Duration;

use sluice_compat_tests::{
    launcher, metric_sample, roundtrip, run_ok, scrape_metrics, topic, Node,
};

const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn java_client_round_trip_with_default_idempotent_producer() {
    roundtrip(&Node::start(), "java", 5000);
}

#[test]
fn kafka_cli_topics_and_console_tools() {
    let node = Node::start();
    let topics = |args: &[&str]| {
        run_ok(
            Command::new(launcher("kafka-topics"))
                .args(["--bootstrap-server", &node.kafka])
                .args(args),
            LIMIT,
            None,
        )
    };
    let name = topic("cli");
    let created = topics(&[
        "--create",
        "--topic",
        &name,
        "--partitions",
        "2",
        "--config",
        "retention.ms=86400000",
    ]);
    assert!(
        created.contains(&format!("Created topic {name}")),
        "{created}"
    );
    assert!(topics(&["--list"]).lines().any(|l| l == name));
    let described = topics(&["--describe", "--topic", &name]);
    assert!(described.contains("PartitionCount: 2"), "{described}");
    assert!(described.contains("retention.ms=86400000"), "{described}");
    assert_eq!(described.matches("Leader: 1").count(), 2, "{described}");

    let lines: String = (0..50).map(|i| format!("key{i}:value {i}\n")).collect();
    run_ok(
        Command::new(launcher("kafka-console-producer"))
            .args(["--bootstrap-server", &node.kafka, "--topic", &name])
            .args([
                "--reader-property",
                "parse.key=true",
                "--reader-property",
                "key.separator=:",
            ]),
        LIMIT,
        Some(lines.as_bytes()),
    );
    let mut consumed = Vec::new();
    for partition in ["0", "1"] {
        let out = run_ok(
            Command::new(launcher("kafka-console-consumer"))
                .args([
                    "--bootstrap-server",
                    &node.kafka,
                    "--topic",
                    &name,
                    "--partition",
                    partition,
                ])
                .args(["--offset", "earliest", "--timeout-ms", "5000"])
                .args(["--formatter-property", "print.key=true"]),
            LIMIT,
            None,
        );
        consumed.extend(
            out.lines()
                .filter(|l| l.starts_with("key"))
                .map(String::from),
        );
    }
    consumed.sort();
    let mut expected: Vec<String> = (0..50).map(|i| format!("key{i}\tvalue {i}")).collect();
    expected.sort();
    assert_eq!(consumed, expected);

    topics(&["--delete", "--topic", &name]);
    assert!(!topics(&["--list"]).lines().any(|l| l == name));
}

/// While a Java consumer catches up, every fetch after the first finds its partitions' next
/// stretches already read (broker/src/read_ahead.rs) and none is read in vain.
#[test]
fn java_consumer_fetches_find_their_read_ahead() {
    let node = Node::start();
    let name = topic("ahead");
    run_ok(
        Command::new(launcher("kafka-topics")).args([
            "--bootstrap-server",
            &node.kafka,
            "--create",
            "--topic",
            &name,
            "--partitions",
            "3",
        ]),
        LIMIT,
        None,
    );
    let records = "3000";
    run_ok(
        Command::new(launcher("kafka-producer-perf-test")).args([
            "--topic",
            &name,
            "--num-records",
            records,
            "--record-size",
            "1024",
            "--throughput",
            "-1",
            "--command-property",
            &format!("bootstrap.servers={}", node.kafka),
            "acks=1",
        ]),
        LIMIT,
        None,
    );
    // 128 KiB per partition and fetch: about 24 fetched stretches over the 3 MiB.
    let out = run_ok(
        Command::new(launcher("kafka-console-consumer"))
            .args(["--bootstrap-server", &node.kafka, "--topic", &name])
            .args(["--from-beginning", "--max-messages", records])
            .args(["--timeout-ms", "20000"])
            .args(["--consumer-property", "max.partition.fetch.bytes=131072"])
            .args(["--formatter-property", "print.value=false"])
            .args(["--formatter-property", "print.offset=true"]),
        LIMIT,
        None,
    );
    let consumed = out.lines().filter(|l| l.starts_with("Offset:")).count();
    assert_eq!(consumed, 3000, "{out}");

    let metrics = scrape_metrics(&node);
    let count = |outcome: &str| {
        let prefix = format!("sluice_fetch_read_ahead_total{{outcome=\"{outcome}\"}}");
        metric_sample(&metrics, &prefix).unwrap_or(0.0)
    };
    assert!(count("used") >= 10.0, "used {} stretches", count("used"));
    assert_eq!(count("dropped"), 0.0, "stretches dropped unused");
}
