//! The fault matrix (issue 24): each nemesis of `sluice_compat_tests::jepsen` alone, twice,
//! on a cluster behind TCP proxies, across replication factors (3 nodes with RF 3 and
//! min.insync.replicas 2; 5 nodes with RF 5 and min.insync.replicas 3) and acks (all with
//! idempotence; 1 without). The workload: the Java client and librdkafka producing
//! sequence-numbered records, the Java client (by assignment) and kcat reading them as they
//! come, and a group member committing offsets; the checker counts every anomaly.
//!
//! acks=all cells must show no anomaly at all. acks=1 cells may lose, duplicate and reorder
//! writes (a write acknowledged by the leader alone dies with it; retries without
//! idempotence repeat), as in Kafka; every other count must still be 0.
//!
//! CI runs a slice (`SLUICE_FAULT_MATRIX` unset); the whole matrix runs by hand and its
//! report is committed:
//!
//! ```sh
//! # SLUICE_FAULT_ONLY=<parts of "<nemesis> <nodes> <acks>", e.g. "kill all,restart 5 all">
//! SLUICE_FAULT_MATRIX=full SLUICE_FAULT_REPORT=$PWD/compat-tests/faults/REPORT.md \
//!   cargo test -p sluice-compat-tests --test fault_matrix -- --nocapture
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::time::{Duration, Instant};

use sluice_compat_tests::jepsen::{
    self, analyze, availability, print_failovers, stall, Anomalies, Clocks, Cluster, Committer,
    Consumer, History, Nemesis,
};
use sluice_compat_tests::{launcher, run_ok, topic, Node, FAST_FAILOVER};

const PARTITIONS: usize = 4;
/// Records a second, per producer.
const RATE: u32 = 200;
/// Times each nemesis is done in a cell.
const ROUNDS: usize = 2;

/// One run of the matrix.
#[derive(Debug, Clone, Copy)]
struct Cell {
    nemesis: Nemesis,
    /// Nodes, and the replication factor of the topic.
    replicas: usize,
    min_insync: usize,
    acks: &'static str,
}

/// What a cell measured.
struct Outcome {
    seconds: u64,
    acked: usize,
    stored: usize,
    read: usize,
    commits: i64,
    found: Anomalies,
    faults: usize,
    /// The longest time until a new leader showed in metadata.
    slowest_move: Option<Duration>,
    availability: f64,
    /// The longest time a partition went without an acknowledged write.
    longest_stall: Option<Duration>,
}

fn cells() -> Vec<Cell> {
    let only = std::env::var("SLUICE_FAULT_ONLY").unwrap_or_default();
    let all = match std::env::var("SLUICE_FAULT_MATRIX").as_deref() {
        Ok("full") => full_matrix(),
        // What tests/faults.rs does not do already.
        _ => vec![
            cell(Nemesis::KillAll, 3, "all"),
            cell(Nemesis::RollingRestart, 5, "all"),
            // A paused leader wakes up with a stale image (the leader lease's case).
            cell(Nemesis::PauseFollower, 3, "1"),
            // A leader whose disk is full hands its partitions over.
            cell(Nemesis::FillDisk, 3, "all"),
            // Peers learn of a silent node by their own timeouts only (the retry of a batch
            // older than the remembered ones; a deposed controller leader's verdicts).
            cell(Nemesis::BlackHoleLeader, 3, "all"),
            // Nothing that keeps data safe rests on wall time.
            cell(Nemesis::ClockJump, 3, "all"),
        ],
    };
    // SLUICE_FAULT_ONLY=<part of "<nemesis> <nodes> <acks>">[,<another part>...] narrows a
    // run down.
    all.into_iter()
        .filter(|c| {
            let name = format!("{} {} {}", c.nemesis.name(), c.replicas, c.acks);
            only.split(',').any(|part| name.contains(part))
        })
        .collect()
}

/// `nemesis` on `replicas` nodes (the replication factor) with a majority as min ISR.
fn cell(nemesis: Nemesis, replicas: usize, acks: &'static str) -> Cell {
    Cell {
        nemesis,
        replicas,
        min_insync: replicas / 2 + 1,
        acks,
    }
}

/// Every nemesis on 3 and 5 nodes, with acks=all and acks=1.
fn full_matrix() -> Vec<Cell> {
    Nemesis::ALL
        .iter()
        .flat_map(|n| {
            [(3, "all"), (5, "all"), (3, "1"), (5, "1")]
                .map(|(replicas, acks)| cell(*n, replicas, acks))
        })
        .collect()
}

fn run_cell(cell: Cell) -> Outcome {
    let start = Instant::now();
    let clocks = cell
        .nemesis
        .needs_clocks()
        .then(|| Clocks::new(cell.replicas));
    // Dropped after the cluster: the nodes stop before their file systems go.
    let (nodes, net, _disks) =
        Node::start_cluster_on_disks(cell.replicas, FAST_FAILOVER, cell.nemesis.disk_mib(), |i| {
            clocks.as_ref().map_or_else(Vec::new, |c| c.wrapper(i))
        });
    let bootstrap = net.bootstrap();
    let topic = topic("matrix");
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
            .args(["--replication-factor", &cell.replicas.to_string()])
            .args([
                "--config",
                &format!("min.insync.replicas={}", cell.min_insync),
            ]),
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
        replication_factor: cell.replicas,
        faults: Vec::new(),
        progress: consumers[0].read.clone(),
        clocks,
    };
    c.wait_in_sync("topic creation");
    let mut producers = jepsen::start_producers(&bootstrap, &topic, RATE, cell.acks);
    let group = format!("{topic}-committer");
    let mut committer = Committer::start(&bootstrap, &topic, &group);
    committer.wait_for(20, Duration::from_secs(60));

    let nemesis_start = Instant::now();
    for round in 0..ROUNDS {
        eprintln!("{} round {}", cell.nemesis.name(), round + 1);
        cell.nemesis.apply(&mut c, round % PARTITIONS);
    }
    std::thread::sleep(Duration::from_secs(2)); // writes after the last fault
    let nemesis_end = Instant::now();

    let last_commit = committer.stop();
    let acks = jepsen::stop_producers(&mut producers);
    let (stored, reads) = jepsen::collect_reads(&c, &bootstrap, consumers);
    print_failovers(&c.faults, &acks, PARTITIONS, nemesis_end);
    let read_back = c.committed(&group);
    let mut found = analyze(&History {
        acks: &acks,
        stored: &stored,
        reads: &reads,
        commits: Some((last_commit, read_back)),
    });
    let (divergent, _, differences) = c.divergence();
    found.divergent = divergent;
    found.problems.extend(differences);
    Outcome {
        seconds: start.elapsed().as_secs(),
        acked: acks.len(),
        stored: stored.len(),
        read: reads.iter().map(|(_, r)| r.len()).sum(),
        commits: last_commit,
        found,
        faults: c.faults.len(),
        slowest_move: c.faults.iter().filter_map(|f| f.moved).max(),
        availability: availability(&acks, nemesis_start, nemesis_end),
        longest_stall: (0..PARTITIONS as i32)
            .filter_map(|p| stall(&acks, p, nemesis_start, nemesis_end))
            .max(),
    }
}

/// The cell passes: no anomaly for acks=all; for acks=1 none but lost, duplicated and
/// reordered writes.
fn verdict(cell: &Cell, found: &Anomalies) -> bool {
    if cell.acks == "all" {
        found.total() == 0
    } else {
        found.safety_total() == 0
    }
}

const HEADER: &str = "| nemesis | nodes = RF | min ISR | acks | s | faults | acked | stored | \
     read | commits | lost | dup | out of order | inconsistent | non-monotonic | skipped | \
     read then lost | commit back | divergent | slowest leader move | longest write stall | \
     availability | verdict |\n\
     |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";

/// A row's first cells, which name its cell of the matrix.
fn row_head(cell: &Cell) -> String {
    format!(
        "| {} | {} | {} | {} |",
        cell.nemesis.name(),
        cell.replicas,
        cell.min_insync,
        cell.acks
    )
}

fn row(cell: &Cell, outcome: &Result<Outcome, String>) -> String {
    let head = row_head(cell);
    match outcome {
        Err(why) => format!("{head} FAILED: {} |\n", why.replace(['|', '\n'], " ")),
        Ok(o) => {
            let f = &o.found;
            format!(
                "{head} {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} \
                 | {} | {} | {:.0}% | {} |\n",
                o.seconds,
                o.faults,
                o.acked,
                o.stored,
                o.read,
                o.commits,
                f.lost,
                f.duplicated,
                f.out_of_order,
                f.inconsistent_offsets,
                f.non_monotonic,
                f.skipped,
                f.read_then_lost,
                f.commit_regressions,
                f.divergent,
                o.slowest_move
                    .map_or("-".into(), |d| format!("{} ms", d.as_millis())),
                o.longest_stall
                    .map_or("-".into(), |d| format!("{} ms", d.as_millis())),
                o.availability * 100.0,
                if verdict(cell, f) { "ok" } else { "FAIL" }
            )
        }
    }
}

/// The report's table: this run's rows, and the rows of the cells it did not run as the
/// report had them, in the matrix's order; then each run's line (this run's last).
fn merged_table(old: &str, rows: &[(String, String)], run: &str) -> String {
    let mut table = String::from(HEADER);
    for cell in full_matrix() {
        let head = row_head(&cell);
        let new = rows
            .iter()
            .find(|(h, _)| *h == head)
            .map(|(_, l)| l.clone());
        let kept = || {
            old.lines()
                .find(|l| l.starts_with(&format!("{head} ")))
                .map(|l| format!("{l}\n"))
        };
        table.push_str(&new.or_else(kept).unwrap_or_default());
    }
    let _ = writeln!(table, "\nThe runs that made this table:\n");
    let earlier = old.lines().filter(|l| l.contains(" cells in "));
    for line in earlier.chain([run]) {
        let _ = writeln!(table, "- {}", line.trim_start_matches("- "));
    }
    table
}

#[test]
fn every_nemesis_of_the_matrix_leaves_no_anomaly() {
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    for cell in cells() {
        eprintln!("=== {cell:?} ===");
        let outcome = catch_unwind(AssertUnwindSafe(|| run_cell(cell))).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        });
        let line = row(&cell, &outcome);
        eprint!("{HEADER}{line}");
        match &outcome {
            Ok(o) if verdict(&cell, &o.found) => {}
            Ok(o) => failed.push(format!("{cell:?}: {:#?}", o.found)),
            Err(why) => failed.push(format!("{cell:?}: {why}")),
        }
        if let Ok(o) = &outcome {
            for p in &o.found.problems {
                eprintln!("  {p}");
            }
        }
        rows.push((row_head(&cell), line));
    }
    let day = run_ok(
        Command::new("date").args(["-u", "+%F"]),
        Duration::from_secs(5),
        None,
    );
    let run = format!(
        "{}: {} cells in {} s.",
        day.trim(),
        rows.len(),
        started.elapsed().as_secs()
    );
    eprintln!(
        "\n{HEADER}{}\n{run}",
        rows.iter().map(|(_, l)| l.as_str()).collect::<String>()
    );
    if let Ok(path) = std::env::var("SLUICE_FAULT_REPORT") {
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        let (intro, old_table) = old.split_once("<!-- table -->\n").unwrap_or((&old, ""));
        std::fs::write(
            &path,
            format!(
                "{intro}<!-- table -->\n{}",
                merged_table(old_table, &rows, &run)
            ),
        )
        .unwrap();
    }
    assert!(failed.is_empty(), "cells with anomalies: {failed:#?}");
}
