//! Client programs and commands: launchers, commands with time limits, kcat and the
//! roundtrip contract, offset commits, polling until a condition holds.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::node::Node;

/// The compat-tests folder (launchers live in `bin/`).
pub fn compat_dir() -> PathBuf {
    // `cargo test` sets it at run time too; that one wins, because a build cached from a
    // checkout at another path keeps that path in the compile-time value.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// What `compat-tests/setup.sh` installed (clients, jars, the venv): `SLUICE_COMPAT_CACHE`,
/// or `~/.cache/sluice-compat`.
pub fn compat_cache() -> PathBuf {
    std::env::var_os("SLUICE_COMPAT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/sluice-compat")
        })
}

/// A launcher from `compat-tests/bin`.
pub fn launcher(name: &str) -> PathBuf {
    compat_dir().join("bin").join(name)
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

/// A unique topic name for a test.
pub fn topic(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Runs a `roundtrip-<client>` launcher (create, produce acks=all, consume, compare).
pub fn roundtrip(node: &Node, client: &str, messages: usize) {
    roundtrip_at(&node.kafka, client, messages, &[]);
}

/// [`roundtrip`] through `bootstrap` (`host:port`), with the launcher's `extra` arguments
/// (e.g. `roundtrip-kafka-python`'s `--security-protocol SASL_SSL ...`).
pub fn roundtrip_at(bootstrap: &str, client: &str, messages: usize, extra: &[&str]) {
    let topic = topic(client);
    let out = run_ok(
        Command::new(launcher(&format!("roundtrip-{client}")))
            .args([
                "--bootstrap",
                bootstrap,
                "--topic",
                &topic,
                "--partitions",
                "3",
            ])
            .args(["--messages", &messages.to_string(), "--timeout", "90"])
            .args(extra),
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

/// A program of `clients/java` (compiled by setup.sh into the cache), run on the Kafka 4.4.0
/// jars through the `kafka-run-class` launcher.
pub fn java_client(class: &str) -> Command {
    let classes = compat_cache().join("java-classes");
    assert!(
        classes.join(format!("{class}.class")).exists(),
        "{class}.class missing in {}: run compat-tests/setup.sh",
        classes.display()
    );
    let mut cmd = Command::new(launcher("kafka-run-class"));
    cmd.env("EXTRA_CLASSPATH", &classes);
    if std::env::var_os("KAFKA_HEAP_OPTS").is_none() {
        cmd.env("KAFKA_HEAP_OPTS", "-Xmx256m");
    }
    cmd.arg(class);
    cmd
}

/// The tab-separated table Kafka's tools print (`kafka-transactions`): one map per row, by
/// column header.
pub fn kafka_tool_table(text: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut lines = text.lines().filter(|l| l.contains('\t'));
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let columns: Vec<&str> = header.split('\t').map(str::trim).collect();
    lines
        .map(|l| {
            columns
                .iter()
                .zip(l.split('\t').map(str::trim))
                .filter(|(c, _)| !c.is_empty())
                .map(|(c, v)| (c.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// Runs Kafka's `kafka-configs` against `node` and returns its output (it must succeed).
pub fn kafka_configs(node: &Node, args: &[&str]) -> String {
    run_ok(
        Command::new(launcher("kafka-configs"))
            .args(["--bootstrap-server", &node.kafka])
            .args(args),
        Duration::from_secs(120),
        None,
    )
}

/// `sluice admin --json` against `node`'s own listeners; add the subcommand's arguments.
pub fn admin_command(node: &Node) -> Command {
    let mut command = Command::new(crate::sluice_bin());
    command.args([
        "admin",
        "--json",
        "--bootstrap",
        &node.kafka,
        "--http",
        &node.http,
    ]);
    command
}

/// `sluice admin --json ...` against `node`, or Null while the command fails (e.g. no
/// coordinator yet).
pub fn admin_json(node: &Node, args: &[&str]) -> serde_json::Value {
    let out = run(
        admin_command(node).args(args),
        Duration::from_secs(60),
        None,
    );
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}
