//! `sluice admin top`: a live view of one node, refreshed every `--interval` seconds. It
//! scrapes the node's own Prometheus exposition (GET /metrics) and turns the counters into
//! rates: bytes and records per topic, requests and errors per API, plus the node's gauges.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;

use sluice_client::http;

use super::{AdminArgs, Output};

/// Flags of `sluice admin top`.
#[derive(Debug, Args)]
pub(super) struct TopArgs {
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 2.0)]
    interval: f64,
    /// Stop after this many refreshes (0: until interrupted).
    #[arg(long, default_value_t = 0)]
    iterations: u64,
}

/// Samples of the counter families `top` turns into rates, by (family, label value).
type Counters = BTreeMap<(&'static str, String), f64>;

const RATES: &[(&str, &str)] = &[
    ("sluice_bytes_in_total", "topic"),
    ("sluice_records_in_total", "topic"),
    ("sluice_bytes_out_total", "topic"),
    ("sluice_requests_total", "api"),
    ("sluice_request_errors_total", "api"),
];

const GAUGES: &[(&str, &str)] = &[
    ("sluice_connections_active", "connections"),
    ("sluice_partitions_leader", "partitions led"),
    ("sluice_partitions_under_replicated", "under-replicated"),
    ("sluice_partitions_offline", "offline"),
    ("sluice_raft_leader_id", "controller leader"),
    ("process_resident_memory_bytes", "RSS bytes"),
];

pub(super) async fn run(args: &AdminArgs, top: &TopArgs) -> anyhow::Result<()> {
    let interval = Duration::from_secs_f64(top.interval.max(0.1));
    let clear = !args.json && std::io::stdout().is_terminal();
    let mut previous: Option<(Instant, Counters)> = None;
    let mut shown = 0;
    loop {
        let text = http::get_text(&args.http, "/metrics").await?;
        let now = Instant::now();
        let counters = counters(&text);
        if let Some((then, before)) = &previous {
            let secs = now.duration_since(*then).as_secs_f64();
            if clear {
                print!("\x1b[2J\x1b[H");
                println!(
                    "sluice top: {} every {:.1} s (Ctrl-C stops)\n",
                    args.http, secs
                );
            }
            view(&text, &counters, before, secs).print(args.json)?;
            shown += 1;
            if top.iterations > 0 && shown >= top.iterations {
                return Ok(());
            }
        }
        previous = Some((now, counters));
        tokio::time::sleep(interval).await;
    }
}

/// One refresh: the gauges, then per-topic and per-API rates over the last `secs`.
fn view(text: &str, now: &Counters, before: &Counters, secs: f64) -> Output {
    let rate = |family: &'static str, label: &str| {
        let key = (family, label.to_string());
        let delta =
            now.get(&key).copied().unwrap_or(0.0) - before.get(&key).copied().unwrap_or(0.0);
        (delta / secs).max(0.0)
    };
    let gauges: Vec<(&str, Option<f64>)> = GAUGES
        .iter()
        .map(|(family, title)| (*title, gauge(text, family)))
        .collect();
    let labels = |family: &str| {
        let mut v: Vec<String> = now
            .keys()
            .filter(|(f, _)| *f == family)
            .map(|(_, l)| l.clone())
            .collect();
        v.dedup();
        v
    };
    let mib = 1024.0 * 1024.0;
    let topics: Vec<(String, [f64; 3])> = labels("sluice_bytes_in_total")
        .into_iter()
        .chain(labels("sluice_bytes_out_total"))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|t| {
            let r = [
                rate("sluice_bytes_in_total", &t) / mib,
                rate("sluice_records_in_total", &t),
                rate("sluice_bytes_out_total", &t) / mib,
            ];
            (t, r)
        })
        .filter(|(_, r)| r.iter().any(|x| *x > 0.0))
        .collect();
    let apis: Vec<(String, [f64; 2])> = labels("sluice_requests_total")
        .into_iter()
        .map(|a| {
            let r = [
                rate("sluice_requests_total", &a),
                rate("sluice_request_errors_total", &a),
            ];
            (a, r)
        })
        .filter(|(_, r)| r[0] > 0.0)
        .collect();
    let json = json!({
        "interval_s": secs,
        "gauges": gauges.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "topics": topics.iter().map(|(t, r)| json!({
            "topic": t, "in_mib_s": r[0], "in_records_s": r[1], "out_mib_s": r[2],
        })).collect::<Vec<_>>(),
        "apis": apis.iter().map(|(a, r)| json!({
            "api": a, "requests_s": r[0], "errors_s": r[1],
        })).collect::<Vec<_>>(),
    });
    Output {
        tables: vec![
            (
                GAUGES.iter().map(|(_, title)| *title).collect(),
                vec![gauges
                    .iter()
                    .map(|(_, v)| v.map_or("-".into(), |v| v.to_string()))
                    .collect()],
            ),
            (
                vec!["TOPIC", "IN MiB/s", "IN records/s", "OUT MiB/s"],
                topics
                    .iter()
                    .map(|(t, r)| {
                        vec![
                            t.clone(),
                            format!("{:.2}", r[0]),
                            format!("{:.0}", r[1]),
                            format!("{:.2}", r[2]),
                        ]
                    })
                    .collect(),
            ),
            (
                vec!["API", "REQUESTS/s", "ERRORS/s"],
                apis.iter()
                    .map(|(a, r)| vec![a.clone(), format!("{:.1}", r[0]), format!("{:.1}", r[1])])
                    .collect(),
            ),
        ],
        json,
    }
}

/// The counters of [`RATES`], summed per label value (errors come per code too).
fn counters(text: &str) -> Counters {
    let mut out = Counters::new();
    for (name, labels, value) in samples(text) {
        if let Some((family, key)) = RATES.iter().find(|(f, _)| *f == name) {
            if let Some((_, v)) = labels.iter().find(|(k, _)| k == key) {
                *out.entry((*family, v.clone())).or_default() += value;
            }
        }
    }
    out
}

/// The value of an unlabelled gauge.
fn gauge(text: &str, family: &str) -> Option<f64> {
    samples(text)
        .find(|(name, labels, _)| *name == family && labels.is_empty())
        .map(|(_, _, v)| v)
}

/// Parses Prometheus text lines: (metric name, labels, value); comments and junk skipped.
fn samples(text: &str) -> impl Iterator<Item = (&str, Vec<(String, String)>, f64)> {
    text.lines().filter_map(|line| {
        if line.starts_with('#') {
            return None;
        }
        let (series, value) = line.rsplit_once(' ')?;
        let value: f64 = value.parse().ok()?;
        match series.split_once('{') {
            Some((name, rest)) => Some((name, labels(rest.strip_suffix('}')?), value)),
            None => Some((series, Vec::new(), value)),
        }
    })
}

/// `a="x",b="y \"q\""` → [(a, x), (b, y "q")].
fn labels(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(if n == 'n' { '\n' } else { n });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push((key.trim_start_matches(',').trim().to_string(), value));
        rest = &after[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_become_rates_per_topic_and_api() {
        let before = "# TYPE sluice_bytes_in_total counter\n\
            sluice_bytes_in_total{topic=\"a\"} 0\n\
            sluice_requests_total{api=\"Produce\"} 10\n";
        let after = "sluice_bytes_in_total{topic=\"a\"} 2097152\n\
            sluice_records_in_total{topic=\"a\"} 2048\n\
            sluice_requests_total{api=\"Produce\"} 30\n\
            sluice_request_errors_total{api=\"Produce\",code=\"6\"} 2\n\
            sluice_request_errors_total{api=\"Produce\",code=\"7\"} 2\n\
            sluice_connections_active 3\n";
        let out = view(after, &counters(after), &counters(before), 2.0);
        assert_eq!(out.json["topics"][0]["topic"], "a");
        assert_eq!(out.json["topics"][0]["in_mib_s"], 1.0);
        assert_eq!(out.json["topics"][0]["in_records_s"], 1024.0);
        assert_eq!(out.json["apis"][0]["requests_s"], 10.0);
        assert_eq!(out.json["apis"][0]["errors_s"], 2.0);
        assert_eq!(out.json["gauges"]["connections"], 3.0);
    }

    #[test]
    fn label_values_keep_escaped_quotes_and_commas() {
        assert_eq!(
            labels(r#"a="x,y",b="q \"z\"""#),
            vec![("a".into(), "x,y".into()), ("b".into(), "q \"z\"".into())]
        );
    }
}
