//! Command-line flags, `SLUICE_*` environment variables and Kafka-named broker configs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use clap::Args;

/// Flags of `sluice serve`; each also read from its `SLUICE_*` environment variable.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// This node's id in the cluster.
    #[arg(long, env = "SLUICE_NODE_ID", default_value_t = 1)]
    pub node_id: u64,
    /// Where this node keeps its data.
    #[arg(long, env = "SLUICE_DATA_DIR", default_value = "./sluice-data")]
    pub data_dir: PathBuf,
    /// Kafka listener address (port 0 picks a free port).
    #[arg(long, env = "SLUICE_KAFKA_ADDR", default_value = "127.0.0.1:9092")]
    pub kafka_addr: String,
    /// host:port clients are told to connect to (defaults to the Kafka listener).
    #[arg(long, env = "SLUICE_ADVERTISED_ADDR")]
    pub advertised_addr: Option<String>,
    /// Controller (Raft) address.
    #[arg(long, env = "SLUICE_CONTROLLER_ADDR", default_value = "127.0.0.1:9093")]
    pub controller_addr: String,
    /// HTTP address for /metrics, /healthz and the admin API (port 0 picks a free port).
    #[arg(long, env = "SLUICE_HTTP_ADDR", default_value = "127.0.0.1:9644")]
    pub http_addr: String,
    /// Controller voters, `id@host:port,...` (defaults to this node alone).
    #[arg(long, env = "SLUICE_VOTERS")]
    pub voters: Option<String>,
    /// Roles of this node: `broker`, `controller` or both.
    #[arg(long, env = "SLUICE_ROLES", default_value = "broker,controller")]
    pub roles: String,
    /// A broker config by its Kafka name, e.g. `--config num.partitions=3` (repeatable).
    #[arg(long = "config", env = "SLUICE_CONFIG", value_delimiter = ',')]
    pub configs: Vec<String>,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "SLUICE_LOG_JSON")]
    pub log_json: bool,
}

/// Broker-wide settings, by Kafka name, with Kafka's defaults: the static ones given at
/// start, under the dynamic ones of the metadata log (this broker's, then the cluster
/// default), which every clone sees as soon as the node applies them.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    overrides: BTreeMap<String, String>,
    dynamic: Arc<RwLock<DynamicConfigs>>,
}

/// The dynamic layers of a broker's configs.
#[derive(Debug, Default)]
struct DynamicConfigs {
    /// Set for this broker.
    broker: BTreeMap<String, String>,
    /// Set as every broker's default.
    cluster: BTreeMap<String, String>,
}

/// The broker configs that may change while a node runs (IncrementalAlterConfigs on a
/// BROKER resource): those Kafka lets change at run time that Sluice reads where it uses
/// them, not once at start.
pub const DYNAMIC_BROKER_CONFIGS: &[&str] = &[
    "log.retention.ms",
    "log.retention.bytes",
    "log.segment.bytes",
    "log.cleanup.policy",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "log.message.timestamp.type",
    "min.insync.replicas",
    "compression.type",
    "unclean.leader.election.enable",
    "message.max.bytes",
    "max.connections.per.ip",
    "max.connections.per.ip.overrides",
    "max.connection.creation.rate",
    "log.cleaner.delete.retention.ms",
    "log.cleaner.min.cleanable.ratio",
    "log.cleaner.min.compaction.lag.ms",
];

/// Kafka's config types (DescribeConfigs `config_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    /// true/false
    Boolean = 1,
    /// free text
    String = 2,
    /// 32-bit integer
    Int = 3,
    /// 16-bit integer
    Short = 4,
    /// 64-bit integer
    Long = 5,
    /// floating point
    Double = 6,
    /// comma-separated list
    List = 7,
}

/// Checks that `value` parses as `ty`.
pub fn check_type(name: &str, value: &str, ty: ConfigType) -> Result<(), String> {
    let ok = match ty {
        ConfigType::Boolean => {
            value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false")
        }
        ConfigType::Int => value.parse::<i32>().is_ok(),
        ConfigType::Short => value.parse::<i16>().is_ok(),
        ConfigType::Long => value.parse::<i64>().is_ok(),
        ConfigType::Double => value.parse::<f64>().is_ok(),
        ConfigType::String | ConfigType::List => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("Invalid value {value} for configuration {name}"))
    }
}

/// The `replica.selector.class` of Kafka's rack-aware replica selector.
pub const RACK_AWARE_SELECTOR: &str = "org.apache.kafka.common.replica.RackAwareReplicaSelector";

/// Where a config's effective value comes from (DescribeConfigs `config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic.
    Topic = 1,
    /// Set on the group.
    Group = 8,
    /// Set dynamically for this broker.
    DynamicBroker = 2,
    /// Set dynamically as every broker's default.
    DynamicDefaultBroker = 3,
    /// Set in the broker's static config (`--config`).
    StaticBroker = 4,
    /// Kafka's default.
    Default = 5,
    /// A logger's level (the BROKER_LOGGER resource).
    DynamicBrokerLogger = 6,
}

/// Broker configs Sluice knows: (name, default, type).
pub const BROKER_CONFIGS: &[(&str, &str, ConfigType)] = &[
    ("auto.create.topics.enable", "true", ConfigType::Boolean),
    ("num.partitions", "1", ConfigType::Int),
    ("default.replication.factor", "1", ConfigType::Short),
    ("message.max.bytes", "1048588", ConfigType::Int),
    ("socket.request.max.bytes", "104857600", ConfigType::Int),
    ("log.retention.ms", "604800000", ConfigType::Long),
    ("log.retention.bytes", "-1", ConfigType::Long),
    ("log.segment.bytes", "1073741824", ConfigType::Int),
    ("log.cleanup.policy", "delete", ConfigType::List),
    (
        "log.flush.interval.messages",
        "9223372036854775807",
        ConfigType::Long,
    ),
    (
        "log.flush.interval.ms",
        "9223372036854775807",
        ConfigType::Long,
    ),
    (
        "log.message.timestamp.type",
        "CreateTime",
        ConfigType::String,
    ),
    ("min.insync.replicas", "1", ConfigType::Int),
    ("compression.type", "producer", ConfigType::String),
    (
        "unclean.leader.election.enable",
        "false",
        ConfigType::Boolean,
    ),
    ("delete.topic.enable", "true", ConfigType::Boolean),
    ("offsets.topic.num.partitions", "50", ConfigType::Int),
    ("offsets.topic.replication.factor", "3", ConfigType::Short),
    ("group.initial.rebalance.delay.ms", "3000", ConfigType::Int),
    (
        "group.consumer.session.timeout.ms",
        "45000",
        ConfigType::Int,
    ),
    (
        "group.consumer.heartbeat.interval.ms",
        "5000",
        ConfigType::Int,
    ),
    // The range a group's own consumer.* config may take (group configs).
    (
        "group.consumer.min.session.timeout.ms",
        "45000",
        ConfigType::Int,
    ),
    (
        "group.consumer.max.session.timeout.ms",
        "60000",
        ConfigType::Int,
    ),
    (
        "group.consumer.min.heartbeat.interval.ms",
        "5000",
        ConfigType::Int,
    ),
    (
        "group.consumer.max.heartbeat.interval.ms",
        "15000",
        ConfigType::Int,
    ),
    ("replica.lag.time.max.ms", "30000", ConfigType::Long),
    ("offsets.commit.timeout.ms", "5000", ConfigType::Int),
    (
        "transaction.state.log.num.partitions",
        "50",
        ConfigType::Int,
    ),
    (
        "transaction.state.log.replication.factor",
        "3",
        ConfigType::Short,
    ),
    ("transaction.state.log.min.isr", "2", ConfigType::Int),
    ("transaction.max.timeout.ms", "900000", ConfigType::Int),
    (
        "transactional.id.expiration.ms",
        "604800000",
        ConfigType::Int,
    ),
    ("auto.leader.rebalance.enable", "true", ConfigType::Boolean),
    ("broker.rack", "", ConfigType::String),
    (
        "leader.imbalance.check.interval.seconds",
        "300",
        ConfigType::Long,
    ),
    ("log.cleaner.backoff.ms", "15000", ConfigType::Long),
    // The cleaner's defaults for compacted topics without their own.
    (
        "log.cleaner.delete.retention.ms",
        "86400000",
        ConfigType::Long,
    ),
    ("log.cleaner.min.cleanable.ratio", "0.5", ConfigType::Double),
    ("log.cleaner.min.compaction.lag.ms", "0", ConfigType::Long),
    (
        "log.retention.check.interval.ms",
        "300000",
        ConfigType::Long,
    ),
    // Unset: consumers read from leaders. Kafka's rack-aware selector: from a replica in
    // their rack (KIP-392).
    ("replica.selector.class", "", ConfigType::String),
    ("broker.session.timeout.ms", "9000", ConfigType::Int),
    ("broker.heartbeat.interval.ms", "2000", ConfigType::Int),
    ("max.connections", "2147483647", ConfigType::Int),
    ("max.connections.per.ip", "2147483647", ConfigType::Int),
    ("max.connections.per.ip.overrides", "", ConfigType::String),
    (
        "max.connection.creation.rate",
        "2147483647",
        ConfigType::Int,
    ),
    ("connections.max.idle.ms", "600000", ConfigType::Long),
    // Bytes of requests read and not yet answered, across connections (-1: no cap). Kafka's
    // default is -1; Sluice's caps it, so that a flood of clients cannot grow the broker
    // (500 connections sending 1 MiB produces took it to 3 GiB without a cap: overload.rs).
    ("queued.max.request.bytes", "268435456", ConfigType::Long),
    // Client quotas are measured over this many windows of this many seconds.
    ("quota.window.num", "11", ConfigType::Int),
    ("quota.window.size.seconds", "1", ConfigType::Int),
    // The controller_mutation_rate bucket holds rate x num x size seconds of mutations.
    ("controller.quota.window.num", "11", ConfigType::Int),
    ("controller.quota.window.size.seconds", "1", ConfigType::Int),
    ("fetch.max.bytes", "57671680", ConfigType::Int),
    (
        "max.incremental.fetch.session.cache.slots",
        "1000",
        ConfigType::Int,
    ),
    ("log.dir.min.free.bytes", "104857600", ConfigType::Long),
    (
        "sluice.storage.write.buffer.budget.bytes",
        "268435456",
        ConfigType::Long,
    ),
    (
        "sluice.storage.write.buffer.bytes",
        "8388608",
        ConfigType::Long,
    ),
    (
        "sluice.storage.block.cache.bytes",
        "67108864",
        ConfigType::Long,
    ),
    // Listeners and security (see security/). Unset `listeners`: one PLAINTEXT listener at
    // --kafka-addr.
    ("listeners", "", ConfigType::List),
    ("advertised.listeners", "", ConfigType::List),
    (
        "listener.security.protocol.map",
        "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
        ConfigType::List,
    ),
    ("inter.broker.listener.name", "", ConfigType::String),
    // Kafka's default; Sluice serves PLAIN and SCRAM, so a SASL inter-broker listener
    // needs this set.
    (
        "sasl.mechanism.inter.broker.protocol",
        "GSSAPI",
        ConfigType::String,
    ),
    // Kafka's default is GSSAPI, which Sluice does not serve.
    (
        "sasl.enabled.mechanisms",
        "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        ConfigType::List,
    ),
    ("sasl.server.max.receive.size", "524288", ConfigType::Int),
    // KIP-368: how long a SASL session lasts before the client must re-authenticate
    // (0: for ever); also `listener.name.<l>.<mechanism>.connections.max.reauth.ms`.
    ("connections.max.reauth.ms", "0", ConfigType::Long),
    (
        "connection.failed.authentication.delay.ms",
        "100",
        ConfigType::Int,
    ),
    ("ssl.keystore.type", "PEM", ConfigType::String),
    ("ssl.keystore.location", "", ConfigType::String),
    ("ssl.keystore.certificate.chain", "", ConfigType::String),
    ("ssl.keystore.key", "", ConfigType::String),
    ("ssl.truststore.type", "PEM", ConfigType::String),
    ("ssl.truststore.location", "", ConfigType::String),
    ("ssl.truststore.certificates", "", ConfigType::String),
    ("ssl.client.auth", "none", ConfigType::String),
    ("ssl.principal.mapping.rules", "DEFAULT", ConfigType::List),
    ("sasl.oauthbearer.jwks.endpoint.url", "", ConfigType::String),
    ("sasl.oauthbearer.expected.issuer", "", ConfigType::String),
    ("sasl.oauthbearer.expected.audience", "", ConfigType::List),
    ("sasl.oauthbearer.sub.claim.name", "sub", ConfigType::String),
    ("sasl.oauthbearer.clock.skew.seconds", "30", ConfigType::Int),
    // A file holding the secret every node of the cluster proves on controller connections
    // (see sluice_controller::secret); unset: the controller port is open to anyone.
    ("sluice.cluster.secret.file", "", ConfigType::String),
    ("authorizer.class.name", "", ConfigType::String),
    ("super.users", "", ConfigType::String),
    (
        "allow.everyone.if.no.acl.found",
        "false",
        ConfigType::Boolean,
    ),
];

/// The per-listener configs Kafka takes as `listener.name.<listener>.<config>` (the
/// listener lowercased): TLS settings, and `<mechanism>.sasl.jaas.config`.
fn is_listener_config(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("listener.name.") else {
        return false;
    };
    let Some((_listener, config)) = rest.split_once('.') else {
        return false;
    };
    config.starts_with("ssl.")
        || config.starts_with("sasl.oauthbearer.")
        || config.ends_with(".sasl.jaas.config")
        || config.ends_with(".sasl.server.callback.handler.class")
        || config.ends_with("connections.max.reauth.ms")
}

/// Pairs `KEY=VALUE` from `--config`, whose values the flag's comma delimiter split apart
/// again: a piece that does not start with a known config's name continues the previous
/// value (`listeners=PLAINTEXT://a:1,SSL://a:2` arrives as two pieces).
fn join_list_values(pieces: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for piece in pieces.iter().filter(|p| !p.trim().is_empty()) {
        let named = piece.split_once('=').filter(|(k, _)| {
            let k = k.trim();
            is_listener_config(k) || BROKER_CONFIGS.iter().any(|(n, _, _)| *n == k)
        });
        match (named, pairs.last_mut()) {
            (Some((k, v)), _) => pairs.push((k.trim().to_string(), v.trim().to_string())),
            (None, Some((_, value))) if !piece.contains('=') || piece.contains("://") => {
                value.push(',');
                value.push_str(piece.trim());
            }
            (None, _) => match piece.split_once('=') {
                Some((k, _)) => anyhow::bail!("unknown broker config '{}'", k.trim()),
                None => anyhow::bail!("--config expects KEY=VALUE, got '{piece}'"),
            },
        }
    }
    Ok(pairs)
}

impl BrokerConfig {
    /// Parses `KEY=VALUE` pairs; unknown keys and ill-typed values are errors.
    pub fn parse(pairs: &[String]) -> anyhow::Result<Self> {
        let mut overrides = BTreeMap::new();
        for (k, v) in join_list_values(pairs)? {
            let (k, v) = (k.as_str(), v.as_str());
            if is_listener_config(k) {
                overrides.insert(k.to_string(), v.to_string());
                continue;
            }
            let Some((_, _, ty)) = BROKER_CONFIGS.iter().find(|(n, _, _)| *n == k) else {
                anyhow::bail!("unknown broker config '{k}'");
            };
            check_type(k, v, *ty).map_err(|e| anyhow::anyhow!(e))?;
            if k == "replica.selector.class" && !v.is_empty() && v != RACK_AWARE_SELECTOR {
                anyhow::bail!(
                    "replica.selector.class: the one selector there is is {RACK_AWARE_SELECTOR}"
                );
            }
            overrides.insert(k.to_string(), v.to_string());
        }
        Ok(Self {
            overrides,
            dynamic: Arc::default(),
        })
    }

    /// Takes this broker's dynamic configs and the cluster's defaults from the metadata.
    pub fn set_dynamic(
        &self,
        broker: Option<&BTreeMap<String, String>>,
        cluster: Option<&BTreeMap<String, String>>,
    ) {
        let mut dynamic = self.dynamic.write().unwrap_or_else(|p| p.into_inner());
        dynamic.broker = broker.cloned().unwrap_or_default();
        dynamic.cluster = cluster.cloned().unwrap_or_default();
    }

    /// The value of a config: set dynamically for this broker, as the cluster default,
    /// statically, or Kafka's default.
    pub fn get(&self, name: &str) -> Option<String> {
        self.resolve_set(name)
            .map(|(v, _)| v)
            .or_else(|| Self::default_of(name).map(String::from))
    }

    /// The value of a config set anywhere (not Kafka's default) and where.
    fn resolve_set(&self, name: &str) -> Option<(String, ConfigSource)> {
        self.set_values(name).into_iter().next()
    }

    /// Every value set for a config, highest precedence first.
    fn set_values(&self, name: &str) -> Vec<(String, ConfigSource)> {
        let dynamic = self.dynamic.read().unwrap_or_else(|p| p.into_inner());
        [
            (dynamic.broker.get(name), ConfigSource::DynamicBroker),
            (
                dynamic.cluster.get(name),
                ConfigSource::DynamicDefaultBroker,
            ),
            (self.overrides.get(name), ConfigSource::StaticBroker),
        ]
        .into_iter()
        .filter_map(|(v, source)| Some((v?.clone(), source)))
        .collect()
    }

    /// Kafka's default of a broker config.
    pub fn default_of(name: &str) -> Option<&'static str> {
        BROKER_CONFIGS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, d, _)| *d)
    }

    /// A broker config's value and where it comes from.
    pub fn resolve(&self, name: &str) -> (String, ConfigSource) {
        self.resolve_set(name).unwrap_or_else(|| {
            let default = Self::default_of(name).unwrap_or_default();
            (default.to_string(), ConfigSource::Default)
        })
    }

    /// Where a broker config's value may come from, highest precedence first, with the
    /// value each place gives: dynamic for this broker, the dynamic cluster default and the
    /// static config where set, then Kafka's default (DescribeConfigs' synonyms).
    pub fn synonyms(&self, name: &str) -> Vec<(String, String, ConfigSource)> {
        let default = Self::default_of(name).map(|d| (d.to_string(), ConfigSource::Default));
        self.set_values(name)
            .into_iter()
            .chain(default)
            .map(|(v, source)| (name.to_string(), v, source))
            .collect()
    }

    fn parsed<T: std::str::FromStr>(&self, name: &str, fallback: T) -> T {
        self.get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(fallback)
    }

    /// `auto.create.topics.enable`
    pub fn auto_create_topics(&self) -> bool {
        self.parsed("auto.create.topics.enable", true)
    }
    /// `num.partitions`
    pub fn num_partitions(&self) -> i32 {
        self.parsed("num.partitions", 1)
    }
    /// `default.replication.factor`
    pub fn default_replication_factor(&self) -> i16 {
        self.parsed("default.replication.factor", 1)
    }
    /// `socket.request.max.bytes`: the largest request frame accepted.
    pub fn max_request_bytes(&self) -> usize {
        self.parsed("socket.request.max.bytes", 104_857_600usize)
    }
    /// `max.connections`
    pub fn max_connections(&self) -> usize {
        self.parsed("max.connections", i32::MAX as usize)
    }
    /// `max.connection.creation.rate`: new connections per second the broker accepts.
    pub fn max_connection_creation_rate(&self) -> f64 {
        self.parsed("max.connection.creation.rate", f64::from(i32::MAX))
    }
    /// `max.connections.per.ip`
    pub fn max_connections_per_ip(&self) -> usize {
        self.parsed("max.connections.per.ip", i32::MAX as usize)
    }
    /// `max.connections.per.ip.overrides`: `host:count,...`
    pub fn max_connections_per_ip_overrides(&self) -> String {
        self.get("max.connections.per.ip.overrides")
            .unwrap_or_default()
    }
    /// `queued.max.request.bytes` (-1: no cap)
    pub fn queued_max_request_bytes(&self) -> i64 {
        self.parsed("queued.max.request.bytes", 256 << 20)
    }
    /// `connections.max.idle.ms`: a connection with no traffic this long is closed.
    pub fn connections_max_idle(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.parsed("connections.max.idle.ms", 600_000u64))
    }
    /// The cluster secret read from `sluice.cluster.secret.file`, if set.
    pub fn cluster_secret(&self) -> anyhow::Result<Option<sluice_controller::ClusterSecret>> {
        let Some(path) = self
            .get("sluice.cluster.secret.file")
            .filter(|p| !p.is_empty())
        else {
            return Ok(None);
        };
        let bytes = std::fs::read(&path)
            .map_err(|e| anyhow::anyhow!("sluice.cluster.secret.file {path}: {e}"))?;
        sluice_controller::ClusterSecret::new(&bytes)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("sluice.cluster.secret.file {path}: {e}"))
    }
    /// `sasl.enabled.mechanisms`
    pub fn sasl_enabled_mechanisms(&self) -> Vec<String> {
        self.get("sasl.enabled.mechanisms")
            .unwrap_or_default()
            .split(',')
            .map(|m| m.trim().to_ascii_uppercase())
            .filter(|m| !m.is_empty())
            .collect()
    }
    /// `sasl.server.max.receive.size`: the largest frame read before authentication.
    pub fn sasl_max_receive_size(&self) -> usize {
        self.parsed("sasl.server.max.receive.size", 524_288usize)
    }
    /// `connection.failed.authentication.delay.ms`
    pub fn failed_authentication_delay(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.parsed("connection.failed.authentication.delay.ms", 100u64),
        )
    }
    /// `connections.max.reauth.ms` for `mechanism` on `listener` (Kafka's
    /// `listener.name.<l>.<mechanism>.connections.max.reauth.ms` first): how long a SASL
    /// session lasts; `None` when it does not expire.
    pub fn max_reauth(&self, listener: &str, mechanism: &str) -> Option<std::time::Duration> {
        let per_mechanism = format!(
            "listener.name.{}.{}.connections.max.reauth.ms",
            listener.to_ascii_lowercase(),
            mechanism.to_ascii_lowercase()
        );
        self.overrides
            .get(&per_mechanism)
            .cloned()
            .or_else(|| self.listener_config(listener, "connections.max.reauth.ms"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .map(std::time::Duration::from_millis)
    }
    /// A per-listener config: `listener.name.<listener>.<name>` if set, else `name` if set
    /// and not empty.
    pub fn listener_config(&self, listener: &str, name: &str) -> Option<String> {
        let prefixed = format!("listener.name.{}.{name}", listener.to_ascii_lowercase());
        self.overrides
            .get(&prefixed)
            .cloned()
            .or_else(|| self.get(name))
            .filter(|v| !v.is_empty())
    }
    /// `quota.window.size.seconds`: one sample window of client quotas.
    pub fn quota_window(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.parsed("quota.window.size.seconds", 1u64).max(1))
    }
    /// `quota.window.num`: sample windows client quotas are measured over.
    pub fn quota_window_samples(&self) -> usize {
        self.parsed("quota.window.num", 11usize).max(2)
    }
    /// `controller.quota.window.num` × `controller.quota.window.size.seconds`: how many
    /// seconds of `controller_mutation_rate` a client may use in one burst.
    pub fn controller_quota_span(&self) -> std::time::Duration {
        let size = self
            .parsed("controller.quota.window.size.seconds", 1u64)
            .max(1);
        let num = self.parsed("controller.quota.window.num", 11u64).max(1);
        std::time::Duration::from_secs(size * num)
    }
    /// `max.incremental.fetch.session.cache.slots`
    pub fn fetch_session_slots(&self) -> usize {
        self.parsed("max.incremental.fetch.session.cache.slots", 1000usize)
    }
    /// `fetch.max.bytes`
    pub fn fetch_max_bytes(&self) -> usize {
        self.parsed("fetch.max.bytes", 57_671_680usize)
    }
    /// `offsets.topic.num.partitions`
    pub fn offsets_topic_partitions(&self) -> i32 {
        self.parsed("offsets.topic.num.partitions", 50)
    }
    /// `offsets.topic.replication.factor`
    pub fn offsets_topic_replication_factor(&self) -> i16 {
        self.parsed("offsets.topic.replication.factor", 3)
    }
    /// `group.initial.rebalance.delay.ms`
    pub fn group_initial_rebalance_delay(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.parsed("group.initial.rebalance.delay.ms", 3000u64))
    }
    /// `log.cleaner.backoff.ms`: how often compacted topics are checked.
    pub fn cleaner_backoff(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.parsed("log.cleaner.backoff.ms", 15_000u64).max(10))
    }
    /// `auto.leader.rebalance.enable` and `leader.imbalance.check.interval.seconds`: how
    /// often leadership moves back to preferred replicas (None: never).
    pub fn leader_rebalance_interval(&self) -> Option<std::time::Duration> {
        let enabled = self
            .get("auto.leader.rebalance.enable")
            .is_none_or(|v| v.eq_ignore_ascii_case("true"));
        let secs: f64 = self.parsed("leader.imbalance.check.interval.seconds", 300.0);
        enabled.then(|| std::time::Duration::from_secs_f64(secs.max(0.1)))
    }
    /// `offsets.commit.timeout.ms`: how long a commit waits for the ISR.
    pub fn offsets_commit_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.parsed("offsets.commit.timeout.ms", 5_000u64))
    }
    /// `transaction.state.log.num.partitions`
    pub fn txn_topic_partitions(&self) -> i32 {
        self.parsed("transaction.state.log.num.partitions", 50)
    }
    /// `transaction.state.log.replication.factor`
    pub fn txn_topic_replication_factor(&self) -> i16 {
        self.parsed("transaction.state.log.replication.factor", 3)
    }
    /// `transaction.state.log.min.isr`
    pub fn txn_topic_min_isr(&self) -> usize {
        self.parsed("transaction.state.log.min.isr", 2usize)
    }
    /// `transaction.max.timeout.ms`: the longest timeout a transactional producer may ask.
    pub fn txn_max_timeout_ms(&self) -> i32 {
        self.parsed("transaction.max.timeout.ms", 900_000)
    }
    /// `transactional.id.expiration.ms`: how long a transactional id with no transaction
    /// open is kept without a word from its producer.
    pub fn txn_id_expiration_ms(&self) -> i64 {
        self.parsed("transactional.id.expiration.ms", 604_800_000i64)
    }
    /// `replica.lag.time.max.ms`: a follower not caught up for this long leaves the ISR.
    pub fn replica_lag_time_max(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.parsed("replica.lag.time.max.ms", 30_000u64))
    }
    /// `broker.session.timeout.ms`: a broker silent this long is fenced.
    pub fn broker_session_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.parsed("broker.session.timeout.ms", 9_000u64))
    }
    /// `broker.heartbeat.interval.ms`
    pub fn broker_heartbeat_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.parsed("broker.heartbeat.interval.ms", 2_000u64)
                .max(50),
        )
    }
    /// `log.dir.min.free.bytes`: below this much free space, produce requests are refused.
    pub fn min_free_bytes(&self) -> u64 {
        self.parsed("log.dir.min.free.bytes", 104_857_600u64)
    }
    /// `log.retention.check.interval.ms`
    pub fn retention_check_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.parsed("log.retention.check.interval.ms", 300_000u64)
                .max(10),
        )
    }
    /// `replica.selector.class` is Kafka's rack-aware selector: a leader sends a consumer
    /// that names its rack to an in-sync replica in that rack (KIP-392).
    pub fn rack_aware_reads(&self) -> bool {
        self.get("replica.selector.class").as_deref() == Some(RACK_AWARE_SELECTOR)
    }
    /// `group.consumer.session.timeout.ms` (KIP-848 groups)
    pub fn consumer_session_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.parsed("group.consumer.session.timeout.ms", 45_000u64),
        )
    }
    /// `group.consumer.heartbeat.interval.ms` (KIP-848 groups)
    pub fn consumer_heartbeat_interval_ms(&self) -> i32 {
        self.parsed("group.consumer.heartbeat.interval.ms", 5_000)
    }
    /// Memtable budget for all partitions together.
    pub fn write_buffer_budget(&self) -> usize {
        self.parsed("sluice.storage.write.buffer.budget.bytes", 256usize << 20)
    }
    /// Memtable size of one partition before it is flushed to an SST file.
    pub fn write_buffer_bytes(&self) -> usize {
        self.parsed("sluice.storage.write.buffer.bytes", 8usize << 20)
    }
    /// Shared block cache size.
    pub fn block_cache_bytes(&self) -> usize {
        self.parsed("sluice.storage.block.cache.bytes", 64usize << 20)
    }
}

/// Parses `--voters 1@host:port,2@host:port`.
pub fn parse_voters(spec: &str) -> anyhow::Result<Vec<(u64, String)>> {
    spec.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|v| {
            let (id, addr) = v
                .trim()
                .split_once('@')
                .ok_or_else(|| anyhow::anyhow!("voter '{v}' is not id@host:port"))?;
            Ok((id.parse()?, addr.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_parse_with_defaults_and_reject_unknown() {
        let c = BrokerConfig::parse(&["num.partitions=3".into()]).unwrap();
        assert_eq!(c.num_partitions(), 3);
        assert!(c.auto_create_topics());
        assert!(BrokerConfig::parse(&["nope=1".into()]).is_err());
        assert!(BrokerConfig::parse(&["num.partitions=x".into()]).is_err());
        assert!(BrokerConfig::parse(&["num.partitions".into()]).is_err());
    }

    #[test]
    fn only_kafkas_rack_aware_replica_selector_is_accepted() {
        let selector = format!("replica.selector.class={RACK_AWARE_SELECTOR}");
        assert!(BrokerConfig::parse(&[selector]).unwrap().rack_aware_reads());
        assert!(!BrokerConfig::parse(&[]).unwrap().rack_aware_reads());
        assert!(BrokerConfig::parse(&["replica.selector.class=com.example.Mine".into()]).is_err());
    }

    #[test]
    fn voters_parse() {
        assert_eq!(
            parse_voters("1@127.0.0.1:1,2@h:2").unwrap(),
            vec![(1, "127.0.0.1:1".into()), (2, "h:2".into())]
        );
        assert!(parse_voters("x@h:1").is_err());
    }
}
