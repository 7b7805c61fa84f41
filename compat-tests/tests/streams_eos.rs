//! Kafka Streams with `processing.guarantee=exactly_once_v2` (Kafka 4.4.0) on a 3-node
//! cluster: a word count (`clients/java/EosWordCount.java`: repartition topic, RocksDB store
//! with a changelog, RF 3 and min.insync.replicas=2 everywhere) over 20,000 lines of a known
//! multiset of words, once undisturbed and once while the node coordinating most of its
//! transactions and its group is SIGKILLed mid-run and restarted. A read_committed consumer of the output
//! must see, for every word, the counts 1, 2, .., n in order, each once, n the word's exact
//! number of occurrences: no increment lost, none applied twice, nothing of an aborted
//! transaction. Undisturbed, a second instance with an empty state directory then restores
//! the counts from the changelog and goes on counting one more line of every word.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_compat_tests::{
    http_get, java_client, kcat_produce, keep_log, launcher, read_topic, run_ok, topic, wait_until,
    Node, FAST_FAILOVER,
};

/// Each client command is killed after this; the programs' own timeouts are shorter.
const LIMIT: Duration = Duration::from_secs(150);

/// Lines of input, each of 1 to 3 words of [`VOCABULARY`].
const LINES: usize = 20_000;

const VOCABULARY: [&str; 50] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "amber", "basalt", "cobalt", "dune",
    "ember", "fjord", "garnet", "harbor", "iris", "jade", "kelp", "lagoon", "marble", "nectar",
    "onyx", "pebble", "quartz", "reef", "slate", "tundra", "umber", "violet", "willow", "zephyr",
];

/// The input, one line per record, and how often each word occurs in it. Deterministic; words
/// are skewed (the earlier in the vocabulary, the more frequent), so counts range from tens
/// to over a thousand.
fn corpus() -> (Vec<String>, BTreeMap<String, u64>) {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut counts = BTreeMap::new();
    let lines = (0..LINES)
        .map(|_| {
            let words = 1 + next() % 3;
            (0..words)
                .map(|_| {
                    let n = VOCABULARY.len() as u64;
                    let word = VOCABULARY[(next() % n).min(next() % n) as usize];
                    *counts.entry(word.to_string()).or_insert(0) += 1;
                    word
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    (lines, counts)
}

/// Creates `name` through Kafka's CLI with 3 partitions, RF 3 and min.insync.replicas=2.
fn create_topic(bootstrap: &str, name: &str) {
    run_ok(
        Command::new(launcher("kafka-topics"))
            .args(["--bootstrap-server", bootstrap, "--create", "--topic", name])
            .args(["--partitions", "3", "--replication-factor", "3"])
            .args(["--config", "min.insync.replicas=2"]),
        LIMIT,
        None,
    );
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
    isr: usize,
    replicas: usize,
}

/// The partitions of `topic` as `node` sees them (empty while it cannot answer).
fn partitions(node: &Node, topic: &str) -> Vec<Part> {
    let v: Value =
        serde_json::from_str(&http_get(&node.http, "/admin/topics")).unwrap_or(Value::Null);
    let len = |x: &Value| x.as_array().map_or(0, Vec::len);
    v.as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["name"] == topic)
        .flat_map(|t| t["partitions"].as_array().cloned().unwrap_or_default())
        .map(|p| Part {
            leader: p["leader"].as_i64().unwrap_or(-1),
            isr: len(&p["isr"]),
            replicas: len(&p["replicas"]),
        })
        .collect()
}

/// Waits until every node sees every partition of `topics` led and with all its replicas in
/// the ISR.
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
                            .all(|p| p.leader > 0 && p.isr == p.replicas && p.replicas == 3)
                })
            })
        },
    )
}

/// The running EosWordCount: reader threads keep its stdout (events: `state`, `txn`,
/// `progress`, `done`, ...) and stderr (Streams' WARN log), so progress can be watched while
/// it runs. Killed when dropped.
struct WordCount {
    child: Child,
    /// Its `state.dir`, removed when dropped.
    _state: tempfile::TempDir,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

impl WordCount {
    fn start(bootstrap: &str, input: &str, output: &str, app_id: &str, words: u64) -> Self {
        let state = tempfile::tempdir().expect("state dir");
        let mut child = java_client("EosWordCount")
            .env("KAFKA_HEAP_OPTS", "-Xmx384m")
            .args([
                "--bootstrap",
                bootstrap,
                "--input",
                input,
                "--output",
                output,
            ])
            .args(["--application-id", app_id, "--state-dir"])
            .arg(state.path())
            .args(["--expect", &words.to_string()])
            .args(["--threads", "2", "--commit-interval-ms", "200"])
            .args(["--timeout", "120"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("EosWordCount");
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
        WordCount {
            child,
            _state: state,
            stdout,
            stderr,
            readers,
        }
    }

    /// The stdout lines starting with `word` + " ", without it.
    fn events(&self, word: &str) -> Vec<String> {
        let prefix = format!("{word} ");
        self.stdout
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l.strip_prefix(&prefix).map(String::from))
            .collect()
    }

    /// Words counted so far in committed output (the last `progress` line).
    fn progress(&self) -> u64 {
        self.events("progress")
            .last()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// Panics with the app's output if it has exited while it should still be running.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("wait") {
            if self.events("done").is_empty() {
                panic!("EosWordCount exited early; {}", self.report(status));
            }
        }
    }

    /// Waits until the committed counts add up to `target` (or the app is done); panics with
    /// the app's output after `limit`.
    fn wait_progress(&mut self, target: u64, limit: Duration, why: &str) -> Duration {
        let start = Instant::now();
        while self.progress() < target && self.events("done").is_empty() {
            self.assert_running();
            if start.elapsed() > limit {
                let _ = self.child.kill();
                let status = self.child.wait().expect("wait");
                panic!(
                    "EosWordCount did not count {target} words in {limit:?} ({why}); {}",
                    self.report(status)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        start.elapsed()
    }

    /// Waits (until `deadline`) for the app to exit: with 0, after `done`.
    fn finish(mut self, deadline: Instant) -> Vec<String> {
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let status = self.child.wait().expect("wait");
                panic!(
                    "EosWordCount did not finish in time; {}",
                    self.report(status)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if !status.success() || self.events("done").is_empty() {
            panic!("EosWordCount failed; {}", self.report(status));
        }
        self.join_readers();
        let stdout = self.stdout.lock().unwrap().clone();
        stdout
    }

    fn join_readers(&mut self) {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }

    /// Exit status, its events (progress lines thinned out) and the end of Streams' log.
    fn report(&mut self, status: ExitStatus) -> String {
        self.join_readers();
        let stdout = self.stdout.lock().unwrap();
        let events: Vec<&str> = stdout
            .iter()
            .enumerate()
            .filter(|(i, l)| !l.starts_with("progress ") || i % 8 == 0 || *i + 1 == stdout.len())
            .map(|(_, l)| l.as_str())
            .collect();
        let stderr = self.stderr.lock().unwrap();
        if let Ok(file) = tempfile::NamedTempFile::new() {
            let _ = std::fs::write(file.path(), stderr.join("\n"));
            keep_log(file.path(), "streams");
        }
        format!(
            "exit {status} at {} words counted\n--- events ---\n{}\n--- Streams log (last 80 \
             lines) ---\n{}",
            stdout
                .iter()
                .rev()
                .find_map(|l| l.strip_prefix("progress "))
                .unwrap_or("0"),
            events.join("\n"),
            stderr[stderr.len().saturating_sub(80)..].join("\n")
        )
    }
}

impl Drop for WordCount {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The output read by TxnConsumer at `isolation`, in the order consumed:
/// (partition, word, count), once at least `expect` records were read and the consumer
/// reached the end offsets.
fn read_output(
    bootstrap: &str,
    output: &str,
    isolation: &str,
    expect: u64,
) -> Vec<(i32, String, u64)> {
    let out = run_ok(
        java_client("TxnConsumer")
            .args(["--bootstrap", bootstrap, "--topic", output])
            .args(["--isolation", isolation, "--expect", &expect.to_string()])
            .args(["--timeout", "90", "--print-partition"]),
        LIMIT,
        None,
    );
    out.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!(f.len(), 3, "'<partition> <word> <count>': {l}");
            (
                f[0].parse().expect("partition"),
                f[1].to_string(),
                f[2].parse().expect("count"),
            )
        })
        .collect()
}

/// Checks a read_committed read of the output: every word's counts are 1..=n in order, each
/// once, all in one partition, n its number of occurrences in the input; no other words.
fn check_counts(what: &str, read: &[(i32, String, u64)], expected: &BTreeMap<String, u64>) {
    let mut seen: BTreeMap<&str, (Vec<i32>, Vec<u64>)> = BTreeMap::new();
    for (p, word, count) in read {
        let (parts, counts) = seen.entry(word.as_str()).or_default();
        if !parts.contains(p) {
            parts.push(*p);
        }
        counts.push(*count);
    }
    let mut problems = Vec::new();
    let (mut repeated, mut backwards, mut skipped) = (0, 0, 0);
    for (word, want) in expected {
        let Some((parts, counts)) = seen.get(word.as_str()) else {
            problems.push(format!("{word}: no output (expected count {want})"));
            continue;
        };
        for w in counts.windows(2) {
            match w[1].cmp(&w[0]) {
                std::cmp::Ordering::Equal => repeated += 1,
                std::cmp::Ordering::Less => backwards += 1,
                std::cmp::Ordering::Greater if w[1] > w[0] + 1 => skipped += 1,
                std::cmp::Ordering::Greater => {}
            }
        }
        let last = counts.last().copied().unwrap_or(0);
        let exact: Vec<u64> = (1..=*want).collect();
        if *counts != exact {
            let at = (0..counts.len().max(exact.len()))
                .find(|&i| counts.get(i) != exact.get(i))
                .unwrap_or(0);
            let from = at.saturating_sub(3);
            problems.push(format!(
                "{word}: expected 1..={want}, read {} counts ending at {last}; from position \
                 {from}: read {:?}, expected {:?}",
                counts.len(),
                &counts[from.min(counts.len())..(at + 4).min(counts.len())],
                &exact[from.min(exact.len())..(at + 4).min(exact.len())],
            ));
        }
        if parts.len() != 1 {
            problems.push(format!("{word}: counts in partitions {parts:?}"));
        }
    }
    for word in seen.keys().filter(|w| !expected.contains_key(**w)) {
        problems.push(format!("{word}: not in the input"));
    }
    let total: u64 = expected.values().sum();
    eprintln!(
        "{what}: {} words of {} distinct, {} output records read (read_committed): repeated {}, \
         backwards {}, skipped {}, words wrong {}",
        total,
        expected.len(),
        read.len(),
        repeated,
        backwards,
        skipped,
        problems.len()
    );
    assert!(
        problems.is_empty(),
        "{what}: the read_committed output is not an exact count ({} repeated, {} backwards, \
         {} skipped counts):\n{}",
        repeated,
        backwards,
        skipped,
        problems.join("\n")
    );
    assert_eq!(
        read.len() as u64,
        total,
        "{what}: one output record per word"
    );
}

/// The whole run; with `kill`, SIGKILLs a node mid-run and restarts it.
fn word_count(kill: bool) {
    let start = Instant::now();
    let t = || format!("[{:6.1} s]", start.elapsed().as_secs_f64());
    let mut nodes = Node::start_cluster(3, 0, FAST_FAILOVER);
    let bootstrap = bootstrap(&nodes);
    let (input, output) = (topic("eos-lines"), topic("eos-counts"));
    create_topic(&bootstrap, &input);
    create_topic(&bootstrap, &output);
    wait_in_sync(
        &nodes,
        &[&input, &output],
        Duration::from_secs(30),
        "creation",
    );

    let (lines, expected) = corpus();
    let words: u64 = expected.values().sum();
    let text = lines.join("\n") + "\n";
    kcat_produce(
        &nodes[0],
        &input,
        text.as_bytes(),
        &["-X", "enable.idempotence=true"],
    );
    let mut seeded: Vec<String> = read_topic(&bootstrap, &input).into_values().collect();
    let mut want = lines.clone();
    seeded.sort();
    want.sort();
    assert!(
        seeded == want,
        "the input must hold the {LINES} lines once each (read back {})",
        seeded.len()
    );
    eprintln!("{} seeded {LINES} lines, {words} words", t());

    let app_id = topic("eos-wordcount");
    let mut app = WordCount::start(&bootstrap, &input, &output, &app_id, words);
    let deadline = Instant::now() + LIMIT;
    let internal = [
        format!("{app_id}-words-repartition"),
        format!("{app_id}-counts-changelog"),
    ];

    if kill {
        let first = app.wait_progress(words / 5, Duration::from_secs(90), "before the kill");
        eprintln!(
            "{} counting (first fifth after {} ms)",
            t(),
            first.as_millis()
        );
        // The node coordinating most of the app's transactions and its group (the app
        // prints them; a transaction weighs 2, the group 3, so the group's coordinator wins
        // ties): its loss moves transactions and the group's membership mid-commit.
        wait_until(
            "EosWordCount to name its coordinators",
            Duration::from_secs(30),
            || {
                app.assert_running();
                !app.events("txn").is_empty() && !app.events("group-coordinator").is_empty()
            },
        );
        let mut coordinated = BTreeMap::new();
        for line in app.events("txn") {
            let node: usize = line.split(' ').nth(1).unwrap().parse().expect("node id");
            *coordinated.entry(node).or_insert(0) += 2;
        }
        for line in app.events("group-coordinator") {
            let node: usize = line.parse().expect("node id");
            *coordinated.entry(node).or_insert(0) += 3;
        }
        let victim = *coordinated.iter().max_by_key(|(_, n)| **n).unwrap().0;
        let at_kill = app.progress();
        eprintln!(
            "{} SIGKILL node {victim}: transactions {:?}, group coordinator {:?}, at {at_kill} of \
             {words} words counted",
            t(),
            app.events("txn"),
            app.events("group-coordinator")
        );
        assert!(at_kill < words, "the app finished before the kill");
        nodes[victim - 1].kill9();
        let down = app.wait_progress(
            (at_kill + words / 5).min(words),
            Duration::from_secs(60),
            "with a node down",
        );
        eprintln!(
            "{} with node {victim} down the app counted up to {} words in {} ms",
            t(),
            app.progress(),
            down.as_millis()
        );
        nodes[victim - 1].restart();
        let mut all = vec![
            input.as_str(),
            output.as_str(),
            "__transaction_state",
            "__consumer_offsets",
        ];
        all.extend(internal.iter().map(String::as_str));
        let back = wait_in_sync(&nodes, &all, Duration::from_secs(60), "the restart");
        eprintln!(
            "{} node {victim} restarted, back in every ISR after {} ms",
            t(),
            back.as_millis()
        );
    }

    let events = app.finish(deadline);
    let states: Vec<&str> = events
        .iter()
        .filter_map(|l| l.strip_prefix("state "))
        .collect();
    eprintln!("{} EosWordCount done; Streams states: {states:?}", t());
    // Streams created its repartition and changelog topics with RF 3.
    let internal: Vec<&str> = internal.iter().map(String::as_str).collect();
    wait_in_sync(&nodes, &internal, Duration::from_secs(30), "the end");

    let read = read_output(&bootstrap, &output, "read_committed", words);
    eprintln!("{} read the output", t());
    let what = if kill {
        "word count, a node killed"
    } else {
        "word count"
    };
    check_counts(what, &read, &expected);
    if !kill {
        restore_and_count_on(&nodes, &bootstrap, (&input, &output), &app_id, &expected);
    }
    if kill {
        // For the record: what the fault left in the log beyond the committed output (records
        // of transactions aborted or fenced when the node died).
        let all = read_output(&bootstrap, &output, "read_uncommitted", words);
        eprintln!(
            "{} read_uncommitted: {} output records, {} of them not committed",
            t(),
            all.len(),
            all.len() - read.len()
        );
    }
    eprintln!("{} done", t());
}

/// A new instance of the app, with an empty state directory, counts one more of each word:
/// its store must be restored from the changelog for the counts to go on from n to n + 1
/// (counting from scratch would write 1 again).
fn restore_and_count_on(
    nodes: &[Node],
    bootstrap: &str,
    (input, output): (&str, &str),
    app_id: &str,
    counted: &BTreeMap<String, u64>,
) {
    let more: Vec<String> = VOCABULARY.chunks(5).map(|c| c.join(" ")).collect();
    kcat_produce(
        &nodes[0],
        input,
        (more.join("\n") + "\n").as_bytes(),
        &["-X", "enable.idempotence=true"],
    );
    let mut expected = counted.clone();
    for word in VOCABULARY {
        *expected.entry(word.to_string()).or_insert(0) += 1;
    }
    let total: u64 = expected.values().sum();
    let started = Instant::now();
    let app = WordCount::start(bootstrap, input, output, app_id, total);
    app.finish(started + LIMIT);
    eprintln!(
        "a new instance restored the store and counted {} more words in {} ms",
        VOCABULARY.len(),
        started.elapsed().as_millis()
    );
    let read = read_output(bootstrap, output, "read_committed", total);
    check_counts("word count restored from its changelog", &read, &expected);
}

/// Exactly-once word count with no fault: plain EOS v2 (transactions spanning the output,
/// repartition and changelog topics plus consumer offsets, fetches read_committed).
#[test]
fn streams_exactly_once_v2_word_count_is_exact() {
    word_count(false);
}

/// The same while the node coordinating most of the app's transactions and its group is
/// SIGKILLed once a fifth of the words are counted, and restarted once a further fifth are
/// counted with it down.
#[test]
fn streams_exactly_once_v2_word_count_is_exact_with_a_node_killed() {
    word_count(true);
}
