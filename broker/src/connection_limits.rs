//! Connections per client address (Kafka's `max.connections.per.ip` and
//! `max.connections.per.ip.overrides`, both dynamic): past its limit an address's new
//! connection is closed at once, as Kafka closes it. The broker-wide `max.connections` is
//! the accept loop's: past it the broker stops accepting until a connection closes.

use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};

use crate::config::BrokerConfig;

/// Open connections per address, against their limits.
pub struct ConnectionLimits {
    config: BrokerConfig,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    open: HashMap<IpAddr, usize>,
    /// The overrides as last read: their spec and what it says.
    overrides: (String, HashMap<IpAddr, usize>),
}

/// One admitted connection; dropping it frees its address's slot.
pub struct ConnectionSlot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

/// Reads `max.connections.per.ip.overrides` (`host:count,...`); a host name is resolved.
pub fn parse_overrides(spec: &str) -> Result<HashMap<IpAddr, usize>, String> {
    let mut overrides = HashMap::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (host, limit) = entry
            .rsplit_once(':')
            .ok_or_else(|| format!("{entry} is not host:count"))?;
        let limit: usize = limit
            .trim()
            .parse()
            .map_err(|_| format!("{limit} is not a count"))?;
        let ips: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => (host, 0)
                .to_socket_addrs()
                .map_err(|e| format!("{host}: {e}"))?
                .map(|a| a.ip())
                .collect(),
        };
        overrides.extend(ips.into_iter().map(|ip| (ip, limit)));
    }
    Ok(overrides)
}

impl ConnectionLimits {
    /// The limits of `config`, read again whenever they change.
    pub fn new(config: &BrokerConfig) -> anyhow::Result<Self> {
        let spec = config.max_connections_per_ip_overrides();
        let overrides = parse_overrides(&spec)
            .map_err(|e| anyhow::anyhow!("max.connections.per.ip.overrides: {e}"))?;
        Ok(Self {
            config: config.clone(),
            state: Mutex::new(State {
                open: HashMap::new(),
                overrides: (spec, overrides),
            }),
        })
    }

    /// A slot for a new connection from `ip`, or None when the address has its limit's
    /// worth open.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ConnectionSlot> {
        let spec = self.config.max_connections_per_ip_overrides();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.overrides.0 != spec {
            // Checked when it was set; a host that no longer resolves is left out.
            let parsed = parse_overrides(&spec).unwrap_or_default();
            state.overrides = (spec, parsed);
        }
        let limit = (state.overrides.1.get(&ip).copied())
            .unwrap_or_else(|| self.config.max_connections_per_ip());
        let count = state.open.entry(ip).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(ConnectionSlot {
            limits: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut state = self.limits.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = state.open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                state.open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_limit_and_its_slots_back() {
        let config = BrokerConfig::parse(&[
            "max.connections.per.ip=2".to_string(),
            "max.connections.per.ip.overrides=10.0.0.1:1".to_string(),
        ])
        .unwrap();
        let limits = Arc::new(ConnectionLimits::new(&config).unwrap());
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let first = limits.admit(local).unwrap();
        let _second = limits.admit(local).unwrap();
        assert!(limits.admit(local).is_none(), "a third from one address");
        drop(first);
        assert!(limits.admit(local).is_some(), "a slot freed is taken again");
        let other: IpAddr = "10.0.0.1".parse().unwrap();
        let _only = limits.admit(other).unwrap();
        assert!(limits.admit(other).is_none(), "the override's limit of 1");
        assert!(parse_overrides("10.0.0.1").is_err());
    }
}
