//! Bad input on the wire: hostile frames get an error response or a closed connection; the
//! broker and its other connections carry on and memory stays flat.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use sluice_compat_tests::{kcat_produce, kcat_read, raw_produce, topic, Node};

fn connect(node: &Node) -> TcpStream {
    let s = TcpStream::connect(&node.kafka).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Non-flexible request header (v1): key, version, correlation id, null client id.
fn header(key: i16, version: i16, correlation: i32) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&key.to_be_bytes());
    h.extend_from_slice(&version.to_be_bytes());
    h.extend_from_slice(&correlation.to_be_bytes());
    h.extend_from_slice(&(-1i16).to_be_bytes());
    h
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).ok()?;
    Some(body)
}

/// True once the broker has closed the connection (EOF or reset) within the read timeout.
fn is_closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => {
                return e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::TimedOut
            }
        }
    }
}

fn api_versions_ok(node: &Node) -> Vec<i16> {
    let mut s = connect(node);
    s.write_all(&frame(&header(18, 0, 7))).unwrap();
    let body = read_frame(&mut s).expect("ApiVersions answer");
    assert_eq!(
        i32::from_be_bytes(body[0..4].try_into().unwrap()),
        7,
        "correlation id"
    );
    assert_eq!(
        i16::from_be_bytes(body[4..6].try_into().unwrap()),
        0,
        "error code"
    );
    let n = i32::from_be_bytes(body[6..10].try_into().unwrap()) as usize;
    (0..n)
        .map(|i| i16::from_be_bytes(body[10 + i * 6..12 + i * 6].try_into().unwrap()))
        .collect()
}

#[test]
fn api_versions_answers_and_falls_back_to_v0_for_unknown_versions() {
    let node = Node::start();
    let keys = api_versions_ok(&node);
    for k in [0, 1, 2, 3, 18, 19, 20, 22, 32, 37, 44, 60] {
        assert!(keys.contains(&k), "api key {k} advertised");
    }
    let mut s = connect(&node);
    // ApiVersions v99 with some body: answered in v0 with UNSUPPORTED_VERSION and the key list.
    let mut payload = header(18, 99, 9);
    payload.extend_from_slice(&[1, 2, 3]);
    s.write_all(&frame(&payload)).unwrap();
    let body = read_frame(&mut s).expect("v0 fallback answer");
    assert_eq!(i32::from_be_bytes(body[0..4].try_into().unwrap()), 9);
    assert_eq!(
        i16::from_be_bytes(body[4..6].try_into().unwrap()),
        35,
        "UNSUPPORTED_VERSION"
    );
    assert!(
        i32::from_be_bytes(body[6..10].try_into().unwrap()) >= 10,
        "full key list"
    );
}

#[test]
fn hostile_frames_close_the_connection_and_the_broker_carries_on() {
    let mut node = Node::start();
    let mut huge_array = header(3, 1, 1); // Metadata v1: topics array
    huge_array.extend_from_slice(&i32::MAX.to_be_bytes());
    // Metadata v9 (flexible): header v2 adds tagged fields; compact array length 2^32-1.
    let mut huge_compact = header(3, 9, 1);
    huge_compact.push(0);
    huge_compact.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    let mut huge_string = header(19, 2, 1); // CreateTopics v2: array of 1, name length 32767
    huge_string.extend_from_slice(&1i32.to_be_bytes());
    huge_string.extend_from_slice(&i16::MAX.to_be_bytes());

    let hostile: Vec<(&str, Vec<u8>)> = vec![
        ("oversized frame", i32::MAX.to_be_bytes().to_vec()),
        ("negative frame size", (-5i32).to_be_bytes().to_vec()),
        ("frame shorter than a header", frame(&[0, 18])),
        ("unknown api key", frame(&header(999, 0, 1))),
        ("unsupported produce v1", frame(&header(0, 1, 1))),
        ("unsupported fetch v99", frame(&header(1, 99, 1))),
        (
            "garbage body",
            frame(&[0, 3, 0, 1, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef]),
        ),
        ("array count past the frame", frame(&huge_array)),
        ("compact array count past the frame", frame(&huge_compact)),
        ("string length past the frame", frame(&huge_string)),
    ];
    let rss_before = node.rss_kib();
    for round in 0..20 {
        for (what, bytes) in &hostile {
            let mut s = connect(&node);
            s.write_all(bytes).unwrap();
            assert!(
                is_closed(&mut s),
                "{what}: connection should be closed (round {round})"
            );
        }
    }
    // A truncated frame: the client goes away mid-frame.
    let mut s = connect(&node);
    s.write_all(&100i32.to_be_bytes()).unwrap();
    s.write_all(&[0, 18, 0]).unwrap();
    drop(s);

    assert!(node.is_running(), "the broker survived");
    let grown_mib = node.rss_kib().saturating_sub(rss_before) / 1024;
    assert!(
        grown_mib < 64,
        "memory stays flat under hostile counts: grew {grown_mib} MiB"
    );
    assert!(
        api_versions_ok(&node).contains(&0),
        "new connections are served"
    );
}

#[test]
fn claimed_lengths_on_the_controller_port_allocate_nothing() {
    // Each connection claims a 60 MiB peer frame and sends its first bytes. The framing once
    // reserved the claimed length at once: 48 connections grew the node by 2.8 GiB of
    // (untouched) memory, from 8 bytes each.
    let mut node = Node::start();
    node.kill9();
    node.controller = format!("127.0.0.1:{}", sluice_compat_tests::reserve_port());
    node.restart();
    let before = node.virtual_kib();
    let mut held = Vec::new();
    for _ in 0..48 {
        let mut s = TcpStream::connect(&node.controller).expect("connect");
        s.write_all(&(60u32 << 20).to_be_bytes()).unwrap();
        s.write_all(b"{\"Vote\":").unwrap();
        held.push(s);
    }
    std::thread::sleep(Duration::from_secs(1));
    let grown_mib = node.virtual_kib().saturating_sub(before) / 1024;
    assert!(
        grown_mib < 512,
        "claimed frames grew the node by {grown_mib} MiB"
    );
    drop(held);
    assert!(node.is_running());
    assert!(api_versions_ok(&node).contains(&0), "the node still serves");
}

/// A CreateTopics asking for two billion partitions (Kafka's CLI sends it as asked): once
/// committed and applied by every node, which then allocated until it died, and again at
/// each restart (the command is in the Raft log). Kafka refuses over 10,000 per request.
#[test]
fn creating_billions_of_partitions_is_a_policy_violation() {
    let mut node = Node::start();
    let name = topic("huge");
    let out = sluice_compat_tests::run(
        std::process::Command::new(sluice_compat_tests::launcher("kafka-topics")).args([
            "--bootstrap-server",
            &node.kafka,
            "--create",
            "--topic",
            &name,
            "--partitions",
            "2000000000",
        ]),
        Duration::from_secs(60),
        None,
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("PolicyViolationException")
            && said.contains("Excessively large number of partitions per request"),
        "{said}"
    );
    assert!(node.is_running(), "{}", node.log_tail());
    // The refused command is in the Raft log: a restart applies it again.
    node.kill9();
    node.restart();
    let fits = topic("fits");
    kcat_produce(&node, &fits, b"after", &[]);
    assert_eq!(kcat_read(&node, &fits, "%s\n"), "after\n");
}

#[test]
fn corrupt_batch_gets_corrupt_message_and_nothing_is_written() {
    let node = Node::start();
    let topic = topic("corrupt");
    kcat_produce(&node, &topic, b"first\n", &[]);
    let code = raw_produce(&node, &topic, &[(1, "a value that will be damaged")], true);
    assert_eq!(code, 2, "CORRUPT_MESSAGE");

    let out = kcat_read(&node, &topic, "%s\n");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec!["first"],
        "nothing of the corrupt batch was stored"
    );
}
