//! MirrorMaker 2 (dedicated mode, Kafka 4.4's Connect runtime) from one Sluice cluster to
//! another: a topic's records arrive under the remote topic name (`A.<topic>`), partition
//! for partition, and a consumer group's committed offsets are translated onto it, so the
//! group could move to the other cluster without reading everything again.
//!
//! The group reads the whole topic before MirrorMaker starts. MirrorMaker translates an
//! offset through the nearest offset sync at or below it, and whether its checkpoint task
//! keeps the early syncs depends on a race inside MirrorMaker (when it loads its
//! checkpoints topic against when the source task writes syncs; with only the newest sync
//! kept, an offset in the middle of a partition is never translated). A group at the end of
//! every partition is translatable either way.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::BTreeMap;
use std::fs::File;
use std::process::{Command, Stdio};
use std::time::Duration;

use sluice_compat_tests::{kcat_produce, launcher, run, run_ok, topic, wait_until, Node};

const RECORDS: usize = 1_000;
const GROUP: &str = "g-mm2";

/// `partition value` lines of a whole topic, sorted and each once (MirrorMaker copies at
/// least once), or None while the topic does not exist.
fn records(node: &Node, topic: &str) -> Option<Vec<String>> {
    let out = run(
        Command::new("kcat")
            .args(["-C", "-b", &node.kafka, "-t", topic, "-e", "-q"])
            .args(["-o", "beginning", "-f", "%p %s\n"]),
        Duration::from_secs(60),
        None,
    );
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    lines.sort();
    lines.dedup();
    out.status.success().then_some(lines)
}

/// The group's committed offset per partition of `topic`, from `kafka-consumer-groups`.
fn committed(node: &Node, topic: &str) -> BTreeMap<i32, i64> {
    let out = run(
        Command::new(launcher("kafka-consumer-groups")).args([
            "--bootstrap-server",
            &node.kafka,
            "--describe",
            "--group",
            GROUP,
        ]),
        Duration::from_secs(60),
        None,
    );
    // GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG ...
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(1) == Some(&topic)).then_some(())?;
            Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
        })
        .collect()
}

#[test]
fn mirror_maker_2_copies_records_and_translates_committed_offsets() {
    let source = Node::start_with(&["--config", "num.partitions=3"]);
    let target = Node::start();
    let topic = topic("mm2-orders");
    // Keyed, so every partition gets records.
    let input: String = (0..RECORDS)
        .map(|i| format!("k{i}:order-{i:05}\n"))
        .collect();
    kcat_produce(&source, &topic, input.as_bytes(), &["-K:"]);
    // A group reads it on the source cluster and commits (on close).
    let consumed = run_ok(
        Command::new(launcher("kafka-console-consumer"))
            .args(["--bootstrap-server", &source.kafka, "--topic", &topic])
            .args(["--group", GROUP, "--from-beginning"])
            .args(["--max-messages", &RECORDS.to_string()]),
        Duration::from_secs(90),
        None,
    );
    assert_eq!(
        consumed.lines().filter(|l| l.starts_with("order-")).count(),
        RECORDS
    );
    let upstream = committed(&source, &topic);
    assert_eq!(
        upstream.values().sum::<i64>(),
        RECORDS as i64,
        "{upstream:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mm2.properties");
    // No ACL sync: Sluice has no ACLs yet (DescribeAcls is unsupported), and MirrorMaker
    // would log that as an error at every refresh.
    std::fs::write(
        &config,
        format!(
            "clusters = A, B\n\
             A.bootstrap.servers = {}\n\
             B.bootstrap.servers = {}\n\
             A->B.enabled = true\n\
             B->A.enabled = false\n\
             A->B.topics = mm2-orders.*\n\
             A->B.groups = {GROUP}\n\
             replication.factor = 1\n\
             checkpoints.topic.replication.factor = 1\n\
             heartbeats.topic.replication.factor = 1\n\
             offset-syncs.topic.replication.factor = 1\n\
             offset.storage.replication.factor = 1\n\
             status.storage.replication.factor = 1\n\
             config.storage.replication.factor = 1\n\
             refresh.topics.interval.seconds = 1\n\
             refresh.groups.interval.seconds = 1\n\
             emit.checkpoints.interval.seconds = 1\n\
             sync.group.offsets.enabled = true\n\
             sync.group.offsets.interval.seconds = 1\n\
             offset.lag.max = 10\n\
             sync.topic.acls.enabled = false\n",
            source.kafka, target.kafka
        ),
    )
    .unwrap();
    let log = dir.path().join("mm2.log");
    let mut mm2 = Command::new(launcher("connect-mirror-maker"))
        .arg(&config)
        .stdout(File::create(&log).unwrap())
        .stderr(Stdio::from(
            File::create(dir.path().join("mm2.err")).unwrap(),
        ))
        .spawn()
        .expect("connect-mirror-maker");
    let evidence = || {
        let err = std::fs::read_to_string(dir.path().join("mm2.err")).unwrap_or_default();
        let tail: Vec<&str> = err.lines().rev().take(40).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    };

    let remote = format!("A.{topic}");
    let want = records(&source, &topic).unwrap();
    let copied = std::panic::catch_unwind(|| {
        wait_until("the records reached B", Duration::from_secs(180), || {
            records(&target, &remote).as_ref() == Some(&want)
        })
    });
    assert!(
        copied.is_ok(),
        "MirrorMaker 2 did not copy {topic}:\n{}",
        evidence()
    );

    // Checkpoints translate the group's offsets; MirrorMaker commits them on B.
    let synced = std::panic::catch_unwind(|| {
        wait_until(
            "the group's offsets reached B",
            Duration::from_secs(180),
            || committed(&target, &remote).len() == upstream.len(),
        )
    });
    assert!(synced.is_ok(), "no offsets on B:\n{}", evidence());
    let downstream = committed(&target, &remote);
    // Translation never skips a record: at most the upstream offset, and it moved.
    for (p, up) in &upstream {
        let down = downstream[p];
        assert!(
            down <= *up,
            "partition {p}: upstream {up}, downstream {down}"
        );
    }
    assert!(downstream.values().sum::<i64>() > 0, "{downstream:?}");
    println!("committed upstream {upstream:?}, translated {downstream:?}");
    let _ = mm2.kill();
    let _ = mm2.wait();
}
