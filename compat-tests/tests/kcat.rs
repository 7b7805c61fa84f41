//! kcat (librdkafka 2.0.2): 100,000 keyed messages with headers per codec, read back byte
//! for byte.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use sluice_compat_tests::{run_ok, topic, Node};

const MESSAGES: usize = 100_000;

fn value(i: usize, codec: &str) -> String {
    // Varied, partly repetitive payloads so every codec has something to compress.
    format!("value-{i}-{codec}-{}", "xyz".repeat(i % 17))
}

#[test]
fn kcat_round_trips_keyed_messages_with_headers_in_every_codec() {
    let node = Node::start_with(&["--config", "num.partitions=3"]);
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = topic(&format!("kcat-{codec}"));
        let input: String = (0..MESSAGES)
            .map(|i| format!("key-{i}\t{}\n", value(i, codec)))
            .collect();
        run_ok(
            Command::new("kcat")
                .args([
                    "-P",
                    "-b",
                    &node.kafka,
                    "-t",
                    &topic,
                    "-K",
                    "\t",
                    "-z",
                    codec,
                ])
                .args([
                    "-X",
                    "acks=all",
                    "-H",
                    &format!("codec={codec}"),
                    "-H",
                    "origin=kcat",
                ]),
            Duration::from_secs(120),
            Some(input.as_bytes()),
        );
        let out = run_ok(
            Command::new("kcat")
                .args([
                    "-C",
                    "-b",
                    &node.kafka,
                    "-t",
                    &topic,
                    "-e",
                    "-q",
                    "-o",
                    "beginning",
                ])
                .args(["-f", "%p\t%o\t%k\t%s\t%h\n"]),
            Duration::from_secs(120),
            None,
        );
        let mut seen = HashMap::new();
        let mut next_offset: HashMap<&str, i64> = HashMap::new();
        for line in out.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 5, "bad line {line:?}");
            let (p, o, k, v, h) = (f[0], f[1].parse::<i64>().unwrap(), f[2], f[3], f[4]);
            let expected_offset = next_offset.entry(p).or_insert(0);
            assert_eq!(
                o, *expected_offset,
                "offsets of partition {p} must be dense and ordered"
            );
            *expected_offset += 1;
            let i: usize = k.strip_prefix("key-").unwrap().parse().unwrap();
            assert_eq!(v, value(i, codec), "value of {k} ({codec})");
            assert_eq!(h, format!("codec={codec},origin=kcat"), "headers of {k}");
            assert!(seen.insert(i, ()).is_none(), "{k} read twice");
        }
        assert_eq!(seen.len(), MESSAGES, "{codec}: every message comes back");
        assert_eq!(
            next_offset.len(),
            3,
            "{codec}: keys spread over all partitions"
        );
    }
}
