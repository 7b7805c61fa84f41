//! franz-go's own `pkg/kgo` integration test suite against a one-node sluice: the `kgo-suite`
//! launcher runs the `kgo.test` binary setup.sh compiles, restricted to the tests listed in
//! `kgo/allowlist.txt` (those known to pass; see `kgo/RESULTS.md` for the others and why
//! they fail). The allowlist only grows: a test that drops out of it is a regression.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::process::Command;
use std::time::Duration;

use sluice_compat_tests::{compat_dir, launcher, run, Node};

/// The suite's own `-test.timeout` (it panics with a goroutine dump after that).
const SUITE_TIMEOUT: &str = "6m";
/// Our hard limit on the launcher: the suite's timeout plus slack for its panic output.
const RUN_LIMIT: Duration = Duration::from_secs(420);

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The group and transaction lines of the clients that were members of the groups a failed
/// test left behind (`NOT DELETING GROUP <id>`), from franz-go's INFO log on `stderr`, where
/// each client's lines carry its number (`[15:04:05.999 N][INFO] ...`). What a flaky group
/// test did on the client side, which the broker's log cannot show.
fn group_client_log(stdout: &str, stderr: &str) -> String {
    const LIMIT: usize = 800;
    let groups: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split("NOT DELETING GROUP ").nth(1))
        .map(str::trim)
        .collect();
    let client = |line: &str| -> Option<String> {
        let prefix = line.strip_prefix('[')?.split(']').next()?;
        Some(prefix.rsplit(' ').next()?.to_string())
    };
    let members: std::collections::BTreeSet<String> = stderr
        .lines()
        .filter(|l| groups.iter().any(|g| l.contains(g)))
        .filter_map(client)
        .collect();
    let interesting = [
        "heartbeat",
        "revoke",
        "join",
        "sync",
        "session",
        "lost",
        "fenc",
        "WARN",
        "ERROR",
        "abort",
        "leav",
    ];
    // Every transaction logs these; only the unusual ends are kept.
    let routine = ["beginning transact session", "will_try_commit: true"];
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| client(l).is_some_and(|c| members.contains(&c)))
        .filter(|l| interesting.iter().any(|w| l.contains(w)))
        .filter(|l| !routine.iter().any(|w| l.contains(w)))
        .collect();
    format!(
        "groups {groups:?}, clients {members:?}, {} lines (last {LIMIT}):\n{}",
        lines.len(),
        lines[lines.len().saturating_sub(LIMIT)..].join("\n")
    )
}

#[test]
fn kgo_suite_allowlist_passes() {
    // Default configs: the suite creates its own topics (CreateTopics, RF from KGO_TEST_RF=1)
    // and passed with them; it needs no extra broker flags.
    let node = Node::start_with(&[]);
    let allowlist = compat_dir().join("kgo").join("allowlist.txt");
    let out = run(
        Command::new(launcher("kgo-suite"))
            // The clients' INFO log (on stderr) is kept for the excerpt below.
            .env("KGO_LOG_LEVEL", "info")
            .args(["--bootstrap", &node.kafka, "--allowlist"])
            .arg(&allowlist)
            .args(["--timeout", SUITE_TIMEOUT]),
        RUN_LIMIT,
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let failed: Vec<&str> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("--- FAIL"))
        .collect();
    // What the failing tests said (`t.Errorf` lines carry their file and line), which the
    // tail of a parallel run rarely shows.
    let said: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("_test.go:") && !l.contains(": deleting "))
        .take(60)
        .collect();
    assert!(
        out.status.success(),
        "kgo-suite failed ({}); failed tests:\n{}\n--- their messages ---\n{}\n--- stdout tail ---\n{}\n--- group clients of the failed tests ---\n{}",
        out.status,
        failed.join("\n"),
        said.join("\n"),
        tail(&stdout, 80),
        group_client_log(&stdout, &stderr)
    );
    let passed = stdout.lines().filter(|l| l.starts_with("--- PASS")).count();
    assert!(passed > 0, "no test ran:\n{}", tail(&stdout, 40));
}
