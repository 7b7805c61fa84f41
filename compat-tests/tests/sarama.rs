//! IBM/sarama (Go), pinned to the newest Kafka version it knows (4.3.1), through the
//! `sarama-client` launcher: an idempotent producer (acks=all) in every codec, whose records a
//! consumer group reads back exactly once, in order, unchanged, at their acked offsets; the
//! group commits and a new member resumes from its offsets; then a ClusterAdmin round trip
//! (create, list, describe, both config alter APIs, partitions, groups, committed offsets,
//! DeleteRecords, delete), cross-checked with kcat.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sluice_compat_tests::{launcher, read_topic, run, run_ok, topic, Node};

const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];
const PER_CODEC: usize = 2000;

/// Record i's value, as clients/sarama/main.go makes it.
fn value(i: usize) -> String {
    format!("v-{i}-{}", "xyz".repeat(i % 17))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `sarama-client SUBCOMMAND --bootstrap <node> ARGS...`, bounded by its own 60 s watchdog
/// and by 90 s here.
fn sarama(node: &Node, subcommand: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(launcher("sarama-client"));
    cmd.args([subcommand, "--bootstrap", &node.kafka, "--timeout", "60"])
        .args(args);
    cmd
}

const LIMIT: Duration = Duration::from_secs(90);

/// Produces records `first..first+n`; returns where each was acked: index -> (partition, offset).
fn produce(
    node: &Node,
    topic: &str,
    first: usize,
    n: usize,
    codec: &str,
) -> BTreeMap<usize, (i32, i64)> {
    let (first_s, n_s) = (first.to_string(), n.to_string());
    let out = run_ok(
        &mut sarama(
            node,
            "produce",
            &[
                "--topic",
                topic,
                "--first",
                &first_s,
                "--messages",
                &n_s,
                "--compression",
                codec,
            ],
        ),
        LIMIT,
        None,
    );
    let acked: BTreeMap<usize, (i32, i64)> = out
        .lines()
        .filter_map(|l| l.strip_prefix("ACK "))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let i = f[2].strip_prefix("k-").unwrap().parse().unwrap();
            (i, (f[0].parse().unwrap(), f[1].parse().unwrap()))
        })
        .collect();
    assert_eq!(
        acked.keys().copied().collect::<Vec<_>>(),
        (first..first + n).collect::<Vec<_>>(),
        "{codec}: every record acked once\n{out}"
    );
    acked
}

/// One record as the group member printed it.
struct Rec {
    partition: i32,
    offset: i64,
    timestamp: i64,
    key: String,
    value: String,
    headers: String,
}

/// A group member reads `n` records (and lingers a second for extras); returns every record
/// it printed.
fn consume(node: &Node, topic: &str, group: &str, n: usize) -> (Vec<Rec>, String) {
    let n_s = n.to_string();
    let out = run_ok(
        &mut sarama(
            node,
            "consume-group",
            &["--topic", topic, "--group", group, "--messages", &n_s],
        ),
        LIMIT,
        None,
    );
    let recs = out
        .lines()
        .filter_map(|l| l.strip_prefix("R "))
        .map(|l| {
            let f: Vec<&str> = l.splitn(6, ' ').collect();
            assert_eq!(f.len(), 6, "bad record line {l:?}");
            Rec {
                partition: f[0].parse().unwrap(),
                offset: f[1].parse().unwrap(),
                timestamp: f[2].parse().unwrap(),
                key: f[3].into(),
                value: f[4].into(),
                headers: f[5].into(),
            }
        })
        .collect();
    (recs, out)
}

/// The member saw exactly the records `range`, each once, unchanged, at its acked offset,
/// every partition in offset order with none skipped, stamped with the producer's clock.
fn check(
    recs: &[Rec],
    acked: &BTreeMap<usize, (i32, i64)>,
    range: Range<usize>,
    since_ms: i64,
    out: &str,
) {
    let tail = &out[out.len().saturating_sub(2000)..];
    assert_eq!(
        recs.len(),
        range.len(),
        "records read (duplicates and strays count)\n...{tail}"
    );
    let mut seen = vec![false; range.len()];
    let mut got: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for r in recs {
        let i: usize = r.key.strip_prefix("k-").unwrap().parse().unwrap();
        let at = format!("{} at {}@{}", r.key, r.partition, r.offset);
        assert!(range.contains(&i), "{at}: not expected here ({range:?})");
        assert!(!seen[i - range.start], "{at}: read twice");
        seen[i - range.start] = true;
        assert_eq!(acked[&i], (r.partition, r.offset), "{at}: acked elsewhere");
        assert_eq!(r.value, value(i), "{at}: value");
        assert_eq!(r.headers, format!("idx={i},client=sarama"), "{at}: headers");
        assert!(
            (since_ms - 5_000..=now_ms() + 5_000).contains(&r.timestamp),
            "{at}: timestamp {} not from this run (since {since_ms})",
            r.timestamp
        );
        got.entry(r.partition).or_default().push(r.offset);
    }
    let mut want: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for i in range {
        let (p, o) = acked[&i];
        want.entry(p).or_default().push(o);
    }
    want.values_mut().for_each(|v| v.sort_unstable());
    assert_eq!(got, want, "offsets read per partition, in order");
}

/// The admin's steps by name (one JSON object per line with an "op").
fn steps(out: &str) -> HashMap<String, Value> {
    out.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| Some((v["op"].as_str()?.to_string(), v)))
        .collect()
}

#[test]
fn sarama_produces_consumes_as_a_group_and_administers_topics_and_groups() {
    let node = Node::start_with(&["--config", "num.partitions=3"]);
    let topic = topic("sarama");
    let group = format!("g-{topic}");
    let since = now_ms();

    // Idempotent producers, one per codec, into an auto-created topic of 3 partitions.
    let mut acked = BTreeMap::new();
    for (n, codec) in CODECS.iter().enumerate() {
        acked.extend(produce(&node, &topic, n * PER_CODEC, PER_CODEC, codec));
    }
    let total = acked.len();
    let mut per_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for (p, o) in acked.values() {
        per_partition.entry(*p).or_default().push(*o);
    }
    assert_eq!(per_partition.len(), 3, "keys spread over all partitions");
    for (p, offsets) in &mut per_partition {
        offsets.sort_unstable();
        let dense: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(
            *offsets, dense,
            "acked offsets of partition {p} are dense from 0"
        );
    }

    // A new group reads everything from the oldest offset, and commits.
    let (recs, out) = consume(&node, &topic, &group, total);
    check(&recs, &acked, 0..total, since, &out);

    // More records; a new member of the same group reads only those.
    acked.extend(produce(&node, &topic, total, 100, "none"));
    let (recs, out) = consume(&node, &topic, &group, 100);
    check(&recs, &acked, total..total + 100, since, &out);
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, o) in acked.values() {
        let e = ends.entry(*p).or_default();
        *e = (*e).max(o + 1);
    }

    // ClusterAdmin, on the data topic and group and on a topic of its own.
    let admin_topic = format!("{topic}-admin");
    let admin = run(
        &mut sarama(
            &node,
            "admin",
            &[
                "--topic",
                &topic,
                "--group",
                &group,
                "--admin-topic",
                &admin_topic,
            ],
        ),
        LIMIT,
        None,
    );
    let out = String::from_utf8_lossy(&admin.stdout).into_owned();
    let all = format!("{out}\nstderr:\n{}", String::from_utf8_lossy(&admin.stderr));
    let steps = steps(&out);
    let step = |op: &str| {
        let s = steps
            .get(op)
            .unwrap_or_else(|| panic!("no {op} step\n{all}"));
        assert!(s.get("error").is_none(), "{op} failed: {s}\n{all}");
        s.clone()
    };
    let cfg = |s: &Value, key: &str| {
        let c = &s["configs"][key];
        (
            c["value"].as_str().unwrap_or("?").to_string(),
            c["source"].as_str().unwrap_or("?").to_string(),
        )
    };
    let owned = |v: &str, s: &str| (v.to_string(), s.to_string());

    let s = step("describe_cluster");
    assert_eq!(
        (s["brokers"].clone(), s["controller"].clone()),
        (serde_json::json!([1]), serde_json::json!(1)),
        "{s}"
    );
    let s = step("describe_broker_config");
    assert_eq!(cfg(&s, "num.partitions").0, "3", "{s}");
    step("create_topic");

    let s = step("list_topics");
    assert_eq!(s["topics"][&topic]["partitions"], 3, "{s}");
    assert_eq!(s["topics"][&admin_topic]["partitions"], 3, "{s}");
    assert_eq!(s["topics"][&admin_topic]["replication_factor"], 1, "{s}");
    assert_eq!(s["topics"][&admin_topic]["retention.ms"], "3600000", "{s}");

    let s = step("describe_topics");
    let topics = s["topics"].as_array().unwrap();
    assert_eq!(topics.len(), 2, "{s}");
    for t in topics {
        assert_eq!(t["error"], "", "{s}");
        let parts = t["partitions"].as_array().unwrap();
        assert_eq!(parts.len(), 3, "{s}");
        for p in parts {
            assert_eq!(
                (&p["error"], &p["leader"], &p["replicas"], &p["isr"]),
                (
                    &serde_json::json!(""),
                    &serde_json::json!(1),
                    &serde_json::json!([1]),
                    &serde_json::json!([1])
                ),
                "{s}"
            );
        }
    }

    // Kafka's DescribeConfigs source DYNAMIC_TOPIC_CONFIG is sarama's "Topic".
    let s = step("describe_config");
    assert_eq!(cfg(&s, "retention.ms"), owned("3600000", "Topic"), "{s}");
    assert_eq!(
        cfg(&s, "retention.bytes"),
        owned("1048576000", "Topic"),
        "{s}"
    );
    assert_eq!(cfg(&s, "cleanup.policy"), owned("delete", "Default"), "{s}");
    let s = step("incremental_alter_config");
    assert_eq!(cfg(&s, "retention.ms"), owned("7200000", "Topic"), "{s}");
    assert_eq!(
        cfg(&s, "retention.bytes"),
        owned("1048576000", "Topic"),
        "IncrementalAlterConfigs leaves other keys alone: {s}"
    );
    // AlterConfigs replaces the topic's whole config: retention.bytes falls back to default.
    let s = step("alter_config");
    assert_eq!(cfg(&s, "retention.ms"), owned("10800000", "Topic"), "{s}");
    assert_eq!(
        cfg(&s, "max.message.bytes"),
        owned("2000000", "Topic"),
        "{s}"
    );
    assert_eq!(
        cfg(&s, "retention.bytes"),
        owned("-1", "Default"),
        "AlterConfigs replaces the whole config: {s}"
    );

    let s = step("create_partitions");
    assert_eq!(s["partitions"], 5, "{s}");

    let s = step("list_consumer_groups");
    assert_eq!(s["groups"][&group], "consumer", "{s}");
    let s = step("describe_consumer_groups");
    assert_eq!(
        s["groups"],
        serde_json::json!([{"group": group, "error": "", "state": "Empty",
            "protocol_type": "consumer", "protocol": "", "members": 0}]),
        "the members left the group: {s}"
    );

    // The group committed everything it read: its offsets are the end offsets.
    let s = step("list_consumer_group_offsets");
    let as_map = |v: &Value| -> BTreeMap<i32, i64> {
        v.as_object()
            .unwrap()
            .iter()
            .map(|(p, o)| (p.parse().unwrap(), o.as_i64().unwrap()))
            .collect()
    };
    assert_eq!(as_map(&s["end"]), ends, "end offsets: {s}");
    assert_eq!(as_map(&s["committed"]), ends, "committed offsets: {s}");

    let s = step("delete_records");
    let cut = ends[&0] / 2;
    assert_eq!(
        (s["before"].as_i64(), s["log_start"].as_i64()),
        (Some(cut), Some(cut)),
        "{s}"
    );
    let s = step("delete_topic");
    assert_eq!(s["gone"], true, "{s}");
    assert!(admin.status.success() && out.contains("OK admin"), "{all}");

    // kcat sees the cut too: partition 0 starts at it, the others still at 0.
    let records = read_topic(&node.kafka, &topic);
    let mut first: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, o) in records.keys() {
        first.entry(*p).or_insert(*o);
    }
    assert_eq!(
        first,
        BTreeMap::from([(0, cut), (1, 0), (2, 0)]),
        "first offsets after DeleteRecords"
    );
    assert_eq!(
        records.len() as i64,
        ends.values().sum::<i64>() - cut,
        "records left after DeleteRecords"
    );
}
