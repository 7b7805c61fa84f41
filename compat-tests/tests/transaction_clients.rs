//! Transactions with two non-Java clients, confluent-kafka (librdkafka) and kafkajs, as real
//! processes against a one-node `sluice`: a transactional producer commits some transactions
//! and aborts every third (read_committed consumers see exactly the committed records, in
//! order per partition, read_uncommitted ones all of them), and a consume-transform-produce
//! loop with offsets sent to the transaction and every third transaction aborted leaves
//! exactly one output record per input record and the group's offsets at the input's end.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use sluice_compat_tests::{compat_cache, compat_dir, run_ok, topic, Node};

/// Each client command is killed after this; the programs' own `--timeout` (`PROGRAM_SECONDS`)
/// is shorter, so they fail with their own message first.
const LIMIT: Duration = Duration::from_secs(120);
const PROGRAM_SECONDS: &str = "90";
const PARTITIONS: usize = 3;
/// Transactions of the producer tests: every third (i % 3 == 2) is aborted and the last one
/// is committed, so a read_committed consumer that has all committed records has read past
/// every aborted one (their markers precede the next transaction's records).
const TXNS: usize = 10;
const RECORDS: usize = 60;
/// Input records of the consume-transform-produce tests, and records per transaction.
const INPUT: usize = 3000;
const ETL_BATCH: &str = "100";

/// `clients/python/txn_confluent.py <command>` on the venv's python (confluent-kafka).
fn confluent(command: &str, bootstrap: &str) -> Command {
    let python = compat_cache().join("venv/bin/python");
    assert!(
        python.exists(),
        "{} missing: run compat-tests/setup.sh",
        python.display()
    );
    let mut cmd = Command::new(python);
    cmd.arg(compat_dir().join("clients/python/txn_confluent.py"))
        .arg(command)
        .args(["--bootstrap", bootstrap, "--timeout", PROGRAM_SECONDS]);
    cmd
}

/// `node clients/node/txn.js <command>` (kafkajs).
fn kafkajs(command: &str, bootstrap: &str) -> Command {
    let dir = compat_dir().join("clients/node");
    assert!(
        dir.join("node_modules/kafkajs").exists(),
        "kafkajs missing in {}: run compat-tests/setup.sh",
        dir.display()
    );
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("txn.js")).arg(command).args([
        "--bootstrap",
        bootstrap,
        "--timeout",
        PROGRAM_SECONDS,
    ]);
    cmd
}

/// Runs a client command, asserting success; its stdout lines.
fn lines(cmd: &mut Command) -> Vec<String> {
    let t = Instant::now();
    let desc = format!("{:?}", cmd.get_args().nth(1).unwrap_or_default());
    let out = run_ok(cmd, LIMIT, None);
    eprintln!("  {desc} took {:?}", t.elapsed());
    out.lines().map(String::from).collect()
}

/// Whether the producers abort transaction `i` (every third).
fn is_aborted(i: usize) -> bool {
    i % 3 == 2
}

/// What the producer prints: one line per transaction once it has ended.
fn producer_outcomes() -> Vec<String> {
    (0..TXNS)
        .map(|i| {
            if is_aborted(i) {
                format!("aborted {i}")
            } else {
                format!("committed {i}")
            }
        })
        .collect()
}

/// What each partition must hold, in order: record j of transaction i is t<i>-r<j> on
/// partition j % 3.
fn produced(committed_only: bool) -> BTreeMap<i32, Vec<String>> {
    let mut parts: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for i in (0..TXNS).filter(|i| !(committed_only && is_aborted(*i))) {
        for j in 0..RECORDS {
            parts
                .entry((j % PARTITIONS) as i32)
                .or_default()
                .push(format!("t{i}-r{j}"));
        }
    }
    parts
}

/// A consume command's records, as values per partition in the order consumed, after
/// checking its `END <count>` line.
fn records(out: &[String], what: &str) -> BTreeMap<i32, Vec<String>> {
    let mut parts: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    let mut count = 0;
    for l in out {
        if let Some(r) = l.strip_prefix("R ") {
            let f: Vec<&str> = r.splitn(3, ' ').collect();
            assert_eq!(f.len(), 3, "{what}: bad line {l:?}");
            parts
                .entry(f[0].parse().expect("partition"))
                .or_default()
                .push(f[2].to_string());
            count += 1;
        }
    }
    assert_eq!(
        out.last().map(String::as_str),
        Some(format!("END {count}").as_str()),
        "{what}: the consumer's last line"
    );
    parts
}

/// Compares what a consumer read with what a partition must hold, naming the first
/// differences: leaked (should not be there), missing, duplicated, out of order.
fn assert_partitions(
    got: &BTreeMap<i32, Vec<String>>,
    want: &BTreeMap<i32, Vec<String>>,
    what: &str,
) {
    let mut problems = Vec::new();
    for p in 0..PARTITIONS as i32 {
        let got = got.get(&p).cloned().unwrap_or_default();
        let want = want.get(&p).cloned().unwrap_or_default();
        if got == want {
            continue;
        }
        let want_set: BTreeSet<&String> = want.iter().collect();
        let got_set: BTreeSet<&String> = got.iter().collect();
        let extra: Vec<&&String> = got_set.difference(&want_set).take(5).collect();
        let missing: Vec<&&String> = want_set.difference(&got_set).take(5).collect();
        problems.push(format!(
            "partition {p}: {} records, want {}; not expected (e.g. aborted): {} {extra:?}; \
             missing: {} {missing:?}; duplicated: {}; first records {:?}",
            got.len(),
            want.len(),
            got_set.difference(&want_set).count(),
            want_set.difference(&got_set).count(),
            got.len() - got_set.len(),
            &got[..got.len().min(5)],
        ));
    }
    assert!(problems.is_empty(), "{what}:\n{}", problems.join("\n"));
}

/// Jepsen-style totals of a read_committed read of the producer tests' records: committed
/// records lost, records read more than once, records of aborted transactions read, and
/// torn transactions (some of their records visible, not all).
fn txn_totals(got: &BTreeMap<i32, Vec<String>>) -> [(&'static str, usize); 4] {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for v in got.values().flatten() {
        *seen.entry(v.as_str()).or_default() += 1;
    }
    let visible = |i: usize| {
        (0..RECORDS)
            .filter(|j| seen.contains_key(format!("t{i}-r{j}").as_str()))
            .count()
    };
    let (mut lost, mut aborted_read, mut torn) = (0, 0, 0);
    for i in 0..TXNS {
        let n = visible(i);
        torn += usize::from(n > 0 && n < RECORDS);
        if is_aborted(i) {
            aborted_read += n;
        } else {
            lost += RECORDS - n;
        }
    }
    let duplicated = seen.values().map(|n| n - 1).sum();
    [
        ("lost", lost),
        ("duplicated", duplicated),
        ("aborted reads", aborted_read),
        ("torn transactions", torn),
    ]
}

/// Both producer tests: the producer's output, then what a read_committed and a
/// read_uncommitted consumer (`consume(isolation, expect)`) read.
fn check_commit_and_abort(
    name: &str,
    out: &[String],
    consume: impl Fn(&str, usize) -> Vec<String>,
) {
    assert_eq!(out, producer_outcomes(), "producer output");
    let committed_count = (0..TXNS).filter(|i| !is_aborted(*i)).count() * RECORDS;

    let committed = records(
        &consume("read_committed", committed_count),
        "read_committed",
    );
    let totals = txn_totals(&committed);
    eprintln!("{name}: read_committed totals {totals:?}");
    assert!(totals.iter().all(|(_, n)| *n == 0), "{name}: {totals:?}");
    assert_partitions(
        &committed,
        &produced(true),
        "read_committed consumer: exactly the committed records, in order per partition",
    );
    let all = records(
        &consume("read_uncommitted", TXNS * RECORDS),
        "read_uncommitted",
    );
    assert_partitions(
        &all,
        &produced(false),
        "read_uncommitted consumer: every record, aborted ones included, in order",
    );
    eprintln!(
        "{name}: {committed_count} committed of {} records",
        TXNS * RECORDS
    );
}

#[test]
fn confluent_kafka_transactions_commit_and_abort() {
    let node = Node::start();
    let name = topic("txn-confluent");
    lines(confluent("create", &node.kafka).args(["--topics", &name, "--partitions", "3"]));
    let out = lines(
        confluent("produce", &node.kafka)
            .args(["--topic", &name, "--transactions", &TXNS.to_string()])
            .args(["--records", &RECORDS.to_string()])
            .args(["--transactional-id", &format!("{name}-producer")]),
    );
    check_commit_and_abort("confluent-kafka", &out, |isolation, expect| {
        lines(
            confluent("consume", &node.kafka)
                .args(["--topic", &name, "--isolation", isolation])
                .args(["--expect", &expect.to_string()]),
        )
    });
}

#[test]
fn kafkajs_transactions_commit_and_abort() {
    let node = Node::start();
    let name = topic("txn-kafkajs");
    lines(kafkajs("create", &node.kafka).args(["--topics", &name, "--partitions", "3"]));
    let out = lines(
        kafkajs("produce", &node.kafka)
            .args(["--topic", &name, "--transactions", &TXNS.to_string()])
            .args(["--records", &RECORDS.to_string()])
            .args(["--transactional-id", &format!("{name}-producer")]),
    );
    check_commit_and_abort("kafkajs", &out, |isolation, expect| {
        lines(
            kafkajs("consume", &node.kafka)
                .args(["--topic", &name, "--isolation", isolation])
                .args(["--expect", &expect.to_string()]),
        )
    });
}

/// The transactions an `etl` run reports: (committed, aborted) counts and the records they
/// carried, after checking its lines and its `DONE` line.
fn etl_outcome(out: &[String]) -> (usize, usize, usize) {
    let (mut committed, mut aborted, mut aborted_records, mut committed_records) = (0, 0, 0, 0);
    for (i, l) in out.iter().take(out.len().saturating_sub(1)).enumerate() {
        let f: Vec<&str> = l.split(' ').collect();
        assert!(
            f.len() == 3 && f[1] == i.to_string(),
            "etl: bad line {l:?} (transaction {i})"
        );
        let n: usize = f[2].parse().expect("records");
        match f[0] {
            "committed" => {
                committed += 1;
                committed_records += n;
            }
            "aborted" => {
                aborted += 1;
                aborted_records += n;
            }
            _ => panic!("etl: bad line {l:?}"),
        }
        assert_eq!(
            f[0] == "aborted",
            is_aborted(i),
            "etl: every third transaction aborts, the others commit: {l:?}"
        );
    }
    assert_eq!(
        out.last().map(String::as_str),
        Some(format!("DONE {committed} {aborted}").as_str()),
        "etl: last line"
    );
    assert_eq!(
        committed_records, INPUT,
        "etl: committed transactions carry every input record once"
    );
    assert!(aborted > 0, "etl: some transactions were aborted");
    (committed, aborted, aborted_records)
}

/// The output a consume-transform-produce run must leave, read_committed: x-in-<i> for every
/// input record in-<i> (partition i % 3), in input order per partition.
fn transformed() -> BTreeMap<i32, Vec<String>> {
    let mut parts: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for i in 0..INPUT {
        parts
            .entry((i % PARTITIONS) as i32)
            .or_default()
            .push(format!("x-in-{i}"));
    }
    parts
}

/// The group's committed offsets on `input` equal the input's end offsets (confluent-kafka's
/// committed(), which asks with require_stable).
fn assert_group_at_end(node: &Node, input: &str, group: &str) {
    let out = lines(confluent("offsets", &node.kafka).args(["--topic", input, "--group", group]));
    let pick = |tag: &str| -> BTreeMap<i32, i64> {
        out.iter()
            .filter_map(|l| l.strip_prefix(tag))
            .map(|r| {
                let (p, o) = r.split_once(' ').expect("'<partition> <offset>'");
                (p.parse().unwrap(), o.parse().unwrap())
            })
            .collect()
    };
    let ends = pick("H ");
    let want: BTreeMap<i32, i64> = (0..PARTITIONS as i32)
        .map(|p| (p, (INPUT / PARTITIONS) as i64))
        .collect();
    assert_eq!(ends, want, "input end offsets");
    assert_eq!(
        pick("C "),
        ends,
        "group {group}: committed offsets equal the input's end offsets"
    );
}

/// Creates the input and output topics, seeds the input (confluent-kafka, idempotent, record
/// i = in-<i> on partition i % 3): (input, output, group).
fn etl_topics(node: &Node, client: &str) -> (String, String, String) {
    let input = topic(&format!("etl-in-{client}"));
    let output = topic(&format!("etl-out-{client}"));
    lines(confluent("create", &node.kafka).args([
        "--topics",
        &format!("{input},{output}"),
        "--partitions",
        "3",
    ]));
    let out = lines(confluent("seed", &node.kafka).args([
        "--topic",
        &input,
        "--records",
        &INPUT.to_string(),
    ]));
    assert_eq!(out, [format!("SEEDED {INPUT}")], "seed");
    (input.clone(), output, format!("{input}-group"))
}

#[test]
fn confluent_kafka_consume_transform_produce_exactly_once() {
    let node = Node::start();
    let (input, output, group) = etl_topics(&node, "confluent");
    let out = lines(
        confluent("etl", &node.kafka)
            .args(["--input", &input, "--output", &output, "--group", &group])
            .args(["--transactional-id", &format!("{output}-etl")])
            .args(["--batch", ETL_BATCH]),
    );
    let (committed, aborted, aborted_records) = etl_outcome(&out);

    let consume = |isolation: &str, expect: usize| {
        lines(
            confluent("consume", &node.kafka)
                .args(["--topic", &output, "--isolation", isolation])
                .args(["--expect", &expect.to_string()]),
        )
    };
    let got = records(&consume("read_committed", INPUT), "output, read_committed");
    assert_partitions(
        &got,
        &transformed(),
        "output (read_committed): one transformed record per input record, in input order",
    );
    // The aborted transactions did write: read_uncommitted sees their records too.
    let all = records(
        &consume("read_uncommitted", INPUT + aborted_records),
        "output, read_uncommitted",
    );
    let n: usize = all.values().map(Vec::len).sum();
    assert_eq!(
        n,
        INPUT + aborted_records,
        "output (read_uncommitted): committed and aborted records"
    );
    assert_group_at_end(&node, &input, &group);
    eprintln!("confluent-kafka etl: {committed} transactions committed, {aborted} aborted");
}

#[test]
fn kafkajs_consume_transform_produce_exactly_once() {
    let node = Node::start();
    let (input, output, group) = etl_topics(&node, "kafkajs");
    let out = lines(
        kafkajs("etl", &node.kafka)
            .args(["--input", &input, "--output", &output, "--group", &group])
            .args(["--transactional-id", &format!("{output}-etl")])
            .args(["--batch", ETL_BATCH]),
    );
    let (committed, aborted, _) = etl_outcome(&out);
    let got = records(
        &lines(
            kafkajs("consume", &node.kafka)
                .args(["--topic", &output, "--isolation", "read_committed"])
                .args(["--expect", &INPUT.to_string()]),
        ),
        "output, read_committed",
    );
    assert_partitions(
        &got,
        &transformed(),
        "output (kafkajs read_committed): one transformed record per input record, in input order",
    );
    assert_group_at_end(&node, &input, &group);
    eprintln!("kafkajs etl: {committed} transactions committed, {aborted} aborted");
}
