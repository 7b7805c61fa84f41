//! `/metrics` after real traffic: values move as expected, and every metric the Grafana
//! dashboard queries is one a running Sluice exports.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::time::{Duration, Instant};

use sluice_compat_tests::{
    commit_offsets, kcat_produce, kcat_read, metric_sample as sample, raw_produce,
    scrape_metrics as scrape, topic, Node,
};

/// Metric names named in the dashboard's queries (histogram series mapped to their family).
fn dashboard_metrics() -> Vec<String> {
    let path = sluice_compat_tests::compat_dir().join("../grafana/dashboards/sluice.json");
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut names = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            for token in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if token.starts_with("sluice_") || token.starts_with("process_") {
                    names.push(token.trim_end_matches("_bucket").to_string());
                }
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

#[test]
fn metrics_follow_traffic_and_cover_the_dashboard() {
    let node = Node::start();
    let topic = topic("metrics");
    let input: String = (0..1000).map(|i| format!("m{i}\n")).collect();
    kcat_produce(&node, &topic, input.as_bytes(), &[]);
    assert_eq!(kcat_read(&node, &topic, "%s\n").lines().count(), 1000);
    assert_eq!(
        raw_produce(&node, "no-such-topic", &[(1, "x")], false),
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    // A group that has consumed 10 of the 1000 records: lag 990.
    commit_offsets(&node, &topic, "g-metrics", 10);

    let lag = format!(
        "sluice_consumer_group_lag{{group=\"g-metrics\",topic=\"{topic}\",partition=\"0\"}}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = scrape(&node);
        if sample(&text, &lag).is_some() {
            break text;
        }
        assert!(Instant::now() < deadline, "no lag sample appeared:\n{text}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(
        sample(&text, &lag),
        Some(990.0),
        "lag is what is unconsumed"
    );
    assert_eq!(
        sample(
            &text,
            &format!("sluice_records_in_total{{topic=\"{topic}\"}}")
        ),
        Some(1000.0)
    );
    assert!(
        sample(
            &text,
            &format!("sluice_bytes_in_total{{topic=\"{topic}\"}}")
        )
        .unwrap()
            > 1000.0 * 4.0
    );
    let hw = format!("sluice_partition_high_watermark{{topic=\"{topic}\",partition=\"0\"}}");
    assert_eq!(sample(&text, &hw), Some(1000.0));
    assert!(sample(&text, "sluice_requests_total{api=\"Produce\"}").unwrap() >= 1.0);
    assert!(sample(&text, "process_resident_memory_bytes").unwrap() > 1e6);
    assert_eq!(sample(&text, "sluice_raft_leader_id"), Some(1.0));
    let errors = "sluice_request_errors_total{api=\"Produce\",code=\"3\"}";
    assert_eq!(sample(&text, errors), Some(1.0));
    assert!(
        sample(
            &text,
            &format!("sluice_bytes_out_total{{topic=\"{topic}\"}}")
        )
        .unwrap()
            > 1000.0 * 4.0
    );

    // Followers' replication happens only in clusters (follower_fetching.rs checks it),
    // throttles only past a quota (quotas.rs checks them), logins only on SASL listeners
    // (security.rs, re-authentications too) and denials only with an authorizer (acls.rs).
    let not_on_a_quiet_node = [
        "sluice_replication_bytes_out_total",
        "sluice_client_quota_throttle_milliseconds_total",
        "sluice_authentications_total",
        "sluice_reauthentications_total",
        "sluice_expired_sessions_closed_total",
        "sluice_authorization_denied_total",
    ];
    for name in dashboard_metrics()
        .into_iter()
        .filter(|n| !not_on_a_quiet_node.contains(&n.as_str()))
    {
        let exported = text
            .lines()
            .any(|l| l.starts_with(&format!("# TYPE {name} ")));
        assert!(
            exported,
            "the dashboard queries {name}, which /metrics does not export"
        );
    }
}

#[test]
fn a_fresh_node_exports_every_unlabelled_family_in_valid_exposition_format() {
    let node = Node::start();
    let text = sluice_compat_tests::scrape_metrics(&node);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("the exposition parses as Prometheus text");
    let names: std::collections::HashSet<&str> =
        scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    for family in [
        "sluice_connections_active",
        "sluice_partitions_leader",
        "sluice_partitions_under_replicated",
        "sluice_partitions_offline",
        "sluice_partitions_under_min_isr",
        "sluice_isr_shrinks_total",
        "sluice_isr_expands_total",
        "sluice_raft_term",
        "sluice_raft_leader_id",
        "sluice_raft_commit_index",
        "sluice_raft_applied_index",
        "sluice_raft_elections_total",
        "sluice_rocksdb_live_data_bytes",
        "sluice_rocksdb_memtable_bytes",
        "sluice_rocksdb_pending_compaction_bytes",
        "sluice_rocksdb_write_stalls_total",
        "sluice_storage_flush_duration_seconds",
        "sluice_storage_sync_duration_seconds",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(
            names.contains(family),
            "{family} is not exported at start-up"
        );
    }
    // Labelled families whose label values are known at start are there at 0 too, so the
    // dashboard's request and error panels show 0 rather than "No data".
    for series in [
        "sluice_requests_total{api=\"Produce\"}",
        "sluice_requests_total{api=\"Fetch\"}",
        "sluice_request_errors_total{api=\"Produce\",code=\"0\"}",
        "sluice_request_errors_total{api=\"JoinGroup\",code=\"0\"}",
        "sluice_fetch_read_ahead_total{outcome=\"used\"}",
        "sluice_fetch_read_ahead_total{outcome=\"dropped\"}",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{series} 0"))),
            "{series} is not exported at 0 at start-up"
        );
    }
}
