//! Follower fetching (KIP-392), the seed's "consumers keep reading from a replica": on three
//! nodes in three racks with Kafka's rack-aware replica selector, the Java consumer (4.4) and
//! librdkafka (kcat) read every partition from the replica in their own rack, as each node's
//! `sluice_bytes_out_total` shows (followers' copying is counted apart, in
//! `sluice_replication_bytes_out_total`), and a Java consumer whose rack's node is SIGKILLed
//! goes on reading from the leaders.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_compat_tests::{
    kcat_produce, launcher, metric_sample, run_ok, scrape_metrics, topic, wait_until, Node,
    FAST_FAILOVER,
};

const RACK_AWARE: &[&str] = &[
    "--config",
    "replica.selector.class=org.apache.kafka.common.replica.RackAwareReplicaSelector",
];
const RECORDS: usize = 3_000;

/// Bytes consumers fetched from `node` (followers' replication is counted apart).
fn consumer_bytes(node: &Node, topic: &str) -> f64 {
    let metrics = scrape_metrics(node);
    metric_sample(
        &metrics,
        &format!("sluice_bytes_out_total{{topic=\"{topic}\"}}"),
    )
    .unwrap_or(0.0)
}

/// Keyed records, so they spread over every partition (and so every leader).
fn produce(node: &Node, topic: &str, range: std::ops::Range<usize>) {
    let input: String = range.map(|i| format!("k{i}:value-{i:06}\n")).collect();
    kcat_produce(node, topic, input.as_bytes(), &["-K:"]);
}

/// What each node served the consumer between two samples, as shares of the whole.
fn shares(before: &[f64], after: &[f64]) -> Vec<f64> {
    let served: Vec<f64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    let total: f64 = served.iter().sum();
    assert!(total > 0.0, "no node counted the consumer's bytes");
    served.iter().map(|s| s / total).collect()
}

#[test]
fn consumers_read_from_the_replica_in_their_rack_and_fall_back_to_leaders() {
    let extra = [FAST_FAILOVER, RACK_AWARE].concat();
    let mut nodes = Node::start_cluster_each(3, 0, &extra, |i| {
        vec!["--config".into(), format!("broker.rack=rack-{}", i + 1)]
    });
    let topic = topic("follower-fetch");
    run_ok(
        Command::new(launcher("kafka-topics"))
            .args(["--bootstrap-server", &nodes[0].kafka, "--create", "--topic"])
            .arg(&topic)
            .args(["--partitions", "3", "--replication-factor", "3"]),
        Duration::from_secs(90),
        None,
    );
    produce(&nodes[0], &topic, 0..RECORDS);
    // Each node leads a partition that two followers copy, counted apart from consumers.
    let replicated = format!("sluice_replication_bytes_out_total{{topic=\"{topic}\"}}");
    for n in &nodes {
        let bytes = metric_sample(&scrape_metrics(n), &replicated).unwrap_or(0.0);
        assert!(bytes > 0.0, "node {} counted no replication", n.node_id);
    }
    let sample =
        |nodes: &[Node]| -> Vec<f64> { nodes.iter().map(|n| consumer_bytes(n, &topic)).collect() };

    // librdkafka in rack-3: every partition from node 3, which leads one of them.
    let before = sample(&nodes);
    let read = run_ok(
        Command::new("kcat")
            .args(["-C", "-b", &nodes[0].kafka, "-t", &topic])
            .args(["-o", "beginning", "-c", &RECORDS.to_string()])
            .args(["-X", "client.rack=rack-3"]),
        Duration::from_secs(90),
        None,
    );
    assert_eq!(read.lines().count(), RECORDS, "kcat read everything");
    let by_node = shares(&before, &sample(&nodes));
    println!("kcat's bytes by node: {by_node:?}");
    assert!(by_node[2] > 0.95, "rack-3's node served kcat: {by_node:?}");

    // The Java consumer in rack-2, left running.
    let before = sample(&nodes);
    let mut consumer = Command::new(launcher("kafka-console-consumer"))
        .args(["--bootstrap-server", &nodes[0].kafka, "--topic", &topic])
        .args(["--from-beginning", "--timeout-ms", "120000"])
        .args(["--consumer-property", "client.rack=rack-2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kafka-console-consumer");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let out = consumer.stdout.take().unwrap();
    std::thread::spawn(move || {
        // Records only (the tool may print a warning on stdout too).
        let records = BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .filter(|l| l.starts_with("value-"));
        for l in records {
            sink.lock().unwrap().push(l);
        }
    });
    let count = || lines.lock().unwrap().len();
    wait_until(
        "the Java consumer read everything",
        Duration::from_secs(90),
        || count() >= RECORDS,
    );
    let by_node = shares(&before, &sample(&nodes));
    println!("Java's bytes by node: {by_node:?}");
    assert!(by_node[1] > 0.95, "rack-2's node served Java: {by_node:?}");

    // Its rack's node dies: it reads what comes next from the leaders.
    nodes[1].kill9();
    let survivors = [&nodes[0], &nodes[2]];
    let before: Vec<f64> = survivors
        .iter()
        .map(|n| consumer_bytes(n, &topic))
        .collect();
    produce(&nodes[0], &topic, RECORDS..2 * RECORDS);
    wait_until(
        "the Java consumer read on after its replica died",
        Duration::from_secs(90),
        || count() >= 2 * RECORDS,
    );
    let _ = consumer.kill();
    let _ = consumer.wait();
    let after: Vec<f64> = survivors
        .iter()
        .map(|n| consumer_bytes(n, &topic))
        .collect();
    assert!(
        after.iter().zip(&before).all(|(a, b)| a >= b)
            && after.iter().sum::<f64>() > before.iter().sum::<f64>(),
        "the leaders served the rest: {before:?} -> {after:?}"
    );
    let mut values = lines.lock().unwrap().clone();
    values.sort();
    values.dedup();
    assert_eq!(values.len(), 2 * RECORDS, "every record once at least");
}
