//! # sluice-compat-tests: real clients against real `sluice` processes
//!
//! ## Layout
//!
//! ```text
//! src/lib.rs        Node: start a `sluice serve` on ephemeral ports in a temp dir, wait
//!                   until ready, SIGKILL/SIGTERM/restart it; run client launchers
//! src/proxy.rs      TCP proxy with cut/heal, for network-partition tests
//! tests/*.rs        one file per client family or fault: kcat, Java + Kafka CLI, Python,
//!                   Go, raw-protocol bad input, crash recovery
//! setup.sh          installs every client (apt, Maven, PyPI, Go, npm) into a cache
//! bin/              launchers that hide install paths (roundtrip-*, kafka-*)
//! clients/          the client programs (one roundtrip contract for all of them)
//! ```
//!
//! Every test bounds its own time: nodes must be ready within `READY_TIMEOUT`, client
//! commands are killed after their timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod proxy;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a node may take to print its ready line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long voters behind cut proxies get to try their peers (normally a matter of seconds).
const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(30);

/// A loopback port for a process this test starts later (a node's fixed Kafka or controller
/// port, kept across restarts), from below the kernel's ephemeral range.
///
/// A port the kernel hands out for `bind(0)` and is then released goes back to the
/// ephemeral pool, where any `connect()` on the machine may take it as its local port before
/// the node binds it: in 33 three-node bootstraps, two at a time, one had a node exit with
/// "Address already in use" (two clusters starting at once). The kernel never picks ports
/// below `ip_local_port_range`, so only this process could take one, and it hands each out
/// once.
pub fn reserve_port() -> u16 {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let ephemeral_start: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_start.max(12_000));
    let span = u32::from(high - low);
    let seed = std::process::id().wrapping_mul(7919)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
    let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed = handed.get_or_insert_with(HashSet::new);
    for i in 0..span {
        let port = low + ((seed.wrapping_add(i.wrapping_mul(31))) % span) as u16;
        if !handed.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed.insert(port);
            return port;
        }
    }
    panic!("no free loopback port in {low}..{high}");
}

/// The `sluice` binary built next to this test executable.
pub fn sluice_bin() -> PathBuf {
    if let Ok(p) = std::env::var("SLUICE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/sluice
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("sluice");
    assert!(
        bin.exists(),
        "{} not found: run `cargo build --workspace` first",
        bin.display()
    );
    bin
}

/// The compat-tests folder (launchers live in `bin/`).
pub fn compat_dir() -> PathBuf {
    // `cargo test` sets it at run time too; that one wins, because a build cached from a
    // checkout at another path keeps that path in the compile-time value.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// A launcher from `compat-tests/bin`.
pub fn launcher(name: &str) -> PathBuf {
    compat_dir().join("bin").join(name)
}

/// One running `sluice serve` process with its own data dir.
pub struct Node {
    child: Option<Child>,
    /// `host:port` of the Kafka listener.
    pub kafka: String,
    /// `host:port` of the HTTP listener.
    pub http: String,
    dir: tempfile::TempDir,
    extra: Vec<String>,
    /// This node's id.
    pub node_id: u64,
    /// Its controller (Raft) address.
    pub controller: String,
    ready: Option<mpsc::Receiver<String>>,
    /// A command the node runs under (e.g. `prlimit --nofile=1024:`), if any.
    wrapper: Vec<String>,
}

impl Node {
    /// Starts a one-node cluster on ephemeral ports.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a node with extra `serve` flags (e.g. `--config num.partitions=3`).
    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_under(&[], extra)
    }

    /// Starts a node run by `wrapper` (a command that execs the rest of its arguments).
    pub fn start_under(wrapper: &[&str], extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut node = Node {
            child: None,
            kafka: "127.0.0.1:0".into(),
            http: "127.0.0.1:0".into(),
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            node_id: 1,
            controller: "127.0.0.1:0".into(),
            ready: None,
            wrapper: wrapper.iter().map(|s| s.to_string()).collect(),
        };
        node.launch();
        node
    }

    /// Starts a cluster: `voters` controller+broker nodes (ids 1..) forming the Raft quorum
    /// and `learners` broker-only nodes that join it as learners, all on loopback, each
    /// with `extra` flags. Controller ports are fixed up front so restarts reuse them.
    pub fn start_cluster(voters: usize, learners: usize, extra: &[&str]) -> Vec<Node> {
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
                Node {
                    child: None,
                    kafka: "127.0.0.1:0".into(),
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
                    http: "127.0.0.1:0".into(),
                    dir: tempfile::tempdir().expect("tempdir"),
                    extra: flags,
                    node_id: i as u64 + 1,
                    controller: controller[i].clone(),
                    ready: None,
                    wrapper: Vec::new(),
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
        (nodes, net)
    }

    /// The node's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The node's log file (stderr).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("sluice.log")
    }

    fn launch(&mut self) {
        self.spawn();
        self.await_ready();
    }

    /// Starts the process without waiting for it to be ready.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(sluice_bin());
                c
            }
            None => Command::new(sluice_bin()),
        };
        let mut child = command
            .arg("serve")
            .args(["--node-id", &self.node_id.to_string()])
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--kafka-addr", &self.kafka, "--http-addr", &self.http])
            .args(["--controller-addr", &self.controller])
            .args(&self.extra)
            // Errors in the log without a backtrace, so a log tail shows the error itself.
            .env("RUST_LIB_BACKTRACE", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn sluice");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("sluice ready:") {
                    let _ = tx.send(line);
                }
            }
        });
        self.child = Some(child);
        self.ready = Some(rx);
    }

    /// Waits for a spawned node's ready line and learns its ports from it.
    pub fn await_ready(&mut self) {
        let rx = self.ready.take().expect("spawn first");
        let line = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(l) => l,
            Err(_) => {
                self.kill9();
                panic!(
                    "sluice did not become ready in {READY_TIMEOUT:?}; log:\n{}",
                    self.log_tail()
                );
            }
        };
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")).map(String::from))
                .unwrap_or_else(|| panic!("no {name}= in '{line}'"))
        };
        self.kafka = field("kafka");
        self.http = field("http");
    }

    /// The process id of the running node.
    pub fn pid(&self) -> i32 {
        self.child
            .as_ref()
            .map(|c| c.id() as i32)
            .expect("node not running")
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("node not running");
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = c.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("sluice did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the node again on the same ports and data dir.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the node first");
        self.launch();
    }

    /// The node's admin view of the controller (GET /admin/status, JSON).
    pub fn admin_status(&self) -> serde_json::Value {
        serde_json::from_str(&http_get(&self.http, "/admin/status")).expect("status JSON")
    }

    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Resident memory of the node in KiB (from /proc).
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// The last lines of the node's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
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
        self.kafka[i].cut();
        self.controller[i].cut();
        for (j, (k, c)) in self.kafka.iter().zip(&self.controller).enumerate() {
            if j != i {
                k.cut_from(pid);
                c.cut_from(pid);
            }
        }
    }

    /// Lets all traffic through again.
    pub fn heal(&self) {
        for p in self.kafka.iter().chain(&self.controller) {
            p.heal();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- sluice log tail ---\n{}", self.log_tail());
        }
        self.kill9();
    }
}

/// Runs a command with a time limit; returns its output (stdout, stderr, status).
pub fn run(cmd: &mut Command, limit: Duration, stdin: Option<&[u8]>) -> Output {
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if let Some(input) = stdin {
        let mut w = child.stdin.take().expect("stdin");
        let input = input.to_vec();
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = w.write_all(&input);
        });
    }
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    }
}

/// Runs a command and asserts it succeeded; returns stdout as text.
pub fn run_ok(cmd: &mut Command, limit: Duration, stdin: Option<&[u8]>) -> String {
    let desc = format!("{cmd:?}");
    let out = run(cmd, limit, stdin);
    assert!(
        out.status.success(),
        "{desc} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The node's `GET /metrics` body (Prometheus text).
pub fn scrape_metrics(node: &Node) -> String {
    http_get(&node.http, "/metrics")
}

/// The value of the first sample whose line starts with `prefix` (name plus labels).
pub fn metric_sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A unique topic name for a test.
pub fn topic(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Sends one Produce v7 request holding a single uncompressed batch (records with the given
/// timestamps and values, the last byte flipped when `corrupt`); returns the partition's
/// error code. For tests that need control over batch bytes no client gives.
pub fn raw_produce(node: &Node, topic: &str, records: &[(i64, &str)], corrupt: bool) -> i16 {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(&node.kafka).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(&produce_frame(topic, records, corrupt, 42))
        .expect("write");
    read_produce_response(&mut s).error_code
}

/// A whole Produce v7 frame (acks=all, partition 0) with correlation id `correlation`; see
/// [`raw_produce`].
pub fn produce_frame(
    topic: &str,
    records: &[(i64, &str)],
    corrupt: bool,
    correlation: i32,
) -> Vec<u8> {
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (ts, v))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: *ts,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(v.to_string())),
            headers: Default::default(),
        })
        .collect();
    let mut batch = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut batch,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode batch");
    if corrupt {
        let last = batch.len() - 2;
        batch[last] ^= 0x55; // inside the last value: covered by the CRC
    }
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch.freeze()))])]);
    let mut payload = Vec::new();
    payload.extend_from_slice(&0i16.to_be_bytes()); // Produce
    payload.extend_from_slice(&7i16.to_be_bytes());
    payload.extend_from_slice(&correlation.to_be_bytes());
    payload.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
    let mut body = BytesMut::new();
    request.encode(&mut body, 7).expect("encode produce");
    payload.extend_from_slice(&body);
    let mut frame = (payload.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&payload);
    frame
}

/// What one Produce v7 response said of its first partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceAnswer {
    /// The response's correlation id.
    pub correlation: i32,
    /// The partition's error code.
    pub error_code: i16,
    /// The offset given to the batch's first record.
    pub base_offset: i64,
}

/// Reads the next response on `s` as a Produce v7 response.
pub fn read_produce_response(s: &mut std::net::TcpStream) -> ProduceAnswer {
    use bytes::Bytes;
    use kafka_protocol::messages::ProduceResponse;
    use kafka_protocol::protocol::Decodable;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("response length");
    let mut response = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut response).expect("response");
    let correlation = i32::from_be_bytes([response[0], response[1], response[2], response[3]]);
    let mut rest = Bytes::from(response[4..].to_vec());
    let decoded = ProduceResponse::decode(&mut rest, 7).expect("decode produce response");
    let partition = &decoded.responses[0].partition_responses[0];
    ProduceAnswer {
        correlation,
        error_code: partition.error_code,
        base_offset: partition.base_offset,
    }
}

/// Runs a `roundtrip-<client>` launcher (create, produce acks=all, consume, compare).
pub fn roundtrip(node: &Node, client: &str, messages: usize) {
    let topic = topic(client);
    let out = run_ok(
        Command::new(launcher(&format!("roundtrip-{client}")))
            .args([
                "--bootstrap",
                &node.kafka,
                "--topic",
                &topic,
                "--partitions",
                "3",
            ])
            .args(["--messages", &messages.to_string(), "--timeout", "90"]),
        Duration::from_secs(120),
        None,
    );
    assert!(out.contains(&format!("OK {messages}")), "{client}: {out}");
}

/// Produces newline-separated input with kcat (acks=all), plus extra kcat flags.
pub fn kcat_produce(node: &Node, topic: &str, input: &[u8], extra: &[&str]) {
    run_ok(
        Command::new("kcat")
            .args(["-P", "-b", &node.kafka, "-t", topic, "-X", "acks=all"])
            .args(extra),
        Duration::from_secs(120),
        Some(input),
    );
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

/// Polls `done` every 200 ms until it holds; panics after `limit`. Returns how long it took.
pub fn wait_until(what: &str, limit: Duration, done: impl FnMut() -> bool) -> Duration {
    poll_until(what, limit, Duration::from_millis(200), done)
}

/// [`wait_until`] polling every `every` (finer, to time failovers).
pub fn poll_until(
    what: &str,
    limit: Duration,
    every: Duration,
    mut done: impl FnMut() -> bool,
) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting: {what}"
        );
        std::thread::sleep(every);
    }
    start.elapsed()
}

/// Every record of a topic, read with kcat through `bootstrap` (comma-separated brokers):
/// (partition, offset) -> value.
pub fn read_topic(bootstrap: &str, topic: &str) -> std::collections::BTreeMap<(i32, i64), String> {
    let out = run_ok(
        Command::new("kcat")
            .args(["-C", "-b", bootstrap, "-t", topic, "-e", "-q"])
            .args(["-o", "beginning", "-f", "%p %o %s\n"]),
        Duration::from_secs(120),
        None,
    );
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.splitn(3, ' ').collect();
            Some((
                (f.first()?.parse().ok()?, f.get(1)?.parse().ok()?),
                f.get(2)?.to_string(),
            ))
        })
        .collect()
}

/// Reads a whole topic from the beginning with kcat, one `format`ted line per record.
pub fn kcat_read(node: &Node, topic: &str, format: &str) -> String {
    run_ok(
        Command::new("kcat").args([
            "-C",
            "-b",
            &node.kafka,
            "-t",
            topic,
            "-e",
            "-q",
            "-o",
            "beginning",
            "-f",
            format,
        ]),
        Duration::from_secs(120),
        None,
    )
}

/// Commits offsets 1..=n for partition 0 of `topic` as `group` (confluent-kafka, one
/// synchronous commit each).
pub fn commit_offsets(node: &Node, topic: &str, group: &str, n: usize) {
    let out = run_ok(
        Command::new(launcher("commit-loop"))
            .args([
                "--bootstrap",
                &node.kafka,
                "--topic",
                topic,
                "--group",
                group,
            ])
            .args(["--commits", &n.to_string()]),
        Duration::from_secs(120),
        None,
    );
    assert!(out.contains(&format!("OK {n}")), "{out}");
}

/// GET `path` from an HTTP listener (HTTP/1.0, so the body ends at EOF); returns the body.
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect http");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: sluice\r\n\r\n").expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}
