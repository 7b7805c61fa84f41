//! Client quotas with Kafka's own tools and clients (4.4): `kafka-configs --entity-type
//! clients|users` sets, describes and deletes them; a Java producer and a Java consumer with
//! a 1 MiB/s quota on their client id move about 1 MiB/s and see throttle times; librdkafka
//! (kcat) is held to its quota too; a (user, client id) quota overrides the defaults.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use sluice_compat_tests::{
    kafka_configs, launcher, metric_sample, run, run_ok, scrape_metrics, topic, Node,
};

const LIMIT: Duration = Duration::from_secs(120);
const MIB: f64 = 1024.0 * 1024.0;
/// The quota of the throttled clients.
const QUOTA: u64 = 1 << 20;

fn set_quota(node: &Node, entity: &[&str], config: &str) {
    kafka_configs(
        node,
        &[&["--alter", "--add-config", config][..], entity].concat(),
    );
}

/// `name=value` pairs of the perf tools' `--print-metrics` table (`group:name:{tags} : value`).
fn printed_metrics(out: &str) -> BTreeMap<String, f64> {
    out.lines()
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(':')?;
            let name = name.trim().split(':').nth(1)?.to_string();
            Some((name, value.trim().replace(',', "").parse().ok()?))
        })
        .collect()
}

#[test]
fn kafka_configs_sets_describes_and_deletes_client_quotas() {
    let node = Node::start();
    let client = ["--entity-type", "clients", "--entity-name", "reporting"];
    set_quota(
        &node,
        &client,
        "producer_byte_rate=1048576,consumer_byte_rate=2097152",
    );
    let user_default = ["--entity-type", "users", "--entity-default"];
    set_quota(&node, &user_default, "request_percentage=50");
    let pair = [
        "--entity-type",
        "users",
        "--entity-name",
        "alice",
        "--entity-type",
        "clients",
        "--entity-default",
    ];
    set_quota(&node, &pair, "producer_byte_rate=4096");

    let described = kafka_configs(&node, &[&["--describe"][..], &client].concat());
    assert!(
        described.contains("Quota configs for client-id 'reporting' are")
            && described.contains("producer_byte_rate=1048576.0")
            && described.contains("consumer_byte_rate=2097152.0"),
        "{described}"
    );
    let described = kafka_configs(&node, &[&["--describe"][..], &user_default].concat());
    assert!(
        described
            .contains("Quota configs for the default user-principal are request_percentage=50.0"),
        "{described}"
    );
    let described = kafka_configs(&node, &[&["--describe"][..], &pair].concat());
    assert!(
        described.contains(
            "Quota configs for user-principal 'alice', the default client-id are \
             producer_byte_rate=4096.0"
        ),
        "{described}"
    );
    // Every client-id entity, named or default.
    let all_clients = kafka_configs(&node, &["--describe", "--entity-type", "clients"]);
    assert!(all_clients.contains("'reporting'"), "{all_clients}");

    // Refused as Kafka refuses them: by the broker (a byte rate is a whole number) and by
    // the tool (not a quota).
    for (config, why) in [
        (
            "producer_byte_rate=1.5",
            "InvalidRequestException: Configuration producer_byte_rate must be a Long value",
        ),
        ("retention.ms=5", "Unexpected config names: retention.ms"),
    ] {
        let out = run(
            Command::new(launcher("kafka-configs"))
                .args(["--bootstrap-server", &node.kafka, "--alter"])
                .args(client)
                .args(["--add-config", config]),
            LIMIT,
            None,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stderr.contains(why) || stdout.contains(why),
            "{config}: {stdout}\n{stderr}"
        );
    }

    kafka_configs(
        &node,
        &[
            &["--alter", "--delete-config", "producer_byte_rate"][..],
            &client,
        ]
        .concat(),
    );
    let described = kafka_configs(&node, &[&["--describe"][..], &client].concat());
    assert!(
        described.contains("consumer_byte_rate=2097152.0")
            && !described.contains("producer_byte_rate"),
        "{described}"
    );
}

/// Kafka's precedence: a (user, client id) quota wins over the client id's own quota, and
/// the default client-id quota applies to every other client id. Checked by the throttle
/// each client sees after one burst, far over the smallest quota and far under the largest.
#[test]
fn the_most_specific_quota_applies() {
    let node = quota_broker();
    let name = topic("quota-precedence");
    // ANONYMOUS is the user of every connection until authentication lands.
    set_quota(
        &node,
        &["--entity-type", "clients", "--entity-default"],
        "producer_byte_rate=102400",
    );
    set_quota(
        &node,
        &["--entity-type", "clients", "--entity-name", "big"],
        "producer_byte_rate=102400",
    );
    set_quota(
        &node,
        &[
            "--entity-type",
            "users",
            "--entity-name",
            "ANONYMOUS",
            "--entity-type",
            "clients",
            "--entity-name",
            "big",
        ],
        "producer_byte_rate=1073741824",
    );
    let throttled = |client_id: &str| {
        let client_id = format!("client.id={client_id}");
        burst_throttle(&node, &name, 500, 1024, &[&client_id])
    };
    let (big, other) = (throttled("big"), throttled("other"));
    assert_eq!(big, 0.0, "the pair's 1 GiB/s quota applies to 'big'");
    assert!(
        other > 100.0,
        "the default 100 KiB/s quota: throttled {other} ms"
    );
}

/// The longest throttle Kafka's producer perf tool saw sending `records` of `size` bytes
/// as fast as it can, with producer properties `props`.
fn burst_throttle(node: &Node, topic: &str, records: usize, size: usize, props: &[&str]) -> f64 {
    let out = run_ok(
        Command::new(launcher("kafka-producer-perf-test"))
            .args(["--topic", topic, "--throughput", "-1", "--print-metrics"])
            .args(["--num-records", &records.to_string()])
            .args(["--record-size", &size.to_string(), "--command-property"])
            .arg(format!("bootstrap.servers={}", node.kafka))
            .args(props),
        LIMIT,
        None,
    );
    printed_metrics(&out)
        .get("produce-throttle-time-max")
        .copied()
        .unwrap_or_else(|| panic!("no produce-throttle-time-max in:\n{out}"))
}

/// A broker measuring quotas over 2 windows of 1 s: a client's first bytes pass at once up
/// to one window's worth (Kafka counts a rate over at least `quota.window.num - 1`
/// windows), so with Kafka's 11 windows a run would need minutes to show its steady rate.
fn quota_broker() -> Node {
    Node::start_with(&["--config", "quota.window.num=2"])
}

/// 21 MiB at 1 MiB/s: one window's burst, then about 20 s at the quota.
const RECORDS: usize = 21 * 1024;

#[test]
fn a_java_producer_and_consumer_keep_to_their_byte_rate_quotas() {
    let node = quota_broker();
    let name = topic("quota-java");
    set_quota(
        &node,
        &["--entity-type", "clients", "--entity-name", "slow"],
        &format!("producer_byte_rate={QUOTA},consumer_byte_rate={QUOTA}"),
    );
    let out = run_ok(
        Command::new(launcher("kafka-producer-perf-test"))
            .args([
                "--topic",
                &name,
                "--record-size",
                "1024",
                "--throughput",
                "-1",
            ])
            .args(["--num-records", &RECORDS.to_string(), "--print-metrics"])
            .arg("--command-property")
            .arg(format!("bootstrap.servers={}", node.kafka))
            .args(["client.id=slow", "acks=1"]),
        LIMIT,
        None,
    );
    // The last of its "21504 records sent, 1075.2 records/sec (1.05 MB/sec), ..." lines
    // is the whole run's.
    let rate: f64 = out
        .lines()
        .rfind(|l| l.contains(" records sent, "))
        .and_then(|l| l.split('(').nth(1)?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no summary in:\n{out}"));
    let throttle = printed_metrics(&out)["produce-throttle-time-max"];
    println!("producer: {rate:.2} MiB/s, throttled up to {throttle} ms");
    assert!(throttle > 0.0, "the producer saw no throttle:\n{out}");
    assert_rate(rate);

    let config = tempfile::NamedTempFile::new().unwrap();
    writeln!(config.as_file(), "client.id=slow").unwrap();
    let out = run_ok(
        Command::new(launcher("kafka-consumer-perf-test"))
            .args(["--bootstrap-server", &node.kafka, "--topic", &name])
            .args(["--messages", &RECORDS.to_string(), "--print-metrics"])
            // A throttled fetch is answered without records and its bytes do not count, so a
            // rate is kept only when one response is small against a window's worth of quota:
            // with the tool's 1 MiB per partition and 2 windows of 1 MiB, every other fetch
            // would be refused (Kafka's 11 windows leave room for 1 MiB responses).
            .args(["--fetch-size", "65536"])
            .args(["--timeout", "60000", "--command-config"])
            .arg(config.path()),
        LIMIT,
        None,
    );
    // A header line naming the columns, then one of values.
    let lines: Vec<&str> = out.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.contains("fetch.MB.sec"))
        .unwrap_or_else(|| panic!("no summary in:\n{out}"));
    let column = |name: &str| -> f64 {
        let at = lines[header]
            .split(',')
            .position(|c| c.trim() == name)
            .unwrap();
        lines[header + 1]
            .split(',')
            .nth(at)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let (rate, consumed) = (column("fetch.MB.sec"), column("data.consumed.in.MB"));
    let throttle = printed_metrics(&out)["fetch-throttle-time-max"];
    println!("consumer: {consumed:.1} MiB at {rate:.2} MiB/s, throttled up to {throttle} ms");
    assert!(throttle > 0.0, "the consumer saw no throttle:\n{out}");
    assert!(consumed >= 21.0, "{out}");
    assert_rate(rate);

    let scraped = scrape_metrics(&node);
    for quota in ["produce", "fetch"] {
        let prefix = format!(
            "sluice_client_quota_throttle_milliseconds_total{{quota=\"{quota}\",user=\"\",client_id=\"slow\"}}"
        );
        let throttled = metric_sample(&scraped, &prefix).unwrap_or(0.0);
        assert!(throttled > 0.0, "{prefix} = {throttled}");
    }
}

/// librdkafka, through kcat, with a 1 MiB/s producer quota.
#[test]
fn librdkafka_is_held_to_its_producer_quota() {
    let node = quota_broker();
    let name = topic("quota-kcat");
    set_quota(
        &node,
        &["--entity-type", "clients", "--entity-name", "rdkafka-slow"],
        &format!("producer_byte_rate={QUOTA}"),
    );
    let value = "x".repeat(1023);
    let input: String = (0..RECORDS).map(|_| format!("{value}\n")).collect();
    let started = Instant::now();
    let out = run(
        Command::new("kcat")
            .args(["-P", "-b", &node.kafka, "-t", &name])
            .args(["-X", "client.id=rdkafka-slow", "-X", "acks=1"]),
        LIMIT,
        Some(input.as_bytes()),
    );
    assert!(out.status.success(), "{out:?}");
    let secs = started.elapsed().as_secs_f64();
    let rate = RECORDS as f64 * 1024.0 / MIB / secs;
    println!("kcat: {RECORDS} KiB in {secs:.1} s = {rate:.2} MiB/s");
    assert_rate(rate);
}

/// Within 10 % of the quota.
fn assert_rate(rate: f64) {
    let quota = QUOTA as f64 / MIB;
    assert!(
        (rate - quota).abs() <= 0.1 * quota,
        "{rate:.2} MiB/s against a quota of {quota} MiB/s"
    );
}

/// `controller_mutation_rate` (KIP-599) with `kafka-topics`: a client with 1 partition
/// mutation per second may use Kafka's default burst of 11 s at once (one topic of 20
/// partitions overdraws it by 9), is then refused with THROTTLING_QUOTA_EXCEEDED (the tool
/// does not retry it), and may create topics again once the debt is paid.
#[test]
fn kafka_topics_is_held_to_its_controller_mutation_rate() {
    let node = Node::start();
    set_quota(
        &node,
        &["--entity-type", "clients", "--entity-name", "topic-admin"],
        "controller_mutation_rate=1",
    );
    let config = tempfile::NamedTempFile::new().unwrap();
    writeln!(config.as_file(), "client.id=topic-admin").unwrap();
    let create = |name: &str, partitions: &str| {
        run(
            Command::new(launcher("kafka-topics"))
                .args([
                    "--bootstrap-server",
                    &node.kafka,
                    "--create",
                    "--topic",
                    name,
                ])
                .args(["--partitions", partitions, "--command-config"])
                .arg(config.path()),
            LIMIT,
            None,
        )
    };
    let first = create(&topic("mutations-burst"), "20");
    assert!(first.status.success(), "{first:?}");
    let refused_at = Instant::now();
    let refused = create(&topic("mutations-refused"), "1");
    let text = String::from_utf8_lossy(&refused.stdout).to_string()
        + &String::from_utf8_lossy(&refused.stderr);
    assert!(
        text.contains("The throttling quota has been exceeded"),
        "a second topic within the debt: {refused:?}"
    );
    // The debt of 9 mutations is paid 9 s after the first create.
    std::thread::sleep(Duration::from_secs(10).saturating_sub(refused_at.elapsed()));
    let later = create(&topic("mutations-later"), "1");
    assert!(later.status.success(), "{later:?}");
    // A client without the quota is not held back meanwhile.
    let other = run_ok(
        Command::new(launcher("kafka-topics"))
            .args(["--bootstrap-server", &node.kafka, "--create"])
            .args(["--topic", &topic("mutations-free"), "--partitions", "50"]),
        LIMIT,
        None,
    );
    assert!(other.contains("Created topic"), "{other}");
    let scraped = scrape_metrics(&node);
    let prefix = "sluice_client_quota_throttle_milliseconds_total{quota=\"controller_mutation\",user=\"\",client_id=\"topic-admin\"}";
    let throttled = metric_sample(&scraped, prefix).unwrap_or(0.0);
    assert!(throttled > 0.0, "{prefix} = {throttled}");
}

/// `request_percentage`: a producer allowed 0.001 % of a thread (10 µs of broker time a
/// second) is answered with throttle times on its produce responses once its first few
/// requests have used that up (each throttle at most one window, 1 s, as in Kafka, so 20
/// one-record requests take about 20 s), while the same producer under another client id is
/// not throttled at all.
#[test]
fn a_request_percentage_quota_throttles_a_busy_client() {
    let node = Node::start();
    let name = topic("quota-request");
    set_quota(
        &node,
        &["--entity-type", "clients", "--entity-name", "busy"],
        "request_percentage=0.001",
    );
    // One record per request: many small requests.
    let produce = |client_id: &str| {
        let client_id = format!("client.id={client_id}");
        let props = [client_id.as_str(), "acks=1", "batch.size=1"];
        let one_at_a_time = "max.in.flight.requests.per.connection=1";
        burst_throttle(
            &node,
            &name,
            20,
            100,
            &[&props[..], &[one_at_a_time]].concat(),
        )
    };
    let free = produce("free");
    let busy = produce("busy");
    println!("produce-throttle-time-max: busy {busy} ms, free {free} ms");
    assert_eq!(free, 0.0, "a client without a quota was throttled");
    assert!(busy > 0.0, "the busy client saw no throttle");
    let scraped = scrape_metrics(&node);
    let prefix = "sluice_client_quota_throttle_milliseconds_total{quota=\"request\",user=\"\",client_id=\"busy\"}";
    let throttled = metric_sample(&scraped, prefix).unwrap_or(0.0);
    assert!(throttled > 0.0, "{prefix} = {throttled}");
}
