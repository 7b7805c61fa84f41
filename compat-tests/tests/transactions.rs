//! Transactions and exactly-once: the Java client's transactional producer with
//! read_committed / read_uncommitted consumers, Kafka's own TransactionalMessageCopier (the
//! tool behind Kafka's system test `transactions_test.py`), on one node and on three while
//! the transaction coordinator and partition leaders are SIGKILLed, and Kafka's
//! `kafka-transactions` tool (ListTransactions, FindCoordinator + DescribeTransactions).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_compat_tests::{
    http_get, java_client, kafka_tool_table, launcher, run, run_ok, sluice_bin, topic, wait_until,
    Node, FAST_FAILOVER,
};

/// Each client command is killed after this; the programs' own timeouts are shorter, so they
/// fail with their own message first.
const LIMIT: Duration = Duration::from_secs(180);

/// Creates `name` through Kafka's CLI, with `extra` arguments (e.g. `--replication-factor 3`).
fn create_topic(bootstrap: &str, name: &str, partitions: u32, extra: &[&str]) {
    run_ok(
        Command::new(launcher("kafka-topics"))
            .args(["--bootstrap-server", bootstrap, "--create", "--topic", name])
            .args(["--partitions", &partitions.to_string()])
            .args(extra),
        LIMIT,
        None,
    );
}

/// Every record of `topic` read by TxnConsumer at `isolation`, as (partition, value) in the
/// order consumed, once at least `expect` were read and the consumer reached the end offsets.
fn consume(bootstrap: &str, topic: &str, isolation: &str, expect: usize) -> Vec<(i32, String)> {
    let out = run_ok(
        java_client("TxnConsumer")
            .args(["--bootstrap", bootstrap, "--topic", topic])
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
    create_topic(&node.kafka, &name, PARTITIONS as u32, &[]);

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

    let committed = consume(&node.kafka, &name, "read_committed", 120);
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

    let all = consume(&node.kafka, &name, "read_uncommitted", 180);
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

/// Seeds `count` records into `topic` with Kafka's VerifiableProducer (integer values from 0,
/// integer keys 0..99 spread by hash) and returns each partition's acknowledged values in
/// offset order.
fn seed(bootstrap: &str, topic: &str, count: usize, limit: Duration) -> BTreeMap<i32, Vec<String>> {
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
            .args(["--bootstrap-server", bootstrap, "--topic", topic])
            .args(["--max-messages", &count.to_string()])
            .args(["--repeating-keys", "100", "--command-config"])
            .arg(config.path()),
        limit,
        None,
    );
    // producer_send_success lines: (partition, offset, value).
    let mut acked: Vec<(i32, i64, String)> = Vec::new();
    for line in seeded.lines().filter(|l| l.starts_with('{')) {
        let event: Value = serde_json::from_str(line).unwrap();
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
    assert_eq!(acked.len(), count, "seeded records acked");
    acked.sort();
    let mut parts: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for (p, _, v) in acked {
        parts.entry(p).or_default().push(v);
    }
    parts
}

/// One running TransactionalMessageCopier: copies one input partition to the same partition
/// of the output topic in transactions of up to `--transaction-size` records, committing the
/// consumed offsets with them and, with `--enable-random-aborts`, aborting about a third of
/// the transactions at random (then rewinding to the committed offsets). It prints a JSON
/// status line per poll (`totalProcessed`: records in committed transactions) and, on exit,
/// one with stage "ShutdownComplete"; reader threads keep both streams, so progress can be
/// watched while it runs. Killed when dropped.
struct Copier {
    partition: i32,
    records: usize,
    transactional_id: String,
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Copier {
    /// Starts one copier per input partition, all at once and in one consumer group
    /// (`<output>-group`), as the system test runs them.
    fn start_all(
        bootstrap: &str,
        input: &str,
        output: &str,
        input_parts: &BTreeMap<i32, Vec<String>>,
        transaction_size: usize,
    ) -> Vec<Copier> {
        let group = format!("{output}-group");
        input_parts
            .iter()
            .map(|(&partition, values)| {
                let transactional_id = format!("{output}-copier-{partition}");
                let mut child = Command::new(launcher("kafka-run-class"))
                    .arg("org.apache.kafka.tools.TransactionalMessageCopier")
                    .args(["--broker-list", bootstrap])
                    .args(["--transactional-id", &transactional_id])
                    .args(["--consumer-group", &group])
                    .args(["--input-topic", input])
                    .args(["--input-partition", &partition.to_string()])
                    .args(["--output-topic", output])
                    .args(["--max-messages", &values.len().to_string()])
                    .args(["--transaction-size", &transaction_size.to_string()])
                    .arg("--enable-random-aborts")
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("TransactionalMessageCopier");
                let stdout = Arc::new(Mutex::new(Vec::new()));
                let stderr = Arc::new(Mutex::new(Vec::new()));
                let keep = |pipe: Box<dyn std::io::Read + Send>, into: &Arc<Mutex<Vec<String>>>| {
                    let into = Arc::clone(into);
                    std::thread::spawn(move || {
                        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                            into.lock().unwrap().push(line);
                        }
                    })
                };
                let readers = vec![
                    keep(Box::new(child.stdout.take().unwrap()), &stdout),
                    keep(Box::new(child.stderr.take().unwrap()), &stderr),
                ];
                Copier {
                    partition,
                    records: values.len(),
                    transactional_id,
                    child,
                    stdout,
                    stderr,
                    readers,
                }
            })
            .collect()
    }

    /// Records in transactions this copier has committed so far (its last status line).
    fn processed(&self) -> usize {
        let lines = self.stdout.lock().unwrap();
        lines
            .iter()
            .rev()
            .filter(|l| l.contains("\"totalProcessed\""))
            .find_map(|l| serde_json::from_str::<Value>(l).ok()?["totalProcessed"].as_u64())
            .unwrap_or(0) as usize
    }

    /// Panics with the copier's output if it has exited unsuccessfully.
    fn assert_not_failed(&mut self) {
        if let Some(status) = self.child.try_wait().expect("wait") {
            if !status.success() {
                panic!("{}", self.report(status));
            }
        }
    }

    /// Waits (until `deadline`) for the copier to exit; it must exit 0 and report all of its
    /// records committed and none remaining.
    fn finish(mut self, deadline: Instant) {
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let status = self.child.wait().expect("wait");
                panic!("did not finish in time; {}", self.report(status));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if !status.success() {
            panic!("{}", self.report(status));
        }
        self.join_readers();
        let stdout = self.stdout.lock().unwrap();
        let last = stdout
            .iter()
            .rfind(|l| l.contains("\"ShutdownComplete\""))
            .unwrap_or_else(|| {
                panic!(
                    "copier {}: no ShutdownComplete status:\n{}",
                    self.partition,
                    stdout.join("\n")
                )
            });
        let status: Value = serde_json::from_str(last).unwrap();
        assert_eq!(
            (
                status["totalProcessed"].as_u64(),
                status["remaining"].as_u64()
            ),
            (Some(self.records as u64), Some(0)),
            "copier of partition {} must commit its {} records: {last}",
            self.partition,
            self.records
        );
    }

    fn join_readers(&mut self) {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }

    /// The copier's exit status, the end of its stderr (the client logs at WARN) and its last
    /// status lines.
    fn report(&mut self, status: ExitStatus) -> String {
        self.join_readers();
        let tail = |lines: &[String], n: usize| lines[lines.len().saturating_sub(n)..].join("\n");
        format!(
            "copier of partition {} ({}) exited with {status} after committing {} of its {} \
             records\n--- stderr (last 60 lines) ---\n{}\n--- stdout (last 5 lines) ---\n{}",
            self.partition,
            self.transactional_id,
            self.processed(),
            self.records,
            tail(&self.stderr.lock().unwrap(), 60),
            tail(&self.stdout.lock().unwrap(), 5),
        )
    }
}

impl Drop for Copier {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Jepsen-style totals of a copy: what a read_committed consumer of the output read against
/// the input.
struct Totals {
    /// Input values the output lacks.
    lost: usize,
    /// Extra copies of values read more than once.
    duplicated: usize,
    /// Values read that were never in the input.
    phantom: usize,
    /// Records read that are not the final copy of their value in the log (a read_uncommitted
    /// read of it): copies written by a transaction the copier aborted and then copied again,
    /// or records read_uncommitted does not show. None when not measured.
    aborted_read: Option<usize>,
    /// Records in the log (read_uncommitted) that read_committed did not return.
    aborted_in_log: Option<usize>,
}

/// Checks that a read_committed read of the output (`copied`) holds every input value exactly
/// once, each output partition equal to its input partition (order included); with
/// `uncommitted` (a read_uncommitted read of the output) also that no aborted copy was read.
/// Prints the totals first.
fn check_copy(
    what: &str,
    input_parts: &BTreeMap<i32, Vec<String>>,
    copied: &[(i32, String)],
    uncommitted: Option<&[(i32, String)]>,
) {
    let input_count: usize = input_parts.values().map(Vec::len).sum();
    let input_set: BTreeSet<&str> = input_parts.values().flatten().map(String::as_str).collect();
    let copied_set: BTreeSet<&str> = copied.iter().map(|(_, v)| v.as_str()).collect();
    let dups = duplicates(copied);
    let copied_parts = by_partition(copied);
    let aborted_read = uncommitted.map(|all| {
        let all_parts = by_partition(all);
        copied_parts
            .iter()
            .map(|(p, read)| aborted_reads(read, all_parts.get(p).map_or(&[][..], Vec::as_slice)))
            .sum()
    });
    let totals = Totals {
        lost: input_set.difference(&copied_set).count(),
        duplicated: dups.values().map(|n| n - 1).sum(),
        phantom: copied_set.difference(&input_set).count(),
        aborted_read,
        aborted_in_log: uncommitted.map(|all| all.len().saturating_sub(copied.len())),
    };
    let opt = |v: Option<usize>| v.map_or("-".to_string(), |n| n.to_string());
    eprintln!(
        "{what}: {input_count} input records, {} read (read_committed): lost {}, duplicated {}, \
         phantom {}, aborted-read {}; aborted copies in the log (read_uncommitted only): {}",
        copied.len(),
        totals.lost,
        totals.duplicated,
        totals.phantom,
        opt(totals.aborted_read),
        opt(totals.aborted_in_log),
    );

    assert!(
        dups.is_empty(),
        "{} values copied more than once (aborted or repeated transactions visible): {:?}",
        dups.len(),
        dups.iter().take(20).collect::<Vec<_>>()
    );
    let missing: Vec<&&str> = input_set.difference(&copied_set).take(20).collect();
    let extra: Vec<&&str> = copied_set.difference(&input_set).take(20).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "output ({} records) differs from input ({input_count}): missing e.g. {missing:?}, \
         extra e.g. {extra:?}",
        copied.len()
    );
    assert_eq!(
        totals.aborted_read.unwrap_or(0),
        0,
        "read_committed returned records of aborted transactions"
    );
    // Each copier copies its partition in order, and aborted transactions are rewound and
    // copied again: each output partition must equal its input partition.
    for (p, want) in input_parts {
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

/// How many of `read` (one partition, read_committed, in offset order) are not the final copy
/// of their value in `log` (the same partition read_uncommitted). The copier rewinds after an
/// abort and copies the same values again, and never again after a commit, so the committed
/// copy of each value is its last one in the log. `read` must be a subsequence of `log`;
/// matching it from the end, each record takes the latest copy still available, which for a
/// correct read is exactly the last copy of each value.
fn aborted_reads(read: &[String], log: &[String]) -> usize {
    let mut positions: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, v) in log.iter().enumerate() {
        positions.entry(v.as_str()).or_default().push(i);
    }
    let mut before = log.len();
    let mut bad = 0;
    for v in read.iter().rev() {
        let at = positions.get(v.as_str()).and_then(|ps| {
            let k = ps.partition_point(|&i| i < before);
            (k > 0).then(|| (ps[k - 1], ps[ps.len() - 1]))
        });
        match at {
            Some((i, last)) => {
                before = i;
                if i != last {
                    bad += 1;
                }
            }
            None => bad += 1,
        }
    }
    bad
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
    create_topic(&node.kafka, &input, 3, &[]);
    create_topic(&node.kafka, &output, 3, &[]);
    let input_parts = seed(&node.kafka, &input, SEED, LIMIT);

    let deadline = Instant::now() + LIMIT;
    for copier in Copier::start_all(&node.kafka, &input, &output, &input_parts, 100) {
        copier.finish(deadline);
    }

    let copied = consume(&node.kafka, &output, "read_committed", SEED);
    check_copy("copier, one node", &input_parts, &copied, None);
}

fn bootstrap(nodes: &[Node]) -> String {
    nodes
        .iter()
        .map(|n| n.kafka.clone())
        .collect::<Vec<_>>()
        .join(",")
}

/// One partition as a node's GET /admin/topics shows it.
struct Part {
    leader: i64,
    isr: Vec<u64>,
    replicas: Vec<u64>,
}

/// The partitions of `topic` as `node` sees them (empty while it cannot answer).
fn partitions(node: &Node, topic: &str) -> Vec<Part> {
    let v: Value =
        serde_json::from_str(&http_get(&node.http, "/admin/topics")).unwrap_or(Value::Null);
    let ids = |x: &Value| -> Vec<u64> {
        x.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .collect()
    };
    v.as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["name"] == topic)
        .flat_map(|t| t["partitions"].as_array().cloned().unwrap_or_default())
        .map(|p| Part {
            leader: p["leader"].as_i64().unwrap_or(-1),
            isr: ids(&p["isr"]),
            replicas: ids(&p["replicas"]),
        })
        .collect()
}

/// Waits until every node sees every partition of `topics` led and with all its replicas in
/// the ISR (a restarted node has caught up and rejoined).
fn wait_in_sync(nodes: &[Node], topics: &[&str], limit: Duration, why: &str) -> Duration {
    wait_until(
        &format!("every replica of {topics:?} in the ISR ({why})"),
        limit,
        || {
            nodes.iter().all(|n| {
                topics.iter().all(|t| {
                    let ps = partitions(n, t);
                    !ps.is_empty()
                        && ps
                            .iter()
                            .all(|p| p.leader > 0 && p.isr.len() == p.replicas.len())
                })
            })
        },
    )
}

/// Java's `String.hashCode`, which places a transactional id on a `__transaction_state`
/// partition (`abs(hash) % partitions`).
fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// Runs Kafka's `kafka-transactions` tool (TransactionsCommand) against `bootstrap`.
fn kafka_transactions(bootstrap: &str, args: &[&str]) -> std::process::Output {
    run(
        Command::new(launcher("kafka-transactions"))
            .args(["--bootstrap-server", bootstrap])
            .args(args),
        Duration::from_secs(90),
        None,
    )
}

/// The node that FindCoordinator (v4, key type 1: transaction) names as the coordinator of
/// transactional id `id`, asked of each of `addrs` in turn until one answers without error.
/// Sent on the wire rather than through a Java tool: on a loaded machine a JVM takes seconds
/// to start.
fn transaction_coordinator(addrs: &[&str], id: &str) -> Option<usize> {
    use kafka_protocol::messages::{
        FindCoordinatorRequest, FindCoordinatorResponse, RequestHeader, ResponseHeader,
    };
    use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
    use std::io::{Read, Write};
    const VERSION: i16 = 4;
    let ask = |addr: &str| -> Option<usize> {
        let addr: std::net::SocketAddr = addr.parse().ok()?;
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let mut frame = bytes::BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(10) // FindCoordinator
            .with_request_api_version(VERSION)
            .with_correlation_id(1)
            .with_client_id(Some(StrBytes::from_string("sluice-compat-tests".into())))
            .encode(&mut frame, FindCoordinatorRequest::header_version(VERSION))
            .ok()?;
        FindCoordinatorRequest::default()
            .with_key_type(1)
            .with_coordinator_keys(vec![StrBytes::from_string(id.to_string())])
            .encode(&mut frame, VERSION)
            .ok()?;
        s.write_all(&(frame.len() as i32).to_be_bytes()).ok()?;
        s.write_all(&frame).ok()?;
        let mut len = [0u8; 4];
        s.read_exact(&mut len).ok()?;
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        s.read_exact(&mut body).ok()?;
        let mut body = bytes::Bytes::from(body);
        ResponseHeader::decode(&mut body, FindCoordinatorResponse::header_version(VERSION)).ok()?;
        let response = FindCoordinatorResponse::decode(&mut body, VERSION).ok()?;
        let c = response.coordinators.first()?;
        (c.error_code == 0 && c.node_id.0 > 0).then_some(c.node_id.0 as usize)
    };
    addrs.iter().find_map(|a| ask(a))
}

/// Records each copier has committed so far; panics if one has failed.
fn progress(copiers: &mut [Copier]) -> Vec<usize> {
    copiers
        .iter_mut()
        .map(|c| {
            c.assert_not_failed();
            c.processed()
        })
        .collect()
}

/// Waits until each copier of `which` (indexes) has committed `more` records beyond what it
/// had in `from` (or all of its records). Returns how long that took.
fn wait_progress(
    copiers: &mut [Copier],
    which: &[usize],
    from: &[usize],
    more: usize,
    why: &str,
) -> Duration {
    let target: Vec<usize> = which
        .iter()
        .map(|&i| (from[i] + more).min(copiers[i].records))
        .collect();
    let limit = Duration::from_secs(60);
    let start = Instant::now();
    loop {
        let now = progress(copiers);
        if which.iter().zip(&target).all(|(&i, &t)| now[i] >= t) {
            return start.elapsed();
        }
        if start.elapsed() >= limit {
            // What the clients were told while stuck says where to look.
            let tails: Vec<String> = which
                .iter()
                .map(|&i| {
                    let c = &copiers[i];
                    let stderr = c.stderr.lock().unwrap();
                    format!(
                        "--- copier {} ({}), stderr (last 30 lines) ---\n{}",
                        c.partition,
                        c.transactional_id,
                        stderr[stderr.len().saturating_sub(30)..].join("\n")
                    )
                })
                .collect();
            panic!(
                "timed out after {limit:?} waiting: copiers {which:?} to commit {more} more \
                 records each ({why}), at {now:?}\n{}",
                tails.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Kafka's system test `transactions_test.py` with hard bounces, on 3 nodes (RF=3,
/// min.insync.replicas=2 for the input and output topics and for `__transaction_state`):
/// while one TransactionalMessageCopier per input partition copies 60,000 records (random
/// aborts on), SIGKILL the node coordinating the copiers' transactions (the leader of their
/// `__transaction_state` partition, as FindCoordinator names it), restart it once the copiers
/// it coordinated have committed more with it down, and wait until it has rejoined every ISR;
/// then do the same to a node leading input/output partitions. The copiers must go on and
/// finish on their own (no retries or restarts by the test), and a read_committed consumer of
/// the output must see every input record exactly once, in input order within each
/// partition, and no record of an aborted transaction.
#[test]
fn copier_survives_the_transaction_coordinator_and_partition_leaders_being_killed() {
    // Enough that the copiers are mid-stream at the second kill (with 30,000 a fast run had
    // copied everything by then).
    const SEED: usize = 60_000;
    const TRANSACTION_SIZE: usize = 100;
    let start = Instant::now();
    let t = || format!("[{:6.1} s]", start.elapsed().as_secs_f64());
    let mut nodes = Node::start_cluster(3, 0, FAST_FAILOVER);
    let bootstrap = bootstrap(&nodes);
    let addrs: Vec<String> = nodes.iter().map(|n| n.kafka.clone()).collect();
    let addrs: Vec<&str> = addrs.iter().map(String::as_str).collect();
    let (input, output) = (topic("copier-in"), topic("copier-out"));
    let rf3 = [
        "--replication-factor",
        "3",
        "--config",
        "min.insync.replicas=2",
    ];
    create_topic(&bootstrap, &input, 3, &rf3);
    create_topic(&bootstrap, &output, 3, &rf3);
    wait_in_sync(
        &nodes,
        &[&input, &output],
        Duration::from_secs(30),
        "creation",
    );
    let input_parts = seed(&bootstrap, &input, SEED, Duration::from_secs(90));
    eprintln!("{} seeded {SEED} records", t());

    let mut copiers =
        Copier::start_all(&bootstrap, &input, &output, &input_parts, TRANSACTION_SIZE);
    let copy_deadline = Instant::now() + Duration::from_secs(150);
    let ids: Vec<String> = copiers.iter().map(|c| c.transactional_id.clone()).collect();
    let all_copiers: Vec<usize> = (0..copiers.len()).collect();
    let all_topics = [
        input.as_str(),
        output.as_str(),
        "__transaction_state",
        "__consumer_offsets",
    ];
    wait_progress(
        &mut copiers,
        &all_copiers,
        &vec![0; all_copiers.len()],
        500,
        "before the first kill",
    );

    // Each copier's transaction coordinator, which must lead the id's partition.
    let mut coordinator_of: Vec<Option<usize>> = Vec::new();
    wait_until(
        "a coordinator for every copier",
        Duration::from_secs(30),
        || {
            coordinator_of = ids
                .iter()
                .map(|id| transaction_coordinator(&addrs, id))
                .collect();
            coordinator_of.iter().all(Option::is_some)
        },
    );
    let coordinator_of: Vec<usize> = coordinator_of.into_iter().map(Option::unwrap).collect();
    let txn_log = partitions(&nodes[0], "__transaction_state");
    assert_eq!(txn_log.len(), 50, "transaction.state.log.num.partitions");
    let slot_of = |id: &str| (java_hash(id) & 0x7fff_ffff) as usize % txn_log.len();
    for (id, &c) in ids.iter().zip(&coordinator_of) {
        let slot = &txn_log[slot_of(id)];
        assert_eq!(
            slot.leader,
            c as i64,
            "the coordinator of {id} leads __transaction_state-{}",
            slot_of(id)
        );
        assert_eq!(
            slot.replicas.len(),
            3,
            "__transaction_state is replicated 3 times"
        );
    }
    eprintln!(
        "{} transaction coordinators (FindCoordinator): {:?}",
        t(),
        ids.iter().zip(&coordinator_of).collect::<Vec<_>>()
    );

    // 1. The node coordinating most of the copiers' transactions.
    let victim = (1..=3)
        .max_by_key(|n| coordinator_of.iter().filter(|c| *c == n).count())
        .unwrap();
    let its_copiers: Vec<usize> = (0..ids.len())
        .filter(|&i| coordinator_of[i] == victim)
        .collect();
    let at_first_kill = progress(&mut copiers);
    eprintln!(
        "{} SIGKILL node {victim}, transaction coordinator of copiers {its_copiers:?}, at {:?} \
         records committed",
        t(),
        at_first_kill
    );
    nodes[victim - 1].kill9();
    let view = victim % 3; // index of another node
    let moved = wait_until(
        "another leader for the coordinator's __transaction_state partitions",
        Duration::from_secs(30),
        || {
            let log = partitions(&nodes[view], "__transaction_state");
            its_copiers.iter().all(|&i| {
                log.get(slot_of(&ids[i]))
                    .is_some_and(|p| p.leader > 0 && p.leader as usize != victim)
            })
        },
    );
    let found = wait_until(
        "FindCoordinator to name a surviving node",
        Duration::from_secs(30),
        || {
            its_copiers
                .iter()
                .all(|&i| transaction_coordinator(&addrs, &ids[i]).is_some_and(|c| c != victim))
        },
    );
    eprintln!(
        "{} new __transaction_state leader in metadata after {} ms, named by FindCoordinator {} \
         ms later",
        t(),
        moved.as_millis(),
        found.as_millis()
    );
    wait_progress(
        &mut copiers,
        &its_copiers,
        &at_first_kill,
        3 * TRANSACTION_SIZE,
        "with their coordinator killed",
    );
    eprintln!(
        "{} with node {victim} down the copiers committed up to {:?}",
        t(),
        progress(&mut copiers)
    );
    nodes[victim - 1].restart();
    let rejoined = wait_in_sync(&nodes, &all_topics, Duration::from_secs(60), "the restart");
    eprintln!(
        "{} node {victim} restarted, back in every ISR after {} ms",
        t(),
        rejoined.as_millis()
    );

    // 2. The node leading most input/output partitions, another one if it can be.
    let mut led: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for name in [&input, &output] {
        for (p, part) in partitions(&nodes[0], name).iter().enumerate() {
            led.entry(part.leader as usize)
                .or_default()
                .push(format!("{name}-{p}"));
        }
    }
    let second = led
        .iter()
        .filter(|(n, _)| **n != victim)
        .max_by_key(|(_, ps)| ps.len())
        .or_else(|| led.iter().next())
        .map(|(n, _)| *n)
        .unwrap();
    let at_second_kill = progress(&mut copiers);
    eprintln!(
        "{} SIGKILL node {second}, leader of {:?}, at {:?} records committed",
        t(),
        led[&second],
        at_second_kill
    );
    nodes[second - 1].kill9();
    let view = second % 3;
    let moved = wait_until(
        "other leaders for the killed node's partitions",
        Duration::from_secs(30),
        || {
            [&input, &output].iter().all(|name| {
                let ps = partitions(&nodes[view], name);
                ps.len() == 3
                    && ps
                        .iter()
                        .all(|p| p.leader > 0 && p.leader as usize != second)
            })
        },
    );
    eprintln!(
        "{} new partition leaders in metadata after {} ms",
        t(),
        moved.as_millis()
    );
    wait_progress(
        &mut copiers,
        &all_copiers,
        &at_second_kill,
        3 * TRANSACTION_SIZE,
        "with a partition leader killed",
    );
    eprintln!(
        "{} with node {second} down the copiers committed up to {:?}",
        t(),
        progress(&mut copiers)
    );
    nodes[second - 1].restart();
    let rejoined = wait_in_sync(
        &nodes,
        &all_topics,
        Duration::from_secs(60),
        "the second restart",
    );
    eprintln!(
        "{} node {second} restarted, back in every ISR after {} ms",
        t(),
        rejoined.as_millis()
    );

    let records: Vec<usize> = copiers.iter().map(|c| c.records).collect();
    for copier in copiers {
        copier.finish(copy_deadline);
    }
    eprintln!("{} every copier finished", t());

    // Every copier's last transaction was a commit (a copier only stops once its records are
    // committed), and the state survived both kills.
    let listed = kafka_transactions(&bootstrap, &["list"]);
    let listed_text = String::from_utf8_lossy(&listed.stdout).into_owned();
    let rows = kafka_tool_table(&listed_text);
    for id in &ids {
        let row = rows
            .iter()
            .find(|r| r.get("TransactionalId") == Some(id))
            .unwrap_or_else(|| {
                panic!(
                    "{id} not listed:\n{listed_text}{}",
                    String::from_utf8_lossy(&listed.stderr)
                )
            });
        assert_eq!(
            row.get("TransactionState").map(String::as_str),
            Some("CompleteCommit"),
            "{row:?}"
        );
    }

    let copied = consume(&bootstrap, &output, "read_committed", SEED);
    let all = consume(&bootstrap, &output, "read_uncommitted", SEED);
    check_copy(
        "copier, coordinator and partition leaders killed",
        &input_parts,
        &copied,
        Some(&all),
    );
    // The faults must have hit the copiers mid-stream to prove anything.
    assert!(
        its_copiers.iter().all(|&i| at_first_kill[i] < records[i]),
        "copiers {its_copiers:?} had finished before their coordinator was killed: \
         {at_first_kill:?} of {records:?}"
    );
    assert!(
        (0..records.len()).any(|i| at_second_kill[i] < records[i]),
        "the copiers had finished before the second kill: {at_second_kill:?} of {records:?}"
    );
    eprintln!("{} done", t());
}

/// `kafka-transactions list` (ListTransactions) and `describe` (FindCoordinator key type 1,
/// DescribeTransactions) show a transactional id the Java client used, in the state its last
/// transaction left it, with its producer id and epoch.
#[test]
fn kafka_transactions_tool_lists_and_describes() {
    let node = Node::start();
    let name = topic("txn-tool");
    create_topic(&node.kafka, &name, 3, &[]);
    let id = format!("{name}-producer");
    let out = run_ok(
        java_client("TxnProducer")
            .args(["--bootstrap", &node.kafka, "--topic", &name])
            .args(["--transactions", "3", "--records", "6"])
            .args(["--transactional-id", &id, "--timeout", "60"]),
        LIMIT,
        None,
    );
    // TxnProducer aborts transaction 2, its last.
    assert_eq!(
        out.lines().last(),
        Some("aborted 2"),
        "producer output: {out}"
    );
    let state = "CompleteAbort";

    let listed = kafka_transactions(&node.kafka, &["list"]);
    let listed_text = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        listed.status.success(),
        "kafka-transactions list failed:\n{listed_text}\n{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    eprintln!("kafka-transactions list:\n{listed_text}");
    let rows = kafka_tool_table(&listed_text);
    let row = rows
        .iter()
        .find(|r| r.get("TransactionalId") == Some(&id))
        .unwrap_or_else(|| panic!("{id} not listed:\n{listed_text}"));
    assert_eq!(
        row.get("TransactionState").map(String::as_str),
        Some(state),
        "{row:?}"
    );
    assert_eq!(
        row.get("Coordinator").map(String::as_str),
        Some("1"),
        "{row:?}"
    );
    let producer_id: i64 = row["ProducerId"].parse().expect("ProducerId");
    assert!(producer_id >= 0, "{row:?}");

    let described = kafka_transactions(&node.kafka, &["describe", "--transactional-id", &id]);
    let described_text = String::from_utf8_lossy(&described.stdout).into_owned();
    assert!(
        described.status.success(),
        "kafka-transactions describe failed:\n{described_text}\n{}",
        String::from_utf8_lossy(&described.stderr)
    );
    eprintln!("kafka-transactions describe --transactional-id {id}:\n{described_text}");
    let rows = kafka_tool_table(&described_text);
    assert_eq!(rows.len(), 1, "one row:\n{described_text}");
    let row = &rows[0];
    let field = |c: &str| row.get(c).map(String::as_str);
    assert_eq!(field("TransactionalId"), Some(id.as_str()), "{row:?}");
    assert_eq!(field("CoordinatorId"), Some("1"), "{row:?}");
    assert_eq!(field("TransactionState"), Some(state), "{row:?}");
    assert_eq!(
        field("ProducerId"),
        Some(producer_id.to_string().as_str()),
        "describe and list agree on the producer id: {row:?}"
    );
    let epoch: i16 = field("ProducerEpoch")
        .unwrap_or("")
        .parse()
        .expect("ProducerEpoch");
    // Transaction version 2 (the 4.x client takes it from ApiVersions' finalized features):
    // each of the three ends bumped the epoch of the fresh producer.
    assert_eq!(epoch, 3, "one epoch bump per ended transaction: {row:?}");
    // TxnProducer sets transaction.timeout.ms=60000; nothing is open any more.
    assert_eq!(field("TransactionTimeoutMs"), Some("60000"), "{row:?}");
    assert_eq!(
        field("CurrentTransactionStartTimeMs"),
        Some("None"),
        "{row:?}"
    );
    assert_eq!(field("TopicPartitions"), Some(""), "{row:?}");

    // `sluice admin transactions` agrees.
    let admin = |args: &[&str]| -> Value {
        let out = run_ok(
            Command::new(sluice_bin())
                .args([
                    "admin",
                    "--bootstrap",
                    &node.kafka,
                    "--json",
                    "transactions",
                ])
                .args(args),
            LIMIT,
            None,
        );
        serde_json::from_str(&out).expect("admin JSON")
    };
    let described = admin(&["describe", &id]);
    assert_eq!(described["state"], state, "{described}");
    assert_eq!(described["producer_id"], producer_id, "{described}");
    assert_eq!(described["producer_epoch"], 3, "{described}");
    let listed = admin(&["list"]);
    let mine: Vec<&Value> = listed
        .as_array()
        .expect("a list")
        .iter()
        .filter(|t| t["transactional_id"] == id.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "{listed}");
    assert_eq!(mine[0]["state"], state, "{listed}");

    // Kafka's own tool reads the finalized feature the clients go by.
    let features = run_ok(
        Command::new(launcher("kafka-features")).args([
            "--bootstrap-server",
            &node.kafka,
            "describe",
        ]),
        LIMIT,
        None,
    );
    let line = features
        .lines()
        .find(|l| l.contains("Feature: transaction.version"))
        .unwrap_or_else(|| panic!("no transaction.version in:\n{features}"));
    assert!(
        line.contains("SupportedMaxVersion: 2") && line.contains("FinalizedVersionLevel: 2"),
        "{line}"
    );
    // And the cluster's other features, by their names for the levels.
    for (feature, level) in [
        ("metadata.version", "4.3-IV0"),
        ("kraft.version", "0"),
        ("group.version", "1"),
    ] {
        // "Feature: NAME  SupportedMinVersion: V  ...  FinalizedVersionLevel: V  Epoch: N"
        let fields = features
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.get(1) == Some(&feature))
            .unwrap_or_else(|| panic!("no {feature} in:\n{features}"));
        let finalized = fields
            .windows(2)
            .find(|w| w[0] == "FinalizedVersionLevel:")
            .map(|w| w[1]);
        assert_eq!(finalized, Some(level), "{fields:?}");
    }
}
