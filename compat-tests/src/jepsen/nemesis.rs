//! The cluster under test and the faults done to it: SIGKILL and SIGSTOP of partition
//! leaders, followers, the Raft leader and every node at once; network faults through the
//! nodes' TCP proxies (a node cut off with resets or into a black hole, one-way cuts either
//! way, a bridge between two sides); rolling restarts; a full disk (each node's data dir on
//! a small tmpfs of its own); wall-clock jumps (each node run under libfaketime); the
//! controller leader removed from the Raft voters and added back; a partition's replica moved
//! off its leader and back (reassignments). Each fault
//! waits until the cluster has recovered (every replica back in the ISR) before the next.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{admin_json, http_get, poll_until, Network, Node};

/// Polls every 50 ms, so failover times are measured finely.
fn wait_until(what: &str, limit: Duration, done: impl FnMut() -> bool) -> Duration {
    poll_until(what, limit, Duration::from_millis(50), done)
}

/// One partition as a node's metadata shows it.
#[derive(Debug, Clone)]
pub struct Part {
    pub leader: i64,
    pub isr: Vec<u64>,
    pub replicas: Vec<u64>,
    pub log_end: Option<i64>,
    pub high_watermark: Option<i64>,
}

/// The partitions of `topic` as `node` sees them (empty while it cannot answer).
pub fn partitions(node: &Node, topic: &str) -> Vec<Part> {
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

/// The Raft leader's node id as `node` sees it.
pub fn raft_leader(node: &Node) -> Option<u64> {
    serde_json::from_str::<Value>(&http_get(&node.http, "/admin/status"))
        .ok()?
        .pointer("/raft/leader")?
        .as_u64()
}

/// One fault done and what was observed of it.
pub struct FaultLog {
    pub what: String,
    pub at: Instant,
    /// Time until metadata showed the new (partition or controller) leader.
    pub moved: Option<Duration>,
}

/// The faults of the matrix; each is done once per round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nemesis {
    /// SIGKILL a partition's leader, restart it once leadership moved.
    KillLeader,
    /// SIGSTOP a partition's follower past the lag and session timeouts, then SIGCONT.
    PauseFollower,
    /// SIGKILL the Raft (controller) leader, restart it once another node leads.
    KillController,
    /// Cut a partition's leader off the network (its proxies refuse everything), then heal.
    IsolateLeader,
    /// The same as a black hole: no byte moves to or from it, nothing is closed.
    BlackHoleLeader,
    /// One way: a partition's leader reaches no one, everyone still reaches it.
    LeaderCannotSend,
    /// The other way: no one reaches a partition's leader, its own connections go on.
    LeaderCannotReceive,
    /// Two sides that no longer hear each other, one node (a bridge) hearing both: the
    /// partition's leader on one side with fewer than a quorum.
    Bridge,
    /// SIGKILL every node at once, then start them all again.
    KillAll,
    /// SIGTERM and restart each node in turn.
    RollingRestart,
    /// Fill the file system of a partition's leader (a tmpfs of its own) to the last byte
    /// for 8 s, then free it.
    FillDisk,
    /// Jump a partition leader's wall clock 10 min forward, then 10 min back, 4 s each, the
    /// controller leader's the other way, then set both right.
    ClockJump,
    /// Remove the controller leader from the Raft voters (it stays a broker and a learner),
    /// then make it a voter again.
    ChangeVoters,
    /// Reassign a partition's replicas without its leader, then with it again (it copies
    /// the whole log while writes go on).
    Reassign,
}

impl Nemesis {
    pub const ALL: [Nemesis; 14] = [
        Nemesis::KillLeader,
        Nemesis::PauseFollower,
        Nemesis::KillController,
        Nemesis::IsolateLeader,
        Nemesis::BlackHoleLeader,
        Nemesis::LeaderCannotSend,
        Nemesis::LeaderCannotReceive,
        Nemesis::Bridge,
        Nemesis::KillAll,
        Nemesis::RollingRestart,
        Nemesis::FillDisk,
        Nemesis::ClockJump,
        Nemesis::ChangeVoters,
        Nemesis::Reassign,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Nemesis::KillLeader => "kill partition leader",
            Nemesis::PauseFollower => "pause follower",
            Nemesis::KillController => "kill Raft leader",
            Nemesis::IsolateLeader => "network-isolate leader",
            Nemesis::BlackHoleLeader => "black-hole leader",
            Nemesis::LeaderCannotSend => "leader cannot send",
            Nemesis::LeaderCannotReceive => "leader cannot receive",
            Nemesis::Bridge => "bridge",
            Nemesis::KillAll => "kill all nodes",
            Nemesis::RollingRestart => "rolling restart",
            Nemesis::FillDisk => "fill leader's disk",
            Nemesis::ClockJump => "clock jumps",
            Nemesis::ChangeVoters => "remove and add a voter",
            Nemesis::Reassign => "reassign leader's replica",
        }
    }

    /// Does the fault once, on partition `p` where it targets one.
    pub fn apply(self, cluster: &mut Cluster, p: usize) {
        match self {
            Nemesis::KillLeader => cluster.kill_leader(p),
            Nemesis::PauseFollower => cluster.pause_follower(p),
            Nemesis::KillController => cluster.kill_controller_leader(),
            Nemesis::IsolateLeader => cluster.isolate_leader(p, Isolation::Reset),
            Nemesis::BlackHoleLeader => cluster.isolate_leader(p, Isolation::BlackHole),
            Nemesis::LeaderCannotSend => cluster.isolate_leader(p, Isolation::Outbound),
            Nemesis::LeaderCannotReceive => cluster.deafen_leader(p),
            Nemesis::Bridge => cluster.bridge(p),
            Nemesis::KillAll => cluster.kill_all(),
            Nemesis::RollingRestart => cluster.rolling_restart(),
            Nemesis::FillDisk => cluster.fill_disk(p),
            Nemesis::ClockJump => cluster.jump_clocks(p),
            Nemesis::ChangeVoters => cluster.change_voters(),
            Nemesis::Reassign => cluster.reassign_leader_away(p),
        }
    }

    /// The size of each node's own file system, for the nemeses that need one.
    pub fn disk_mib(self) -> Option<u64> {
        (self == Nemesis::FillDisk).then_some(SmallDisk::MIB)
    }

    /// Whether the nodes must run under a clock the test sets.
    pub fn needs_clocks(self) -> bool {
        self == Nemesis::ClockJump
    }
}

/// How `Cluster::isolate_leader` cuts a node off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Every connection to and from it closed and refused.
    Reset,
    /// No byte moves to or from it; nothing closed.
    BlackHole,
    /// Its own connections refused; others still reach it.
    Outbound,
}

impl Isolation {
    fn name(self) -> &'static str {
        match self {
            Isolation::Reset => "network cut",
            Isolation::BlackHole => "black hole",
            Isolation::Outbound => "outbound cut",
        }
    }
}

/// How long each network fault lasts.
const NETWORK_FAULT: Duration = Duration::from_secs(8);

/// A tmpfs mounted at a node's data dir, unmounted when dropped.
pub struct SmallDisk {
    at: std::path::PathBuf,
}

impl SmallDisk {
    /// Room for a cell's records many times over, and for the default 100 MiB
    /// `log.dir.min.free.bytes` floor.
    pub const MIB: u64 = 384;

    /// Mounts a `mib` MiB tmpfs at `at` (created if missing). Needs root, as CI has.
    pub fn mount(at: &std::path::Path, mib: u64) -> SmallDisk {
        std::fs::create_dir_all(at).expect("mount point");
        crate::run_ok(
            std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
                .arg(at),
            Duration::from_secs(10),
            None,
        );
        SmallDisk {
            at: at.to_path_buf(),
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.at)
            .status();
        // The node's temporary dir was removed around the mount point: what is left is empty.
        let _ = std::fs::remove_dir(&self.at);
        if let Some(parent) = self.at.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// Each node's wall clock, offset through libfaketime (Debian's `faketime`, installed by
/// `compat-tests/setup.sh`), which the node runs under: its realtime clock adds the offset in
/// the node's file, read again every second. Its monotonic clock, which timeouts, sessions
/// and leases use, is left alone.
pub struct Clocks {
    dir: tempfile::TempDir,
}

impl Clocks {
    const LIBRARY: &'static str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

    /// Clocks for `nodes` nodes, all right.
    pub fn new(nodes: usize) -> Clocks {
        assert!(
            std::path::Path::new(Self::LIBRARY).exists(),
            "{} missing: run compat-tests/setup.sh (it installs faketime)",
            Self::LIBRARY
        );
        let clocks = Clocks {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        for i in 0..nodes {
            clocks.set(i, 0);
        }
        clocks
    }

    fn file(&self, i: usize) -> std::path::PathBuf {
        self.dir.path().join(format!("node-{i}"))
    }

    /// The command node `i` runs under.
    pub fn wrapper(&self, i: usize) -> Vec<String> {
        vec![
            "env".into(),
            format!("LD_PRELOAD={}", Self::LIBRARY),
            format!("FAKETIME_TIMESTAMP_FILE={}", self.file(i).display()),
            "FAKETIME_CACHE_DURATION=1".into(),
            "FAKETIME_DONT_FAKE_MONOTONIC=1".into(),
        ]
    }

    /// Node `i`'s clock reads `offset_s` seconds off the real time from the next second on.
    pub fn set(&self, i: usize, offset_s: i64) {
        std::fs::write(self.file(i), format!("{offset_s:+}\n")).expect("clock file");
    }
}

/// How far node `node`'s wall clock is off this process's, in seconds, from the
/// `wall_clock_ms` of its `/admin/status`. (Not its HTTP `Date` header: hyper caches that
/// until the clock passes the next second it expected, so it stands still after a jump back.)
fn clock_offset(node: &Node) -> Option<f64> {
    let status: Value = serde_json::from_str(&http_get(&node.http, "/admin/status")).ok()?;
    let theirs = status["wall_clock_ms"].as_i64()?;
    let ours = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis() as i64;
    Some((theirs - ours) as f64 / 1000.0)
}

/// `sluice admin --json <args>` against `node` (its own listeners, not the proxies);
/// panics unless it succeeds.
fn admin(node: &Node, args: &[&str]) {
    crate::run_ok(
        crate::admin_command(node).args(args),
        Duration::from_secs(60),
        None,
    );
}

/// Allocates what is free under `data` as its `pieces`-th ballast file.
fn take_free_space(data: &std::path::Path, pieces: &mut usize) {
    let _ = std::process::Command::new("fallocate")
        .args(["-l", &free_bytes(data).to_string()])
        .arg(data.join(format!("ballast-{pieces}")))
        .status();
    *pieces += 1;
}

/// Bytes free on the file system holding `path`.
fn free_bytes(path: &std::path::Path) -> u64 {
    let out = crate::run_ok(
        std::process::Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(path),
        Duration::from_secs(10),
        None,
    );
    out.lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0)
}

/// The cluster under test: its nodes behind proxies, the topic of the workload, and the
/// faults done so far.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub net: Network,
    pub topic: String,
    pub partitions: usize,
    pub replication_factor: usize,
    pub faults: Vec<FaultLog>,
    /// Records read so far by the consumer named in the progress lines.
    pub progress: std::sync::Arc<std::sync::Mutex<Vec<crate::jepsen::Read>>>,
    /// The nodes' wall clocks, when they run under ones the test sets.
    pub clocks: Option<Clocks>,
}

impl Cluster {
    /// A node that is up and reachable, other than those in `not`.
    pub fn view(&self, not: &[usize]) -> &Node {
        (0..self.nodes.len())
            .find(|i| !not.contains(i))
            .map(|i| &self.nodes[i])
            .unwrap()
    }

    /// Every partition has a leader and a full ISR, as `node` sees it.
    pub fn in_sync(&self, node: &Node) -> bool {
        let p = partitions(node, &self.topic);
        p.len() == self.partitions
            && p.iter()
                .all(|x| x.leader > 0 && x.isr.len() == self.replication_factor)
    }

    pub fn leader_of(&self, p: usize, not: &[usize]) -> usize {
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
    pub fn wait_in_sync(&self, why: &str) {
        let t = wait_until(
            &format!("every replica back in the ISR ({why})"),
            Duration::from_secs(60),
            || self.nodes.iter().all(|n| self.in_sync(n)),
        );
        eprintln!("  all ISRs full again {} ms after {why}", t.as_millis());
    }

    /// Waits until a node other than `old` leads partition `p` (as `view` sees it).
    pub fn wait_new_leader(&self, p: usize, old: usize, not: &[usize]) -> Duration {
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
    pub fn also_controller(&self, i: usize) -> &'static str {
        if raft_leader(&self.nodes[i]) == Some(i as u64 + 1) {
            " (also the controller leader)"
        } else {
            ""
        }
    }

    pub fn log(&mut self, what: String, at: Instant, moved: Option<Duration>) {
        // UTC time of day, to find the fault in the nodes' logs.
        let utc = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_sub(at.elapsed());
        let (s, ms) = (utc.as_secs() % 86_400, utc.subsec_millis());
        eprintln!(
            "  {:02}:{:02}:{:02}.{ms:03} {what}: new leader in metadata after {} (consumer has \
             read {})",
            s / 3600,
            s / 60 % 60,
            s % 60,
            moved.map_or("-".into(), |d| format!("{} ms", d.as_millis())),
            self.progress.lock().unwrap().len()
        );
        self.faults.push(FaultLog { what, at, moved });
    }

    /// SIGKILL the leader of partition `p`, restart it once leadership moved.
    pub fn kill_leader(&mut self, p: usize) {
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

    /// Two failovers in quick succession on partition `p`: kill its leader A; once a new
    /// leader B leads, restart A; the moment A is back in p's ISR, kill B.
    pub fn double_failover(&mut self, p: usize) {
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

    /// SIGSTOP a follower of partition `p` past the session and lag timeouts (6 s).
    pub fn pause_follower(&mut self, p: usize) {
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

    /// SIGKILL the controller (Raft) leader, restart it once another node leads.
    pub fn kill_controller_leader(&mut self) {
        let r = self.controller_leader();
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

    /// Cut the leader of partition `p` off the network (`how`) for 8 s, then heal. It can no
    /// longer heartbeat, so the controller fences it and leadership moves.
    pub fn isolate_leader(&mut self, p: usize, how: Isolation) {
        let x = self.leader_of(p, &[]);
        let also = self.also_controller(x);
        let pid = self.nodes[x].pid();
        let at = Instant::now();
        match how {
            Isolation::Reset => self.net.isolate(x, pid),
            Isolation::BlackHole => self.net.black_hole(x, pid),
            Isolation::Outbound => self.net.cut_outbound(x, pid),
        }
        let moved = self.wait_new_leader(p, x, &[x]);
        // The cut is real: the controller no longer hears the node.
        assert!(self.is_fenced(x), "node {} is fenced", x + 1);
        self.log(
            format!(
                "{} of node {} (leader of p{p}){also} for 8 s",
                how.name(),
                x + 1
            ),
            at,
            Some(moved),
        );
        std::thread::sleep(NETWORK_FAULT.saturating_sub(at.elapsed()));
        self.net.heal();
        self.wait_in_sync("the heal");
    }

    /// Jumps the wall clock of partition `p`'s leader 10 min forward for 4 s, then 10 min
    /// behind for 4 s, then sets it right; the controller leader's (when another node) jumps
    /// the other way meanwhile. Wall time stamps records and ages logs and transactions;
    /// no lease, session or election may rest on it, so leadership should not move.
    pub fn jump_clocks(&mut self, p: usize) {
        const JUMP_S: i64 = 600;
        let x = self.leader_of(p, &[]);
        let r = raft_leader(&self.nodes[x]).map_or(x, |id| id as usize - 1);
        let clocks = self.clocks.as_ref().expect("nodes run under faketime");
        let at = Instant::now();
        for offset in [JUMP_S, -JUMP_S] {
            let since = Instant::now();
            clocks.set(x, offset);
            if r != x {
                clocks.set(r, -offset);
            }
            // The jump is real: the node's own clock shows it.
            wait_until(
                &format!("node {}'s clock {offset:+} s off", x + 1),
                Duration::from_secs(5),
                || clock_offset(&self.nodes[x]).is_some_and(|o| (o - offset as f64).abs() < 2.0),
            );
            std::thread::sleep((NETWORK_FAULT / 2).saturating_sub(since.elapsed()));
        }
        clocks.set(x, 0);
        clocks.set(r, 0);
        let moved = partitions(self.view(&[]), &self.topic)
            .get(p)
            .is_some_and(|s| s.leader as usize != x + 1);
        let other = if r != x {
            format!(", node {}'s (controller leader) the other way", r + 1)
        } else {
            " (also the controller leader)".into()
        };
        self.log(
            format!(
                "node {}'s clock (leader of p{p}) +{JUMP_S} s then -{JUMP_S} s{other}, 4 s \
                 each (leadership {})",
                x + 1,
                if moved { "moved" } else { "stayed" }
            ),
            at,
            None,
        );
        self.wait_in_sync("the clocks set right");
    }

    /// The controller leader's index, once there is one.
    fn controller_leader(&self) -> usize {
        let mut r = 0;
        wait_until("a Raft leader", Duration::from_secs(20), || {
            r = raft_leader(&self.nodes[0]).unwrap_or(0) as usize;
            r > 0
        });
        r - 1
    }

    /// Removes the controller leader from the Raft voters (it stays a broker, as a learner
    /// of the quorum), waits for another to lead, then makes it a voter again: two
    /// membership changes and an election while brokers heartbeat and ISRs change.
    pub fn change_voters(&mut self) {
        let r = self.controller_leader();
        let n = self.nodes.len();
        let at = Instant::now();
        admin(self.view(&[]), &["voters", "remove", &(r + 1).to_string()]);
        let other = self.view(&[r]);
        let moved = wait_until("another controller leader", Duration::from_secs(30), || {
            raft_leader(other).is_some_and(|l| l as usize != r + 1)
        });
        wait_until(
            &format!("{} voters on every node", n - 1),
            Duration::from_secs(30),
            || self.voters_everywhere(n - 1),
        );
        self.log(
            format!("node {} (controller leader) removed from the voters", r + 1),
            at,
            Some(moved),
        );
        std::thread::sleep(Duration::from_secs(2));
        admin(self.view(&[]), &["voters", "add", &(r + 1).to_string()]);
        wait_until(
            &format!("{n} voters on every node"),
            Duration::from_secs(30),
            || self.voters_everywhere(n),
        );
        self.wait_in_sync("the voter's return");
    }

    /// Reassigns partition `p` to its replicas without its leader (leadership moves, the
    /// replica is deleted), then back with it (it copies the whole log while the producers
    /// go on and rejoins the ISR).
    pub fn reassign_leader_away(&mut self, p: usize) {
        let x = self.leader_of(p, &[]);
        let replicas = partitions(self.view(&[]), &self.topic)[p].replicas.clone();
        let without: Vec<u64> = replicas
            .iter()
            .copied()
            .filter(|r| *r != x as u64 + 1)
            .collect();
        let mut back = without.clone();
        back.push(x as u64 + 1);
        let at = Instant::now();
        self.reassign(p, &without);
        let moved = self.wait_new_leader(p, x, &[]);
        wait_until(
            &format!("p{p} on replicas {without:?}"),
            Duration::from_secs(30),
            || self.replicas_are(p, &without),
        );
        self.log(
            format!(
                "p{p} reassigned from {replicas:?} to {without:?} (off its leader, node {})",
                x + 1
            ),
            at,
            Some(moved),
        );
        std::thread::sleep(Duration::from_secs(2));
        let since = Instant::now();
        self.reassign(p, &back);
        wait_until(
            &format!("p{p} on replicas {back:?}"),
            Duration::from_secs(60),
            || self.replicas_are(p, &back),
        );
        eprintln!(
            "  p{p} back on {back:?} (node {} copied its log) after {} ms",
            x + 1,
            since.elapsed().as_millis()
        );
        self.wait_in_sync("the replica's return");
    }

    /// Every node's quorum has `count` voters.
    fn voters_everywhere(&self, count: usize) -> bool {
        self.nodes.iter().all(|node| {
            node.admin_status()["raft"]["voters"]
                .as_object()
                .is_some_and(|v| v.len() == count)
        })
    }

    /// Starts moving partition `p` to replicas `to` (`sluice admin reassign`, which sends
    /// AlterPartitionReassignments).
    fn reassign(&self, p: usize, to: &[u64]) {
        let to: Vec<String> = to.iter().map(u64::to_string).collect();
        let (partition, replicas) = (p.to_string(), to.join(","));
        admin(
            self.view(&[]),
            &[
                "reassign",
                "start",
                &self.topic,
                "--partition",
                &partition,
                "--replicas",
                &replicas,
            ],
        );
    }

    /// Every node's metadata shows partition `p` on exactly replicas `to`, with a leader.
    fn replicas_are(&self, p: usize, to: &[u64]) -> bool {
        self.nodes.iter().all(|n| {
            partitions(n, &self.topic)
                .get(p)
                .is_some_and(|s| s.replicas == to && s.leader > 0)
        })
    }

    /// No one reaches the leader of partition `p` for 8 s while its own connections go on:
    /// its heartbeats still reach the controller, so it is not fenced (as in Kafka), but its
    /// followers cannot fetch and producers cannot reach it. What matters is what it
    /// acknowledges meanwhile and that it catches up after.
    pub fn deafen_leader(&mut self, p: usize) {
        let x = self.leader_of(p, &[]);
        let also = self.also_controller(x);
        let at = Instant::now();
        self.net.cut_inbound(x);
        self.log(
            format!(
                "inbound cut of node {} (leader of p{p}){also} for 8 s",
                x + 1
            ),
            at,
            None,
        );
        std::thread::sleep(NETWORK_FAULT.saturating_sub(at.elapsed()));
        let seen = partitions(self.view(&[x]), &self.topic).get(p).cloned();
        eprintln!(
            "  after 8 s p{p} has leader {:?} and ISR {:?} (node {} is {})",
            seen.as_ref().map(|s| s.leader),
            seen.as_ref().map(|s| s.isr.clone()),
            x + 1,
            if self.is_fenced(x) {
                "fenced"
            } else {
                "not fenced"
            }
        );
        self.net.heal();
        self.wait_in_sync("the heal");
    }

    /// For 8 s the nodes split in two sides that cannot hear each other, joined by one node
    /// that hears both: the leader of partition `p` on a side with fewer than a quorum
    /// (itself on 3 nodes, itself and one more on 5), the bridge, then the rest. Clients
    /// still reach every node.
    pub fn bridge(&mut self, p: usize) {
        let x = self.leader_of(p, &[]);
        let others: Vec<usize> = (0..self.nodes.len()).filter(|i| *i != x).collect();
        let half = (self.nodes.len() - 1) / 2;
        let side = |ids: &[usize]| -> Vec<(usize, i32)> {
            ids.iter().map(|i| (*i, self.nodes[*i].pid())).collect()
        };
        let mut a = vec![x];
        a.extend(&others[..half - 1]);
        let bridge = others[half - 1];
        let b = &others[half..];
        let at = Instant::now();
        self.net.cut_between(&side(&a), &side(b));
        let show = |ids: &[usize]| ids.iter().map(|i| i + 1).collect::<Vec<_>>();
        // The cut is real: p's followers on the far side leave its ISR.
        let far: Vec<u64> = b.iter().map(|i| *i as u64 + 1).collect();
        let shrunk = wait_until(
            "p's far-side followers out of its ISR",
            Duration::from_secs(30),
            || {
                partitions(&self.nodes[bridge], &self.topic)
                    .get(p)
                    .is_some_and(|x| !x.isr.iter().any(|r| far.contains(r)))
            },
        );
        eprintln!(
            "  p{p}'s ISR lost the far side after {} ms",
            shrunk.as_millis()
        );
        self.log(
            format!(
                "bridge: nodes {:?} (leader of p{p}) | node {} | nodes {:?} for 8 s",
                show(&a),
                bridge + 1,
                show(b)
            ),
            at,
            None,
        );
        std::thread::sleep(NETWORK_FAULT.saturating_sub(at.elapsed()));
        self.net.heal();
        self.wait_in_sync("the heal");
    }

    /// Node index `i` is fenced, as the other nodes' controller sees it.
    fn is_fenced(&self, i: usize) -> bool {
        let brokers: Value =
            serde_json::from_str(&http_get(&self.view(&[i]).http, "/admin/brokers"))
                .unwrap_or(Value::Null);
        brokers
            .as_array()
            .into_iter()
            .flatten()
            .any(|b| b["id"] == i as u64 + 1 && b["fenced"] == true)
    }

    /// Fill the file system of the leader of partition `p` to the last byte for 8 s (its
    /// leadership must move meanwhile: producing is refused there), then free it. A node
    /// that stopped meanwhile (as Kafka's broker halts when its only log dir fails) is
    /// started again, as its operator would once the disk has room.
    pub fn fill_disk(&mut self, p: usize) {
        let x = self.leader_of(p, &[]);
        let also = self.also_controller(x);
        let data = self.nodes[x].data_dir();
        let at = Instant::now();
        // Whatever is free, then whatever the node freed or left meanwhile, until nothing is.
        let mut pieces = 0;
        while free_bytes(&data) > 0 && pieces < 100 {
            take_free_space(&data, &mut pieces);
        }
        // Below its free-space floor the node hands its leadership to replicas with room.
        let moved = self.wait_new_leader(p, x, &[]);
        self.log(
            format!("disk of node {} (leader of p{p}){also} full for 8 s", x + 1),
            at,
            Some(moved),
        );
        while at.elapsed() < Duration::from_secs(8) {
            std::thread::sleep(Duration::from_millis(200));
            // What the node frees (deleted files) is taken at once.
            if free_bytes(&data) > 0 {
                take_free_space(&data, &mut pieces);
            }
        }
        for i in 0..pieces {
            let _ = std::fs::remove_file(data.join(format!("ballast-{i}")));
        }
        if !self.nodes[x].is_running() {
            eprintln!(
                "  node {} stopped on its full disk: starting it again",
                x + 1
            );
            self.nodes[x].restart();
        }
        self.wait_in_sync("the disk was freed");
    }

    /// SIGKILL every node at once; start them all again after a second.
    pub fn kill_all(&mut self) {
        let at = Instant::now();
        for n in &mut self.nodes {
            n.kill9();
        }
        std::thread::sleep(Duration::from_secs(1));
        // All at once: none is ready before a quorum of voters runs.
        for n in &mut self.nodes {
            n.spawn();
        }
        for n in &mut self.nodes {
            n.await_ready();
        }
        let back = wait_until(
            "a partition leader after the restart of all",
            Duration::from_secs(60),
            || {
                partitions(self.view(&[]), &self.topic)
                    .iter()
                    .all(|x| x.leader > 0)
            },
        );
        self.log(
            format!("SIGKILL all {} nodes", self.nodes.len()),
            at,
            Some(back),
        );
        self.wait_in_sync("the restart of all");
    }

    /// SIGTERM each node in turn, restarting it and waiting for full ISRs before the next.
    pub fn rolling_restart(&mut self) {
        for i in 0..self.nodes.len() {
            let at = Instant::now();
            let status = self.nodes[i].terminate();
            assert!(status.success(), "node {} stopped with {status}", i + 1);
            self.nodes[i].restart();
            self.log(format!("SIGTERM and restart of node {}", i + 1), at, None);
            self.wait_in_sync("the rolling restart");
        }
    }

    /// Waits until every replica of every partition has the same log end.
    pub fn wait_converged(&self) {
        wait_until("replicas converge", Duration::from_secs(60), || {
            let views: Vec<Vec<Part>> = self
                .nodes
                .iter()
                .map(|n| partitions(n, &self.topic))
                .collect();
            self.in_sync(&self.nodes[0])
                && (0..self.partitions).all(|p| {
                    // Nodes without a replica of `p` show no log end for it.
                    let ends: Vec<i64> = views
                        .iter()
                        .filter_map(|v| v.get(p).and_then(|x| x.log_end))
                        .collect();
                    ends.len() >= self.replication_factor && ends.iter().all(|e| *e == ends[0])
                })
        });
    }

    /// Compares every in-sync replica byte for byte up to the smallest high watermark
    /// (GET /admin/digest): (divergent partitions, bytes compared, what differed).
    pub fn divergence(&self) -> (usize, u64, Vec<String>) {
        let mut divergent = 0usize;
        let mut compared = 0u64;
        let mut problems = Vec::new();
        let parts = partitions(&self.nodes[0], &self.topic);
        for (p, part) in parts.iter().enumerate() {
            let node = |id: u64| &self.nodes[id as usize - 1];
            let hws: Vec<i64> = part
                .isr
                .iter()
                .map(|id| {
                    partitions(node(*id), &self.topic)[p]
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
                        &node(*id).http,
                        &format!(
                            "/admin/digest?topic={}&partition={p}&upto={upto}",
                            self.topic
                        ),
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
            compared += first.2.unwrap_or(0);
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
        (divergent, compared, problems)
    }

    /// The offset `group` has committed for partition 0 (-1 if none can be read).
    pub fn committed(&self, group: &str) -> i64 {
        let mut read = -1;
        wait_until(
            "the group's committed offset",
            Duration::from_secs(30),
            || {
                let v = admin_json(self.view(&[]), &["groups", "describe", group]);
                read = v["partitions"][0]["committed"].as_i64().unwrap_or(-1);
                read >= 0
            },
        );
        read
    }
}
