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
//! Then the checker (`sluice_compat_tests::jepsen`) counts every anomaly: acknowledged
//! writes lost, values twice in a partition, a producer's records out of send order,
//! inconsistent offsets, non-monotonic or skipping reads, reads later lost (past the high
//! watermark), and in-sync replicas that differ below the high watermark (GET
//! /admin/digest); all must be 0 and the Java consumer must eventually read everything.
//! Prints totals and per-fault failover times. `fault_matrix.rs` runs each nemesis alone
//! across replication factors and acks settings.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use sluice_compat_tests::jepsen::{
    self, analyze, print_failovers, Cluster, Consumer, History, Isolation,
};
use sluice_compat_tests::{launcher, run_ok, topic, Node, FAST_FAILOVER};

const PARTITIONS: usize = 4;
/// Records a second, per producer.
const RATE: u32 = 250;

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
        Consumer::start("java", &bootstrap, &topic, PARTITIONS),
        Consumer::start("kcat", &bootstrap, &topic, PARTITIONS),
    ];
    let mut c = Cluster {
        nodes,
        net,
        topic: topic.clone(),
        partitions: PARTITIONS,
        replication_factor: 3,
        faults: Vec::new(),
        progress: consumers[0].read.clone(),
        clocks: None,
    };
    c.wait_in_sync("topic creation");

    let mut producers = jepsen::start_producers(&bootstrap, &topic, RATE, "all");
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
    c.isolate_leader(3, Isolation::Reset);
    std::thread::sleep(Duration::from_secs(2)); // writes after the last fault
    let nemesis_end = Instant::now();
    let nemesis_time = nemesis_end - nemesis_start;

    let acks = jepsen::stop_producers(&mut producers);
    let (stored, reads) = jepsen::collect_reads(&c, &bootstrap, consumers);
    let mut found = analyze(&History {
        acks: &acks,
        stored: &stored,
        reads: &reads,
        commits: None,
    });
    let (divergent, compared_bytes, differences) = c.divergence();
    found.divergent = divergent;
    found.problems.extend(differences);

    // --- report -------------------------------------------------------------------------
    print_failovers(&c.faults, &acks, PARTITIONS, nemesis_end);
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
        "acked {} (java {}, rdkafka {}), stored {}, read concurrently {} (java {}, kcat {}); \
         anomalies: {found:?}; {compared_bytes} bytes compared across replicas; nemesis {} s, \
         test {} s",
        acks.len(),
        producers[0].acked(),
        producers[1].acked(),
        stored.len(),
        reads[0].1.len() + reads[1].1.len(),
        reads[0].1.len(),
        reads[1].1.len(),
        nemesis_time.as_secs(),
        test_start.elapsed().as_secs()
    );
    if found.total() > 0 || !found.problems.is_empty() {
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
    assert_eq!(found.total(), 0, "anomalies: {:#?}", found);
    assert!(found.problems.is_empty(), "{:#?}", found.problems);
}
