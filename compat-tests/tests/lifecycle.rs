//! Data lifecycle with real clients: size retention, DeleteRecords (`kafka-delete-records`),
//! log compaction of a user topic, and the free-space floor.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::process::Command;
use std::time::Duration;

use sluice_compat_tests::{
    kcat_produce, kcat_read, launcher, run, run_ok, topic, wait_until, Node,
};

fn create_topic(node: &Node, topic: &str, configs: &[&str]) {
    let mut cmd = Command::new(launcher("kafka-topics"));
    cmd.args([
        "--bootstrap-server",
        &node.kafka,
        "--create",
        "--topic",
        topic,
    ])
    .args(["--partitions", "1"]);
    for c in configs {
        cmd.args(["--config", c]);
    }
    run_ok(&mut cmd, Duration::from_secs(90), None);
}

/// (earliest, latest) offsets of partition 0.
fn offsets(node: &Node, topic: &str) -> (i64, i64) {
    let query = |at: &str| -> i64 {
        let out = run_ok(
            Command::new("kcat").args(["-b", &node.kafka, "-Q", "-t", &format!("{topic}:0:{at}")]),
            Duration::from_secs(30),
            None,
        );
        out.split_whitespace().last().unwrap().parse().unwrap()
    };
    (query("-2"), query("-1"))
}

/// Records of about 1 KiB, one batch per 10.
fn kib_records(n: usize, tag: &str) -> String {
    (0..n)
        .map(|i| format!("{tag}{i:05}-{}\n", "x".repeat(1000)))
        .collect()
}

#[test]
fn size_retention_keeps_at_least_retention_bytes_and_drops_the_rest() {
    let node = Node::start_with(&["--config", "log.retention.check.interval.ms=200"]);
    let topic = topic("bytes");
    create_topic(&node, &topic, &["retention.bytes=50000"]);
    kcat_produce(
        &node,
        &topic,
        kib_records(300, "r").as_bytes(),
        &["-X", "batch.num.messages=10", "-X", "linger.ms=0"],
    );
    wait_until(
        "retention.bytes to move the log start",
        Duration::from_secs(30),
        || offsets(&node, &topic).0 > 0,
    );
    let (start, end) = offsets(&node, &topic);
    assert_eq!(end, 300);
    let kept = (end - start) as usize;
    // ~1 KiB per record: at least 50 000 bytes stay, and not much more than that.
    assert!((48..=120).contains(&kept), "kept {kept} records");
    let read = kcat_read(&node, &topic, "%o\n");
    let first: i64 = read.lines().next().unwrap().parse().unwrap();
    assert_eq!(first, start, "consumers start at the new log start");
}

#[test]
fn kafka_delete_records_moves_the_log_start() {
    let node = Node::start();
    let topic = topic("delrec");
    create_topic(&node, &topic, &[]);
    kcat_produce(
        &node,
        &topic,
        kib_records(100, "d").as_bytes(),
        &["-X", "batch.num.messages=7"],
    );
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("offsets.json");
    let delete = |offset: i64| {
        std::fs::write(
            &spec,
            format!(r#"{{"partitions":[{{"topic":"{topic}","partition":0,"offset":{offset}}}],"version":1}}"#),
        )
        .unwrap();
        run(
            Command::new(launcher("kafka-delete-records"))
                .args(["--bootstrap-server", &node.kafka, "--offset-json-file"])
                .arg(&spec),
            Duration::from_secs(90),
            None,
        )
    };
    let out = delete(45);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("low_watermark: 45"), "{text}");
    assert_eq!(offsets(&node, &topic), (45, 100));
    let read = kcat_read(&node, &topic, "%o\n");
    assert_eq!(
        read.lines().next(),
        Some("45"),
        "reads start mid-batch at 45"
    );
    assert_eq!(read.lines().count(), 55);

    let out = delete(500);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("OffsetOutOfRange"),
        "past the high watermark: {text}"
    );
    assert_eq!(
        offsets(&node, &topic),
        (45, 100),
        "a refused delete changes nothing"
    );
}

#[test]
fn compaction_keeps_the_latest_value_per_key_and_drops_expired_tombstones() {
    let node = Node::start_with(&["--config", "log.cleaner.backoff.ms=200"]);
    let topic = topic("compact");
    create_topic(
        &node,
        &topic,
        &[
            "cleanup.policy=compact",
            "min.cleanable.dirty.ratio=0.01",
            "delete.retention.ms=3000",
        ],
    );
    // 10 rounds over keys k0..k9, each round its own batches; then k3 and k7 deleted.
    for round in 0..10 {
        let input: String = (0..10).map(|k| format!("k{k}:v{round}\n")).collect();
        kcat_produce(&node, &topic, input.as_bytes(), &["-K:", "-z", "lz4"]);
    }
    kcat_produce(&node, &topic, b"k3:\nk7:\n", &["-K:", "-Z"]);
    kcat_produce(&node, &topic, b"last:x\n", &["-K:"]);
    assert_eq!(offsets(&node, &topic).1, 103);

    let live = || kcat_read(&node, &topic, "%k=%s@%o\n");
    wait_until(
        "superseded values to be compacted away",
        Duration::from_secs(30),
        || live().lines().count() <= 11,
    );
    let expected_values: Vec<String> = (0..10)
        .filter(|k| *k != 3 && *k != 7)
        .map(|k| format!("k{k}=v9@{}", 90 + k))
        .collect();
    let now = live();
    for e in &expected_values {
        assert!(
            now.contains(e),
            "latest value kept at its offset: {e} in\n{now}"
        );
    }
    assert!(now.contains("last=x@102"));
    // The tombstones outlive compaction for delete.retention.ms, then go too.
    wait_until("expired tombstones to go", Duration::from_secs(30), || {
        let l = live();
        !l.contains("k3=") && !l.contains("k7=")
    });
    assert_eq!(live().lines().count(), 9);

    // A record without a key has no place in a compacted topic.
    let out = run(
        Command::new("kcat")
            .args(["-P", "-b", &node.kafka, "-t", &topic])
            .args(["-X", "message.send.max.retries=0"]),
        Duration::from_secs(30),
        Some(b"no key\n"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("failed to validate record"), "{err}");
    // In a batch of keyed and keyless records the broker names the keyless ones in
    // `record_errors` (KIP-467): librdkafka then fails them as invalid and their keyed
    // batch-mates with an error of their own.
    let out = run_ok(
        Command::new(launcher("keyless-batch")).args([
            "--bootstrap",
            &node.kafka,
            "--topic",
            &topic,
        ]),
        Duration::from_secs(60),
        None,
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "k1 _INVALID_DIFFERENT_RECORD",
            "- INVALID_RECORD",
            "k2 _INVALID_DIFFERENT_RECORD",
            "- INVALID_RECORD"
        ],
        "{out}"
    );
}

#[test]
fn compaction_reaches_records_an_earlier_pass_left_in_the_last_batch() {
    // A pass never rewrites the last batch; once a later write makes it an older one, it is
    // dirty again. Here the first 3,000 records are one batch: the pass that found it last
    // must not count it as cleaned (it did, so 10 new records never reached the dirty ratio).
    let node = Node::start_with(&["--config", "log.cleaner.backoff.ms=200"]);
    let topic = topic("kv");
    create_topic(
        &node,
        &topic,
        &["cleanup.policy=compact", "min.cleanable.dirty.ratio=0.01"],
    );
    let round = |from: usize, to: usize| -> String {
        (from..to).map(|i| format!("k{}:{i}\n", i % 10)).collect()
    };
    let one_batch = [
        "-K:",
        "-X",
        "linger.ms=2000",
        "-X",
        "batch.num.messages=100000",
    ];
    kcat_produce(&node, &topic, round(0, 3000).as_bytes(), &one_batch);
    let records = || kcat_read(&node, &topic, "%o\n").lines().count();
    assert_eq!(records(), 3000);
    // Several cleaner passes go by with that batch last.
    std::thread::sleep(Duration::from_secs(2));
    kcat_produce(&node, &topic, round(3000, 3010).as_bytes(), &one_batch);
    wait_until(
        "the old batch to be compacted",
        Duration::from_secs(30),
        || records() <= 20,
    );
    let live = kcat_read(&node, &topic, "%k=%s@%o\n");
    for k in 0..10 {
        let last = 3000 + k;
        assert!(live.contains(&format!("k{k}={last}@{last}")), "{live}");
    }
}

/// Free bytes on the file system holding `path`.
fn free_bytes(path: &std::path::Path) -> u64 {
    let out = run_ok(
        Command::new("df").args(["-B1", "--output=avail"]).arg(path),
        Duration::from_secs(10),
        None,
    );
    out.lines().last().unwrap().trim().parse().unwrap()
}

#[test]
fn below_the_free_space_floor_produce_fails_then_resumes_and_nothing_is_lost() {
    let scratch = tempfile::tempdir().unwrap();
    let free = free_bytes(scratch.path());
    // Room for the test's own writes above the floor, but not for the ballast.
    let floor = free.saturating_sub(400 << 20);
    let node = Node::start_with(&["--config", &format!("log.dir.min.free.bytes={floor}")]);
    let topic = topic("diskfull");
    create_topic(&node, &topic, &[]);
    kcat_produce(&node, &topic, kib_records(100, "a").as_bytes(), &[]);

    let ballast = node.data_dir().join("ballast");
    run_ok(
        Command::new("fallocate").args(["-l", "800M"]).arg(&ballast),
        Duration::from_secs(60),
        None,
    );
    let refused = || {
        let out = run(
            Command::new("kcat")
                .args(["-P", "-b", &node.kafka, "-t", &topic, "-X", "acks=all"])
                .args([
                    "-X",
                    "message.send.max.retries=0",
                    "-X",
                    "message.timeout.ms=5000",
                ]),
            Duration::from_secs(30),
            Some(b"refused?\n"),
        );
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    wait_until(
        "produce to be refused below the floor",
        Duration::from_secs(15),
        || refused().contains("Disk error"),
    );
    // Consumers keep working meanwhile.
    let read = kcat_read(&node, &topic, "%s\n");
    assert_eq!(read.lines().filter(|l| l.starts_with('a')).count(), 100);

    std::fs::remove_file(&ballast).unwrap();
    wait_until(
        "produce to resume once space is freed",
        Duration::from_secs(15),
        || !refused().contains("Disk error"),
    );
    kcat_produce(&node, &topic, kib_records(50, "b").as_bytes(), &[]);
    let read = kcat_read(&node, &topic, "%s\n");
    assert_eq!(
        read.lines().filter(|l| l.starts_with('a')).count(),
        100,
        "acknowledged data intact"
    );
    assert_eq!(read.lines().filter(|l| l.starts_with('b')).count(), 50);
}

#[test]
fn growing_a_topic_under_load_loses_and_reorders_nothing_already_written() {
    let node = Node::start();
    let topic = topic("grow");
    create_topic(&node, &topic, &[]);
    let grown = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (bootstrap, topic, grown) = (node.kafka.clone(), topic.clone(), grown.clone());
        std::thread::spawn(move || {
            // 20 keys, each with an increasing sequence number, in runs of 1000 records that
            // go on until 5 runs after the topic grew.
            let mut after = 0;
            let mut chunk = 0;
            while after < 5 && chunk < 500 {
                if grown.load(std::sync::atomic::Ordering::Acquire) {
                    after += 1;
                }
                let input: String = (chunk * 1000..(chunk + 1) * 1000)
                    .map(|i| format!("key{}:{i}\n", i % 20))
                    .collect();
                run_ok(
                    Command::new("kcat")
                        .args([
                            "-P", "-b", &bootstrap, "-t", &topic, "-K:", "-X", "acks=all",
                        ])
                        // Ordering across retries (a new partition's first produce may
                        // be retried) is promised to idempotent producers only, in Kafka too.
                        .args([
                            "-X",
                            "batch.num.messages=50",
                            "-X",
                            "enable.idempotence=true",
                        ]),
                    Duration::from_secs(60),
                    Some(input.as_bytes()),
                );
                chunk += 1;
            }
            chunk * 1000
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    run_ok(
        Command::new(launcher("kafka-topics"))
            .args([
                "--bootstrap-server",
                &node.kafka,
                "--alter",
                "--topic",
                &topic,
            ])
            .args(["--partitions", "4"]),
        Duration::from_secs(90),
        None,
    );
    grown.store(true, std::sync::atomic::Ordering::Release);
    let written = writer.join().unwrap();
    let read = kcat_read(&node, &topic, "%p %k %s\n");
    let mut last: std::collections::HashMap<(String, String), i64> = Default::default();
    let mut total = 0;
    let mut per_partition = [0; 4];
    for line in read.lines() {
        let mut f = line.split(' ');
        let (p, k, v) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        let seq: i64 = v.parse().unwrap();
        let prev = last.insert((p.to_string(), k.to_string()), seq);
        assert!(
            prev.is_none_or(|prev| prev < seq),
            "{k} out of order in partition {p}"
        );
        total += 1;
        per_partition[p.parse::<usize>().unwrap()] += 1;
    }
    assert_eq!(total, written, "every acknowledged record is there once");
    assert!(
        per_partition[0] > 0 && per_partition[1..].iter().sum::<i32>() > 0,
        "the topic grew while records were written: {per_partition:?}"
    );
}
