//! A Jepsen-style fault test (after Jepsen's Kafka workload): 3 nodes, RF=3,
//! min.insync.replicas=2, 4 partitions; two acks=all idempotent producers — the Java client
//! (kafka-clients) and librdkafka (confluent-kafka) — write sequence-numbered records while
//! the Java client and kcat consume concurrently and a nemesis, one fault after the other:
//!
//! (a) SIGKILLs the leader of a partition, then does two failovers in quick succession
//!     (kill the leader, restart it, kill the leader that replaced it as soon as the first
//!     is back in the ISR);
//! (b) SIGSTOPs a follower past the session and lag timeouts, then SIGCONTs it;
//! (c) SIGKILLs the controller (Raft) leader, restarts it;
//! (d) cuts a partition leader off the network (every node sits behind TCP proxies, see
//!     `Network::isolate`: all TCP to and from it is closed and refused), then heals.
//!
//! Then checks: no acknowledged write lost (each is at its acknowledged offset), no value
//! twice in a partition, each producer's records in send order per partition, in-sync
//! replicas byte-identical up to the high watermark (GET /admin/digest), and everything the
//! concurrent consumers read still there at the same offset (they never read past the high
//! watermark), and the Java consumer eventually read everything. Prints totals and
//! per-fault failover times.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_compat_tests::{
    http_get, launcher, poll_until, run_ok, topic, Network, Node, FAST_FAILOVER,
};

/// Polls every 50 ms, so failover times are measured finely.
fn wait_until(what: &str, limit: Duration, done: impl FnMut() -> bool) -> Duration {
    poll_until(what, limit, Duration::from_millis(50), done)
}

const PARTITIONS: usize = 4;
/// Records a second, per producer.
const RATE: u32 = 250;

/// One partition as a node's metadata shows it.
#[derive(Debug, Clone)]
struct Part {
    leader: i64,
    isr: Vec<u64>,
    replicas: Vec<u64>,
    log_end: Option<i64>,
    high_watermark: Option<i64>,
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
            log_end: p["log_end_offset"].as_i64(),
            high_watermark: p["high_watermark"].as_i64(),
        })
        .collect()
}

fn all_in_sync(node: &Node, topic: &str) -> bool {
    let p = partitions(node, topic);
    p.len() == PARTITIONS && p.iter().all(|x| x.leader > 0 && x.isr.len() == 3)
}

fn raft_leader(node: &Node) -> Option<u64> {
    serde_json::from_str::<Value>(&http_get(&node.http, "/admin/status"))
        .ok()?
        .pointer("/raft/leader")?
        .as_u64()
}

/// One acknowledged record, as a producer reported it.
#[derive(Debug, Clone)]
struct Ack {
    at: Instant,
    partition: i32,
    offset: i64,
    value: String,
}

/// A running producer: its acks so far (a reader thread appends them) and its stdin (closing
/// it makes the producer stop sending, flush and print DONE).
struct Producer {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    acks: Arc<Mutex<Vec<Ack>>>,
    done: Arc<Mutex<Option<String>>>,
    nacks: Arc<Mutex<Vec<String>>>,
}

impl Producer {
    fn start(name: &'static str, launcher_name: &str, bootstrap: &str, topic: &str) -> Self {
        let prefix = &name[..1];
        let mut child = Command::new(launcher(launcher_name))
            .args(["--bootstrap", bootstrap, "--topic", topic])
            .args([
                "--messages",
                "10000000",
                "--timeout",
                "200",
                "--prefix",
                prefix,
            ])
            .args(["--rate", &RATE.to_string(), "--stop-on-eof"])
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
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if line.starts_with("NACK") || line.starts_with("FAIL") {
                    n.lock().unwrap().push(line);
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
        }
    }

    fn acked(&self) -> usize {
        self.acks.lock().unwrap().len()
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One record a consumer read: (partition, offset, value).
type Read = (i32, i64, String);

/// A consumer reading the topic from the beginning for as long as the faults last (the Java
/// client, or kcat); records (partition, offset, value) of every record it read.
struct Consumer {
    name: &'static str,
    child: Child,
    /// The Java consumer stops when its stdin closes.
    stdin: Option<ChildStdin>,
    read: Arc<Mutex<Vec<Read>>>,
    /// Its stderr lines.
    errors: Arc<Mutex<Vec<String>>>,
}

impl Consumer {
    fn start(name: &'static str, bootstrap: &str, topic: &str) -> Self {
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
                .args(["--partitions", &PARTITIONS.to_string()]);
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
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One nemesis action and what was observed of it.
struct FaultLog {
    what: String,
    at: Instant,
    /// Time until metadata showed the new (partition or controller) leader.
    moved: Option<Duration>,
}

/// The cluster under test, with the indexes of nodes that cannot answer HTTP right now.
struct Cluster {
    nodes: Vec<Node>,
    net: Network,
    topic: String,
    faults: Vec<FaultLog>,
    /// What the Java consumer has read so far (progress report).
    consumed: Arc<Mutex<Vec<Read>>>,
}

impl Cluster {
    /// A node that is up and reachable, other than those in `not`.
    fn view(&self, not: &[usize]) -> &Node {
        (0..3)
            .find(|i| !not.contains(i))
            .map(|i| &self.nodes[i])
            .unwrap()
    }

    fn leader_of(&self, p: usize, not: &[usize]) -> usize {
        let mut leader = 0;
        wait_until("a partition leader", Duration::from_secs(30), || {
            leader = partitions(self.view(not), &self.topic)
                .get(p)
                .map_or(0, |x| x.leader.max(0) as usize);
            leader > 0
        });
        leader - 1
    }

    /// Waits until every node's metadata shows every replica in the ISR (all nodes: one just
    /// healed may still show a stale view).
    fn wait_in_sync(&self, why: &str) {
        let t = wait_until(
            &format!("every replica back in the ISR ({why})"),
            Duration::from_secs(45),
            || self.nodes.iter().all(|n| all_in_sync(n, &self.topic)),
        );
        eprintln!("  all ISRs full again {} ms after {why}", t.as_millis());
    }

    /// Waits until a node other than `old` leads partition `p` (as `view` sees it).
    fn wait_new_leader(&self, p: usize, old: usize, not: &[usize]) -> Duration {
        wait_until(
            &format!("a new leader for partition {p}"),
            Duration::from_secs(30),
            || {
                partitions(self.view(not), &self.topic)
                    .get(p)
                    .is_some_and(|x| x.leader > 0 && x.leader as usize != old + 1)
            },
        )
    }

    /// " (also the controller leader)" when node index `i` leads the Raft quorum.
    fn also_controller(&self, i: usize) -> &'static str {
        if raft_leader(&self.nodes[i]) == Some(i as u64 + 1) {
            " (also the controller leader)"
        } else {
            ""
        }
    }

    fn log(&mut self, what: String, at: Instant, moved: Option<Duration>) {
        eprintln!(
            "  {what}: new leader in metadata after {} (Java consumer has read {})",
            moved.map_or("-".into(), |d| format!("{} ms", d.as_millis())),
            self.consumed.lock().unwrap().len()
        );
        self.faults.push(FaultLog { what, at, moved });
    }

    /// (a1) SIGKILL the leader of partition `p`, restart it once leadership moved.
    fn kill_leader(&mut self, p: usize) {
        let l = self.leader_of(p, &[]);
        let also = self.also_controller(l);
        let at = Instant::now();
        self.nodes[l].kill9();
        let moved = self.wait_new_leader(p, l, &[l]);
        self.log(
            format!("SIGKILL node {} (leader of p{p}){also}", l + 1),
            at,
            Some(moved),
        );
        std::thread::sleep(Duration::from_secs(2));
        self.nodes[l].restart();
        self.wait_in_sync("the restart");
    }

    /// (a2) Two failovers in quick succession on partition `p`: kill its leader A; once a
    /// new leader B leads, restart A; the moment A is back in p's ISR, kill B.
    fn double_failover(&mut self, p: usize) {
        let a = self.leader_of(p, &[]);
        let also = self.also_controller(a);
        let at = Instant::now();
        self.nodes[a].kill9();
        let moved = self.wait_new_leader(p, a, &[a]);
        self.log(
            format!("SIGKILL node {} (leader of p{p}){also}, 1st of 2", a + 1),
            at,
            Some(moved),
        );
        let b = self.leader_of(p, &[a]);
        self.nodes[a].restart();
        wait_until(
            "the restarted node in the ISR",
            Duration::from_secs(30),
            || {
                partitions(self.view(&[]), &self.topic)
                    .get(p)
                    .is_some_and(|x| x.isr.contains(&(a as u64 + 1)))
            },
        );
        let also = self.also_controller(b);
        let at = Instant::now();
        self.nodes[b].kill9();
        let moved = self.wait_new_leader(p, b, &[b]);
        self.log(
            format!(
                "SIGKILL node {} (new leader of p{p}){also} {} ms after the 1st",
                b + 1,
                (at - self.faults.last().unwrap().at).as_millis()
            ),
            at,
            Some(moved),
        );
        std::thread::sleep(Duration::from_secs(1));
        self.nodes[b].restart();
        self.wait_in_sync("the restarts");
    }

    /// (b) SIGSTOP a follower of partition `p` past the session and lag timeouts.
    fn pause_follower(&mut self, p: usize) {
        let parts = partitions(self.view(&[]), &self.topic);
        let leader = parts[p].leader as u64;
        let f = parts[p]
            .replicas
            .iter()
            .find(|r| **r != leader)
            .copied()
            .unwrap() as usize
            - 1;
        let at = Instant::now();
        unsafe {
            libc::kill(self.nodes[f].pid(), libc::SIGSTOP);
        }
        // Whatever it led moves; the partition `p` itself keeps its leader.
        let moved = wait_until(
            "the paused follower out of p's ISR",
            Duration::from_secs(30),
            || {
                partitions(self.view(&[f]), &self.topic)
                    .get(p)
                    .is_some_and(|x| !x.isr.contains(&(f as u64 + 1)))
            },
        );
        eprintln!(
            "  paused follower left p{p}'s ISR after {} ms",
            moved.as_millis()
        );
        self.log(
            format!("SIGSTOP node {} (follower of p{p}) for 6 s", f + 1),
            at,
            None,
        );
        std::thread::sleep(Duration::from_secs(6).saturating_sub(at.elapsed()));
        unsafe {
            libc::kill(self.nodes[f].pid(), libc::SIGCONT);
        }
        self.wait_in_sync("SIGCONT");
    }

    /// (c) SIGKILL the controller (Raft) leader, restart it once another node leads.
    fn kill_controller_leader(&mut self) {
        let mut r = 0;
        wait_until("a Raft leader", Duration::from_secs(20), || {
            r = raft_leader(&self.nodes[0]).unwrap_or(0) as usize;
            r > 0
        });
        let r = r - 1;
        let at = Instant::now();
        self.nodes[r].kill9();
        let other = self.view(&[r]);
        let moved = wait_until("a new Raft leader", Duration::from_secs(30), || {
            raft_leader(other).is_some_and(|l| l as usize != r + 1)
        });
        self.log(
            format!("SIGKILL node {} (controller leader)", r + 1),
            at,
            Some(moved),
        );
        std::thread::sleep(Duration::from_secs(2));
        self.nodes[r].restart();
        self.wait_in_sync("the restart");
    }

    /// (d) Cut the leader of partition `p` off the network for 8 s, then heal.
    fn partition_leader(&mut self, p: usize) {
        let x = self.leader_of(p, &[]);
        let also = self.also_controller(x);
        let at = Instant::now();
        self.net.isolate(x, self.nodes[x].pid());
        let moved = self.wait_new_leader(p, x, &[x]);
        // The cut is real: the controller no longer hears the node.
        let brokers: Value =
            serde_json::from_str(&http_get(&self.view(&[x]).http, "/admin/brokers")).unwrap();
        assert!(
            brokers
                .as_array()
                .unwrap()
                .iter()
                .any(|b| b["id"] == x as u64 + 1 && b["fenced"] == true),
            "the cut-off node is fenced: {brokers}"
        );
        self.log(
            format!(
                "network cut of node {} (leader of p{p}){also} for 8 s",
                x + 1
            ),
            at,
            Some(moved),
        );
        std::thread::sleep(Duration::from_secs(8).saturating_sub(at.elapsed()));
        self.net.heal();
        self.wait_in_sync("the heal");
    }
}

/// The producer ("j" or "r") and sequence number of a value.
fn seq(value: &str) -> Option<(char, u64)> {
    let mut c = value.chars();
    let p = c.next()?;
    Some((p, c.as_str().parse().ok()?))
}

/// Longest gap between consecutive acks of partition `p` received from `at` until `end`
/// (counting from the last ack before `at`): how long writes to `p` stalled.
fn stall(acks: &[Ack], p: i32, at: Instant, end: Instant) -> Option<Duration> {
    let mut times: Vec<Instant> = acks
        .iter()
        .filter(|a| a.partition == p)
        .map(|a| a.at)
        .collect();
    times.sort();
    let start = times.iter().rposition(|t| *t <= at)?;
    times[start..]
        .windows(2)
        .take_while(|w| w[0] < end)
        .map(|w| w[1].min(end) - w[0])
        .max()
}

#[test]
fn jepsen_style_nemesis_loses_nothing_acknowledged() {
    let test_start = Instant::now();
    let (nodes, net) = Node::start_cluster_behind_proxies(3, FAST_FAILOVER);
    let bootstrap = net.bootstrap();
    let topic = topic("jepsen");
    run_ok(
        Command::new(launcher("kafka-topics"))
            .args([
                "--bootstrap-server",
                &bootstrap,
                "--create",
                "--topic",
                &topic,
            ])
            .args(["--partitions", &PARTITIONS.to_string()])
            .args(["--replication-factor", "3"])
            .args(["--config", "min.insync.replicas=2"]),
        Duration::from_secs(90),
        None,
    );
    let consumers = [
        Consumer::start("java", &bootstrap, &topic),
        Consumer::start("kcat", &bootstrap, &topic),
    ];
    let mut c = Cluster {
        nodes,
        net,
        topic: topic.clone(),
        faults: Vec::new(),
        consumed: consumers[0].read.clone(),
    };
    c.wait_in_sync("topic creation");

    let mut producers = [
        Producer::start("java", "ack-producer-java", &bootstrap, &topic),
        Producer::start("rdkafka", "ack-producer", &bootstrap, &topic),
    ];
    wait_until(
        "both producers acknowledged",
        Duration::from_secs(60),
        || producers.iter().all(|p| p.acked() >= 200),
    );
    let nemesis_start = Instant::now();

    eprintln!("nemesis (a): partition leader SIGKILLed");
    c.kill_leader(0);
    eprintln!("nemesis (a): two failovers in quick succession");
    c.double_failover(1);
    eprintln!("nemesis (b): follower SIGSTOPped");
    c.pause_follower(2);
    eprintln!("nemesis (c): controller leader SIGKILLed");
    c.kill_controller_leader();
    eprintln!("nemesis (d): network cut of a partition leader");
    c.partition_leader(3);
    std::thread::sleep(Duration::from_secs(2)); // writes after the last fault
    let nemesis_end = Instant::now();
    let nemesis_time = nemesis_end - nemesis_start;

    // Stop the producers (closing stdin): they flush and print DONE.
    for p in producers.iter_mut() {
        drop(p.stdin.take());
    }
    wait_until("both producers flushed", Duration::from_secs(60), || {
        producers.iter().all(|p| p.done.lock().unwrap().is_some())
    });
    for p in &producers {
        let done = p.done.lock().unwrap().clone().unwrap_or_default();
        let nacks = p.nacks.lock().unwrap().clone();
        eprintln!(
            "{}: {} acks, {done}, {} delivery errors {:?}",
            p.name,
            p.acked(),
            nacks.len(),
            &nacks[..nacks.len().min(3)]
        );
    }
    wait_until("replicas converge", Duration::from_secs(60), || {
        let views: Vec<Vec<Part>> = c.nodes.iter().map(|n| partitions(n, &topic)).collect();
        all_in_sync(&c.nodes[0], &topic)
            && (0..PARTITIONS).all(|p| {
                let ends: Vec<Option<i64>> = views
                    .iter()
                    .map(|v| v.get(p).and_then(|x| x.log_end))
                    .collect();
                ends.iter().all(|e| e.is_some() && *e == ends[0])
            })
    });
    let stored = sluice_compat_tests::read_topic(&bootstrap, &topic);

    // The Java consumer must read everything; then stop both. kcat is only a second
    // witness: it gives up by itself when it sees all brokers down at once (which a
    // failover can briefly look like to it), so whatever it read is checked, but not its
    // progress.
    wait_until(
        "the Java consumer read every record",
        Duration::from_secs(30),
        || {
            let r = consumers[0].read.lock().unwrap();
            let distinct: std::collections::HashSet<(i32, i64)> =
                r.iter().map(|(p, o, _)| (*p, *o)).collect();
            distinct.len() >= stored.len()
        },
    );
    let reads: Vec<(&str, Vec<Read>)> = consumers
        .into_iter()
        .map(|mut consumer| {
            if let Ok(Some(status)) = consumer.child.try_wait() {
                eprintln!("{}: exited early: {status}", consumer.name);
            }
            drop(consumer.stdin.take());
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(consumer.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = consumer.child.kill();
            let _ = consumer.child.wait();
            std::thread::sleep(Duration::from_millis(100)); // the reader thread drains
            let errors = consumer.errors.lock().unwrap().clone();
            let errors: Vec<&String> = errors
                .iter()
                .filter(|l| l.contains("ERROR") || l.contains("Exception"))
                .collect();
            eprintln!(
                "{}: stderr errors ({}), last: {:?}",
                consumer.name,
                errors.len(),
                &errors[errors.len().saturating_sub(3)..]
            );
            let r = consumer.read.lock().unwrap().clone();
            (consumer.name, r)
        })
        .collect();

    // --- checks -------------------------------------------------------------------------
    let acks: Vec<Ack> = producers
        .iter()
        .flat_map(|p| p.acks.lock().unwrap().clone())
        .collect();
    let mut problems: Vec<String> = Vec::new();

    // No lost write: each acknowledged record is at its acknowledged offset.
    let lost: Vec<&Ack> = acks
        .iter()
        .filter(|a| stored.get(&(a.partition, a.offset)) != Some(&a.value))
        .collect();
    for a in lost.iter().take(10) {
        problems.push(format!(
            "LOST {} acked at p{}@{}, stored there: {:?}",
            a.value,
            a.partition,
            a.offset,
            stored.get(&(a.partition, a.offset))
        ));
    }

    // No duplicate within a partition; per producer, sequence numbers increase with offsets.
    let mut duplicated = 0usize;
    let mut out_of_order = 0usize;
    let mut seen: HashMap<(i32, &str), i64> = HashMap::new();
    let mut last_seq: HashMap<(i32, char), (u64, i64)> = HashMap::new();
    for ((p, o), v) in &stored {
        if let Some(first) = seen.insert((*p, v.as_str()), *o) {
            duplicated += 1;
            if duplicated <= 10 {
                problems.push(format!("DUPLICATE {v} in p{p} at {first} and {o}"));
            }
        }
        match seq(v) {
            Some((producer, s)) => {
                if let Some((prev, prev_o)) = last_seq.insert((*p, producer), (s, *o)) {
                    if s <= prev {
                        out_of_order += 1;
                        if out_of_order <= 10 {
                            problems.push(format!(
                                "OUT OF ORDER in p{p}: {v} at {o} after {producer}{prev} at {prev_o}"
                            ));
                        }
                    }
                }
            }
            None => problems.push(format!("UNKNOWN value {v:?} at p{p}@{o}")),
        }
    }

    // What the concurrent consumers read is still there, at the same offset.
    let mut read_vanished = 0usize;
    for (name, read) in &reads {
        for (p, o, v) in read {
            if stored.get(&(*p, *o)) != Some(v) {
                read_vanished += 1;
                if read_vanished <= 10 {
                    problems.push(format!(
                        "READ by {name} {v} at p{p}@{o} during the faults, now there: {:?}",
                        stored.get(&(*p, *o))
                    ));
                }
            }
        }
    }

    // No divergence: every in-sync replica byte-identical up to the smallest high watermark.
    let mut divergent = 0usize;
    let mut compared_bytes = 0u64;
    let parts = partitions(&c.nodes[0], &topic);
    for (p, part) in parts.iter().enumerate() {
        let hws: Vec<i64> = part
            .isr
            .iter()
            .map(|id| {
                partitions(&c.nodes[*id as usize - 1], &topic)[p]
                    .high_watermark
                    .unwrap_or(0)
            })
            .collect();
        let upto = hws.iter().copied().min().unwrap_or(0);
        let digests: Vec<(u64, Value)> = part
            .isr
            .iter()
            .map(|id| {
                let body = http_get(
                    &c.nodes[*id as usize - 1].http,
                    &format!("/admin/digest?topic={topic}&partition={p}&upto={upto}"),
                );
                let v: Value = serde_json::from_str(&body)
                    .unwrap_or_else(|e| panic!("digest of p{p} on node {id}: {e}: {body}"));
                (*id, v[0].clone())
            })
            .collect();
        let key = |v: &Value| {
            (
                v["covered_end"].as_i64(),
                v["batches"].as_u64(),
                v["bytes"].as_u64(),
                v["crc32c"].as_u64(),
            )
        };
        let first = key(&digests[0].1);
        compared_bytes += first.2.unwrap_or(0);
        if first.0 != Some(upto) {
            problems.push(format!(
                "DIGEST of p{p} on node {} stops at {:?}, not at the high watermark {upto}",
                digests[0].0, first.0
            ));
        }
        if digests.iter().any(|(_, d)| key(d) != first) || first.0.is_none() {
            divergent += 1;
            problems.push(format!("DIVERGENT p{p} below {upto}: {digests:?}"));
        }
    }

    // --- report -------------------------------------------------------------------------
    eprintln!("\n=== failovers ===");
    for (i, f) in c.faults.iter().enumerate() {
        let end = c.faults.get(i + 1).map_or(nemesis_end, |next| next.at);
        let stalls: Vec<String> = (0..PARTITIONS as i32)
            .map(|p| {
                stall(&acks, p, f.at, end)
                    .map_or(format!("p{p} -"), |d| format!("p{p} {}ms", d.as_millis()))
            })
            .collect();
        eprintln!(
            "{}: leader moved {}; longest ack gap per partition until the next fault: {}",
            f.what,
            f.moved
                .map_or("-".into(), |d| format!("after {} ms", d.as_millis())),
            stalls.join(", ")
        );
    }
    for (name, read) in &reads {
        let reached: Vec<String> = (0..PARTITIONS as i32)
            .map(|p| {
                let last = read.iter().filter(|r| r.0 == p).map(|r| r.1 + 1).max();
                let end = stored.keys().filter(|k| k.0 == p).map(|k| k.1 + 1).max();
                format!("p{p} {}/{}", last.unwrap_or(0), end.unwrap_or(0))
            })
            .collect();
        eprintln!(
            "{name} consumer reached (offset/end): {}",
            reached.join(", ")
        );
    }
    eprintln!("\n=== totals ===");
    eprintln!(
        "acked {} (java {}, rdkafka {}), stored {}, read concurrently {} (java {}, kcat {}), lost {}, \
         duplicated {}, out-of-order {}, read-then-vanished {}, divergent partitions {} \
         ({} bytes compared); nemesis {} s, test {} s",
        acks.len(),
        producers[0].acked(),
        producers[1].acked(),
        stored.len(),
        reads[0].1.len() + reads[1].1.len(),
        reads[0].1.len(),
        reads[1].1.len(),
        lost.len(),
        duplicated,
        out_of_order,
        read_vanished,
        divergent,
        compared_bytes,
        nemesis_time.as_secs(),
        test_start.elapsed().as_secs()
    );
    for p in &problems {
        eprintln!("{p}");
    }
    if !problems.is_empty() {
        for n in &c.nodes {
            eprintln!("--- node {} log tail ---\n{}", n.node_id, n.log_tail());
        }
    }
    let _ = std::io::stderr().flush();

    assert!(
        producers.iter().all(|p| p.acked() >= 5_000),
        "both producers kept writing through the faults"
    );
    assert_eq!(c.faults.len(), 6, "every fault was injected");
    assert!(
        reads[0].1.len() >= stored.len(),
        "the Java consumer read everything"
    );
    assert_eq!(lost.len(), 0, "acknowledged writes lost");
    assert_eq!(duplicated, 0, "duplicated records");
    assert_eq!(out_of_order, 0, "records out of producer order");
    assert_eq!(read_vanished, 0, "reads past the high watermark");
    assert_eq!(divergent, 0, "diverged replicas");
    assert!(problems.is_empty(), "{} problems", problems.len());
}
