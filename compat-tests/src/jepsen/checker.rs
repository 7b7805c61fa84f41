//! The analysis of a run's history (after Jepsen's Kafka workload): what the producers had
//! acknowledged, what the consumers read while the faults went on, what the log holds at the
//! end, and the group's commits. Each anomaly is counted; the first few of each kind are
//! described.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use crate::jepsen::{Ack, Read};

/// Everything a run observed.
pub struct History<'a> {
    /// Every acknowledged record, all producers.
    pub acks: &'a [Ack],
    /// The log at the end, read after the replicas converged: (partition, offset) -> value.
    pub stored: &'a BTreeMap<(i32, i64), String>,
    /// Each concurrent consumer's reads, in the order it read them.
    pub reads: &'a [(&'static str, Vec<Read>)],
    /// (last acknowledged commit, committed offset read back at the end), if a group
    /// committed during the run.
    pub commits: Option<(i64, i64)>,
}

/// Anomaly counts (0 is the only right answer for acks=all writes).
#[derive(Debug, Default, Clone)]
pub struct Anomalies {
    /// Acknowledged, then not in the log at its acknowledged offset.
    pub lost: usize,
    /// A value twice in one partition.
    pub duplicated: usize,
    /// One producer's records in a partition not in send order.
    pub out_of_order: usize,
    /// One (partition, offset) read with two different values.
    pub inconsistent_offsets: usize,
    /// A consumer read an offset at or below one it had read before in that partition.
    pub non_monotonic: usize,
    /// A consumer jumped over offsets the log holds.
    pub skipped: usize,
    /// Read while the faults went on, and no longer in the log at that offset: a read past
    /// the high watermark that a failover then cut off.
    pub read_then_lost: usize,
    /// The group's committed offset read back below the last acknowledged commit.
    pub commit_regressions: usize,
    /// In-sync replicas that differ below the high watermark.
    pub divergent: usize,
    /// The first few of each kind, described.
    pub problems: Vec<String>,
}

impl Anomalies {
    /// Every count but `lost`, `duplicated` and `out_of_order`, which acks=1 writes may
    /// show as Kafka does (an acknowledged write is only on the leader; retries repeat).
    pub fn safety_total(&self) -> usize {
        self.inconsistent_offsets
            + self.non_monotonic
            + self.skipped
            + self.read_then_lost
            + self.commit_regressions
            + self.divergent
    }

    /// Every count.
    pub fn total(&self) -> usize {
        self.lost + self.duplicated + self.out_of_order + self.safety_total()
    }

    fn note(&mut self, count: usize, what: String) {
        if count <= 5 {
            self.problems.push(what);
        }
    }
}

/// The producer (a letter) and sequence number of a value.
pub fn seq(value: &str) -> Option<(char, u64)> {
    let mut c = value.chars();
    let p = c.next()?;
    Some((p, c.as_str().parse().ok()?))
}

/// Analyses a history; divergence is the cluster's to measure (see `Cluster::divergence`).
pub fn analyze(h: &History) -> Anomalies {
    let mut a = Anomalies::default();
    // An ack without an offset (-1: DUPLICATE_SEQUENCE_NUMBER, a retry of a batch appended
    // so long ago that the broker forgot its offsets) holds if the value is in its partition.
    let stored_values: std::collections::HashSet<(i32, &str)> = h
        .stored
        .iter()
        .map(|((p, _), v)| (*p, v.as_str()))
        .collect();
    for ack in h.acks {
        let held = if ack.offset < 0 {
            stored_values.contains(&(ack.partition, ack.value.as_str()))
        } else {
            h.stored.get(&(ack.partition, ack.offset)) == Some(&ack.value)
        };
        if !held {
            a.lost += 1;
            a.note(
                a.lost,
                format!(
                    "LOST {} acked at p{}@{}, stored there: {:?}",
                    ack.value,
                    ack.partition,
                    ack.offset,
                    h.stored.get(&(ack.partition, ack.offset))
                ),
            );
        }
    }

    let mut seen: HashMap<(i32, &str), i64> = HashMap::new();
    let mut last_seq: HashMap<(i32, char), (u64, i64)> = HashMap::new();
    for ((p, o), v) in h.stored {
        if let Some(first) = seen.insert((*p, v.as_str()), *o) {
            a.duplicated += 1;
            a.note(
                a.duplicated,
                format!("DUPLICATE {v} in p{p} at {first} and {o}"),
            );
        }
        match seq(v) {
            Some((producer, s)) => {
                if let Some((prev, prev_o)) = last_seq.insert((*p, producer), (s, *o)) {
                    if s <= prev {
                        a.out_of_order += 1;
                        a.note(
                            a.out_of_order,
                            format!(
                                "OUT OF ORDER in p{p}: {v} at {o} after {producer}{prev} at {prev_o}"
                            ),
                        );
                    }
                }
            }
            None => a.problems.push(format!("UNKNOWN value {v:?} at p{p}@{o}")),
        }
    }

    let mut values: HashMap<(i32, i64), &str> = HashMap::new();
    for (name, read) in h.reads {
        let mut last: HashMap<i32, i64> = HashMap::new();
        for (p, o, v) in read {
            if let Some(other) = values.insert((*p, *o), v) {
                if other != v {
                    a.inconsistent_offsets += 1;
                    a.note(
                        a.inconsistent_offsets,
                        format!("INCONSISTENT p{p}@{o}: read as {other} and as {v} ({name})"),
                    );
                }
            }
            if h.stored.get(&(*p, *o)) != Some(v) {
                a.read_then_lost += 1;
                a.note(
                    a.read_then_lost,
                    format!(
                        "READ by {name} {v} at p{p}@{o} during the faults, now there: {:?}",
                        h.stored.get(&(*p, *o))
                    ),
                );
            }
            match last.insert(*p, *o) {
                Some(prev) if *o <= prev => {
                    a.non_monotonic += 1;
                    a.note(
                        a.non_monotonic,
                        format!("NON-MONOTONIC {name} read p{p}@{o} after p{p}@{prev}"),
                    );
                }
                Some(prev) => {
                    let between = h.stored.range((*p, prev + 1)..(*p, *o)).count();
                    if between > 0 {
                        a.skipped += 1;
                        a.note(
                            a.skipped,
                            format!(
                                "SKIP {name} read p{p}@{o} after p{p}@{prev}, over {between} \
                                 stored records"
                            ),
                        );
                    }
                }
                None => {}
            }
        }
    }

    if let Some((last_ack, read_back)) = h.commits {
        // The commit in flight when the committer was killed may have been stored too.
        if read_back < last_ack {
            a.commit_regressions += 1;
            a.problems.push(format!(
                "COMMIT went back: last acknowledged {last_ack}, read back {read_back}"
            ));
        }
    }
    a
}

/// The share of the seconds from `start` to `end` in which at least one write was
/// acknowledged (1.0: writes never stopped for a whole second).
pub fn availability(acks: &[Ack], start: Instant, end: Instant) -> f64 {
    let seconds = (end - start).as_secs().max(1) as usize;
    let mut busy = vec![false; seconds];
    for a in acks {
        if a.at >= start && a.at < end {
            let s = (a.at - start).as_secs() as usize;
            if let Some(b) = busy.get_mut(s) {
                *b = true;
            }
        }
    }
    busy.iter().filter(|b| **b).count() as f64 / seconds as f64
}

/// Longest gap between consecutive acks of partition `p` received from `at` until `end`
/// (counting from the last ack before `at`): how long writes to `p` stalled.
pub fn stall(acks: &[Ack], p: i32, at: Instant, end: Instant) -> Option<std::time::Duration> {
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

/// Prints each fault with how long its leader took to move and, per partition, the longest
/// gap between acknowledged writes from the fault until the next one (or `end`).
pub fn print_failovers(
    faults: &[crate::jepsen::FaultLog],
    acks: &[Ack],
    partitions: usize,
    end: Instant,
) {
    eprintln!("\n=== failovers ===");
    for (i, f) in faults.iter().enumerate() {
        let until = faults.get(i + 1).map_or(end, |next| next.at);
        let stalls: Vec<String> = (0..partitions as i32)
            .map(|p| {
                stall(acks, p, f.at, until)
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(p: i32, o: i64, v: &str) -> Ack {
        Ack {
            at: Instant::now(),
            partition: p,
            offset: o,
            value: v.into(),
        }
    }

    #[test]
    fn every_anomaly_is_counted() {
        let stored: BTreeMap<(i32, i64), String> = [
            ((0, 0), "j0"),
            ((0, 1), "j2"),
            ((0, 2), "j1"), // out of order
            ((0, 3), "j2"), // duplicate
            ((0, 4), "r0"),
            ((0, 5), "r1"),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect();
        // j3 lost; r1 acknowledged without an offset and stored; j7 likewise, not stored.
        let acks = [
            ack(0, 0, "j0"),
            ack(0, 6, "j3"),
            ack(0, -1, "r1"),
            ack(0, -1, "j7"),
        ];
        let reads = [
            (
                "a",
                vec![
                    (0, 0, "j0".to_string()),
                    (0, 0, "j0".to_string()), // non-monotonic
                    (0, 3, "j2".to_string()), // skips 1 and 2
                    (0, 6, "j3".to_string()), // skips 4 and 5; read, then lost
                ],
            ),
            ("b", vec![(0, 4, "x".to_string())]), // inconsistent with the log
        ];
        let a = analyze(&History {
            acks: &acks,
            stored: &stored,
            reads: &reads,
            commits: Some((10, 9)),
        });
        assert_eq!(
            (a.lost, a.duplicated, a.out_of_order),
            (2, 1, 1),
            "{:?}",
            a.problems
        );
        assert_eq!(
            (
                a.non_monotonic,
                a.skipped,
                a.read_then_lost,
                a.commit_regressions
            ),
            (1, 2, 2, 1),
            "{:?}",
            a.problems
        );
        let inconsistent = [("c", vec![(0, 0, "j9".to_string())])];
        let both: Vec<_> = reads.iter().cloned().chain(inconsistent).collect();
        let a = analyze(&History {
            acks: &[],
            stored: &stored,
            reads: &both,
            commits: None,
        });
        assert_eq!(a.inconsistent_offsets, 1, "{:?}", a.problems);
    }
}
