//! Connection limits with Kafka's names: `max.connections.per.ip` closes an address's
//! connection past its limit and takes the next one once a slot is free; `max.connections`
//! stops accepting past it and serves the waiting client when a connection closes;
//! `connections.max.idle.ms` closes a connection that stays quiet; past the broker-wide
//! `max.connection.creation.rate` new connections wait, and past an address's
//! `connection_creation_rate` quota (set with `kafka-configs --entity-type ips`) they are
//! closed unanswered until its rate is back under.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread::sleep;
use std::time::{Duration, Instant};

use sluice_compat_tests::{kafka_configs, metric_sample, scrape_metrics, Node};

/// An ApiVersions v0 request frame (no body).
fn api_versions_frame(correlation: i32) -> Vec<u8> {
    let client = b"limits-test";
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes()); // ApiVersions
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&correlation.to_be_bytes());
    body.extend_from_slice(&(client.len() as i16).to_be_bytes());
    body.extend_from_slice(client);
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// What became of one ApiVersions request on a connection.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Answered,
    Closed,
    NoAnswerYet,
}

fn ask(s: &mut TcpStream, wait: Duration) -> Outcome {
    s.set_read_timeout(Some(wait)).unwrap();
    if s.write_all(&api_versions_frame(7)).is_err() {
        return Outcome::Closed;
    }
    await_answer(s)
}

fn await_answer(s: &mut TcpStream) -> Outcome {
    let mut size = [0u8; 4];
    match s.read_exact(&mut size) {
        Ok(()) => {}
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            return Outcome::NoAnswerYet
        }
        Err(_) => return Outcome::Closed,
    }
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut body).unwrap();
    assert_eq!(&body[..4], &7i32.to_be_bytes(), "correlation id");
    Outcome::Answered
}

fn connect(node: &Node) -> TcpStream {
    TcpStream::connect(&node.kafka).unwrap()
}

#[test]
fn an_address_past_max_connections_per_ip_is_closed_until_a_slot_frees() {
    let node = Node::start_with(&["--config", "max.connections.per.ip=3"]);
    let mut open: Vec<TcpStream> = (0..3).map(|_| connect(&node)).collect();
    for s in &mut open {
        assert_eq!(ask(s, Duration::from_secs(10)), Outcome::Answered);
    }
    let mut fourth = connect(&node);
    assert_eq!(ask(&mut fourth, Duration::from_secs(10)), Outcome::Closed);
    drop(open.pop());
    // The broker frees the slot once it has seen the close.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = connect(&node);
        match ask(&mut again, Duration::from_secs(10)) {
            Outcome::Answered => break,
            other => assert!(Instant::now() < deadline, "still refused: {other:?}"),
        }
        sleep(Duration::from_millis(100));
    }
}

#[test]
fn past_max_connections_a_client_waits_until_a_connection_closes() {
    let node = Node::start_with(&["--config", "max.connections=2"]);
    let mut open: Vec<TcpStream> = (0..2).map(|_| connect(&node)).collect();
    for s in &mut open {
        assert_eq!(ask(s, Duration::from_secs(10)), Outcome::Answered);
    }
    // Accepted by the kernel, not served by the broker.
    let mut third = connect(&node);
    assert_eq!(
        ask(&mut third, Duration::from_secs(2)),
        Outcome::NoAnswerYet
    );
    drop(open.pop());
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(await_answer(&mut third), Outcome::Answered);
}

#[test]
fn a_quiet_connection_is_closed_after_connections_max_idle_ms() {
    let node = Node::start_with(&["--config", "connections.max.idle.ms=1000"]);
    let mut busy = connect(&node);
    let mut quiet = connect(&node);
    assert_eq!(ask(&mut quiet, Duration::from_secs(10)), Outcome::Answered);
    // A connection that keeps asking stays open past the idle time.
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2500) {
        assert_eq!(ask(&mut busy, Duration::from_secs(10)), Outcome::Answered);
        sleep(Duration::from_millis(300));
    }
    assert_eq!(ask(&mut quiet, Duration::from_secs(10)), Outcome::Closed);
}

/// Quotas measured over 2 windows of 1 s, so a rate shows after one second, not ten.
const SHORT_QUOTA_WINDOWS: [&str; 2] = ["--config", "quota.window.num=2"];

#[test]
fn an_address_past_its_connection_creation_rate_is_closed_until_its_rate_falls() {
    let node = Node::start_with(&SHORT_QUOTA_WINDOWS);
    kafka_configs(
        &node,
        &[
            "--alter",
            "--entity-type",
            "ips",
            "--entity-name",
            "127.0.0.1",
            "--add-config",
            "connection_creation_rate=5",
        ],
    );
    sleep(Duration::from_secs(2)); // kafka-configs' own connections out of the windows
    let outcomes: Vec<Outcome> = (0..10)
        .map(|_| ask(&mut connect(&node), Duration::from_secs(10)))
        .collect();
    let answered = outcomes.iter().filter(|o| **o == Outcome::Answered).count();
    assert!(
        (1..10).contains(&answered),
        "5 connections a second, 10 at once: {outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Answered | Outcome::Closed)),
        "{outcomes:?}"
    );
    // Refused connections are not counted: two seconds on, the address is under again.
    sleep(Duration::from_secs(2));
    assert_eq!(
        ask(&mut connect(&node), Duration::from_secs(10)),
        Outcome::Answered
    );
    let scraped = scrape_metrics(&node);
    let name = "sluice_connections_throttled_total{limit=\"ip_connection_creation_rate\"}";
    assert!(metric_sample(&scraped, name).unwrap_or(0.0) > 0.0, "{name}");
}

#[test]
fn past_max_connection_creation_rate_new_connections_wait_their_turn() {
    let mut args = SHORT_QUOTA_WINDOWS.to_vec();
    args.extend(["--config", "max.connection.creation.rate=5"]);
    let node = Node::start_with(&args);
    // All are served, the accept loop pausing between them once past 5 a second.
    let mut open: Vec<TcpStream> = (0..15).map(|_| connect(&node)).collect();
    for s in &mut open {
        assert_eq!(ask(s, Duration::from_secs(10)), Outcome::Answered);
    }
    let scraped = scrape_metrics(&node);
    let name = "sluice_connections_throttled_total{limit=\"max_connection_creation_rate\"}";
    assert!(metric_sample(&scraped, name).unwrap_or(0.0) > 0.0, "{name}");
}
