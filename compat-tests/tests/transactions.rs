//! Transactions and exactly-once: the Java client's transactional producer with
//! read_committed / read_uncommitted consumers, and Kafka's own TransactionalMessageCopier
//! (the tool behind Kafka's system test `transactions_test.py`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use sluice_compat_tests::{launcher, run_ok, topic, Node};

/// Each client command is killed after this; the programs' own timeouts are shorter, so they
/// fail with their own message first.
const LIMIT: Duration = Duration::from_secs(180);

/// A program of `clients/java` (compiled by setup.sh into the cache), run on the Kafka 4.3.1
/// jars through the `kafka-run-class` launcher.
fn java_client(class: &str) -> Command {
    let cache = std::env::var_os("SLUICE_COMPAT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/sluice-compat")
        });
    let classes = cache.join("java-classes");
    assert!(
        classes.join(format!("{class}.class")).exists(),
        "{class}.class missing in {}: run compat-tests/setup.sh",
        classes.display()
    );
    let mut cmd = Command::new(launcher("kafka-run-class"));
    cmd.env("EXTRA_CLASSPATH", &classes);
    if std::env::var_os("KAFKA_HEAP_OPTS").is_none() {
        cmd.env("KAFKA_HEAP_OPTS", "-Xmx256m");
    }
    cmd.arg(class);
    cmd
}

fn create_topic(node: &Node, name: &str, partitions: u32) {
    run_ok(
        Command::new(launcher("kafka-topics"))
            .args([
                "--bootstrap-server",
                &node.kafka,
                "--create",
                "--topic",
                name,
            ])
            .args(["--partitions", &partitions.to_string()]),
        LIMIT,
        None,
    );
}

/// Every record of `topic` read by TxnConsumer at `isolation`, as (partition, value) in the
/// order consumed, once at least `expect` were read and the consumer reached the end offsets.
fn consume(node: &Node, topic: &str, isolation: &str, expect: usize) -> Vec<(i32, String)> {
    let out = run_ok(
        java_client("TxnConsumer")
            .args(["--bootstrap", &node.kafka, "--topic", topic])
            .args(["--isolation", isolation, "--expect", &expect.to_string()])
            .args(["--timeout", "120", "--print-partition"]),
        LIMIT,
        None,
    );
    out.lines()
        .map(|l| {
            let (p, v) = l.split_once(' ').expect("'<partition> <value>'");
            (p.parse().expect("partition"), v.to_string())
        })
        .collect()
}

/// The values seen more than once, with their counts.
fn duplicates(values: &[(i32, String)]) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for (_, v) in values {
        *counts.entry(v.as_str()).or_insert(0) += 1;
    }
    counts.retain(|_, n| *n > 1);
    counts
}

/// Values per partition, in the order consumed.
fn by_partition(records: &[(i32, String)]) -> BTreeMap<i32, Vec<String>> {
    let mut parts: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for (p, v) in records {
        parts.entry(*p).or_default().push(v.clone());
    }
    parts
}

/// The latest offset of every partition of `topic` (ListOffsets, timestamp -1), read with
/// Kafka's GetOffsetShell (`kafka-get-offsets.sh`), whose lines are `topic:partition:offset`.
fn latest_offsets(node: &Node, topic: &str) -> BTreeMap<i32, i64> {
    let out = run_ok(
        Command::new(launcher("kafka-run-class"))
            .arg("org.apache.kafka.tools.GetOffsetShell")
            .args(["--bootstrap-server", &node.kafka, "--topic", topic])
            .args(["--time", "latest"]),
        LIMIT,
        None,
    );
    out.lines()
        .filter_map(|l| {
            let mut f = l.rsplitn(3, ':');
            let offset = f.next()?.parse().ok()?;
            let partition = f.next()?.parse().ok()?;
            (f.next()? == topic).then_some((partition, offset))
        })
        .collect()
}

#[test]
fn java_transactions_commit_and_abort_with_read_committed_consumer() {
    const TXNS: usize = 9;
    const RECORDS: usize = 20;
    const PARTITIONS: usize = 3;
    let node = Node::start();
    let name = topic("txn");
    create_topic(&node, &name, PARTITIONS as u32);

    let out = run_ok(
        java_client("TxnProducer")
            .args(["--bootstrap", &node.kafka, "--topic", &name])
            .args(["--transactions", &TXNS.to_string()])
            .args(["--records", &RECORDS.to_string()])
            .args(["--transactional-id", &format!("{name}-producer")])
            .args(["--timeout", "150"]),
        LIMIT,
        None,
    );
    let aborted = |i: usize| i % 3 == 2;
    let outcomes: Vec<String> = (0..TXNS)
        .map(|i| {
            if aborted(i) {
                format!("aborted {i}")
            } else {
                format!("committed {i}")
            }
        })
        .collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), outcomes, "producer output");

    // What each partition must hold, in order: record j of every transaction goes to j % 3.
    let expected = |committed_only: bool| {
        let mut parts: BTreeMap<i32, Vec<String>> = BTreeMap::new();
        for i in (0..TXNS).filter(|i| !(committed_only && aborted(*i))) {
            for j in 0..RECORDS {
                parts
                    .entry((j % PARTITIONS) as i32)
                    .or_default()
                    .push(format!("t{i}-r{j}"));
            }
        }
        parts
    };

    let committed = consume(&node, &name, "read_committed", 120);
    let leaked: Vec<&str> = committed
        .iter()
        .map(|(_, v)| v.as_str())
        .filter(|v| {
            let txn: usize = v[1..v.find('-').unwrap()].parse().unwrap();
            aborted(txn)
        })
        .collect();
    assert!(
        leaked.is_empty(),
        "read_committed consumer saw {} records of aborted transactions: {leaked:?}",
        leaked.len()
    );
    let dups = duplicates(&committed);
    assert!(dups.is_empty(), "read_committed duplicates: {dups:?}");
    assert_eq!(
        committed.len(),
        120,
        "read_committed consumer must see exactly the 120 committed records"
    );
    assert_eq!(
        by_partition(&committed),
        expected(true),
        "read_committed: each partition holds its committed records in production order"
    );

    let all = consume(&node, &name, "read_uncommitted", 180);
    let dups = duplicates(&all);
    assert!(dups.is_empty(), "read_uncommitted duplicates: {dups:?}");
    assert_eq!(
        all.len(),
        180,
        "read_uncommitted consumer must see all 180 records, aborted ones included"
    );
    assert_eq!(
        by_partition(&all),
        expected(false),
        "read_uncommitted: each partition holds every record in production order"
    );

    // Every transaction touched every partition, so each partition got one control record
    // (commit or abort marker) per transaction, taking one offset each.
    let offsets = latest_offsets(&node, &name);
    let want: BTreeMap<i32, i64> = expected(false)
        .into_iter()
        .map(|(p, values)| (p, (values.len() + TXNS) as i64))
        .collect();
    assert_eq!(
        offsets, want,
        "latest offsets = records + one control marker per transaction, per partition"
    );
    assert_eq!(
        offsets.values().sum::<i64>(),
        (180 + PARTITIONS * TXNS) as i64
    );
}

/// Kafka's system test `transactions_test.py` without the bounces: one TransactionalMessageCopier
/// per input partition copies it to the same partition of the output topic in transactions of
/// up to 100 records, committing the consumed offsets with them and aborting about a third of
/// the transactions at random (then rewinding to the committed offsets). A read_committed
/// consumer of the output must then see every input record exactly once, in input order within
/// each partition.
#[test]
fn transactional_message_copier_copies_exactly_once() {
    const SEED: usize = 10_000;
    let node = Node::start();
    let (input, output) = (topic("copier-in"), topic("copier-out"));
    create_topic(&node, &input, 3);
    create_topic(&node, &output, 3);

    // VerifiableProducer sets retries=0, which turns idempotence off; the system test seeds with
    // an idempotent producer, so the config file turns it back on (and makes sends retry).
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        "enable.idempotence=true\nretries=2147483647\nacks=all\n",
    )
    .unwrap();
    let seeded = run_ok(
        Command::new(launcher("kafka-run-class"))
            .arg("org.apache.kafka.tools.VerifiableProducer")
            .args(["--bootstrap-server", &node.kafka, "--topic", &input])
            .args(["--max-messages", &SEED.to_string()])
            // Integer keys 0..99 spread the records over the partitions by hash.
            .args(["--repeating-keys", "100", "--command-config"])
            .arg(config.path()),
        LIMIT,
        None,
    );
    // producer_send_success lines: (partition, offset, value).
    let mut acked: Vec<(i32, i64, String)> = Vec::new();
    for line in seeded.lines().filter(|l| l.starts_with('{')) {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        match event["name"].as_str() {
            Some("producer_send_success") => acked.push((
                event["partition"].as_i64().unwrap() as i32,
                event["offset"].as_i64().unwrap(),
                event["value"].as_str().unwrap().to_string(),
            )),
            Some("producer_send_error") => panic!("seeding failed: {line}"),
            _ => {}
        }
    }
    assert_eq!(acked.len(), SEED, "seeded records acked");
    acked.sort();
    let mut input_parts: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for (p, _, v) in &acked {
        input_parts.entry(*p).or_default().push(v.clone());
    }

    // One copier per input partition, all at once and in one consumer group, as the system
    // test runs them.
    let group = format!("{output}-group");
    let statuses: Vec<(i32, usize, String)> = std::thread::scope(|s| {
        let copiers: Vec<_> = input_parts
            .iter()
            .map(|(&p, values)| {
                let (bootstrap, input, output, group) = (&node.kafka, &input, &output, &group);
                s.spawn(move || {
                    let out = run_ok(
                        Command::new(launcher("kafka-run-class"))
                            .arg("org.apache.kafka.tools.TransactionalMessageCopier")
                            .args(["--broker-list", bootstrap])
                            .args(["--transactional-id", &format!("{output}-copier-{p}")])
                            .args(["--consumer-group", group])
                            .args(["--input-topic", input])
                            .args(["--input-partition", &p.to_string()])
                            .args(["--output-topic", output])
                            .args(["--max-messages", &values.len().to_string()])
                            .args(["--transaction-size", "100"])
                            .arg("--enable-random-aborts"),
                        LIMIT,
                        None,
                    );
                    (p, values.len(), out)
                })
            })
            .collect();
        copiers
            .into_iter()
            .map(|c| c.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    // The copier prints a JSON status per poll and, on exit, "ShutdownComplete" with the
    // number of records it committed.
    for (p, count, out) in &statuses {
        let last = out
            .lines()
            .rfind(|l| l.contains("\"ShutdownComplete\""))
            .unwrap_or_else(|| panic!("copier {p}: no ShutdownComplete status:\n{out}"));
        let status: serde_json::Value = serde_json::from_str(last).unwrap();
        assert_eq!(
            (
                status["totalProcessed"].as_u64(),
                status["remaining"].as_u64()
            ),
            (Some(*count as u64), Some(0)),
            "copier of partition {p} must commit its {count} records: {last}"
        );
    }

    let copied = consume(&node, &output, "read_committed", SEED);
    let dups = duplicates(&copied);
    assert!(
        dups.is_empty(),
        "{} values copied more than once (aborted or repeated transactions visible): {:?}",
        dups.len(),
        dups.iter().take(20).collect::<Vec<_>>()
    );
    let copied_set: BTreeSet<&str> = copied.iter().map(|(_, v)| v.as_str()).collect();
    let input_set: BTreeSet<&str> = acked.iter().map(|(_, _, v)| v.as_str()).collect();
    let missing: Vec<&&str> = input_set.difference(&copied_set).take(20).collect();
    let extra: Vec<&&str> = copied_set.difference(&input_set).take(20).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "output ({} records) differs from input ({SEED}): missing e.g. {missing:?}, extra e.g. {extra:?}",
        copied.len()
    );
    // Each copier copies its partition in order, and aborted transactions are rewound and
    // copied again: each output partition must equal its input partition.
    let copied_parts = by_partition(&copied);
    for (p, want) in &input_parts {
        let got = copied_parts.get(p).map(Vec::as_slice).unwrap_or_default();
        if let Some(i) = (0..want.len().max(got.len())).find(|&i| want.get(i) != got.get(i)) {
            let around = |v: &[String]| v[i.min(v.len())..(i + 5).min(v.len())].to_vec();
            panic!(
                "output partition {p} differs from input partition {p} at position {i}: \
                 input {:?}.., output {:?}..",
                around(want),
                around(got)
            );
        }
    }
}
