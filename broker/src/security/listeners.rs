//! Named listeners, as Kafka configures them: `listeners=NAME://host:port,...`, each name
//! mapped to a security protocol by `listener.security.protocol.map`, advertised as
//! `advertised.listeners` says, one of them (`inter.broker.listener.name`) the address the
//! other brokers use. Without `listeners`, one PLAINTEXT listener at `--kafka-addr`.

use std::collections::BTreeMap;

use crate::config::BrokerConfig;

/// Kafka's security protocols, by their wire ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    /// No TLS, no authentication.
    Plaintext = 0,
    /// TLS; the principal comes from the client certificate, if any.
    Ssl = 1,
    /// SASL without TLS.
    SaslPlaintext = 2,
    /// SASL over TLS.
    SaslSsl = 3,
}

impl SecurityProtocol {
    /// The protocol of a name in `listener.security.protocol.map`.
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(Self::Plaintext),
            "SSL" => Some(Self::Ssl),
            "SASL_PLAINTEXT" => Some(Self::SaslPlaintext),
            "SASL_SSL" => Some(Self::SaslSsl),
            _ => None,
        }
    }

    /// Whether connections start with a TLS handshake.
    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    /// Whether connections must authenticate with SASL before their first request.
    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

/// One listener to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    /// Its name (upper case, as Kafka normalises it).
    pub name: String,
    /// Its security protocol.
    pub protocol: SecurityProtocol,
    /// `host:port` to bind (port 0 picks a free one).
    pub bind: String,
    /// `host:port` clients are told, if not the bound address.
    pub advertised: Option<(String, i32)>,
}

/// The listeners of a node, and which one the other brokers use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerPlan {
    /// In the order configured.
    pub listeners: Vec<ListenerSpec>,
    /// Index of the inter-broker listener in `listeners`.
    pub inter_broker: usize,
}

/// Splits `NAME://host:port` into its name, host and port.
fn split_url(url: &str) -> anyhow::Result<(String, String, String)> {
    let (name, address) = url
        .trim()
        .split_once("://")
        .ok_or_else(|| anyhow::anyhow!("listener '{url}' is not NAME://host:port"))?;
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("listener '{url}' has no port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((
        name.to_ascii_uppercase(),
        host.to_string(),
        port.to_string(),
    ))
}

/// The listeners `config` asks for; `kafka_addr` and `advertised_addr` (the flags) make the
/// one listener there is when `listeners` is unset.
pub fn plan(
    config: &BrokerConfig,
    kafka_addr: &str,
    advertised_addr: Option<&str>,
) -> anyhow::Result<ListenerPlan> {
    let parse_advertised = |a: &str| -> anyhow::Result<(String, i32)> {
        let (host, port) = a
            .rsplit_once(':')
            .ok_or_else(|| anyhow::anyhow!("advertised address '{a}' must be host:port"))?;
        Ok((host.to_string(), port.parse()?))
    };
    let configured = config.get("listeners").unwrap_or_default();
    if configured.trim().is_empty() {
        return Ok(ListenerPlan {
            listeners: vec![ListenerSpec {
                name: "PLAINTEXT".into(),
                protocol: SecurityProtocol::Plaintext,
                bind: kafka_addr.to_string(),
                advertised: advertised_addr.map(parse_advertised).transpose()?,
            }],
            inter_broker: 0,
        });
    }
    let mut protocols = BTreeMap::new();
    for entry in config
        .get("listener.security.protocol.map")
        .unwrap_or_default()
        .split(',')
        .filter(|e| !e.trim().is_empty())
    {
        let (name, protocol) = entry
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("listener.security.protocol.map: '{entry}'"))?;
        let protocol = SecurityProtocol::parse(protocol).ok_or_else(|| {
            anyhow::anyhow!("listener.security.protocol.map: unknown protocol in '{entry}'")
        })?;
        protocols.insert(name.trim().to_ascii_uppercase(), protocol);
    }
    let mut advertised = BTreeMap::new();
    for url in config
        .get("advertised.listeners")
        .unwrap_or_default()
        .split(',')
        .filter(|u| !u.trim().is_empty())
    {
        let (name, host, port) = split_url(url)?;
        advertised.insert(name, (host, port.parse::<i32>()?));
    }
    let mut listeners: Vec<ListenerSpec> = Vec::new();
    for url in configured.split(',').filter(|u| !u.trim().is_empty()) {
        let (name, host, port) = split_url(url)?;
        let protocol = *protocols.get(&name).ok_or_else(|| {
            anyhow::anyhow!("listener {name} has no entry in listener.security.protocol.map")
        })?;
        if listeners.iter().any(|l| l.name == name) {
            anyhow::bail!("listener {name} is configured twice");
        }
        let host = if host.is_empty() { "0.0.0.0" } else { &host };
        listeners.push(ListenerSpec {
            advertised: advertised.remove(&name),
            name,
            protocol,
            bind: format!("{host}:{port}"),
        });
    }
    if listeners.is_empty() {
        anyhow::bail!("listeners={configured} names no listener");
    }
    if let Some(name) = advertised.keys().next() {
        anyhow::bail!("advertised.listeners names {name}, which `listeners` does not");
    }
    let wanted = config
        .get("inter.broker.listener.name")
        .filter(|n| !n.is_empty())
        .map(|n| n.to_ascii_uppercase());
    let inter_broker = match &wanted {
        Some(name) => listeners
            .iter()
            .position(|l| &l.name == name)
            .ok_or_else(|| {
                anyhow::anyhow!("inter.broker.listener.name {name} is not a listener")
            })?,
        None => listeners
            .iter()
            .position(|l| l.protocol == SecurityProtocol::Plaintext)
            .unwrap_or(0),
    };
    Ok(ListenerPlan {
        listeners,
        inter_broker,
    })
}

/// How this broker connects to the others' inter-broker listener `listener`: TLS with
/// its truststore (`[listener.name.<l>.]ssl.truststore.location`), SASL with
/// `sasl.mechanism.inter.broker.protocol` and the `username`/`password` of the listener's
/// JAAS config for that mechanism, as Kafka's brokers do.
pub fn inter_broker_security(
    config: &BrokerConfig,
    listener: &ListenerSpec,
) -> anyhow::Result<sluice_client::ClientSecurity> {
    let get = |name: &str| config.listener_config(&listener.name, name);
    let tls_ca = if listener.protocol.uses_tls() {
        let path = get("ssl.truststore.location").ok_or_else(|| {
            anyhow::anyhow!(
                "the inter-broker listener {} uses TLS: brokers need ssl.truststore.location \
                 to check each other's certificates",
                listener.name
            )
        })?;
        Some(
            std::fs::read(&path)
                .map_err(|e| anyhow::anyhow!("ssl.truststore.location {path}: {e}"))?,
        )
    } else {
        None
    };
    let sasl = if listener.protocol.uses_sasl() {
        let mechanism = config
            .get("sasl.mechanism.inter.broker.protocol")
            .unwrap_or_default()
            .to_ascii_uppercase();
        if !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&mechanism.as_str()) {
            anyhow::bail!(
                "sasl.mechanism.inter.broker.protocol={mechanism}: the inter-broker listener {} \
                 uses SASL, so set it to PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                listener.name
            );
        }
        let jaas_name = format!("{}.sasl.jaas.config", mechanism.to_ascii_lowercase());
        let jaas = get(&jaas_name).unwrap_or_default();
        let option = |key: &str| {
            let start = jaas.find(&format!("{key}=\""))? + key.len() + 2;
            let end = jaas[start..].find('"')? + start;
            Some(jaas[start..end].to_string())
        };
        let (Some(user), Some(password)) = (option("username"), option("password")) else {
            anyhow::bail!(
                "the inter-broker listener {} uses SASL: its listener.name.{}.{jaas_name} needs \
                 the broker's own username=\"...\" password=\"...\"",
                listener.name,
                listener.name.to_ascii_lowercase()
            );
        };
        Some((mechanism, user, password))
    } else {
        None
    };
    Ok(sluice_client::ClientSecurity { tls_ca, sasl })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[&str]) -> BrokerConfig {
        BrokerConfig::parse(&pairs.iter().map(|p| p.to_string()).collect::<Vec<_>>())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn without_listeners_the_flags_make_one_plaintext_listener() {
        let plan = plan(&config(&[]), "127.0.0.1:9092", Some("kafka.example:19092")).unwrap();
        assert_eq!(plan.listeners.len(), 1);
        assert_eq!(plan.listeners[0].name, "PLAINTEXT");
        assert_eq!(
            plan.listeners[0].advertised,
            Some(("kafka.example".into(), 19092))
        );
    }

    #[test]
    fn listeners_split_by_the_flag_are_joined_and_mapped() {
        // clap splits `--config listeners=A,B` at the comma.
        let c = config(&[
            "listeners=PLAINTEXT://127.0.0.1:0",
            "SASL_SSL://:9094",
            "advertised.listeners=SASL_SSL://broker1:9094",
        ]);
        let plan = plan(&c, "ignored:1", None).unwrap();
        assert_eq!(plan.listeners.len(), 2);
        assert_eq!(plan.listeners[1].protocol, SecurityProtocol::SaslSsl);
        assert_eq!(plan.listeners[1].bind, "0.0.0.0:9094");
        assert_eq!(plan.listeners[1].advertised, Some(("broker1".into(), 9094)));
        assert_eq!(plan.inter_broker, 0);
    }

    #[test]
    fn custom_names_need_a_protocol_and_a_secured_inter_broker_listener_its_settings() {
        let c = config(&["listeners=EXTERNAL://127.0.0.1:0"]);
        assert!(plan(&c, "x:1", None).is_err());
        let c = config(&[
            "listeners=INTERNAL://127.0.0.1:0,EXTERNAL://127.0.0.1:0",
            "listener.security.protocol.map=INTERNAL:PLAINTEXT,EXTERNAL:SASL_SSL",
            "inter.broker.listener.name=INTERNAL",
        ]);
        assert_eq!(plan(&c, "x:1", None).unwrap().inter_broker, 0);
        let c = config(&["listeners=SASL_SSL://127.0.0.1:0"]);
        let p = plan(&c, "x:1", None).unwrap();
        assert!(
            inter_broker_security(&c, &p.listeners[0]).is_err(),
            "SASL between brokers needs the broker's mechanism and credentials"
        );
    }
}
