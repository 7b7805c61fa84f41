//! Replication with real processes: 3 nodes, RF=3, min.insync.replicas=2, an acks=all
//! idempotent producer (librdkafka) while partition leaders are SIGKILLed. Every
//! acknowledged record survives exactly once, and replicas converge.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_compat_tests::{
    admin_json, http_get, launcher, run_ok, topic, wait_until, Node, FAST_FAILOVER,
};

/// The partitions of `topic` in `node`'s GET /admin/topics (JSON objects).
fn admin_partitions(node: &Node, topic: &str) -> Vec<Value> {
    let v: Value =
        serde_json::from_str(&http_get(&node.http, "/admin/topics")).unwrap_or(Value::Null);
    v.as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["name"] == topic)
        .flat_map(|t| t["partitions"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .collect()
}

/// Per partition as `node` sees it: (leader, isr, this node's log end offset if stored).
fn partitions(node: &Node, topic: &str) -> Vec<(i64, Vec<u64>, Option<i64>)> {
    admin_partitions(node, topic)
        .iter()
        .map(|p| {
            (
                p["leader"].as_i64().unwrap(),
                ids(&p["isr"]),
                p["log_end_offset"].as_i64(),
            )
        })
        .collect()
}

/// Creates `topic` with replication factor 3 through Kafka's CLI on `node`.
fn create_rf3(node: &Node, topic: &str, partitions: u32, configs: &[&str]) {
    let mut cmd = Command::new(launcher("kafka-topics"));
    cmd.args([
        "--bootstrap-server",
        &node.kafka,
        "--create",
        "--topic",
        topic,
    ])
    .args([
        "--partitions",
        &partitions.to_string(),
        "--replication-factor",
        "3",
    ]);
    for c in configs {
        cmd.args(["--config", c]);
    }
    run_ok(&mut cmd, Duration::from_secs(90), None);
}

fn bootstrap(nodes: &[Node]) -> String {
    nodes
        .iter()
        .map(|n| n.kafka.clone())
        .collect::<Vec<_>>()
        .join(",")
}

/// How a leader is taken out.
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    /// SIGKILL, restarted later.
    Kill,
    /// SIGSTOP for longer than the session and lag timeouts, then SIGCONT: the old leader
    /// wakes up believing it still leads, and must not acknowledge anything.
    Pause,
}

fn take_out(node: &mut Node, fault: Fault) {
    match fault {
        Fault::Kill => node.kill9(),
        Fault::Pause => unsafe {
            libc::kill(node.pid(), libc::SIGSTOP);
        },
    }
}

fn bring_back(node: &mut Node, fault: Fault) {
    match fault {
        Fault::Kill => node.restart(),
        Fault::Pause => {
            // Past broker.session.timeout.ms and replica.lag.time.max.ms (3 s each).
            std::thread::sleep(Duration::from_secs(5));
            unsafe {
                libc::kill(node.pid(), libc::SIGCONT);
            }
        }
    }
}

#[test]
fn acknowledged_writes_survive_killing_partition_leaders() {
    failover_loses_nothing_acknowledged(Fault::Kill);
}

#[test]
fn a_paused_old_leader_acknowledges_nothing_and_rejoins_as_a_follower() {
    failover_loses_nothing_acknowledged(Fault::Pause);
}

fn failover_loses_nothing_acknowledged(fault: Fault) {
    let mut nodes = Node::start_cluster(3, 0, FAST_FAILOVER);
    let topic = topic("replicated");
    create_rf3(&nodes[0], &topic, 3, &["min.insync.replicas=2"]);
    wait_until("every follower in sync", Duration::from_secs(30), || {
        let p = partitions(&nodes[0], &topic);
        p.len() == 3 && p.iter().all(|(_, isr, _)| isr.len() == 3)
    });

    let mut producer = Command::new(launcher("ack-producer"))
        .args(["--bootstrap", &bootstrap(&nodes), "--topic", &topic])
        .args(["--messages", "30000", "--timeout", "120"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ack-producer");
    let stdout = producer.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    // Kill the leader of partition 0 mid-stream, then (once the first is back) the leader
    // of partition 1.
    let mut acked: Vec<(i32, i64, String)> = Vec::new();
    let mut kills: Vec<usize> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        assert!(
            Instant::now() < deadline,
            "producer did not finish; {} acks",
            acked.len()
        );
        let Ok(line) = rx.recv_timeout(Duration::from_secs(130)) else {
            break;
        };
        if let Some(rest) = line.strip_prefix("ACK ") {
            let f: Vec<&str> = rest.splitn(3, ' ').collect();
            acked.push((
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].to_string(),
            ));
        } else if line.starts_with("DONE") {
            break;
        }
        let due = [6000, 16000];
        if kills.len() < due.len() && acked.len() >= due[kills.len()] {
            if let Some(prev) = kills.last().copied() {
                bring_back(&mut nodes[prev], fault);
            }
            let alive = (0..3).find(|i| !kills.contains(i)).unwrap_or(0);
            let mut leader = 0;
            wait_until("a leader to take out", Duration::from_secs(20), || {
                leader = partitions(&nodes[alive], &topic)
                    .get(kills.len())
                    .map_or(0, |p| p.0.max(0) as usize);
                leader > 0
            });
            eprintln!(
                "killing node {leader} (leader of partition {}) after {} acks",
                kills.len(),
                acked.len()
            );
            take_out(&mut nodes[leader - 1], fault);
            kills.push(leader - 1);
        }
    }
    let _ = producer.kill();
    let _ = producer.wait();
    assert_eq!(kills.len(), 2, "two leaders were killed mid-stream");
    assert!(
        acked.len() >= 29_000,
        "the producer went on after the kills: {} acks",
        acked.len()
    );
    if let Some(last) = kills.last().copied() {
        bring_back(&mut nodes[last], fault);
    }

    // The restarted nodes truncate, catch up and rejoin the ISR; all replicas end equal.
    wait_until("replicas converge", Duration::from_secs(60), || {
        let views: Vec<_> = nodes.iter().map(|n| partitions(n, &topic)).collect();
        (0..3).all(|p| {
            let ends: Vec<Option<i64>> = views.iter().map(|v| v.get(p).and_then(|x| x.2)).collect();
            views[0].get(p).is_some_and(|x| x.1.len() == 3)
                && ends.iter().all(|e| e.is_some() && *e == ends[0])
        })
    });

    // Read once each leader's high watermark has reached the common log end too: a consumer
    // reads up to the high watermark, which trails the followers' catch-up by a fetch.
    wait_until(
        "leaders' high watermarks current",
        Duration::from_secs(30),
        || {
            let views: Vec<Vec<Value>> =
                nodes.iter().map(|n| admin_partitions(n, &topic)).collect();
            (0..3).all(|p| {
                let leader = views[0]
                    .get(p)
                    .and_then(|x| x["leader"].as_u64())
                    .unwrap_or(0);
                let at_leader = leader
                    .checked_sub(1)
                    .and_then(|i| views.get(i as usize))
                    .and_then(|v| v.get(p));
                at_leader.is_some_and(|x| {
                    x["high_watermark"].as_i64().is_some()
                        && x["high_watermark"] == x["log_end_offset"]
                })
            })
        },
    );
    let stored = sluice_compat_tests::read_topic(&bootstrap(&nodes), &topic);
    for (p, o, v) in &acked {
        assert_eq!(
            stored.get(&(*p, *o)),
            Some(v),
            "acknowledged record {v} at {p}/{o} lost"
        );
    }
    let mut values: Vec<&String> = stored.values().collect();
    let total = values.len();
    values.sort();
    values.dedup();
    assert_eq!(
        values.len(),
        total,
        "duplicates after retries across failovers"
    );
}

/// Java's `String.hashCode`, which places a group on an offsets partition.
fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

#[test]
fn committed_offsets_survive_losing_the_group_coordinator() {
    let mut nodes = Node::start_cluster(3, 0, FAST_FAILOVER);
    let topic = topic("committed");
    create_rf3(&nodes[0], &topic, 1, &[]);
    let input: String = (0..50).map(|i| format!("m{i}\n")).collect();
    sluice_compat_tests::kcat_produce(&nodes[0], &topic, input.as_bytes(), &[]);
    let group = "g-survives";
    sluice_compat_tests::commit_offsets(&nodes[0], &topic, group, 20);

    let slot = (java_hash(group) & 0x7fff_ffff) as usize % 50;
    let coordinator = partitions(&nodes[0], "__consumer_offsets")[slot].0 as usize;
    nodes[coordinator - 1].kill9();
    let survivor = &nodes[coordinator % 3];
    wait_until("a new coordinator", Duration::from_secs(20), || {
        let p = partitions(survivor, "__consumer_offsets");
        p.get(slot)
            .is_some_and(|x| x.0 > 0 && x.0 as usize != coordinator)
    });
    wait_until(
        "the commit read back from the new coordinator",
        Duration::from_secs(30),
        || {
            let v = admin_json(survivor, &["groups", "describe", group]);
            v["partitions"][0]["committed"].as_i64() == Some(20)
        },
    );
}

#[test]
fn sigterm_hands_leadership_over_before_the_node_stops() {
    // A long session: only the controlled shutdown can move leadership this fast.
    let slow = ["--config", "broker.session.timeout.ms=60000"];
    let mut nodes = Node::start_cluster(3, 0, &slow);
    let topic = topic("handover");
    create_rf3(&nodes[0], &topic, 3, &[]);
    wait_until("every follower in sync", Duration::from_secs(30), || {
        partitions(&nodes[1], &topic)
            .iter()
            .all(|(_, isr, _)| isr.len() == 3)
    });
    let led_by_first = partitions(&nodes[1], &topic)
        .iter()
        .filter(|p| p.0 == 1)
        .count();
    assert!(led_by_first > 0, "node 1 leads something");
    let stopped = Instant::now();
    assert!(nodes[0].terminate().success());
    wait_until(
        "leadership moved off the stopped node",
        Duration::from_secs(10),
        || partitions(&nodes[1], &topic).iter().all(|p| p.0 > 1),
    );
    assert!(
        stopped.elapsed() < Duration::from_secs(20),
        "well before the session timeout"
    );
}

#[test]
fn preferred_leaders_come_back_by_kafka_leader_election_and_automatically() {
    for auto in [false, true] {
        let mut flags: Vec<&str> = FAST_FAILOVER.to_vec();
        if auto {
            flags.extend(["--config", "leader.imbalance.check.interval.seconds=1"]);
        } else {
            flags.extend(["--config", "auto.leader.rebalance.enable=false"]);
        }
        let mut nodes = Node::start_cluster(3, 0, &flags);
        let topic = topic("preferred");
        create_rf3(&nodes[1], &topic, 3, &[]);
        let leads_of_1 = |n: &Node| partitions(n, &topic).iter().filter(|p| p.0 == 1).count();
        wait_until(
            "node 1 leads its partitions",
            Duration::from_secs(20),
            || leads_of_1(&nodes[1]) == 1,
        );
        assert!(nodes[0].terminate().success());
        nodes[0].restart();
        wait_until("node 1 back in every ISR", Duration::from_secs(30), || {
            partitions(&nodes[1], &topic).iter().all(|p| p.1.len() == 3)
        });
        if !auto {
            assert_eq!(
                leads_of_1(&nodes[1]),
                0,
                "leadership stays moved without election"
            );
            let out = run_ok(
                Command::new(launcher("kafka-leader-election"))
                    .args(["--bootstrap-server", &nodes[1].kafka])
                    .args(["--election-type", "PREFERRED", "--all-topic-partitions"]),
                Duration::from_secs(90),
                None,
            );
            assert!(
                out.contains("Successfully completed leader election"),
                "{out}"
            );
        }
        wait_until(
            "the preferred leader leads again",
            Duration::from_secs(20),
            || leads_of_1(&nodes[1]) == 1,
        );
    }
}

#[test]
fn a_rolling_restart_loses_nothing_and_the_producer_sees_no_errors() {
    let mut nodes = Node::start_cluster(3, 0, FAST_FAILOVER);
    let topic = topic("rolling");
    create_rf3(&nodes[0], &topic, 3, &["min.insync.replicas=2"]);
    let in_sync = |nodes: &[Node]| {
        let p = partitions(&nodes[0], &topic);
        p.len() == 3
            && p.iter()
                .all(|(leader, isr, _)| *leader > 0 && isr.len() == 3)
    };
    wait_until("every follower in sync", Duration::from_secs(30), || {
        in_sync(&nodes)
    });

    let mut producer = Command::new(launcher("ack-producer"))
        .args(["--bootstrap", &bootstrap(&nodes), "--topic", &topic])
        .args(["--messages", "150000", "--timeout", "120"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ack-producer");
    let (out, err) = (
        producer.stdout.take().unwrap(),
        producer.stderr.take().unwrap(),
    );
    let errors = std::thread::spawn(move || {
        BufReader::new(err)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let acks = std::thread::spawn(move || {
        BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .filter(|l| l.starts_with("ACK "))
            .count()
    });
    // Restart every node in turn (SIGTERM: controlled shutdown) while records flow.
    for i in 0..3 {
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            nodes[i].terminate().success(),
            "node {} stopped cleanly",
            i + 1
        );
        nodes[i].restart();
        wait_until(
            "the restarted node back in sync",
            Duration::from_secs(30),
            || in_sync(&nodes),
        );
    }
    let status = producer.wait().unwrap();
    let acked = acks.join().unwrap();
    let nacks: Vec<String> = errors
        .join()
        .unwrap()
        .into_iter()
        .filter(|l| l.starts_with("NACK"))
        .collect();
    assert!(status.success(), "producer exit {status}");
    assert!(
        nacks.is_empty(),
        "the producer saw delivery errors: {:?}",
        &nacks[..nacks.len().min(5)]
    );
    assert_eq!(acked, 150_000, "every record acknowledged");
    assert_eq!(
        sluice_compat_tests::read_topic(&bootstrap(&nodes), &topic).len(),
        150_000,
        "and stored once"
    );
}

/// Replica ids of each partition of `topic`, as `node` sees them.
fn replicas(node: &Node, topic: &str) -> Vec<Vec<u64>> {
    admin_partitions(node, topic)
        .iter()
        .map(|p| ids(&p["replicas"]))
        .collect()
}

#[test]
fn partitions_move_to_new_replicas_with_kafka_reassign_partitions_and_sluice_admin() {
    let mut nodes = Node::start_cluster(3, 1, FAST_FAILOVER);
    let topic = topic("moving");
    run_ok(
        Command::new(launcher("kafka-topics"))
            .args(["--bootstrap-server", &nodes[0].kafka, "--create"])
            .args(["--topic", &topic, "--replica-assignment", "1:2,2:3"]),
        Duration::from_secs(90),
        None,
    );
    let input: String = (0..1000).map(|i| format!("m{i}\n")).collect();
    sluice_compat_tests::kcat_produce(&nodes[0], &topic, input.as_bytes(), &["-p", "0"]);
    // The new replicas must start at the leader's log start, not at 0.
    let dir = tempfile::tempdir().unwrap();
    let offsets = dir.path().join("offsets.json");
    std::fs::write(
        &offsets,
        format!(
            r#"{{"version":1,"partitions":[{{"topic":"{topic}","partition":0,"offset":400}}]}}"#
        ),
    )
    .unwrap();
    run_ok(
        Command::new(launcher("kafka-delete-records"))
            .args(["--bootstrap-server", &nodes[0].kafka, "--offset-json-file"])
            .arg(&offsets),
        Duration::from_secs(90),
        None,
    );

    // Move partition 0 from brokers 1,2 to 3,4 (the leader moves too) with Kafka's tool.
    let plan = dir.path().join("plan.json");
    std::fs::write(
        &plan,
        format!(
            r#"{{"version":1,"partitions":[{{"topic":"{topic}","partition":0,"replicas":[3,4]}}]}}"#
        ),
    )
    .unwrap();
    let tool = |action: &str| {
        run_ok(
            Command::new(launcher("kafka-reassign-partitions"))
                .args(["--bootstrap-server", &nodes[1].kafka, action])
                .arg("--reassignment-json-file")
                .arg(&plan),
            Duration::from_secs(90),
            None,
        )
    };
    let started = tool("--execute");
    assert!(
        started.contains("Successfully started partition reassignment"),
        "{started}"
    );
    wait_until("the move to complete", Duration::from_secs(60), || {
        tool("--verify").contains(&format!("Reassignment of partition {topic}-0 is completed"))
    });
    wait_until(
        "the new replicas in sync, the old ones gone",
        Duration::from_secs(30),
        || {
            let at = |n: usize| partitions(&nodes[n], &topic)[0].clone();
            let (leader, mut isr, end) = at(2);
            isr.sort_unstable();
            (leader == 3 || leader == 4)
                && isr == [3, 4]
                && end == Some(1000)
                && at(3).2 == Some(1000)
                && at(0).2.is_none()
                && at(1).2.is_none()
        },
    );
    assert_eq!(replicas(&nodes[0], &topic)[0], [3, 4]);
    let stored: Vec<(i64, String)> = sluice_compat_tests::read_topic(&bootstrap(&nodes), &topic)
        .into_iter()
        .filter(|((p, _), _)| *p == 0)
        .map(|((_, o), v)| (o, v))
        .collect();
    let expected: Vec<(i64, String)> = (400..1000).map(|i| (i, format!("m{i}"))).collect();
    assert_eq!(stored, expected, "the moved partition holds what it held");

    // A move towards a broker that is down stays in progress until cancelled.
    nodes[0].kill9();
    wait_until("broker 1 fenced", Duration::from_secs(20), || {
        admin_json(&nodes[1], &["brokers"])
            .as_array()
            .is_some_and(|b| b.iter().any(|b| b["id"] == 1 && b["fenced"] == true))
    });
    let start = admin_json(
        &nodes[1],
        &[
            "reassign",
            "start",
            &topic,
            "--partition",
            "1",
            "--replicas",
            "2,1",
        ],
    );
    assert_eq!(start["ok"], true, "{start}");
    let moves = admin_json(&nodes[1], &["reassign", "list"]);
    assert_eq!(moves[0]["partition"], 1, "{moves}");
    assert_eq!(moves[0]["adding"], serde_json::json!([1]), "{moves}");
    assert_eq!(moves[0]["removing"], serde_json::json!([3]), "{moves}");
    assert_eq!(replicas(&nodes[1], &topic)[1], [2, 1, 3]);
    let cancel = admin_json(
        &nodes[1],
        &["reassign", "cancel", &topic, "--partition", "1"],
    );
    assert_eq!(cancel["ok"], true, "{cancel}");
    assert_eq!(
        admin_json(&nodes[1], &["reassign", "list"]),
        serde_json::json!([])
    );
    assert_eq!(replicas(&nodes[1], &topic)[1], [2, 3]);
}

/// Stored records of `topic` on its current leader: (offset, key, value) from kcat.
fn records_on_leader(nodes: &[&Node], topic: &str) -> Vec<(i64, String, String)> {
    let bootstrap: Vec<String> = nodes.iter().map(|n| n.kafka.clone()).collect();
    let out = run_ok(
        Command::new("kcat")
            .args(["-C", "-b", &bootstrap.join(","), "-t", topic, "-e", "-q"])
            .args(["-f", "%o %k %s\n"]),
        Duration::from_secs(60),
        None,
    );
    out.lines()
        .map(|l| {
            let mut f = l.split(' ');
            let offset = f.next().unwrap().parse().unwrap();
            (offset, f.next().unwrap().into(), f.next().unwrap().into())
        })
        .collect()
}

/// Records removed by `node`'s log cleaner from `topic` so far.
fn compacted_away(node: &Node, topic: &str) -> f64 {
    let text = sluice_compat_tests::scrape_metrics(node);
    let series = format!("sluice_log_cleaner_records_removed_total{{topic=\"{topic}\"}}");
    sluice_compat_tests::metric_sample(&text, &series).unwrap_or(0.0)
}

#[test]
fn a_follower_behind_a_compacted_log_catches_up_across_its_gaps_and_takes_over() {
    // Kafka's followers accept batches past their log end: compaction removes whole batches,
    // so the next one a lagging follower is served may start well past where it stopped.
    let mut flags = FAST_FAILOVER.to_vec();
    flags.extend(["--config", "log.cleaner.backoff.ms=200"]);
    let mut nodes = Node::start_cluster(3, 0, &flags);
    let topic = topic("ct");
    // A group whose offsets partition is led by one node and would fail over to a second:
    // that second is the follower kept down while both logs are compacted.
    let warmup = format!("{topic}-warmup");
    sluice_compat_tests::kcat_produce(&nodes[0], &warmup, b"x\n", &[]);
    sluice_compat_tests::commit_offsets(&nodes[0], &warmup, "g-warmup", 1);
    let offsets = replicas(&nodes[0], "__consumer_offsets");
    let (group, slot) = (0..)
        .map(|i| format!("g-gap-{i}"))
        .map(|g| {
            let slot = (java_hash(&g) & 0x7fff_ffff) as usize % offsets.len();
            (g, slot)
        })
        .find(|(_, slot)| offsets[*slot][0] == 2)
        .unwrap();
    let order = &offsets[slot];
    let (leader, lagging, third) = (order[0] as usize, order[1] as usize, order[2] as usize);
    wait_until(
        "the offsets partition led by its first replica",
        Duration::from_secs(30),
        || partitions(&nodes[leader - 1], "__consumer_offsets")[slot].0 == leader as i64,
    );
    run_ok(
        Command::new(launcher("kafka-topics"))
            .args(["--bootstrap-server", &nodes[0].kafka, "--create"])
            .args(["--topic", &topic, "--replica-assignment"])
            .arg(format!("{leader}:{lagging}:{third}"))
            .args(["--config", "cleanup.policy=compact"])
            .args(["--config", "min.cleanable.dirty.ratio=0.01"])
            .args(["--config", "min.compaction.lag.ms=0"]),
        Duration::from_secs(90),
        None,
    );
    let keyed = |from: usize, to: usize| -> String {
        (from..to).map(|i| format!("k{}:v{i}\n", i % 10)).collect()
    };
    sluice_compat_tests::kcat_produce(&nodes[0], &topic, keyed(0, 500).as_bytes(), &["-K:"]);
    sluice_compat_tests::commit_offsets(&nodes[0], &topic, &group, 20);
    wait_until("every replica in sync", Duration::from_secs(30), || {
        partitions(&nodes[0], &topic)[0].1.len() == 3
            && partitions(&nodes[0], "__consumer_offsets")[slot].1.len() == 3
    });

    nodes[lagging - 1].kill9();
    // Many small batches, so compaction removes whole ones, and commits on top.
    for round in 0..30 {
        let from = 500 + round * 100;
        sluice_compat_tests::kcat_produce(
            &nodes[leader - 1],
            &topic,
            keyed(from, from + 100).as_bytes(),
            &["-K:", "-X", "linger.ms=0", "-X", "batch.num.messages=7"],
        );
    }
    sluice_compat_tests::commit_offsets(&nodes[leader - 1], &topic, &group, 300);
    wait_until(
        "the leader to compact both logs",
        Duration::from_secs(30),
        || {
            compacted_away(&nodes[leader - 1], &topic) >= 2000.0
                && compacted_away(&nodes[leader - 1], "__consumer_offsets") >= 200.0
        },
    );

    nodes[lagging - 1].restart();
    let in_sync = |nodes: &[Node], topic: &str, p: usize, who: usize| {
        let parts = partitions(&nodes[who - 1], topic);
        let lead = parts[p].0 as usize;
        parts[p].1.contains(&(who as u64))
            && parts[p].2.is_some()
            && parts[p].2 == partitions(&nodes[lead - 1], topic)[p].2
    };
    wait_until(
        "the lagging follower back in both ISRs at the leader's log end",
        Duration::from_secs(30),
        || {
            in_sync(&nodes, &topic, 0, lagging)
                && in_sync(&nodes, "__consumer_offsets", slot, lagging)
        },
    );

    // Failover to the follower that caught up across the gaps.
    nodes[leader - 1].kill9();
    wait_until(
        "the caught-up follower leads",
        Duration::from_secs(30),
        || {
            partitions(&nodes[lagging - 1], &topic)[0].0 == lagging as i64
                && partitions(&nodes[lagging - 1], "__consumer_offsets")[slot].0 == lagging as i64
        },
    );
    let survivors = [&nodes[lagging - 1], &nodes[third - 1]];
    let stored = records_on_leader(&survivors, &topic);
    let mut latest = std::collections::BTreeMap::new();
    for (offset, key, value) in &stored {
        latest.insert(key.clone(), (*offset, value.clone()));
    }
    for k in 0..10 {
        let last = 3490 + k;
        assert_eq!(
            latest.get(&format!("k{k}")),
            Some(&(last as i64, format!("v{last}"))),
            "the latest value of k{k} at its offset, on the new leader"
        );
    }
    assert!(
        stored.windows(2).all(|w| w[0].0 < w[1].0),
        "offsets only grow"
    );
    assert!(
        stored.len() < 3500,
        "the new leader holds the compacted log"
    );
    wait_until(
        "the commit read back from the new coordinator",
        Duration::from_secs(30),
        || {
            let v = admin_json(&nodes[lagging - 1], &["groups", "describe", &group]);
            v["partitions"][0]["committed"].as_i64() == Some(300)
        },
    );

    // The old leader returns as a follower of the new one and catches up too.
    nodes[leader - 1].restart();
    wait_until(
        "the old leader back in both ISRs",
        Duration::from_secs(30),
        || {
            in_sync(&nodes, &topic, 0, leader)
                && in_sync(&nodes, "__consumer_offsets", slot, leader)
        },
    );
}

#[test]
fn every_acknowledged_commit_survives_the_coordinator_moving_away_and_back() {
    // The group coordinator is the leader of the group's offsets partition: it loads the
    // partition when it becomes leader and writes commits through the leader-append path.
    // Move that leadership away (SIGKILL) and back (preferred-leader election) while a
    // client commits; every commit it saw acknowledged must be read back.
    let mut flags = FAST_FAILOVER.to_vec();
    flags.extend(["--config", "leader.imbalance.check.interval.seconds=1"]);
    let mut nodes = Node::start_cluster(3, 0, &flags);
    let topic = topic("moves");
    create_rf3(&nodes[0], &topic, 1, &[]);
    let group = "g-moves";
    sluice_compat_tests::commit_offsets(&nodes[0], &topic, group, 1);
    let slot = (java_hash(group) & 0x7fff_ffff) as usize % 50;
    let leader_of_slot = |n: &Node| partitions(n, "__consumer_offsets")[slot].0;
    wait_until(
        "the offsets partition fully in sync",
        Duration::from_secs(30),
        || partitions(&nodes[0], "__consumer_offsets")[slot].1.len() == 3,
    );
    let coordinator = leader_of_slot(&nodes[0]) as usize;
    let survivor = coordinator % 3; // index of another node
    let mut client = Command::new(launcher("commit-loop"))
        .args([
            "--bootstrap",
            &bootstrap(&nodes),
            "--topic",
            &topic,
            "--group",
            group,
        ])
        .args(["--commits", "1000000", "--retry-for", "150"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, acks) = mpsc::channel::<i64>();
    let stdout = client.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("ACK ").and_then(|n| n.parse().ok()) {
                let _ = tx.send(n);
            }
        }
    });
    let mut last_ack = 0;
    // Waits for `more` commits acknowledged from now on (earlier ones are skipped).
    let mut acked_until = |more: i64, what: &str| {
        while let Ok(n) = acks.try_recv() {
            last_ack = n;
        }
        let target = last_ack + more;
        let deadline = Instant::now() + Duration::from_secs(60);
        while last_ack < target {
            let left = deadline.saturating_duration_since(Instant::now());
            match acks.recv_timeout(left) {
                Ok(n) => last_ack = n,
                Err(_) => panic!("commits stalled at {last_ack} {what}"),
            }
        }
    };

    acked_until(50, "before the move");
    nodes[coordinator - 1].kill9();
    wait_until("another coordinator", Duration::from_secs(30), || {
        let l = leader_of_slot(&nodes[survivor]);
        l > 0 && l as usize != coordinator
    });
    acked_until(50, "after the coordinator moved away");
    nodes[coordinator - 1].restart();
    wait_until(
        "the coordinator moved back",
        Duration::from_secs(60),
        || leader_of_slot(&nodes[survivor]) as usize == coordinator,
    );
    acked_until(50, "after the coordinator moved back");
    let _ = client.kill();
    let _ = client.wait();
    while let Ok(n) = acks.try_recv() {
        last_ack = n;
    }
    // The commit in flight when the client died may have been stored, unacknowledged.
    let committed = admin_json(&nodes[survivor], &["groups", "describe", group]);
    let read_back = committed["partitions"][0]["committed"]
        .as_i64()
        .unwrap_or(-1);
    eprintln!("{last_ack} commits acknowledged across two moves; read back {read_back}");
    assert!(
        read_back == last_ack || read_back == last_ack + 1,
        "last acknowledged commit {last_ack}, read back {read_back}: {committed}"
    );
}

#[test]
fn an_acks_all_write_the_followers_cannot_confirm_in_time_is_request_timed_out() {
    // Default lag timeout (30 s), so the paused followers stay in the ISR for longer than
    // the produce timeout (5 s): the write waits for them and times out, as in Kafka.
    let mut nodes = Node::start_cluster(3, 0, &[]);
    let name = topic("acks-timeout");
    create_rf3(&nodes[0], &name, 1, &["min.insync.replicas=2"]);
    wait_until("the partition in sync", Duration::from_secs(30), || {
        partitions(&nodes[0], &name)
            .first()
            .is_some_and(|(leader, isr, _)| *leader > 0 && isr.len() == 3)
    });
    let leader = usize::try_from(partitions(&nodes[0], &name)[0].0).unwrap() - 1;
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    };
    let code = sluice_compat_tests::raw_produce(&nodes[leader], &name, &[(now(), "a")], false);
    assert_eq!(code, 0, "with every follower up");

    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    for i in &followers {
        take_out(&mut nodes[*i], Fault::Pause);
    }
    let code = sluice_compat_tests::raw_produce(&nodes[leader], &name, &[(now(), "b")], false);
    for i in &followers {
        unsafe {
            libc::kill(nodes[*i].pid(), libc::SIGCONT);
        }
    }
    assert_eq!(code, 7, "REQUEST_TIMED_OUT");
}
