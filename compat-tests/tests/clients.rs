//! Client libraries in Python, Go and Node: create a topic, produce with acks=all, consume by
//! partition assignment (kafkajs, which has no assign(), through a group), compare.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::process::Command;
use std::time::Duration;

use sluice_compat_tests::{launcher, run_ok, topic, Node};

fn roundtrip(client: &str) {
    let node = Node::start();
    let topic = topic(client);
    let out = run_ok(
        Command::new(launcher(&format!("roundtrip-{client}")))
            .args([
                "--bootstrap",
                &node.kafka,
                "--topic",
                &topic,
                "--partitions",
                "3",
            ])
            .args(["--messages", "3000", "--timeout", "90"]),
        Duration::from_secs(120),
        None,
    );
    assert!(out.contains("OK 3000"), "{client}: {out}");
}

#[test]
fn confluent_kafka_python() {
    roundtrip("confluent");
}

#[test]
fn kafka_python() {
    roundtrip("kafka-python");
}

#[test]
fn franz_go() {
    roundtrip("franz");
}

#[test]
fn kafkajs() {
    roundtrip("kafkajs");
}
