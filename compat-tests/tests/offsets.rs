//! ListOffsets as clients use it: by timestamp (record-exact inside a batch), earliest, latest.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::process::Command;
use std::time::Duration;

use sluice_compat_tests::{raw_produce, run_ok, topic, Node};

#[test]
fn offsets_for_times_are_exact_within_a_batch() {
    let node = Node::start();
    let topic = topic("times");
    // Auto-create the topic, then one batch of ten records 10 ms apart.
    run_ok(
        Command::new("kcat").args(["-b", &node.kafka, "-L", "-t", &topic]),
        Duration::from_secs(30),
        None,
    );
    let records: Vec<(i64, String)> = (0..10).map(|i| (1_000 + 10 * i, format!("v{i}"))).collect();
    let refs: Vec<(i64, &str)> = records.iter().map(|(t, v)| (*t, v.as_str())).collect();
    assert_eq!(raw_produce(&node, &topic, &refs, false), 0);

    let query = |ts: i64| {
        let out = run_ok(
            Command::new("kcat").args(["-b", &node.kafka, "-Q", "-t", &format!("{topic}:0:{ts}")]),
            Duration::from_secs(30),
            None,
        );
        out.split_whitespace()
            .last()
            .unwrap()
            .parse::<i64>()
            .unwrap()
    };
    assert_eq!(
        query(1_035),
        4,
        "first record with timestamp >= 1035 is the one at 1040"
    );
    assert_eq!(query(1_000), 0);
    assert_eq!(query(1_090), 9);
    assert_eq!(query(5_000), -1, "no record that late");
    assert_eq!(query(-2), 0, "earliest");
    assert_eq!(query(-1), 10, "latest");
}
