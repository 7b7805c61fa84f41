//! One `sluice serve` process: started on ephemeral ports in a temp dir, awaited until
//! ready, killed, terminated and restarted.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::wire::http_get;

/// How long a node may take to print its ready line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

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

/// One running `sluice serve` process with its own data dir.
pub struct Node {
    pub(crate) child: Option<Child>,
    /// `host:port` of the Kafka listener (with `--config listeners=...`, the inter-broker
    /// one).
    pub kafka: String,
    /// Every Kafka listener by name (`PLAINTEXT`, `SASL_SSL`, ...) -> `host:port`, from the
    /// ready line's `listeners=` (without one: just `PLAINTEXT` -> [`Node::kafka`]).
    pub listeners: BTreeMap<String, String>,
    /// `host:port` of the HTTP listener.
    pub http: String,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) extra: Vec<String>,
    /// This node's id.
    pub node_id: u64,
    /// Its controller (Raft) address.
    pub controller: String,
    pub(crate) ready: Option<mpsc::Receiver<String>>,
    /// A command the node runs under (e.g. `prlimit --nofile=1024:`), if any.
    pub(crate) wrapper: Vec<String>,
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
            listeners: BTreeMap::new(),
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
        self.listeners = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("listeners="))
            .map(parse_listeners)
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| BTreeMap::from([("PLAINTEXT".to_string(), self.kafka.clone())]));
    }

    /// `host:port` of the listener called `name` (e.g. `SASL_SSL`).
    pub fn listener(&self, name: &str) -> &str {
        self.listeners
            .get(name)
            .unwrap_or_else(|| panic!("no listener {name}: {:?}", self.listeners))
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
        self.status_kib("VmRSS:")
    }

    /// The node's virtual memory (KiB): what it allocated, touched or not.
    pub fn virtual_kib(&self) -> u64 {
        self.status_kib("VmSize:")
    }

    fn status_kib(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
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

/// `NAME://host:port,...` (a ready line's `listeners=`) -> name -> `host:port`.
fn parse_listeners(text: &str) -> BTreeMap<String, String> {
    text.split(',')
        .filter_map(|l| l.split_once("://"))
        .map(|(name, addr)| (name.to_string(), addr.to_string()))
        .collect()
}

/// With `SLUICE_KEEP_LOGS=<dir>`, copies a log there (as `<name>-<pid>-<n>.log`) for a
/// whole-run look: the temporary directories holding them are removed after a test.
pub fn keep_log(path: &Path, name: &str) {
    static KEPT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let Some(dir) = std::env::var_os("SLUICE_KEEP_LOGS") else {
        return;
    };
    let n = KEPT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let to = PathBuf::from(dir).join(format!("{name}-{}-{n}.log", std::process::id()));
    let _ = std::fs::create_dir_all(to.parent().unwrap_or(&to));
    match std::fs::copy(path, &to) {
        Ok(_) => eprintln!("kept {}", to.display()),
        Err(e) => eprintln!("could not keep {}: {e}", path.display()),
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- sluice log tail ---\n{}", self.log_tail());
        }
        keep_log(&self.log_path(), &format!("node{}", self.node_id));
        self.kill9();
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_listeners, reserve_port};

    #[test]
    fn listeners_of_a_ready_line_are_parsed_by_name() {
        let l = parse_listeners("PLAINTEXT://127.0.0.1:41234,SASL_SSL://127.0.0.1:41235");
        assert_eq!(l.len(), 2);
        assert_eq!(l["PLAINTEXT"], "127.0.0.1:41234");
        assert_eq!(l["SASL_SSL"], "127.0.0.1:41235");
        assert!(parse_listeners("").is_empty());
    }

    #[test]
    fn reserved_ports_lie_below_the_ephemeral_range_and_are_handed_out_once() {
        // A port from the ephemeral range can be taken by any connect() on the machine
        // between its reservation and the node's bind: that is how a voter of a test cluster
        // came to exit with "Address already in use" about once in 33 bootstraps.
        let ephemeral_start: u16 =
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap();
        let ports: Vec<u16> = (0..200).map(|_| reserve_port()).collect();
        assert!(ports.iter().all(|p| *p < ephemeral_start), "{ports:?}");
        let distinct: std::collections::HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "a port handed out twice");
    }
}
