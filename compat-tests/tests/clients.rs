//! Client libraries in Python, Go and Node: create a topic, produce with acks=all, consume by
//! partition assignment (kafkajs, which has no assign(), through a group), compare.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use sluice_compat_tests::Node;

fn roundtrip(client: &str) {
    sluice_compat_tests::roundtrip(&Node::start(), client, 3000);
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
