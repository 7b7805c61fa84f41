//! Kafka Connect 4.4.0 in distributed mode with exactly-once source support (KIP-618) on a
//! 3-node cluster: one worker (`exactly.once.source.support=enabled`, so the leader writes
//! the config topic with a transactional producer and fences task generations with
//! Admin.fenceProducers) runs Kafka's FileStreamSource connector with
//! `exactly.once.support=required` and `transaction.boundary=poll`: every poll's lines go
//! out in one transaction together with the file position they end at (written to the
//! offsets topic in the same transaction). The worker is SIGKILLed mid-file, more lines are
//! appended, and a restarted worker finishes from the committed position; then the connector
//! is paused (lines appended meanwhile stay unread) and resumed (they are copied). A
//! read_committed consumer must then see every line exactly once, in file order:
//! at-least-once Connect would repeat the lines between its last offset flush and the kill.
//!
//! Beside it the same worker runs Kafka's FileStreamSink connector, reading the topic
//! read_committed through a consumer group into a second file: after the kill it resumes
//! from the group's committed offset, so its file must hold every line, in file order, with
//! nothing skipped; at-least-once, it may write again what it wrote after its last commit.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice_compat_tests::{java_client, launcher, reserve_port, run_ok, topic, Node};

/// Each client command is killed after this; the programs' own timeouts are shorter.
const LIMIT: Duration = Duration::from_secs(120);

/// Lines in the file when the connector starts.
const FIRST: usize = 30_000;
/// Lines appended while the worker is down.
const MORE: usize = 2_000;
/// Lines appended while the connector is paused.
const PAUSED: usize = 500;
/// Every line of the file in the end.
const TOTAL: usize = FIRST + MORE + PAUSED;
/// Lines per poll of the task, so per transaction (`transaction.boundary=poll`).
const BATCH: usize = 20;
/// Committed lines after which the worker is SIGKILLed.
const KILL_AT: usize = 1_000;
/// Nodes, and the replication factor of every topic.
const NODES: usize = 3;

/// Line `i` of the input (distinct, and its number says where it belongs).
fn line(i: usize) -> String {
    let mix = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    format!(
        "line {i:05} of the connect input {:016x}",
        mix ^ (mix >> 29)
    )
}

fn lines(range: std::ops::Range<usize>) -> String {
    range.map(|i| line(i) + "\n").collect()
}

/// The values of `topic` (one partition) read with kcat at `isolation`, in offset order:
/// all of them, or the first `count`. Without a count kcat reads until a fetch finds
/// nothing new, which a producer that keeps committing puts off until it stops.
fn kcat_values(bootstrap: &str, topic: &str, isolation: &str, count: Option<usize>) -> Vec<String> {
    let mut cmd = Command::new("kcat");
    cmd.args(["-C", "-b", bootstrap, "-t", topic, "-e", "-q"]);
    if let Some(n) = count {
        cmd.args(["-c", &n.to_string()]);
    }
    let out = run_ok(
        cmd.args(["-o", "beginning", "-f", "%s\n"])
            .args(["-X", &format!("isolation.level={isolation}")]),
        LIMIT,
        None,
    );
    out.lines().map(String::from).collect()
}

/// One request to an HTTP listener (HTTP/1.0, so the body ends at EOF): (status, body), or
/// why there was no answer.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, String), String> {
    let addr: std::net::SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(100)))
        .map_err(|e| e.to_string())?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: application/json\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| format!("send {method} {path}: {e}"))?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(|e| format!("read answer to {method} {path}: {e}"))?;
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{method} {path}: no HTTP status in {head:?}"))?;
    Ok((status, body.to_string()))
}

/// The Connect worker: its properties and log (both restarts append to the log) in the
/// test's temp dir, its REST listener on a reserved loopback port. Killed when dropped.
struct Worker {
    props: PathBuf,
    log4j: PathBuf,
    log: PathBuf,
    rest: String,
    child: Option<Child>,
    starts: usize,
}

impl Worker {
    fn new(dir: &Path, bootstrap: &str, group: &str) -> Self {
        let port = reserve_port();
        let props = dir.join("worker.properties");
        std::fs::write(
            &props,
            format!(
                "bootstrap.servers={bootstrap}\n\
                 group.id={group}\n\
                 config.storage.topic={group}-configs\n\
                 offset.storage.topic={group}-offsets\n\
                 status.storage.topic={group}-status\n\
                 config.storage.replication.factor={NODES}\n\
                 offset.storage.replication.factor={NODES}\n\
                 status.storage.replication.factor={NODES}\n\
                 offset.storage.partitions=5\n\
                 status.storage.partitions=1\n\
                 key.converter=org.apache.kafka.connect.storage.StringConverter\n\
                 value.converter=org.apache.kafka.connect.storage.StringConverter\n\
                 exactly.once.source.support=enabled\n\
                 connector.client.config.override.policy=All\n\
                 listeners=http://127.0.0.1:{port}\n\
                 rest.advertised.host.name=127.0.0.1\n\
                 rest.advertised.port={port}\n\
                 offset.flush.interval.ms=500\n\
                 plugin.discovery=service_load\n\
                 scheduled.rebalance.max.delay.ms=0\n\
                 session.timeout.ms=6000\n\
                 heartbeat.interval.ms=1000\n"
            ),
        )
        .unwrap();
        // Connect's own classes and the producers' transaction managers at INFO, the rest WARN.
        let log4j = dir.join("connect-log4j2.properties");
        std::fs::write(
            &log4j,
            "status = error\n\
             appender.err.type = Console\n\
             appender.err.name = STDERR\n\
             appender.err.target = SYSTEM_ERR\n\
             appender.err.layout.type = PatternLayout\n\
             appender.err.layout.pattern = [%d{HH:mm:ss,SSS}] %p %m (%c{1})%n\n\
             rootLogger.level = warn\n\
             rootLogger.appenderRef.err.ref = STDERR\n\
             logger.connect.name = org.apache.kafka.connect\n\
             logger.connect.level = info\n\
             logger.txn.name = org.apache.kafka.clients.producer.internals.TransactionManager\n\
             logger.txn.level = info\n",
        )
        .unwrap();
        Worker {
            props,
            log4j,
            log: dir.join("connect.log"),
            rest: format!("127.0.0.1:{port}"),
            child: None,
            starts: 0,
        }
    }

    fn start(&mut self) {
        assert!(self.child.is_none(), "worker already running");
        self.starts += 1;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        writeln!(log, "===== worker start #{} =====", self.starts).unwrap();
        let child = Command::new(launcher("connect-distributed"))
            .arg(&self.props)
            .env("KAFKA_LOG4J_CONFIG", &self.log4j)
            .env("KAFKA_HEAP_OPTS", "-Xmx384m")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("connect-distributed");
        self.child = Some(child);
    }

    /// SIGKILL (the launcher execs the JVM): no clean shutdown, no last commit or flush.
    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Panics with the log if the worker has exited.
    fn assert_running(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if let Some(status) = c.try_wait().unwrap() {
                panic!("the Connect worker exited ({status}); {}", self.evidence());
            }
        }
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, String), String> {
        http(&self.rest, method, path, body)
    }

    /// GET `path` as JSON, or None while the worker cannot answer it.
    fn get(&self, path: &str) -> Option<Value> {
        match self.request("GET", path, None) {
            Ok((200, body)) => serde_json::from_str(&body).ok(),
            _ => None,
        }
    }

    /// The log's warnings and errors (the last 30) and its last 40 lines.
    fn evidence(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let bad: Vec<&str> = all
            .iter()
            .copied()
            .filter(|l| l.contains("] WARN ") || l.contains("] ERROR "))
            .collect();
        format!(
            "Connect log {}\n--- its WARN/ERROR lines (last 30 of {}) ---\n{}\n--- its last 40 \
             lines ---\n{}",
            self.log.display(),
            bad.len(),
            bad[bad.len().saturating_sub(30)..].join("\n"),
            all[all.len().saturating_sub(40)..].join("\n")
        )
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            // Keep the log past the temp dir.
            let keep = std::env::temp_dir().join(format!("connect-eos-{}.log", std::process::id()));
            let _ = std::fs::copy(&self.log, &keep);
            eprintln!("--- Connect worker log kept in {} ---", keep.display());
        }
    }
}

/// On a panic, copies every node's log out of its temp dir (dropped before the nodes).
struct KeepNodeLogs(Vec<PathBuf>);

impl Drop for KeepNodeLogs {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (i, log) in self.0.iter().enumerate() {
                let keep = std::env::temp_dir().join(format!(
                    "connect-eos-{}-sluice-{}.log",
                    std::process::id(),
                    i + 1
                ));
                let _ = std::fs::copy(log, &keep);
                eprintln!(
                    "--- sluice node {} log kept in {} ---",
                    i + 1,
                    keep.display()
                );
            }
        }
    }
}

/// Creates the connector, retrying while the worker is still starting (no answer, 404,
/// 409 or 503); any other answer but 201 fails the test.
fn create_connector(worker: &mut Worker, config: &Value, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut last;
    loop {
        worker.assert_running();
        match worker.request("POST", "/connectors", Some(config)) {
            Ok((201, _)) => return start.elapsed(),
            Ok((404 | 409 | 503, body)) => last = body,
            Ok((status, body)) => panic!(
                "POST /connectors answered {status}: {body}\n{}",
                worker.evidence()
            ),
            Err(e) => last = e,
        }
        assert!(
            start.elapsed() < limit,
            "the worker did not accept the connector within {limit:?} (last: {last})\n{}",
            worker.evidence()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Waits until the status endpoint shows the connector and all its (at least one) tasks
/// RUNNING; panics at once on FAILED (with the trace Connect gives). Returns the status.
fn wait_running(worker: &mut Worker, name: &str, limit: Duration, why: &str) -> Value {
    let start = Instant::now();
    let mut last = Value::Null;
    loop {
        worker.assert_running();
        if let Some(status) = worker.get(&format!("/connectors/{name}/status")) {
            let tasks = status["tasks"].as_array().cloned().unwrap_or_default();
            let failed = status["connector"]["state"] == "FAILED"
                || tasks.iter().any(|t| t["state"] == "FAILED");
            assert!(
                !failed,
                "connector or task FAILED ({why}): {status:#}\n{}",
                worker.evidence()
            );
            if status["connector"]["state"] == "RUNNING"
                && !tasks.is_empty()
                && tasks.iter().all(|t| t["state"] == "RUNNING")
            {
                return status;
            }
            last = status;
        }
        assert!(
            start.elapsed() < limit,
            "connector and tasks not RUNNING within {limit:?} ({why}); last status: {last}\n{}",
            worker.evidence()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `PUT /connectors/{name}/{action}` (pause, resume), then until the connector and its task
/// are in `state`.
fn put_state(worker: &mut Worker, name: &str, action: &str, state: &str) {
    let (code, body) = worker
        .request("PUT", &format!("/connectors/{name}/{action}"), None)
        .unwrap_or_else(|e| panic!("PUT /connectors/{name}/{action}: {e}"));
    assert_eq!(
        code, 202,
        "PUT /connectors/{name}/{action} answered {code}: {body}"
    );
    let limit = Duration::from_secs(30);
    let asked = Instant::now();
    loop {
        worker.assert_running();
        let status = worker.get(&format!("/connectors/{name}/status"));
        let in_state = status.as_ref().is_some_and(|s| {
            s["connector"]["state"] == state
                && s["tasks"]
                    .as_array()
                    .is_some_and(|t| !t.is_empty() && t.iter().all(|t| t["state"] == state))
        });
        if in_state {
            return;
        }
        assert!(
            asked.elapsed() < limit,
            "connector not {state} within {limit:?} of {action}: {status:?}\n{}",
            worker.evidence()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Waits until at least `target` lines are committed in `topic`, checking the worker stays up
/// and its task does not fail. Returns the committed lines.
fn wait_committed(
    worker: &mut Worker,
    name: &str,
    bootstrap: &str,
    topic: &str,
    target: usize,
    limit: Duration,
    why: &str,
) -> Vec<String> {
    let start = Instant::now();
    loop {
        worker.assert_running();
        let committed = kcat_values(bootstrap, topic, "read_committed", Some(target));
        if committed.len() >= target {
            return committed;
        }
        if start.elapsed() > limit {
            let status = worker.get(&format!("/connectors/{name}/status"));
            let uncommitted = kcat_values(bootstrap, topic, "read_uncommitted", None).len();
            panic!(
                "only {} of {target} lines committed after {limit:?} ({why}; {uncommitted} \
                 records read_uncommitted); connector status: {status:?}\n{}",
                committed.len(),
                worker.evidence()
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// What is wrong with `read` as a copy of `expected`, if anything: duplicates, missing and
/// unknown lines, and where the order first differs.
fn differences(read: &[String], expected: &[String]) -> Option<String> {
    if read == expected {
        return None;
    }
    let index: HashMap<&str, usize> = expected
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    let mut seen: HashMap<&str, Vec<usize>> = HashMap::new();
    for (pos, l) in read.iter().enumerate() {
        seen.entry(l.as_str()).or_default().push(pos);
    }
    let mut dups: Vec<(usize, usize, &[usize])> = seen
        .iter()
        .filter(|(_, at)| at.len() > 1)
        .map(|(l, at)| {
            (
                index.get(l).copied().unwrap_or(usize::MAX),
                at.len(),
                at.as_slice(),
            )
        })
        .collect();
    dups.sort();
    let missing: Vec<usize> = (0..expected.len())
        .filter(|i| !seen.contains_key(expected[*i].as_str()))
        .collect();
    let unknown: Vec<&String> = read
        .iter()
        .filter(|l| !index.contains_key(l.as_str()))
        .collect();
    let at = (0..read.len().max(expected.len()))
        .find(|&i| read.get(i) != expected.get(i))
        .unwrap_or(0);
    let window = |v: &[String]| -> Vec<String> {
        v[at.saturating_sub(2).min(v.len())..(at + 3).min(v.len())].to_vec()
    };
    Some(format!(
        "read {} lines, expected {}: {} lines read more than once (line number, times, read \
         positions; first 10: {:?}), {} missing (line numbers, first 10: {:?}), {} not in the \
         file (first 3: {:?}); first difference at position {at}: read {:?}, expected {:?}",
        read.len(),
        expected.len(),
        dups.len(),
        &dups[..dups.len().min(10)],
        missing.len(),
        &missing[..missing.len().min(10)],
        unknown.len(),
        &unknown[..unknown.len().min(3)],
        window(read),
        window(expected),
    ))
}

/// What the sink connector's file shows about its copy.
struct SinkCopy {
    /// Lines written again after the sink went back to its last committed offset.
    again: usize,
    /// Lines cut short by the SIGKILL (the rest of the buffer never reached the file) and
    /// run into the next line the restarted task wrote.
    torn: usize,
}

/// Reads the sink's file as a copy of `expected`: Ok once it holds every line with nothing
/// skipped, Err(why not yet, or what is wrong). Going back (a rewind to the committed offset
/// after the kill) is allowed once, and one line torn by the kill.
fn sink_copy(text: &str, expected: &[String]) -> Result<SinkCopy, String> {
    let index: HashMap<&str, usize> = expected
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    let (mut next, mut again, mut torn, mut rewinds) = (0usize, 0usize, 0usize, 0usize);
    let mut previous: Option<usize> = None;
    // A line the kill cut off ends with no newline; the restart's first line follows it.
    for (pos, l) in text.lines().enumerate() {
        let i = match index.get(l) {
            Some(&i) => i,
            None => {
                let whole = expected
                    .iter()
                    .position(|e| l.len() > e.len() && l.ends_with(e.as_str()));
                match whole {
                    Some(i) if torn == 0 => {
                        torn += 1;
                        i
                    }
                    _ => {
                        return Err(format!(
                            "line {pos} of the sink's file is not in the input: {l:?}"
                        ))
                    }
                }
            }
        };
        if i > next {
            return Err(format!(
                "the sink skipped lines {next}..{i} (at line {pos} of its file)"
            ));
        }
        if previous.is_some_and(|p| i != p + 1) {
            rewinds += 1;
            if rewinds > 1 {
                return Err(format!(
                    "the sink's file goes back a second time, to line {i} at its line {pos}"
                ));
            }
        }
        if i == next {
            next += 1;
        } else {
            again += 1;
        }
        previous = Some(i);
    }
    if next < expected.len() {
        return Err(format!("{next} of {} lines copied", expected.len()));
    }
    Ok(SinkCopy { again, torn })
}

/// Waits until the sink's file holds all of `expected`; panics at once if it is wrong.
fn wait_sink_copied(
    worker: &mut Worker,
    name: &str,
    file: &Path,
    expected: &[String],
    limit: Duration,
) -> SinkCopy {
    let start = Instant::now();
    loop {
        worker.assert_running();
        let text = std::fs::read_to_string(file).unwrap_or_default();
        match sink_copy(&text, expected) {
            Ok(copy) => return copy,
            Err(why) if why.ends_with("lines copied") && start.elapsed() < limit => {}
            Err(why) => panic!(
                "the sink connector's copy: {why}; status: {:?}\n{}",
                worker.get(&format!("/connectors/{name}/status")),
                worker.evidence()
            ),
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn connect_exactly_once_file_source_survives_sigkill_of_its_worker() {
    let start = Instant::now();
    let t = || format!("[{:6.1} s]", start.elapsed().as_secs_f64());
    let nodes = Node::start_cluster(NODES, 0, &[]);
    let _keep = KeepNodeLogs(nodes.iter().map(Node::log_path).collect());
    let bootstrap = nodes
        .iter()
        .map(|n| n.kafka.clone())
        .collect::<Vec<_>>()
        .join(",");
    // One partition, so the topic's order is the file's.
    let data = topic("connect-eos-lines");
    run_ok(
        Command::new(launcher("kafka-topics"))
            .args([
                "--bootstrap-server",
                &bootstrap,
                "--create",
                "--topic",
                &data,
            ])
            .args([
                "--partitions",
                "1",
                "--replication-factor",
                &NODES.to_string(),
            ]),
        LIMIT,
        None,
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("input.txt");
    std::fs::write(&file, lines(0..FIRST)).unwrap();
    eprintln!(
        "{} {NODES} nodes up, topic {data} created, {FIRST} lines in {}",
        t(),
        file.display()
    );

    let mut worker = Worker::new(dir.path(), &bootstrap, &topic("connect-eos"));
    worker.start();
    let name = "eos-file-source";
    let config = json!({
        "name": name,
        "config": {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
            "tasks.max": "1",
            "file": file.to_str().unwrap(),
            "topic": data,
            "batch.size": BATCH.to_string(),
            "exactly.once.support": "required",
            "transaction.boundary": "poll",
            // A restarted worker reads the offsets topic up to its read_uncommitted end, so it
            // waits until the killed task's open transaction times out (Kafka does the same).
            "producer.override.transaction.timeout.ms": "10000",
        }
    });
    let took = create_connector(&mut worker, &config, Duration::from_secs(90));
    eprintln!(
        "{} worker up, connector created ({} ms after the worker answered)",
        t(),
        took.as_millis()
    );
    let status = wait_running(&mut worker, name, Duration::from_secs(60), "first start");
    eprintln!("{} connector and task RUNNING: {status}", t());
    let sink = "file-sink";
    let output = dir.path().join("output.txt");
    let sink_config = json!({
        "name": sink,
        "config": {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
            "tasks.max": "1",
            "file": output.to_str().unwrap(),
            "topics": data,
            "consumer.override.isolation.level": "read_committed",
            // The killed worker's sink consumer holds the partition until its session ends.
            "consumer.override.session.timeout.ms": "10000",
            "consumer.override.heartbeat.interval.ms": "2000",
        }
    });
    create_connector(&mut worker, &sink_config, Duration::from_secs(30));
    let status = wait_running(&mut worker, sink, Duration::from_secs(60), "sink start");
    eprintln!("{} sink connector and task RUNNING: {status}", t());

    // Mid-file: SIGKILL, then append while the worker is down.
    let before = wait_committed(
        &mut worker,
        name,
        &bootstrap,
        &data,
        KILL_AT,
        Duration::from_secs(60),
        "before the kill",
    );
    worker.kill9();
    let committed = kcat_values(&bootstrap, &data, "read_committed", None);
    let written = kcat_values(&bootstrap, &data, "read_uncommitted", None);
    eprintln!(
        "{} SIGKILLed the worker: {} lines committed ({} when seen), {} records written",
        t(),
        committed.len(),
        before.len(),
        written.len()
    );
    assert!(
        committed.len() < FIRST,
        "the worker had copied the whole file before the kill ({} lines committed): the kill \
         must come mid-file (fewer lines per poll, or more of them)",
        committed.len()
    );
    if let Some(diff) = differences(
        &committed,
        &(0..committed.len()).map(line).collect::<Vec<_>>(),
    ) {
        panic!("before the kill, read_committed is not a prefix of the file: {diff}");
    }
    std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap()
        .write_all(lines(FIRST..FIRST + MORE).as_bytes())
        .unwrap();

    worker.start();
    let done = wait_committed(
        &mut worker,
        name,
        &bootstrap,
        &data,
        FIRST + MORE,
        Duration::from_secs(90),
        "after the restart",
    );
    eprintln!("{} restarted worker: {} lines committed", t(), done.len());
    let status = wait_running(
        &mut worker,
        name,
        Duration::from_secs(30),
        "after the restart",
    );
    eprintln!("{} connector and task RUNNING: {status}", t());

    // Paused, it copies nothing of what is appended; resumed, it goes on from there.
    put_state(&mut worker, name, "pause", "PAUSED");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap()
        .write_all(lines(FIRST + MORE..TOTAL).as_bytes())
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let while_paused = kcat_values(&bootstrap, &data, "read_committed", None).len();
    assert_eq!(
        while_paused,
        FIRST + MORE,
        "a paused connector copied lines appended meanwhile"
    );
    put_state(&mut worker, name, "resume", "RUNNING");
    let resumed = wait_committed(
        &mut worker,
        name,
        &bootstrap,
        &data,
        TOTAL,
        Duration::from_secs(60),
        "after the resume",
    );
    eprintln!(
        "{} paused (still {while_paused} lines), resumed: {} lines committed",
        t(),
        resumed.len()
    );
    let expected: Vec<String> = (0..TOTAL).map(line).collect();
    let copied = wait_sink_copied(
        &mut worker,
        sink,
        &output,
        &expected,
        Duration::from_secs(60),
    );
    eprintln!(
        "{} sink: every line in {} ({} lines written again after the kill, {} torn by it)",
        t(),
        output.display(),
        copied.again,
        copied.torn
    );

    // Stop the connector (KIP-875) and read its committed source offset: the file's length.
    let (code, body) = worker
        .request("PUT", &format!("/connectors/{name}/stop"), None)
        .unwrap_or_else(|e| panic!("PUT /connectors/{name}/stop: {e}"));
    assert!(
        code == 202 || code == 204,
        "PUT /connectors/{name}/stop answered {code}: {body}"
    );
    let mut offsets = Value::Null;
    let limit = Duration::from_secs(30);
    let stopping = Instant::now();
    while offsets.is_null() {
        worker.assert_running();
        let stopped = worker
            .get(&format!("/connectors/{name}/status"))
            .is_some_and(|s| s["connector"]["state"] == "STOPPED");
        if stopped {
            offsets = worker
                .get(&format!("/connectors/{name}/offsets"))
                .unwrap_or(Value::Null);
        }
        assert!(
            stopping.elapsed() < limit,
            "connector not STOPPED with readable offsets within {limit:?}\n{}",
            worker.evidence()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let file_len = std::fs::metadata(&file).unwrap().len();
    let position = offsets["offsets"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["partition"]["filename"] == file.to_str().unwrap())
        .and_then(|o| o["offset"]["position"].as_u64());
    eprintln!("{} connector stopped; offsets: {offsets}", t());
    assert_eq!(
        position,
        Some(file_len),
        "the committed source offset must be the file's length: {offsets}"
    );
    worker.kill9();

    // The verdict: read_committed with the Java client.
    let out = run_ok(
        java_client("TxnConsumer")
            .args(["--bootstrap", &bootstrap, "--topic", &data])
            .args(["--isolation", "read_committed"])
            .args(["--expect", &TOTAL.to_string(), "--timeout", "60"]),
        LIMIT,
        None,
    );
    let read: Vec<String> = out.lines().map(String::from).collect();
    let written = kcat_values(&bootstrap, &data, "read_uncommitted", None).len();
    eprintln!(
        "{} read_committed: {} lines; read_uncommitted: {written} records ({} of aborted \
         transactions)",
        t(),
        read.len(),
        written.saturating_sub(read.len())
    );
    if let Some(diff) = differences(&read, &expected) {
        panic!(
            "read_committed must hold every line of the file exactly once, in file order \
             (worker killed at {} committed lines): {diff}",
            committed.len()
        );
    }
    eprintln!("{} done", t());
}
