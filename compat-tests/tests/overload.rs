//! Peak shaving under overload: 500 connections each sending 1 MiB produce requests as fast
//! as they can. With `queued.max.request.bytes` the broker reads no more than that much of
//! unanswered requests at once and leaves the rest in the sockets, so its memory stays
//! within the cap plus its RocksDB budgets, however many clients push.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use sluice_compat_tests::{kcat_produce, produce_frame, raw_produce, topic, Node};

const CONNECTIONS: usize = 500;
const FLOOD: Duration = Duration::from_secs(15);
const MIB: u64 = 1 << 20;
/// `queued.max.request.bytes`
const CAP: u64 = 16 * MIB;
/// `sluice.storage.write.buffer.budget.bytes`
const MEMTABLES: u64 = 64 * MIB;
/// `sluice.storage.block.cache.bytes` (Sluice's default)
const BLOCK_CACHE: u64 = 64 * MIB;

#[test]
fn five_hundred_flooding_producers_stay_within_the_request_cap() {
    let node = Node::start_with(&[
        "--config",
        &format!("queued.max.request.bytes={CAP}"),
        "--config",
        &format!("sluice.storage.write.buffer.budget.bytes={MEMTABLES}"),
    ]);
    let topic = topic("overload");
    kcat_produce(&node, &topic, b"first\n", &[]);
    let idle_kib = node.rss_kib();

    let value = "v".repeat(MIB as usize - 200);
    let frame = Arc::new(produce_frame(&topic, &[(0, value.as_str())], false, 1));
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for _ in 0..CONNECTIONS {
        let Ok(mut s) = TcpStream::connect(&node.kafka) else {
            continue;
        };
        let mut r = s.try_clone().unwrap();
        let (frame, stop) = (Arc::clone(&frame), Arc::clone(&stop));
        threads.push(thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if s.write_all(&frame).is_err() {
                    return;
                }
            }
            let _ = s.shutdown(std::net::Shutdown::Both);
        }));
        let answered = Arc::clone(&answered);
        threads.push(thread::spawn(move || {
            let mut buf = vec![0u8; 64 << 10];
            loop {
                match r.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => answered.fetch_add(n as u64, Ordering::Relaxed),
                };
            }
        }));
    }

    let started = Instant::now();
    let mut peak_kib = 0;
    while started.elapsed() < FLOOD {
        peak_kib = peak_kib.max(node.rss_kib());
        thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let grown = (peak_kib.saturating_sub(idle_kib)) * 1024;
    println!(
        "RSS idle {} MiB, peak {} MiB over {} s of {CONNECTIONS} flooding connections; \
         {} KiB of responses",
        idle_kib / 1024,
        peak_kib / 1024,
        FLOOD.as_secs(),
        answered.load(Ordering::Relaxed) / 1024
    );
    assert!(answered.load(Ordering::Relaxed) > 0, "nothing was answered");
    // The cap, the memtables and the block cache, and as much again for allocator slack.
    let bound = 2 * (CAP + MEMTABLES + BLOCK_CACHE);
    assert!(
        grown <= bound,
        "RSS grew {} MiB, over {} MiB",
        grown / MIB,
        bound / MIB
    );
    // Still serving.
    assert_eq!(raw_produce(&node, &topic, &[(0, "after")], false), 0);
}
