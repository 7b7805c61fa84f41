//! Kafka's `kafka-configs` tool (4.4) on topics and groups: describing a topic shows where
//! each value comes from (its synonyms: the topic's override, the broker's static config,
//! Kafka's default), and a group's configs are set, described, bounded by the broker and
//! removed again; a node's log levels are changed at run time through its broker-loggers.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::process::Command;
use std::time::Duration;

use sluice_compat_tests::{kafka_configs, launcher, run, run_ok, topic, Node};

const LIMIT: Duration = Duration::from_secs(90);

/// The line of `kafka-configs --describe` output about `name` (`  name=value ...`).
fn line_of<'a>(described: &'a str, name: &str) -> &'a str {
    described
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in:\n{described}"))
}

#[test]
fn a_topics_configs_are_described_with_their_synonyms() {
    let node = Node::start_with(&["--config", "log.retention.ms=86400000"]);
    let topic = topic("configs-synonyms");
    run_ok(
        Command::new(launcher("kafka-topics"))
            .args(["--bootstrap-server", &node.kafka, "--create", "--topic"])
            .arg(&topic)
            .args(["--config", "retention.ms=1000"]),
        LIMIT,
        None,
    );
    let described = kafka_configs(
        &node,
        &[
            "--describe",
            "--all",
            "--entity-type",
            "topics",
            "--entity-name",
            &topic,
        ],
    );
    assert!(
        line_of(&described, "retention.ms").contains(
            "synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=1000, \
             STATIC_BROKER_CONFIG:log.retention.ms=86400000, \
             DEFAULT_CONFIG:log.retention.ms=604800000}"
        ),
        "{described}"
    );
    assert!(
        line_of(&described, "segment.bytes")
            .contains("synonyms={DEFAULT_CONFIG:log.segment.bytes=1073741824}"),
        "{described}"
    );
}

#[test]
fn a_groups_configs_are_set_described_bounded_and_deleted() {
    let node = Node::start_with(&[
        "--config",
        "group.consumer.min.session.timeout.ms=1000",
        "--config",
        "group.consumer.min.heartbeat.interval.ms=500",
    ]);
    let group = [
        "--entity-type",
        "groups",
        "--entity-name",
        "configured-group",
    ];
    let alter = |config: &str| {
        run(
            Command::new(launcher("kafka-configs"))
                .args(["--bootstrap-server", &node.kafka, "--alter"])
                .args(group)
                .args(["--add-config", config]),
            LIMIT,
            None,
        )
    };

    let set = alter("consumer.session.timeout.ms=3000,consumer.heartbeat.interval.ms=1000");
    assert!(set.status.success(), "{set:?}");
    let described = kafka_configs(&node, &[&["--describe", "--all"][..], &group].concat());
    assert!(
        line_of(&described, "consumer.session.timeout.ms").contains(
            "consumer.session.timeout.ms=3000 sensitive=false \
             synonyms={DYNAMIC_GROUP_CONFIG:consumer.session.timeout.ms=3000, \
             DEFAULT_CONFIG:group.consumer.session.timeout.ms=45000}"
        ),
        "{described}"
    );
    assert!(
        line_of(&described, "consumer.heartbeat.interval.ms").contains(
            "consumer.heartbeat.interval.ms=1000 sensitive=false \
             synonyms={DYNAMIC_GROUP_CONFIG:consumer.heartbeat.interval.ms=1000, \
             DEFAULT_CONFIG:group.consumer.heartbeat.interval.ms=5000}"
        ),
        "{described}"
    );

    // Out of the broker's range, a heartbeat no shorter than the session, or not a group
    // config: refused in Kafka's words, and nothing changes.
    for (refused, why) in [
        (
            "consumer.session.timeout.ms=500",
            "consumer.session.timeout.ms must be in the range 1000 to 60000 inclusive.",
        ),
        (
            "consumer.heartbeat.interval.ms=3000",
            "consumer.session.timeout.ms must be greater than consumer.heartbeat.interval.ms",
        ),
        ("retention.ms=1", "Unknown group config name: retention.ms"),
    ] {
        let out = alter(refused);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{refused} was accepted");
        assert!(
            stderr.contains(&format!("InvalidConfigurationException: {why}")),
            "{stderr}"
        );
    }
    let described = kafka_configs(&node, &[&["--describe"][..], &group].concat());
    assert!(
        described.contains("consumer.session.timeout.ms=3000"),
        "{described}"
    );

    kafka_configs(
        &node,
        &[
            &["--alter", "--delete-config", "consumer.session.timeout.ms"][..],
            &group,
        ]
        .concat(),
    );
    let described = kafka_configs(&node, &[&["--describe", "--all"][..], &group].concat());
    assert!(
        line_of(&described, "consumer.session.timeout.ms")
            .starts_with("consumer.session.timeout.ms=45000"),
        "{described}"
    );
}

/// Dynamic broker configs: set as the cluster default and for one broker, they apply at
/// once (a record over the new `message.max.bytes` is refused), DescribeConfigs shows where
/// each value comes from, a config that cannot change at run time is refused, and removing
/// them restores the static value.
#[test]
fn broker_configs_change_at_run_time() {
    let node = Node::start_with(&["--config", "log.retention.ms=86400000"]);
    let topic = topic("configs-dynamic");
    let produce = |size: usize| {
        run(
            Command::new("kcat")
                .args(["-P", "-b", &node.kafka, "-t", &topic])
                .args(["-X", "message.max.bytes=1000000"]),
            LIMIT,
            Some(format!("{}\n", "x".repeat(size)).as_bytes()),
        )
    };
    assert!(produce(5000).status.success(), "before any change");

    let default = ["--entity-type", "brokers", "--entity-default"];
    let broker = ["--entity-type", "brokers", "--entity-name", "1"];
    kafka_configs(
        &node,
        &[
            &[
                "--alter",
                "--add-config",
                "message.max.bytes=2000,log.retention.ms=3600000,\
                 log.cleaner.delete.retention.ms=1000",
            ][..],
            &default,
        ]
        .concat(),
    );
    kafka_configs(
        &node,
        &[
            &["--alter", "--add-config", "log.retention.ms=7200000"][..],
            &broker,
        ]
        .concat(),
    );
    let refused = produce(5000);
    assert!(
        !refused.status.success()
            && String::from_utf8_lossy(&refused.stderr).contains("Message size too large"),
        "a 5000-byte record under message.max.bytes=2000: {refused:?}"
    );

    let described = kafka_configs(&node, &[&["--describe"][..], &broker].concat());
    assert!(
        line_of(&described, "log.retention.ms").contains(
            "log.retention.ms=7200000 sensitive=false \
             synonyms={DYNAMIC_BROKER_CONFIG:log.retention.ms=7200000, \
             DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=3600000, \
             STATIC_BROKER_CONFIG:log.retention.ms=86400000, \
             DEFAULT_CONFIG:log.retention.ms=604800000}"
        ),
        "{described}"
    );
    let described = kafka_configs(&node, &[&["--describe"][..], &default].concat());
    assert!(
        line_of(&described, "message.max.bytes").starts_with("message.max.bytes=2000"),
        "{described}"
    );
    // A topic without its own retention takes the broker's dynamic value.
    let described = kafka_configs(
        &node,
        &[
            "--describe",
            "--all",
            "--entity-type",
            "topics",
            "--entity-name",
            &topic,
        ],
    );
    assert!(
        line_of(&described, "retention.ms").starts_with("retention.ms=7200000"),
        "{described}"
    );
    // And the cleaner's default for tombstones.
    assert!(
        line_of(&described, "delete.retention.ms").starts_with("delete.retention.ms=1000"),
        "{described}"
    );

    let out = run(
        Command::new(launcher("kafka-configs"))
            .args(["--bootstrap-server", &node.kafka, "--alter"])
            .args(broker)
            .args(["--add-config", "num.partitions=5"]),
        LIMIT,
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Cannot update these configs dynamically: Set(num.partitions)"),
        "{stderr}"
    );

    kafka_configs(
        &node,
        &[
            &[
                "--alter",
                "--delete-config",
                "message.max.bytes,log.retention.ms,log.cleaner.delete.retention.ms",
            ][..],
            &default,
        ]
        .concat(),
    );
    kafka_configs(
        &node,
        &[
            &["--alter", "--delete-config", "log.retention.ms"][..],
            &broker,
        ]
        .concat(),
    );
    assert!(
        produce(5000).status.success(),
        "after the change is removed"
    );
    let described = kafka_configs(
        &node,
        &[
            "--describe",
            "--all",
            "--entity-type",
            "brokers",
            "--entity-name",
            "1",
        ],
    );
    assert!(
        line_of(&described, "log.retention.ms").starts_with("log.retention.ms=86400000"),
        "{described}"
    );
}

/// `kafka-configs --entity-type broker-loggers`: a node's loggers are described with their
/// levels, a logger set to DEBUG logs at debug at once, and deleting it gives it the root
/// level again.
#[test]
fn log_levels_change_through_the_broker_loggers() {
    let node = Node::start();
    let loggers = ["--entity-type", "broker-loggers", "--entity-name", "1"];
    let described = kafka_configs(&node, &[&["--describe"][..], &loggers].concat());
    assert!(
        line_of(&described, "root").starts_with("root=INFO"),
        "{described}"
    );
    let debug_lines = || {
        std::fs::read_to_string(node.log_path())
            .unwrap()
            .lines()
            .filter(|l| l.contains("DEBUG"))
            .count()
    };
    assert_eq!(debug_lines(), 0, "debug lines at the default level");

    kafka_configs(
        &node,
        &[&["--alter", "--add-config", "sluice=DEBUG"][..], &loggers].concat(),
    );
    // kafka-configs' own requests are now logged at debug level.
    let described = kafka_configs(&node, &[&["--describe"][..], &loggers].concat());
    assert!(
        line_of(&described, "sluice").starts_with("sluice=DEBUG"),
        "{described}"
    );
    assert!(debug_lines() > 0, "no debug line after sluice=DEBUG");

    let refused = run(
        Command::new(launcher("kafka-configs"))
            .args(["--bootstrap-server", &node.kafka, "--alter"])
            .args(loggers)
            .args(["--add-config", "sluice=LOUD"]),
        LIMIT,
        None,
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not a supported log level"),
        "{refused:?}"
    );

    kafka_configs(
        &node,
        &[&["--alter", "--delete-config", "sluice"][..], &loggers].concat(),
    );
    std::thread::sleep(Duration::from_secs(1)); // lines of connections closed before it
    let debugged = debug_lines();
    let described = kafka_configs(&node, &[&["--describe"][..], &loggers].concat());
    assert!(
        line_of(&described, "sluice").starts_with("sluice=INFO"),
        "{described}"
    );
    kafka_configs(&node, &[&["--describe"][..], &loggers].concat());
    assert_eq!(
        debug_lines(),
        debugged,
        "debug lines after the logger was deleted"
    );
}
