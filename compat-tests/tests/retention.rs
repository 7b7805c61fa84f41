//! Time retention: expired batches go, the log start moves, and it stays moved after a crash.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::process::Command;
use std::time::{Duration, Instant};

use sluice_compat_tests::{kcat_produce, kcat_read, launcher, run_ok, topic, Node};

fn earliest(node: &Node, topic: &str) -> i64 {
    let out = run_ok(
        Command::new("kcat").args(["-b", &node.kafka, "-Q", "-t", &format!("{topic}:0:-2")]),
        Duration::from_secs(30),
        None,
    );
    out.split_whitespace().last().unwrap().parse().unwrap()
}

#[test]
fn expired_records_are_removed_and_the_log_start_moves() {
    let mut node = Node::start_with(&["--config", "log.retention.check.interval.ms=200"]);
    let topic = topic("ttl");
    run_ok(
        Command::new(launcher("kafka-topics"))
            .args([
                "--bootstrap-server",
                &node.kafka,
                "--create",
                "--topic",
                &topic,
                "--partitions",
                "1",
            ])
            .args(["--config", "retention.ms=3000"]),
        Duration::from_secs(90),
        None,
    );
    let old: String = (0..100).map(|i| format!("old{i}\n")).collect();
    kcat_produce(&node, &topic, old.as_bytes(), &[]);
    assert_eq!(earliest(&node, &topic), 0);

    let deadline = Instant::now() + Duration::from_secs(30);
    while earliest(&node, &topic) < 100 {
        assert!(
            Instant::now() < deadline,
            "records older than retention.ms were not removed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let new: String = (0..10).map(|i| format!("new{i}\n")).collect();
    kcat_produce(&node, &topic, new.as_bytes(), &[]);
    let read = kcat_read(&node, &topic, "%o %s\n");
    let expected: Vec<String> = (0..10).map(|i| format!("{} new{i}", 100 + i)).collect();
    assert_eq!(read.lines().collect::<Vec<_>>(), expected);

    node.kill9();
    node.restart();
    assert!(
        earliest(&node, &topic) >= 100,
        "the moved log start survives a crash"
    );
}
