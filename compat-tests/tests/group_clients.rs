//! Consumer groups with four more real clients: confluent-kafka (librdkafka), kafka-python,
//! franz-go and kafkajs. Each runs the same story through its `group-<client>` launcher: two members share
//! a 4-partition topic (every record processed exactly once, both members busy); one member is
//! SIGKILLed and the survivor takes over its partitions after the session timeout; the survivor
//! leaves and a fresh member resumes from the committed offsets (join, consume, commit,
//! rejoin).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::ops::Range;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_compat_tests::{kcat_produce, launcher, topic, Node};

/// How long a member runs at most (the test kills it earlier).
const MEMBER_SECONDS: &str = "240";

/// A running `group-<client>` member and everything it printed.
struct Member {
    name: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

fn collect(stream: impl Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(stream).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(l);
        }
    });
    lines
}

impl Member {
    fn start(client: &str, name: &str, node: &Node, topic: &str, group: &str) -> Self {
        let mut child = Command::new(launcher(&format!("group-{client}")))
            .args(["--bootstrap", &node.kafka, "--topic", topic])
            .args(["--group", group, "--seconds", MEMBER_SECONDS])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("group-{client}: {e}"));
        let lines = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Member {
            name: format!("{client}/{name}"),
            child,
            lines,
            stderr,
        }
    }

    /// The values of every `R` line, in order.
    fn values(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l.strip_prefix("R "))
            .filter_map(|r| r.splitn(3, ' ').nth(2))
            .map(String::from)
            .collect()
    }

    /// What the member printed besides records, and its stderr tail: for failure messages.
    fn report(&self) -> String {
        let lines = self.lines.lock().unwrap();
        let records = lines.iter().filter(|l| l.starts_with("R ")).count();
        let other: Vec<&String> = lines.iter().filter(|l| !l.starts_with("R ")).collect();
        let other = &other[other.len().saturating_sub(40)..];
        let last_r: Vec<&String> = lines
            .iter()
            .filter(|l| l.starts_with("R "))
            .rev()
            .take(3)
            .collect();
        let err = self.stderr.lock().unwrap();
        let err = &err[err.len().saturating_sub(20)..];
        format!(
            "== member {}: {records} records (last: {last_r:?})\n  other stdout (tail): {other:?}\n  stderr (tail): {err:?}",
            self.name
        )
    }

    /// SIGKILL: the member vanishes without leaving the group.
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM: the member closes its consumer (leaving the group); bounded wait for the exit.
    fn stop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // the stdout reader may lag the exit by a moment
                std::thread::sleep(Duration::from_millis(200));
                let closed = self.lines.lock().unwrap().iter().any(|l| l == "CLOSED");
                assert!(
                    status.success() && closed,
                    "member did not close cleanly on SIGTERM ({status})\n{}",
                    self.report()
                );
                return;
            }
            if Instant::now() > deadline {
                self.kill9();
                panic!(
                    "member did not exit within 30 s of SIGTERM\n{}",
                    self.report()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.report());
        }
        self.kill9();
    }
}

fn produce(node: &Node, topic: &str, range: Range<usize>) {
    let input: String = range.map(|i| format!("k{i}:v{i}\n")).collect();
    kcat_produce(node, topic, input.as_bytes(), &["-K:"]);
}

/// How often each value was processed across the members.
fn counts(members: &[&Member]) -> HashMap<String, usize> {
    let mut c = HashMap::new();
    for m in members {
        for v in m.values() {
            *c.entry(v).or_insert(0) += 1;
        }
    }
    c
}

fn reports(members: &[&Member]) -> String {
    members
        .iter()
        .map(|m| m.report())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits (bounded) until every value of `range` was processed by one of `members`.
fn wait_all(members: &[&Member], range: Range<usize>, limit: Duration, what: &str) {
    let deadline = Instant::now() + limit;
    loop {
        let c = counts(members);
        let missing: Vec<usize> = range
            .clone()
            .filter(|i| !c.contains_key(&format!("v{i}")))
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {} records never processed within {limit:?} (first: v{})\n{}",
            missing.len(),
            missing[0],
            reports(members)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The whole story for one client launcher (`group-<client>`).
fn group_story(client: &str) {
    let node = Node::start_with(&["--config", "num.partitions=4"]);
    let topic = topic(&format!("grp-{client}"));
    let group = format!("g-{client}");
    produce(&node, &topic, 0..2000);

    // Two members share the topic: every record processed exactly once, by one of them.
    let t = Instant::now();
    let mut a = Member::start(client, "a", &node, &topic, &group);
    let b = Member::start(client, "b", &node, &topic, &group);
    wait_all(&[&a, &b], 0..2000, Duration::from_secs(90), "two members");
    let c = counts(&[&a, &b]);
    let expected: HashSet<String> = (0..2000).map(|i| format!("v{i}")).collect();
    let dups: Vec<(&String, &usize)> = c.iter().filter(|(_, n)| **n != 1).collect();
    let strays: Vec<&String> = c.keys().filter(|v| !expected.contains(*v)).collect();
    assert!(
        dups.is_empty() && strays.is_empty(),
        "{client}: each record exactly once across the group: {} duplicated (e.g. {:?}), strays {strays:?}\n{}",
        dups.len(),
        &dups[..dups.len().min(5)],
        reports(&[&a, &b])
    );
    assert!(
        !a.values().is_empty() && !b.values().is_empty(),
        "{client}: both members processed records ({} / {})\n{}",
        a.values().len(),
        b.values().len(),
        reports(&[&a, &b])
    );
    eprintln!(
        "{client}: 2000 records over two members in {:?}",
        t.elapsed()
    );

    // One member dies without leaving: the survivor gets its partitions after the session
    // timeout (10 s) and processes everything new.
    let t = Instant::now();
    a.kill9();
    produce(&node, &topic, 2000..2400);
    wait_all(
        &[&b],
        2000..2400,
        Duration::from_secs(60),
        "survivor after a kill",
    );
    eprintln!("{client}: survivor took over in {:?}", t.elapsed());

    // The survivor leaves; a new member resumes from the committed offsets.
    let t = Instant::now();
    let mut b = b;
    b.stop();
    let n = Member::start(client, "new", &node, &topic, &group);
    produce(&node, &topic, 2400..2500);
    wait_all(&[&n], 2400..2500, Duration::from_secs(60), "new member");
    let new: HashSet<String> = (2400..2500).map(|i| format!("v{i}")).collect();
    let replayed = n.values().iter().filter(|v| !new.contains(*v)).count();
    assert!(
        replayed < 100,
        "{client}: new member resumed from committed offsets, not from the start: {replayed} older records replayed\n{}",
        reports(&[&b, &n])
    );
    eprintln!(
        "{client}: new member resumed ({replayed} replayed) in {:?}",
        t.elapsed()
    );
}

#[test]
fn confluent_kafka_group_shares_survives_and_resumes() {
    group_story("confluent");
}

#[test]
fn kafka_python_group_shares_survives_and_resumes() {
    group_story("kafka-python");
}

#[test]
fn franz_go_group_shares_survives_and_resumes() {
    group_story("franz");
}

#[test]
fn kafkajs_group_shares_survives_and_resumes() {
    group_story("kafkajs");
}
