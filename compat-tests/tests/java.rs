//! The Java client 4.x (default, idempotent producer) and Kafka's own CLI tools.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::process::Command;
use std::time::Duration;

use sluice_compat_tests::{launcher, roundtrip, run_ok, topic, Node};

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
