//! The workload's clients, each a real client process whose output is its history:
//! producers printing every acknowledged record, consumers printing every record they read,
//! a group member printing every acknowledged offset commit.

use std::io::{BufRead, BufReader, Write as _};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{launcher, poll_until};

/// One acknowledged record, as a producer reported it.
#[derive(Debug, Clone)]
pub struct Ack {
    pub at: Instant,
    pub partition: i32,
    pub offset: i64,
    pub value: String,
}

/// A running producer writing `<prefix><n>` for n = 0, 1, ... (the prefix is its name's
/// first letter): its acks so far (a reader thread appends them) and its stdin (closing it
/// makes the producer stop sending, flush and print DONE).
pub struct Producer {
    pub name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    pub acks: Arc<Mutex<Vec<Ack>>>,
    done: Arc<Mutex<Option<String>>>,
    pub nacks: Arc<Mutex<Vec<String>>>,
    /// Its other stderr lines (the client's own warnings), the last 30.
    log: Arc<Mutex<std::collections::VecDeque<String>>>,
}

impl Producer {
    /// `launcher_name` is `ack-producer-java` (kafka-clients) or `ack-producer`
    /// (librdkafka); `acks` is "all" (with idempotence), "1" or "0".
    pub fn start(
        name: &'static str,
        launcher_name: &str,
        bootstrap: &str,
        topic: &str,
        rate: u32,
        acks: &str,
    ) -> Self {
        let prefix = &name[..1];
        let mut child = Command::new(launcher(launcher_name))
            .args(["--bootstrap", bootstrap, "--topic", topic])
            .args(["--messages", "10000000", "--timeout", "200"])
            .args(["--prefix", prefix, "--acks", acks])
            .args(["--rate", &rate.to_string(), "--stop-on-eof"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{launcher_name}: {e}"));
        let acks = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(Mutex::new(None));
        let nacks = Arc::new(Mutex::new(Vec::new()));
        let (out, err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let (a, d) = (acks.clone(), done.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("ACK ") {
                    let f: Vec<&str> = rest.splitn(3, ' ').collect();
                    a.lock().unwrap().push(Ack {
                        at: Instant::now(),
                        partition: f[0].parse().unwrap(),
                        offset: f[1].parse().unwrap(),
                        value: f[2].to_string(),
                    });
                } else if line.starts_with("DONE") {
                    *d.lock().unwrap() = Some(line);
                }
            }
        });
        let n = nacks.clone();
        let log = Arc::new(Mutex::new(std::collections::VecDeque::new()));
        let l = log.clone();
        // With SLUICE_KEEP_LOGS, every line of it too.
        let mut kept = std::env::var_os("SLUICE_KEEP_LOGS").and_then(|dir| {
            let path =
                std::path::Path::new(&dir).join(format!("{name}-producer-{}.log", child.id()));
            let _ = std::fs::create_dir_all(&dir);
            std::fs::File::create(path).ok()
        });
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Some(f) = kept.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
                if line.starts_with("NACK") || line.starts_with("FAIL") {
                    n.lock().unwrap().push(line);
                } else {
                    let mut l = l.lock().unwrap();
                    if l.len() == 30 {
                        l.pop_front();
                    }
                    l.push_back(line);
                }
            }
        });
        Producer {
            name,
            stdin: child.stdin.take(),
            child,
            acks,
            done,
            nacks,
            log,
        }
    }

    pub fn acked(&self) -> usize {
        self.acks.lock().unwrap().len()
    }

    /// Closes stdin: the producer stops sending and flushes.
    pub fn stop(&mut self) {
        drop(self.stdin.take());
    }

    /// Its state, for a failure message: acks, time since the last, last errors.
    pub fn describe(&self) -> String {
        let acks = self.acks.lock().unwrap();
        let nacks = self.nacks.lock().unwrap();
        format!(
            "{}: {} acks, the last {:?} ago, done: {:?}, {} errors, last: {:?}; its log's \
             last lines:\n{}",
            self.name,
            acks.len(),
            acks.last().map(|a| a.at.elapsed()),
            self.done(),
            nacks.len(),
            &nacks[nacks.len().saturating_sub(3)..],
            self.log
                .lock()
                .unwrap()
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        )
    }

    /// The Java producer's main and sender threads (jstack), when one hangs.
    pub fn java_threads(&self) -> String {
        let out = Command::new("jstack")
            .arg(self.child.id().to_string())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        out.split("\n\n")
            .filter(|t| t.starts_with("\"main\"") || t.contains("kafka-producer-network-thread"))
            .collect::<Vec<_>>()
            .join("\n\n")
    }

    /// Its DONE line, once it has flushed.
    pub fn done(&self) -> Option<String> {
        self.done.lock().unwrap().clone()
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One record a consumer read: (partition, offset, value).
pub type Read = (i32, i64, String);

/// Everything one consumer read, in order, under its name.
pub type ConsumerReads = (&'static str, Vec<Read>);

/// A whole log as read at the end: (partition, offset) -> value.
pub type StoredLog = std::collections::BTreeMap<(i32, i64), String>;

/// A consumer reading the topic from the beginning for as long as the faults last (the Java
/// client by assignment, or kcat); records every record it read, in the order read.
pub struct Consumer {
    pub name: &'static str,
    child: Child,
    /// The Java consumer stops when its stdin closes.
    stdin: Option<ChildStdin>,
    pub read: Arc<Mutex<Vec<Read>>>,
    /// Its stderr lines.
    errors: Arc<Mutex<Vec<String>>>,
}

impl Consumer {
    /// `name` is "java" or "kcat".
    pub fn start(name: &'static str, bootstrap: &str, topic: &str, partitions: usize) -> Self {
        let mut cmd = if name == "kcat" {
            let mut c = Command::new("kcat");
            c.args([
                "-C",
                "-b",
                bootstrap,
                "-t",
                topic,
                "-o",
                "beginning",
                "-u",
                "-q",
            ])
            .args(["-f", "%p %o %s\n"])
            .args(["-X", "topic.metadata.refresh.interval.ms=1000"]);
            c
        } else {
            let mut c = Command::new(launcher("tail-consumer-java"));
            c.args(["--bootstrap", bootstrap, "--topic", topic])
                .args(["--partitions", &partitions.to_string()]);
            c
        };
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let err = child.stderr.take().unwrap();
        let errors = Arc::new(Mutex::new(Vec::new()));
        let e = errors.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                e.lock().unwrap().push(line);
            }
        });
        let read = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let r = read.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                // A line cut short by the final kill does not parse: skip it.
                let f: Vec<&str> = line.splitn(3, ' ').collect();
                if let [p, o, v] = f[..] {
                    if let (Ok(p), Ok(o)) = (p.parse(), o.parse()) {
                        r.lock().unwrap().push((p, o, v.to_string()));
                    }
                }
            }
        });
        Consumer {
            name,
            stdin: child.stdin.take(),
            child,
            read,
            errors,
        }
    }

    /// How many distinct (partition, offset) it has read.
    pub fn distinct(&self) -> usize {
        let r = self.read.lock().unwrap();
        r.iter()
            .map(|(p, o, _)| (*p, *o))
            .collect::<std::collections::HashSet<_>>()
            .len()
    }

    /// Stops it (stdin closed, then killed after 10 s) and returns what it read.
    pub fn finish(mut self) -> (&'static str, Vec<Read>) {
        if let Ok(Some(status)) = self.child.try_wait() {
            eprintln!("{}: exited early: {status}", self.name);
        }
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(100)); // the reader thread drains
        let errors = self.errors.lock().unwrap().clone();
        let errors: Vec<&String> = errors
            .iter()
            .filter(|l| l.contains("ERROR") || l.contains("Exception"))
            .collect();
        eprintln!(
            "{}: stderr errors ({}), last: {:?}",
            self.name,
            errors.len(),
            &errors[errors.len().saturating_sub(3)..]
        );
        let read = self.read.lock().unwrap().clone();
        (self.name, read)
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A group member (confluent-kafka, no subscription) committing offsets 1, 2, ... for
/// partition 0 of the topic, retrying a failed commit; every acknowledged commit is its
/// history. The committed offset read back at the end must not be below the last one.
pub struct Committer {
    pub group: String,
    child: Child,
    last: Arc<Mutex<i64>>,
}

impl Committer {
    pub fn start(bootstrap: &str, topic: &str, group: &str) -> Self {
        let mut child = Command::new(launcher("commit-loop"))
            .args(["--bootstrap", bootstrap, "--topic", topic, "--group", group])
            .args(["--commits", "1000000", "--retry-for", "300"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("commit-loop: {e}"));
        let last = Arc::new(Mutex::new(0));
        let l = last.clone();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("ACK ").and_then(|n| n.parse().ok()) {
                    *l.lock().unwrap() = n;
                }
            }
        });
        Committer {
            group: group.to_string(),
            child,
            last,
        }
    }

    /// The last acknowledged commit.
    pub fn last(&self) -> i64 {
        *self.last.lock().unwrap()
    }

    /// Waits until at least `n` commits are acknowledged.
    pub fn wait_for(&self, n: i64, limit: Duration) {
        poll_until(
            &format!("{n} acknowledged commits"),
            limit,
            Duration::from_millis(50),
            || self.last() >= n,
        );
    }

    /// Kills it; the last acknowledged commit.
    pub fn stop(&mut self) -> i64 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(100));
        self.last()
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The workload's two producers (kafka-clients and librdkafka), once each has had 200
/// writes acknowledged.
pub fn start_producers(bootstrap: &str, topic: &str, rate: u32, acks: &str) -> [Producer; 2] {
    let producers = [
        Producer::start("java", "ack-producer-java", bootstrap, topic, rate, acks),
        Producer::start("rdkafka", "ack-producer", bootstrap, topic, rate, acks),
    ];
    poll_until(
        "both producers acknowledged",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || producers.iter().all(|p| p.acked() >= 200),
    );
    producers
}

/// Stops the producers (they flush and print DONE; one still flushing after 60 s fails the
/// test with its log and the Java client's threads) and returns every acknowledged write.
pub fn stop_producers(producers: &mut [Producer; 2]) -> Vec<Ack> {
    for p in producers.iter_mut() {
        p.stop();
    }
    let flushed = Instant::now();
    while !producers.iter().all(|p| p.done().is_some()) {
        assert!(
            flushed.elapsed() < Duration::from_secs(60),
            "producers not flushed within 60 s: {:?}\n{}",
            producers.iter().map(Producer::describe).collect::<Vec<_>>(),
            producers[0].java_threads()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for p in producers.iter() {
        let nacks = p.nacks.lock().unwrap();
        eprintln!(
            "{}: {} acks, {}, {} delivery errors {:?}",
            p.name,
            p.acked(),
            p.done().unwrap_or_default(),
            nacks.len(),
            &nacks[..nacks.len().min(3)]
        );
    }
    producers
        .iter()
        .flat_map(|p| p.acks.lock().unwrap().clone())
        .collect()
}

/// Once the replicas have converged: the whole log, and what each consumer read (the Java
/// one must have read all of it; kcat is a second witness that may give up on its own when
/// every broker looks down at once).
pub fn collect_reads(
    cluster: &crate::jepsen::Cluster,
    bootstrap: &str,
    consumers: [Consumer; 2],
) -> (StoredLog, Vec<ConsumerReads>) {
    cluster.wait_converged();
    let stored = crate::read_topic(bootstrap, &cluster.topic);
    poll_until(
        "the Java consumer read every record",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || consumers[0].distinct() >= stored.len(),
    );
    let reads = consumers.into_iter().map(Consumer::finish).collect();
    (stored, reads)
}
