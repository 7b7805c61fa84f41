//! Durability: every acknowledged record survives SIGKILL of the broker, and a restart
//! recovers topics, offsets and the high watermark.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sluice_compat_tests::{kcat_produce, kcat_read, launcher, topic, Node};

/// Reads every record of `topic` with kcat: (partition, offset) -> value.
fn read_all(node: &Node, topic: &str) -> HashMap<(i32, i64), String> {
    let out = kcat_read(node, topic, "%p %o %s\n");
    out.lines()
        .map(|l| {
            let f: Vec<&str> = l.splitn(3, ' ').collect();
            (
                (f[0].parse().unwrap(), f[1].parse().unwrap()),
                f[2].to_string(),
            )
        })
        .collect()
}

#[test]
fn acknowledged_records_survive_sigkill_mid_stream() {
    let mut node = Node::start_with(&["--config", "num.partitions=3"]);
    let topic = topic("crash");
    let mut producer = Command::new(launcher("ack-producer"))
        .args([
            "--bootstrap",
            &node.kafka,
            "--topic",
            &topic,
            "--messages",
            "40000",
            "--timeout",
            "90",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ack-producer");
    let stdout = producer.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let mut acked: Vec<(i32, i64, String)> = Vec::new();
    let mut killed = false;
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        assert!(
            Instant::now() < deadline,
            "producer did not finish; {} acks",
            acked.len()
        );
        let Ok(line) = rx.recv_timeout(Duration::from_secs(100)) else {
            break;
        };
        if let Some(rest) = line.strip_prefix("ACK ") {
            let f: Vec<&str> = rest.splitn(3, ' ').collect();
            acked.push((
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].to_string(),
            ));
        } else if line.starts_with("DONE") {
            break;
        }
        if !killed && acked.len() >= 8000 {
            node.kill9();
            killed = true;
            std::thread::sleep(Duration::from_millis(500));
            node.restart();
        }
    }
    let _ = producer.kill();
    let _ = producer.wait();
    assert!(killed, "the broker was killed mid-stream");
    assert!(
        acked.len() > 8000,
        "the producer went on after the restart: {} acks",
        acked.len()
    );

    let stored = read_all(&node, &topic);
    for (p, o, v) in &acked {
        assert_eq!(
            stored.get(&(*p, *o)),
            Some(v),
            "acknowledged record {v} at {p}/{o} lost"
        );
    }
    // The idempotent producer's retries across the crash must not duplicate anything.
    let mut values: Vec<&String> = stored.values().collect();
    let total = values.len();
    values.sort();
    values.dedup();
    assert_eq!(
        values.len(),
        total,
        "duplicates after retries across the crash"
    );
}

#[test]
fn clean_restart_recovers_topics_offsets_and_high_watermark() {
    let mut node = Node::start();
    let topic = topic("restart");
    let input: String = (0..1000).map(|i| format!("v{i}\n")).collect();
    kcat_produce(&node, &topic, input.as_bytes(), &[]);
    let before = read_all(&node, &topic);
    assert_eq!(before.len(), 1000);
    assert!(node.terminate().success(), "clean exit on SIGTERM");
    node.restart();
    let after = read_all(&node, &topic);
    assert_eq!(before, after);
    // New appends continue from the recovered log end.
    kcat_produce(&node, &topic, b"tail\n", &[]);
    let again = read_all(&node, &topic);
    assert_eq!(again.get(&(0, 1000)).map(String::as_str), Some("tail"));
}
