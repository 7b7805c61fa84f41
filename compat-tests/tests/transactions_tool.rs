//! The operator side of Kafka's `kafka-transactions` tool (TransactionsCommand) on a stuck
//! transaction: a transactional producer dies (SIGKILL) with its transaction open and a long
//! `transaction.timeout.ms`, so the partition's last stable offset stays at the transaction's
//! first offset and `read_committed` readers stop there. `describe-producers` shows the open
//! transaction (DescribeProducers), `find-hanging` does not call it hanging (its coordinator
//! still knows it: ListTransactions filtered by producer id + DescribeTransactions), and
//! `abort --start-offset` ends it (DescribeProducers, then WriteTxnMarkers from the admin
//! client): the last stable offset moves on, the aborted records stay invisible to
//! `read_committed`, and other transactional producers commit as before.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sluice_compat_tests::{
    java_client, kafka_tool_table, kcat_produce, launcher, run, run_ok, topic, Node,
};

/// Each client command is killed after this; the programs' own timeouts are shorter, so they
/// fail with their own message first.
const LIMIT: Duration = Duration::from_secs(180);

/// Records of the committed transaction, of the open one, and written without a transaction
/// after it opened.
const COMMITTED: i64 = 5;
const OPEN: i64 = 3;
const LATE: i64 = 2;
/// Records of the fresh producer's transaction after the abort.
const FRESH: i64 = 3;

/// `transaction.timeout.ms` of the stuck producer: far beyond the test, so its coordinator
/// does not abort the transaction on its own meanwhile.
const TXN_TIMEOUT_MS: &str = "600000";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// Runs Kafka's `kafka-transactions` tool against `bootstrap`.
fn kafka_transactions(bootstrap: &str, args: &[&str]) -> Output {
    run(
        Command::new(launcher("kafka-transactions"))
            .args(["--bootstrap-server", bootstrap])
            .args(args),
        Duration::from_secs(90),
        None,
    )
}

/// Runs `kafka-transactions`, which must succeed; logs and returns its stdout.
fn tool_ok(bootstrap: &str, args: &[&str]) -> String {
    let out = kafka_transactions(bootstrap, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kafka-transactions {} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        args.join(" "),
        out.status
    );
    eprintln!("kafka-transactions {}:\n{stdout}", args.join(" "));
    stdout
}

/// The table's header (its column names), if it printed one.
fn header(text: &str) -> Vec<String> {
    text.lines()
        .find(|l| l.contains('\t'))
        .map(|l| {
            l.split('\t')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// A numeric column of a table row.
fn num(row: &BTreeMap<String, String>, column: &str) -> i64 {
    row.get(column)
        .unwrap_or_else(|| panic!("no {column} in {row:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("{column} is not a number in {row:?}"))
}

/// `kafka-transactions describe-producers` of partition 0 of `topic`: one row per producer.
fn describe_producers(bootstrap: &str, topic: &str) -> Vec<BTreeMap<String, String>> {
    let text = tool_ok(
        bootstrap,
        &["describe-producers", "--topic", topic, "--partition", "0"],
    );
    assert_eq!(
        header(&text),
        [
            "ProducerId",
            "ProducerEpoch",
            "LatestCoordinatorEpoch",
            "LastSequence",
            "LastTimestamp",
            "CurrentTransactionStartOffset"
        ],
        "describe-producers header:\n{text}"
    );
    kafka_tool_table(&text)
}

/// `kafka-transactions find-hanging` with `args`: the hanging transactions it lists (it
/// always prints the header).
fn find_hanging(bootstrap: &str, args: &[&str]) -> Vec<BTreeMap<String, String>> {
    let mut all = vec!["find-hanging"];
    all.extend_from_slice(args);
    let text = tool_ok(bootstrap, &all);
    assert_eq!(
        header(&text),
        [
            "Topic",
            "Partition",
            "ProducerId",
            "ProducerEpoch",
            "CoordinatorEpoch",
            "StartOffset",
            "LastTimestamp",
            "Duration(min)"
        ],
        "find-hanging header:\n{text}"
    );
    kafka_tool_table(&text)
}

/// `kafka-transactions describe --transactional-id id`: its one row.
fn describe_transaction(bootstrap: &str, id: &str) -> BTreeMap<String, String> {
    let text = tool_ok(bootstrap, &["describe", "--transactional-id", id]);
    let mut rows = kafka_tool_table(&text);
    assert_eq!(rows.len(), 1, "one row:\n{text}");
    rows.remove(0)
}

/// The values of partition 0 of `topic` read by TxnConsumer at `isolation`, in offset
/// order, once at least `expect` were read and it reached the end offset (the last stable
/// offset under read_committed).
fn consume(bootstrap: &str, topic: &str, isolation: &str, expect: i64) -> Vec<String> {
    let out = run_ok(
        java_client("TxnConsumer")
            .args(["--bootstrap", bootstrap, "--topic", topic])
            .args(["--isolation", isolation, "--expect", &expect.to_string()])
            .args(["--timeout", "60"]),
        LIMIT,
        None,
    );
    out.lines().map(String::from).collect()
}

/// The latest offset of partition 0 of `topic` by ListOffsets (v7, timestamp -1) at
/// `isolation_level` (0: read_uncommitted, the high watermark; 1: read_committed, the last
/// stable offset), sent on the wire: Kafka's GetOffsetShell (`kafka-get-offsets`) has no
/// isolation option, and a JVM takes seconds to start on a loaded machine.
fn latest_offset(addr: &str, topic: &str, isolation_level: i8) -> i64 {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{
        BrokerId, ListOffsetsRequest, ListOffsetsResponse, RequestHeader, ResponseHeader, TopicName,
    };
    use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
    use std::io::Write;
    const VERSION: i16 = 7;
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut frame = bytes::BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(2) // ListOffsets
        .with_request_api_version(VERSION)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("sluice-compat-tests")))
        .encode(&mut frame, ListOffsetsRequest::header_version(VERSION))
        .unwrap();
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation_level)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_current_leader_epoch(-1)
                .with_timestamp(-1)])])
        .encode(&mut frame, VERSION)
        .unwrap();
    s.write_all(&(frame.len() as i32).to_be_bytes()).unwrap();
    s.write_all(&frame).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("ListOffsets response");
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).expect("ListOffsets response");
    let mut body = bytes::Bytes::from(body);
    ResponseHeader::decode(&mut body, ListOffsetsResponse::header_version(VERSION)).unwrap();
    let response = ListOffsetsResponse::decode(&mut body, VERSION).unwrap();
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "ListOffsets error: {response:?}");
    p.offset
}

/// (last stable offset, high watermark) of partition 0 of `topic`.
fn lso_hw(node: &Node, topic: &str) -> (i64, i64) {
    (
        latest_offset(&node.kafka, topic, 1),
        latest_offset(&node.kafka, topic, 0),
    )
}

/// The running StalledTxn program; SIGKILLed when dropped (also on a failed assertion).
struct Stalled {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Stalled {
    fn start(bootstrap: &str, topic: &str, id: &str) -> Stalled {
        let mut child = java_client("StalledTxn")
            .args(["--bootstrap", bootstrap, "--topic", topic])
            .args(["--transactional-id", id])
            .args(["--committed", &COMMITTED.to_string()])
            .args(["--open", &OPEN.to_string()])
            .args(["--transaction-timeout-ms", TXN_TIMEOUT_MS])
            .args(["--timeout", "120", "--hold", "400"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("StalledTxn");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Stalled {
            child,
            lines,
            stderr: Some(stderr),
        }
    }

    /// The (first, last) offsets of its next output line `<word> <first> <last>`.
    fn offsets(&mut self, word: &str, deadline: Instant) -> (i64, i64) {
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(wait) {
            Ok(line) => {
                let f: Vec<&str> = line.split_whitespace().collect();
                assert!(
                    f.len() == 3 && f[0] == word,
                    "StalledTxn printed '{line}', expected '{word} <first> <last>'"
                );
                (f[1].parse().unwrap(), f[2].parse().unwrap())
            }
            Err(_) => {
                let _ = self.child.kill();
                let status = self.child.wait().expect("wait");
                let stderr = self.stderr.take().and_then(|h| h.join().ok());
                panic!(
                    "StalledTxn gave no '{word}' line ({status}); stderr:\n{}",
                    stderr.unwrap_or_default()
                );
            }
        }
    }

    /// SIGKILL, with its transaction open.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let status = self.child.wait().expect("wait");
        assert!(status.code().is_none(), "StalledTxn had exited: {status}");
    }
}

impl Drop for Stalled {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn kafka_transactions_tool_aborts_a_stuck_transaction() {
    let started = Instant::now();
    let t = || format!("[{:>5.1}s]", started.elapsed().as_secs_f64());
    // Deviations from Kafka in fields that do not stop the scenario: collected, and the test
    // fails with all of them at the end.
    let mut deviations: Vec<String> = Vec::new();

    let node = Node::start();
    let bootstrap = node.kafka.clone();
    let name = topic("txn-stuck");
    run_ok(
        Command::new(launcher("kafka-topics"))
            .args([
                "--bootstrap-server",
                &bootstrap,
                "--create",
                "--topic",
                &name,
            ])
            .args(["--partitions", "1"]),
        LIMIT,
        None,
    );
    let stuck_id = format!("{name}-stuck");

    // 1. One committed transaction, then an open one; the producer dies in it.
    let before_open = now_ms();
    let mut stalled = Stalled::start(&bootstrap, &name, &stuck_id);
    let deadline = Instant::now() + Duration::from_secs(150);
    let committed = stalled.offsets("committed", deadline);
    let open = stalled.offsets("open", deadline);
    let after_open = now_ms();
    stalled.kill();
    eprintln!("{} committed at {committed:?}, open at {open:?}", t());
    assert_eq!(committed, (0, COMMITTED - 1), "committed records' offsets");
    // The commit marker takes the next offset.
    let start_offset = COMMITTED + 1;
    assert_eq!(
        open,
        (start_offset, start_offset + OPEN - 1),
        "open transaction's offsets"
    );
    // Records written outside any transaction after it: appended, but past the last stable
    // offset, so read_committed readers do not get them yet either.
    let late: Vec<String> = (0..LATE).map(|i| format!("late{i}")).collect();
    kcat_produce(
        &node,
        &name,
        format!("{}\n", late.join("\n")).as_bytes(),
        &["-p", "0"],
    );
    let end = start_offset + OPEN + LATE;

    // 2. read_committed stops at the open transaction.
    assert_eq!(
        lso_hw(&node, &name),
        (start_offset, end),
        "(last stable offset, high watermark) with the transaction open"
    );
    let committed_values: Vec<String> = (0..COMMITTED).map(|i| format!("c{i}")).collect();
    assert_eq!(
        consume(&bootstrap, &name, "read_committed", COMMITTED),
        committed_values,
        "read_committed stops at the open transaction's first offset"
    );
    eprintln!("{} read_committed stops at {start_offset}", t());

    let producers = describe_producers(&bootstrap, &name);
    assert_eq!(producers.len(), 1, "one producer: {producers:?}");
    let p = &producers[0];
    assert_eq!(
        p["CurrentTransactionStartOffset"],
        start_offset.to_string(),
        "{p:?}"
    );
    // Transaction version 2: the commit bumped the epoch, and sequences restart with it.
    assert_eq!(num(p, "LastSequence"), OPEN - 1, "{p:?}");
    let producer_id = num(p, "ProducerId");
    let epoch = num(p, "ProducerEpoch");
    // Kafka: the max timestamp of the producer's last batch (CreateTime, set on this machine
    // by the producer).
    let last_ts = num(p, "LastTimestamp");
    if !(before_open - 1000..=after_open + 1000).contains(&last_ts) {
        deviations.push(format!(
            "describe-producers LastTimestamp {last_ts}: not the last batch's timestamp, \
             which is in [{before_open}, {after_open}]: {p:?}"
        ));
    }
    // Kafka: the coordinator epoch of the producer's last marker here (the commit), -1 only
    // if it never had one.
    let coordinator_epoch = num(p, "LatestCoordinatorEpoch");
    if coordinator_epoch < 0 {
        deviations.push(format!(
            "describe-producers LatestCoordinatorEpoch {coordinator_epoch} although the \
             producer's commit marker is at offset {COMMITTED}: {p:?}"
        ));
    }

    let described = describe_transaction(&bootstrap, &stuck_id);
    assert_eq!(described["TransactionState"], "Ongoing", "{described:?}");
    assert_eq!(num(&described, "ProducerId"), producer_id, "{described:?}");
    assert_eq!(num(&described, "ProducerEpoch"), epoch, "{described:?}");
    assert_eq!(
        described["TransactionTimeoutMs"], TXN_TIMEOUT_MS,
        "{described:?}"
    );
    assert_eq!(
        described["TopicPartitions"],
        format!("{name}-0"),
        "{described:?}"
    );

    // 3. Not hanging: a transaction is a candidate only once open longer than
    // --max-transaction-timeout (minutes, default 15) by its LastTimestamp, and hanging only
    // if its coordinator does not list the partition in it (ListTransactions filtered by
    // producer id, then DescribeTransactions).
    let hanging = find_hanging(&bootstrap, &["--broker-id", "1"]);
    assert!(
        hanging.is_empty(),
        "find-hanging --broker-id 1: {hanging:?}"
    );
    let hanging = find_hanging(&bootstrap, &["--topic", &name]);
    assert!(hanging.is_empty(), "find-hanging --topic: {hanging:?}");
    // With a zero timeout the transaction is a candidate, and its coordinator still has the
    // partition in it: not hanging either.
    let hanging = find_hanging(
        &bootstrap,
        &[
            "--topic",
            &name,
            "--partition",
            "0",
            "--max-transaction-timeout",
            "0",
        ],
    );
    assert!(
        hanging.is_empty(),
        "find-hanging --max-transaction-timeout 0: the coordinator knows the transaction: \
         {hanging:?}"
    );
    eprintln!("{} not hanging", t());

    // 4. Abort it by its start offset (the tool reads producer id, epoch and coordinator
    // epoch with DescribeProducers and writes an abort marker with WriteTxnMarkers).
    let before_abort = now_ms();
    let text = tool_ok(
        &bootstrap,
        &[
            "abort",
            "--topic",
            &name,
            "--partition",
            "0",
            "--start-offset",
            &start_offset.to_string(),
        ],
    );
    let after_abort = now_ms();
    assert!(text.trim().is_empty(), "abort prints nothing: {text}");
    // The abort marker takes the next offset; nothing is open any more.
    let end = end + 1;
    assert_eq!(
        lso_hw(&node, &name),
        (end, end),
        "(last stable offset, high watermark) after the abort"
    );
    eprintln!("{} aborted; last stable offset {end}", t());

    let producers = describe_producers(&bootstrap, &name);
    assert_eq!(producers.len(), 1, "one producer: {producers:?}");
    let p = &producers[0];
    assert_eq!(num(p, "ProducerId"), producer_id, "{p:?}");
    assert_eq!(num(p, "ProducerEpoch"), epoch, "{p:?}");
    assert_eq!(p["CurrentTransactionStartOffset"], "None", "{p:?}");
    // Kafka: the abort marker's coordinator epoch (what the tool read, or 0) and timestamp.
    let want_epoch = coordinator_epoch.max(0);
    if num(p, "LatestCoordinatorEpoch") != want_epoch {
        deviations.push(format!(
            "describe-producers LatestCoordinatorEpoch after the abort is not the abort \
             marker's ({want_epoch}): {p:?}"
        ));
    }
    let last_ts = num(p, "LastTimestamp");
    if !(before_abort - 1000..=after_abort + 1000).contains(&last_ts) {
        deviations.push(format!(
            "describe-producers LastTimestamp {last_ts} after the abort: not the abort \
             marker's timestamp, in [{before_abort}, {after_abort}]: {p:?}"
        ));
    }
    let hanging = find_hanging(
        &bootstrap,
        &["--topic", &name, "--max-transaction-timeout", "0"],
    );
    assert!(
        hanging.is_empty(),
        "find-hanging after the abort: {hanging:?}"
    );
    // The tool only wrote the partition's marker: the coordinator still has the transaction
    // open (until transaction.timeout.ms ends it).
    let described = describe_transaction(&bootstrap, &stuck_id);
    assert_eq!(described["TransactionState"], "Ongoing", "{described:?}");

    // New transactions of a fresh producer commit as usual.
    let out = run_ok(
        java_client("TxnProducer")
            .args(["--bootstrap", &bootstrap, "--topic", &name])
            .args(["--transactions", "1", "--records", &FRESH.to_string()])
            .args(["--transactional-id", &format!("{name}-fresh")])
            .args(["--timeout", "90"]),
        LIMIT,
        None,
    );
    assert_eq!(out.trim(), "committed 0", "fresh producer");
    let end = end + FRESH + 1;
    assert_eq!(
        lso_hw(&node, &name),
        (end, end),
        "(last stable offset, high watermark) after the fresh producer's commit"
    );
    eprintln!("{} fresh producer committed; end offset {end}", t());

    let fresh: Vec<String> = (0..FRESH).map(|j| format!("t0-r{j}")).collect();
    let opened: Vec<String> = (0..OPEN).map(|j| format!("o{j}")).collect();
    let want: Vec<String> = committed_values
        .iter()
        .chain(&late)
        .chain(&fresh)
        .cloned()
        .collect();
    assert_eq!(
        consume(&bootstrap, &name, "read_committed", want.len() as i64),
        want,
        "read_committed: the aborted records never, everything else in offset order"
    );
    let want: Vec<String> = committed_values
        .iter()
        .chain(&opened)
        .chain(&late)
        .chain(&fresh)
        .cloned()
        .collect();
    assert_eq!(
        consume(&bootstrap, &name, "read_uncommitted", want.len() as i64),
        want,
        "read_uncommitted: every record, the aborted ones included"
    );
    eprintln!("{} done", t());

    assert!(
        deviations.is_empty(),
        "DescribeProducers differs from Kafka:\n{}\nbroker log: {}",
        deviations.join("\n"),
        node.log_path().display()
    );
}
