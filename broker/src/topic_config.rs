//! Topic configs by their Kafka names: defaults, broker-level synonyms, validation.

use std::collections::BTreeMap;

use crate::config::{check_type, BrokerConfig, ConfigSource, ConfigType};

/// One topic (or group) config: name, Kafka default, type, and the broker config that sets
/// its default.
pub struct ConfigDef {
    /// Kafka name.
    pub name: &'static str,
    /// Kafka's default when no broker synonym is set.
    pub default: &'static str,
    /// Value type.
    pub ty: ConfigType,
    /// Broker config whose value is the topic default (e.g. `log.retention.ms`).
    pub broker_synonym: Option<&'static str>,
}

const fn def(
    name: &'static str,
    default: &'static str,
    ty: ConfigType,
    broker_synonym: Option<&'static str>,
) -> ConfigDef {
    ConfigDef {
        name,
        default,
        ty,
        broker_synonym,
    }
}

const MAX_LONG: &str = "9223372036854775807";

/// Every topic config Kafka 4.x accepts.
pub const TOPIC_CONFIGS: &[ConfigDef] = &[
    def(
        "cleanup.policy",
        "delete",
        ConfigType::List,
        Some("log.cleanup.policy"),
    ),
    def(
        "compression.type",
        "producer",
        ConfigType::String,
        Some("compression.type"),
    ),
    def(
        "delete.retention.ms",
        "86400000",
        ConfigType::Long,
        Some("log.cleaner.delete.retention.ms"),
    ),
    def("file.delete.delay.ms", "60000", ConfigType::Long, None),
    def(
        "flush.messages",
        MAX_LONG,
        ConfigType::Long,
        Some("log.flush.interval.messages"),
    ),
    def(
        "flush.ms",
        MAX_LONG,
        ConfigType::Long,
        Some("log.flush.interval.ms"),
    ),
    def(
        "follower.replication.throttled.replicas",
        "",
        ConfigType::List,
        None,
    ),
    def("index.interval.bytes", "4096", ConfigType::Int, None),
    def(
        "leader.replication.throttled.replicas",
        "",
        ConfigType::List,
        None,
    ),
    def("local.retention.bytes", "-2", ConfigType::Long, None),
    def("local.retention.ms", "-2", ConfigType::Long, None),
    def("max.compaction.lag.ms", MAX_LONG, ConfigType::Long, None),
    def(
        "max.message.bytes",
        "1048588",
        ConfigType::Int,
        Some("message.max.bytes"),
    ),
    def(
        "message.timestamp.after.max.ms",
        "3600000",
        ConfigType::Long,
        None,
    ),
    def(
        "message.timestamp.before.max.ms",
        MAX_LONG,
        ConfigType::Long,
        None,
    ),
    def(
        "message.timestamp.type",
        "CreateTime",
        ConfigType::String,
        Some("log.message.timestamp.type"),
    ),
    def(
        "min.cleanable.dirty.ratio",
        "0.5",
        ConfigType::Double,
        Some("log.cleaner.min.cleanable.ratio"),
    ),
    def(
        "min.compaction.lag.ms",
        "0",
        ConfigType::Long,
        Some("log.cleaner.min.compaction.lag.ms"),
    ),
    def(
        "min.insync.replicas",
        "1",
        ConfigType::Int,
        Some("min.insync.replicas"),
    ),
    def("preallocate", "false", ConfigType::Boolean, None),
    def("remote.storage.enable", "false", ConfigType::Boolean, None),
    def(
        "retention.bytes",
        "-1",
        ConfigType::Long,
        Some("log.retention.bytes"),
    ),
    def(
        "retention.ms",
        "604800000",
        ConfigType::Long,
        Some("log.retention.ms"),
    ),
    def(
        "segment.bytes",
        "1073741824",
        ConfigType::Int,
        Some("log.segment.bytes"),
    ),
    def("segment.index.bytes", "10485760", ConfigType::Int, None),
    def("segment.jitter.ms", "0", ConfigType::Long, None),
    def("segment.ms", "604800000", ConfigType::Long, None),
    def(
        "unclean.leader.election.enable",
        "false",
        ConfigType::Boolean,
        Some("unclean.leader.election.enable"),
    ),
];

/// Looks up a topic config definition.
pub fn topic_config(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Validates a topic config as Kafka would for CreateTopics/AlterConfigs.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let def = topic_config(name).ok_or_else(|| format!("Unknown topic config name: {name}"))?;
    check_type(name, value, def.ty)?;
    match name {
        "cleanup.policy" => {
            for p in value.split(',').map(str::trim) {
                if p != "delete" && p != "compact" {
                    return Err(format!("Invalid value {value} for configuration cleanup.policy: String must be one of: compact, delete"));
                }
            }
        }
        "message.timestamp.type" if value != "CreateTime" && value != "LogAppendTime" => {
            return Err(format!("Invalid value {value} for configuration message.timestamp.type: String must be one of: CreateTime, LogAppendTime"));
        }
        "compression.type"
            if !["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"].contains(&value) =>
        {
            return Err(format!(
                "Invalid value {value} for configuration compression.type"
            ));
        }
        "min.insync.replicas" | "max.message.bytes" if value.parse::<i64>().unwrap_or(0) < 1 => {
            return Err(format!(
                "Invalid value {value} for configuration {name}: Value must be at least 1"
            ));
        }
        _ => {}
    }
    Ok(())
}

/// A topic's (or group's) effective configs: its overrides, the broker's configs and Kafka's
/// defaults merged.
#[derive(Debug, Clone)]
pub struct EffectiveConfigs<'a> {
    overrides: &'a BTreeMap<String, String>,
    /// What the overrides belong to: a topic, or a group.
    overrides_source: ConfigSource,
    broker: &'a BrokerConfig,
}

impl<'a> EffectiveConfigs<'a> {
    /// Views a topic's overrides over the broker's configs.
    pub fn new(overrides: &'a BTreeMap<String, String>, broker: &'a BrokerConfig) -> Self {
        Self {
            overrides,
            overrides_source: ConfigSource::Topic,
            broker,
        }
    }

    /// Views a group's overrides over the broker's configs.
    pub fn of_group(overrides: &'a BTreeMap<String, String>, broker: &'a BrokerConfig) -> Self {
        Self {
            overrides,
            overrides_source: ConfigSource::Group,
            broker,
        }
    }

    /// Effective value and its source.
    pub fn resolve(&self, def: &ConfigDef) -> (String, ConfigSource) {
        if let Some(v) = self.overrides.get(def.name) {
            return (v.clone(), self.overrides_source);
        }
        match def.broker_synonym.map(|syn| self.broker.resolve(syn)) {
            Some((v, source)) if source != ConfigSource::Default => (v, source),
            _ => (def.default.to_string(), ConfigSource::Default),
        }
    }

    /// Where a config's value may come from, highest precedence first, with the value each
    /// place gives (DescribeConfigs' synonyms, as Kafka lists them): the override, then its
    /// broker synonym, set dynamically, statically and by default. A config with no broker synonym lists
    /// only its override, as Kafka lists none for a synonym without a value.
    pub fn synonyms(&self, def: &ConfigDef) -> Vec<(String, String, ConfigSource)> {
        let own = self
            .overrides
            .get(def.name)
            .map(|v| (def.name.to_string(), v.clone(), self.overrides_source));
        let Some(syn) = def.broker_synonym else {
            return own.into_iter().collect();
        };
        let broker_set = self
            .broker
            .synonyms(syn)
            .into_iter()
            .filter(|(_, _, source)| *source != ConfigSource::Default);
        let default = (
            syn.to_string(),
            def.default.to_string(),
            ConfigSource::Default,
        );
        own.into_iter().chain(broker_set).chain([default]).collect()
    }

    /// Effective value of a topic config by name.
    pub fn get(&self, name: &str) -> Option<String> {
        topic_config(name).map(|d| self.resolve(d).0)
    }

    fn parsed<T: std::str::FromStr>(&self, name: &str, fallback: T) -> T {
        self.get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(fallback)
    }

    /// `max.message.bytes`
    pub fn max_message_bytes(&self) -> usize {
        self.parsed("max.message.bytes", 1_048_588usize)
    }
    /// `min.insync.replicas`
    pub fn min_insync_replicas(&self) -> usize {
        self.parsed("min.insync.replicas", 1usize)
    }
    /// `flush.messages`: 1 means fsync before acknowledging.
    pub fn flush_messages(&self) -> i64 {
        self.parsed("flush.messages", i64::MAX)
    }
    /// `cleanup.policy` includes `policy` (`delete` or `compact`).
    pub fn cleanup_policy_has(&self, policy: &str) -> bool {
        self.get("cleanup.policy")
            .is_some_and(|p| p.split(',').any(|x| x.trim() == policy))
    }
    /// `retention.ms` (-1: unlimited).
    pub fn retention_ms(&self) -> i64 {
        self.parsed("retention.ms", -1)
    }
    /// `retention.bytes` (-1: unlimited).
    pub fn retention_bytes(&self) -> i64 {
        self.parsed("retention.bytes", -1)
    }
    /// `delete.retention.ms`: how long tombstones outlive compaction.
    pub fn delete_retention_ms(&self) -> i64 {
        self.parsed("delete.retention.ms", 86_400_000)
    }
    /// `min.compaction.lag.ms`: records younger than this are not compacted.
    pub fn min_compaction_lag_ms(&self) -> i64 {
        self.parsed("min.compaction.lag.ms", 0)
    }
    /// `min.cleanable.dirty.ratio`: share of the log written since the last compaction
    /// before it is compacted again.
    pub fn min_cleanable_dirty_ratio(&self) -> f64 {
        self.parsed("min.cleanable.dirty.ratio", 0.5)
    }
    /// `flush.ms`: the longest an append waits for an fsync.
    pub fn flush_ms(&self) -> i64 {
        self.parsed("flush.ms", i64::MAX)
    }
    /// `message.timestamp.type` is LogAppendTime.
    pub fn log_append_time(&self) -> bool {
        self.get("message.timestamp.type").as_deref() == Some("LogAppendTime")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_matches_kafka_rules() {
        assert!(validate("retention.ms", "1000").is_ok());
        assert!(validate("retention.ms", "soon").is_err());
        assert!(validate("cleanup.policy", "compact,delete").is_ok());
        assert!(validate("cleanup.policy", "shred").is_err());
        assert!(validate("no.such.config", "1").is_err());
        assert!(validate("min.insync.replicas", "0").is_err());
    }

    #[test]
    fn effective_values_follow_topic_then_broker_then_default() {
        let broker = BrokerConfig::parse(&["log.retention.ms=5".into()]).unwrap();
        let mut overrides = BTreeMap::new();
        let c = EffectiveConfigs::new(&overrides, &broker);
        let def = topic_config("retention.ms").unwrap();
        assert_eq!(
            c.resolve(def),
            ("5".to_string(), ConfigSource::StaticBroker)
        );
        assert_eq!(
            c.resolve(topic_config("segment.ms").unwrap()).1,
            ConfigSource::Default
        );
        overrides.insert("retention.ms".to_string(), "7".to_string());
        let c = EffectiveConfigs::new(&overrides, &broker);
        assert_eq!(c.resolve(def), ("7".to_string(), ConfigSource::Topic));
    }

    #[test]
    fn synonyms_list_every_source_highest_precedence_first() {
        let broker = BrokerConfig::parse(&["log.retention.ms=5".into()]).unwrap();
        let overrides = BTreeMap::from([("retention.ms".to_string(), "7".to_string())]);
        let c = EffectiveConfigs::new(&overrides, &broker);
        let synonyms = c.synonyms(topic_config("retention.ms").unwrap());
        let listed: Vec<(&str, &str, ConfigSource)> = synonyms
            .iter()
            .map(|(n, v, s)| (n.as_str(), v.as_str(), *s))
            .collect();
        assert_eq!(
            listed,
            [
                ("retention.ms", "7", ConfigSource::Topic),
                ("log.retention.ms", "5", ConfigSource::StaticBroker),
                ("log.retention.ms", "604800000", ConfigSource::Default),
            ]
        );
        for def in TOPIC_CONFIGS.iter().filter(|d| d.broker_synonym.is_some()) {
            let first = c.synonyms(def).into_iter().next().map(|(_, v, s)| (v, s));
            assert_eq!(first, Some(c.resolve(def)), "{}", def.name);
        }
        // No broker synonym, no override: nothing to list.
        assert!(c
            .synonyms(topic_config("segment.jitter.ms").unwrap())
            .is_empty());
    }
}
