//! Clusters of nodes: voters and learners on loopback, or every node behind TCP proxies for
//! network faults; the `serve` flags fault tests fail over with.

use std::time::{Duration, Instant};

use crate::node::{reserve_port, Node};
use crate::proxy;

/// How long voters behind cut proxies get to try their peers (normally a matter of seconds).
const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(30);

impl Node {
    /// Starts a cluster: `voters` controller+broker nodes (ids 1..) forming the Raft quorum
    /// and `learners` broker-only nodes that join it as learners, all on loopback, each
    /// with `extra` flags. Controller ports are fixed up front so restarts reuse them.
    pub fn start_cluster(voters: usize, learners: usize, extra: &[&str]) -> Vec<Node> {
        Self::start_cluster_each(voters, learners, extra, |_| Vec::new())
    }

    /// Like [`Node::start_cluster`], with `each(i)`'s flags added to node `i` (0-based), such
    /// as a rack per node.
    pub fn start_cluster_each(
        voters: usize,
        learners: usize,
        extra: &[&str],
        each: impl Fn(usize) -> Vec<String>,
    ) -> Vec<Node> {
        let free_port = || format!("127.0.0.1:{}", reserve_port());
        let addrs: Vec<String> = (0..voters + learners).map(|_| free_port()).collect();
        let spec = (0..voters)
            .map(|i| format!("{}@{}", i + 1, addrs[i]))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes: Vec<Node> = (0..voters + learners)
            .map(|i| {
                let mut flags: Vec<String> = vec!["--voters".into(), spec.clone()];
                if i >= voters {
                    flags.extend(["--roles".to_string(), "broker".to_string()]);
                }
                flags.extend(extra.iter().map(|s| s.to_string()));
                flags.extend(each(i));
                Node {
                    child: None,
                    kafka: "127.0.0.1:0".into(),
                    listeners: Default::default(),
                    http: "127.0.0.1:0".into(),
                    dir: tempfile::tempdir().expect("tempdir"),
                    extra: flags,
                    node_id: i as u64 + 1,
                    controller: addrs[i].clone(),
                    ready: None,
                    wrapper: Vec::new(),
                }
            })
            .collect();
        // Voters only become ready together (they need a quorum): start all, then wait.
        for n in nodes.iter_mut() {
            n.spawn();
        }
        for n in nodes.iter_mut() {
            n.await_ready();
        }
        nodes
    }

    /// Like [`Node::start_cluster`] with `voters` voters, but every node's Kafka listener and
    /// controller (Raft) listener sit behind a [`proxy::Proxy`]: the node advertises its Kafka
    /// proxy in metadata (so clients and followers fetching from it go through it), and each
    /// node's `--voters` names the other voters by their controller proxies (a voter binds
    /// its own entry, so that one stays its real address) and so Raft traffic and broker
    /// heartbeats go through them too. [`Network::isolate`] then cuts one node off; bootstrap
    /// clients with [`Network::bootstrap`]. Ports are fixed up front, so restarts reuse them.
    pub fn start_cluster_behind_proxies(voters: usize, extra: &[&str]) -> (Vec<Node>, Network) {
        let (nodes, net, _) = Self::start_cluster_on_disks(voters, extra, None, |_| Vec::new());
        (nodes, net)
    }

    /// [`Node::start_cluster_behind_proxies`], each node's data dir on a tmpfs of its own of
    /// `disk_mib` MiB if given (unmounted when the returned disks are dropped, after the
    /// nodes), node `i` run under `wrapper(i)` (e.g. a preloaded library's `env`).
    pub fn start_cluster_on_disks(
        voters: usize,
        extra: &[&str],
        disk_mib: Option<u64>,
        wrapper: impl Fn(usize) -> Vec<String>,
    ) -> (Vec<Node>, Network, Vec<crate::jepsen::SmallDisk>) {
        let free_port = || format!("127.0.0.1:{}", reserve_port());
        let kafka: Vec<String> = (0..voters).map(|_| free_port()).collect();
        let controller: Vec<String> = (0..voters).map(|_| free_port()).collect();
        let net = Network {
            kafka: kafka.iter().map(|a| proxy::Proxy::start(a)).collect(),
            controller: controller.iter().map(|a| proxy::Proxy::start(a)).collect(),
        };
        let mut nodes: Vec<Node> = (0..voters)
            .map(|i| {
                let spec = (0..voters)
                    .map(|j| {
                        let addr = if j == i {
                            &controller[j]
                        } else {
                            &net.controller[j].addr
                        };
                        format!("{}@{addr}", j + 1)
                    })
                    .collect::<Vec<_>>()
                    .join(",");
                let mut flags: Vec<String> = vec![
                    "--voters".into(),
                    spec,
                    "--advertised-addr".into(),
                    net.kafka[i].addr.clone(),
                ];
                flags.extend(extra.iter().map(|s| s.to_string()));
                Node {
                    child: None,
                    kafka: kafka[i].clone(),
                    listeners: Default::default(),
                    http: "127.0.0.1:0".into(),
                    dir: tempfile::tempdir().expect("tempdir"),
                    extra: flags,
                    node_id: i as u64 + 1,
                    controller: controller[i].clone(),
                    ready: None,
                    wrapper: wrapper(i),
                }
            })
            .collect();
        // Each voter must initialize the Raft membership from its own list (had it taken the
        // membership from another voter, it would dial that one at its real address, past
        // the proxy). A voter that hears a vote request first adopts the sender's: so keep
        // the controller proxies cut until every voter has initialized, which shows as its
        // first (refused) attempt to reach a peer.
        for p in &net.controller {
            p.cut();
        }
        let disks = nodes
            .iter()
            .filter_map(|n| Some(crate::jepsen::SmallDisk::mount(&n.data_dir(), disk_mib?)))
            .collect();
        for n in nodes.iter_mut() {
            n.spawn();
        }
        let pids: Vec<i32> = nodes.iter().map(Node::pid).collect();
        for p in &net.controller {
            p.watch_dialers(&pids);
        }
        let deadline = Instant::now() + BOOTSTRAP_TIMEOUT;
        loop {
            let dialed: std::collections::HashSet<i32> =
                net.controller.iter().flat_map(|p| p.dialed()).collect();
            if pids.iter().all(|p| dialed.contains(p)) {
                break;
            }
            if Instant::now() > deadline {
                let silent: Vec<String> = nodes
                    .iter_mut()
                    .filter(|n| !dialed.contains(&n.pid()))
                    .map(|n| {
                        let state = if n.is_running() { "running" } else { "exited" };
                        format!("node {} ({state}):\n{}", n.node_id, n.log_tail())
                    })
                    .collect();
                panic!(
                    "voters never tried to reach each other in {BOOTSTRAP_TIMEOUT:?}; silent:\n{}",
                    silent.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for p in &net.controller {
            p.watch_dialers(&[]);
            p.heal();
        }
        for n in nodes.iter_mut() {
            n.await_ready();
        }
        // Check the membership each voter ended up with.
        for n in &nodes {
            let raft_voters = &n.admin_status()["raft"]["voters"];
            for j in 0..voters {
                if j + 1 != n.node_id as usize {
                    assert_eq!(
                        raft_voters[(j + 1).to_string()].as_str(),
                        Some(net.controller[j].addr.as_str()),
                        "node {} reaches voter {} through its proxy: {raft_voters}",
                        n.node_id,
                        j + 1
                    );
                }
            }
        }
        (nodes, net, disks)
    }
}

/// The proxies in front of a cluster started by [`Node::start_cluster_behind_proxies`]
/// (index i is node i + 1).
pub struct Network {
    /// In front of each node's Kafka listener (the address it advertises).
    pub kafka: Vec<proxy::Proxy>,
    /// In front of each node's controller listener (the address in the voter list).
    pub controller: Vec<proxy::Proxy>,
}

impl Network {
    /// The Kafka proxies, as a bootstrap list.
    pub fn bootstrap(&self) -> String {
        self.kafka
            .iter()
            .map(|p| p.addr.clone())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Cuts node `i` (process `pid`) off from everyone: its own proxies refuse everything
    /// (clients, followers fetching from it, Raft and heartbeats sent to it), and every other
    /// proxy refuses connections coming from its process (its follower fetches, its Raft
    /// messages and heartbeats): the controller sees it silent and fences it, and it hears
    /// no one. Live connections are closed, new ones closed on accept (a reset, not a
    /// black hole: peers notice at once rather than after a TCP timeout). Only the test
    /// process still reaches it, over HTTP.
    pub fn isolate(&self, i: usize, pid: i32) {
        self.cut_inbound(i);
        self.cut_outbound(i, pid);
    }

    /// [`Network::isolate`] as a black hole: nothing is closed or refused, but no byte moves
    /// to or from node `i` (peers find out by their own timeouts only) until `heal`.
    pub fn black_hole(&self, i: usize, pid: i32) {
        self.kafka[i].black_hole();
        self.controller[i].black_hole();
        for p in self.others(i) {
            p.black_hole_from(pid);
        }
    }

    /// One way: node `i` (process `pid`) reaches no one (its heartbeats, Raft messages and
    /// follower fetches are refused) while everyone, clients included, still reaches it.
    pub fn cut_outbound(&self, i: usize, pid: i32) {
        for p in self.others(i) {
            p.cut_from(pid);
        }
    }

    /// The other way: no one reaches node `i` (clients, followers, the Raft leader) while
    /// its own connections to others go on.
    pub fn cut_inbound(&self, i: usize) {
        self.kafka[i].cut();
        self.controller[i].cut();
    }

    /// Every node of `a` and every node of `b` (index, process) stop hearing each other;
    /// a node in neither (a bridge) still reaches both sides, and clients reach everyone.
    pub fn cut_between(&self, a: &[(usize, i32)], b: &[(usize, i32)]) {
        for (x, y) in [(a, b), (b, a)] {
            for &(i, _) in x {
                for &(_, pid) in y {
                    self.kafka[i].cut_from(pid);
                    self.controller[i].cut_from(pid);
                }
            }
        }
    }

    /// The proxies of every node but `i`.
    fn others(&self, i: usize) -> impl Iterator<Item = &proxy::Proxy> {
        self.kafka
            .iter()
            .zip(&self.controller)
            .enumerate()
            .filter(move |(j, _)| *j != i)
            .flat_map(|(_, (k, c))| [k, c])
    }

    /// Lets all traffic through again.
    pub fn heal(&self) {
        for p in self.kafka.iter().chain(&self.controller) {
            p.heal();
        }
    }
}

/// `serve` flags for fault tests: a broker silent for 3 s is fenced and a follower 3 s behind
/// leaves the ISR, so failovers happen within a test's patience.
pub const FAST_FAILOVER: &[&str] = &[
    "--config",
    "broker.session.timeout.ms=3000",
    "--config",
    "broker.heartbeat.interval.ms=300",
    "--config",
    "replica.lag.time.max.ms=3000",
];
