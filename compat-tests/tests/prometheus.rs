//! A real Prometheus server scrapes a running Sluice; PromQL through its HTTP API sees the
//! request rate and the consumer lag. Proves the exposition is accepted as it is.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sluice_compat_tests::{commit_offsets, kcat_produce, topic, Node};

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The first value of an instant PromQL query, if any.
fn query(port: u16, q: &str) -> Option<f64> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /api/v1/query?query={} HTTP/1.0\r\nHost: prom\r\n\r\n",
        encode(q)
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let body = out.split_once("\r\n\r\n")?.1;
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

struct Prometheus(std::process::Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn prometheus_scrapes_sluice_and_promql_sees_rate_and_lag() {
    let node = Node::start();
    let topic = topic("prom");
    let input: String = (0..500).map(|i| format!("p{i}\n")).collect();
    kcat_produce(&node, &topic, input.as_bytes(), &[]);
    commit_offsets(&node, &topic, "g-prom", 100);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: sluice\n    static_configs:\n      - targets: [\"{}\"]\n",
            node.http
        ),
    )
    .unwrap();
    let port = sluice_compat_tests::reserve_port();
    let _prom = Prometheus(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (installed by compat-tests/setup.sh)"),
    );

    let lag_query = format!("sum(sluice_consumer_group_lag{{group=\"g-prom\",topic=\"{topic}\"}})");
    let deadline = Instant::now() + Duration::from_secs(60);
    let live = format!("{topic}-live");
    loop {
        // Keep requests flowing so the scraped counter has a rate.
        kcat_produce(&node, &live, b"tick\n", &[]);
        let up = query(port, "up{job=\"sluice\"}");
        let lag = query(port, &lag_query);
        let rate = query(port, "sum(rate(sluice_requests_total[1m]))");
        if up == Some(1.0) && lag == Some(400.0) && rate.is_some_and(|r| r > 0.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus saw up={up:?} lag={lag:?} rate={rate:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
