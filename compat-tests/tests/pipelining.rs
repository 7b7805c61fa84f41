//! Pipelined requests: a client may send several requests on one connection before it reads
//! any answer (Kafka clients keep up to 5 produces in flight). Answers come back in request
//! order, produces are stored in the order they were sent, and a request that must close the
//! connection does so only after everything before it is answered.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use sluice_compat_tests::{
    kcat_read, produce_frame, read_produce_response, run_ok, topic, wait_until, Node,
};

/// The most requests any closed connection had in flight at once, from the node's JSON log
/// (`connection closed` at debug level).
fn most_in_flight(node: &Node) -> u64 {
    std::fs::read_to_string(node.log_path())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["fields"]["most_in_flight"].as_u64())
        .max()
        .unwrap_or(0)
}

#[test]
fn pipelined_produces_are_answered_and_stored_in_request_order() {
    // Every append is fsynced, so a produce is still being written when the next arrives:
    // pipelining shows as several requests in flight, which the node logs per connection.
    // (Set before the node starts; this file's only test, so no other thread reads it.)
    std::env::set_var("RUST_LOG", "sluice::connection=debug");
    let node = Node::start_with(&["--log-json", "--config", "log.flush.interval.messages=1"]);
    let topic = topic("pipelined");
    // Auto-create the topic (one partition).
    run_ok(
        Command::new("kcat").args(["-b", &node.kafka, "-L", "-t", &topic]),
        Duration::from_secs(30),
        None,
    );

    let mut s = TcpStream::connect(&node.kafka).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let values: Vec<Vec<String>> = (0..24)
        .map(|i| (0..3).map(|j| format!("r{i:02}-{j}")).collect())
        .collect();
    let corrupt_at = 9;
    let mut wire = Vec::new();
    for (i, batch) in values.iter().enumerate() {
        let records: Vec<(i64, &str)> = batch.iter().map(|v| (1, v.as_str())).collect();
        wire.extend(produce_frame(&topic, &records, i == corrupt_at, i as i32));
    }
    // Everything in one write, then a frame with an unknown API key: the connection must
    // answer all 24 produces before it closes.
    wire.extend_from_slice(&8i32.to_be_bytes());
    wire.extend_from_slice(&[0x7f, 0x7f, 0, 0, 0, 0, 0, 99]);
    s.write_all(&wire).unwrap();

    let mut next_offset = 0;
    for i in 0..values.len() {
        let answer = read_produce_response(&mut s);
        assert_eq!(
            answer.correlation, i as i32,
            "answers come in request order"
        );
        if i == corrupt_at {
            assert_eq!(answer.error_code, 2, "CORRUPT_MESSAGE for request {i}");
            continue;
        }
        assert_eq!(answer.error_code, 0, "request {i}: {answer:?}");
        assert_eq!(
            answer.base_offset, next_offset,
            "request {i} stored right after the one before it"
        );
        next_offset += 3;
    }
    let mut rest = Vec::new();
    let closed = s.read_to_end(&mut rest);
    let reset = matches!(&closed, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset);
    assert!(
        (matches!(closed, Ok(0)) || reset) && rest.is_empty(),
        "connection closed after the bad frame, nothing more sent: {closed:?} {rest:?}"
    );

    // The connection logs its count once closed; kcat's metadata connection logs 1.
    wait_until(
        "a connection that had two or more produces in flight at once",
        Duration::from_secs(10),
        || most_in_flight(&node) >= 2,
    );

    let stored: Vec<String> = kcat_read(&node, &topic, "%s\n")
        .lines()
        .map(str::to_string)
        .collect();
    let expected: Vec<String> = values
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != corrupt_at)
        .flat_map(|(_, b)| b.iter().cloned())
        .collect();
    assert_eq!(stored, expected, "the log holds the batches in send order");
}
