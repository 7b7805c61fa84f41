//! Connections per client address (Kafka's `max.connections.per.ip` and
//! `max.connections.per.ip.overrides`): past its limit an address's new connection is closed
//! at once, as Kafka closes it. The broker-wide `max.connections` is the accept loop's: past
//! it the broker stops accepting until a connection closes.

use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};

use crate::config::BrokerConfig;

/// Open connections per address, against their limits.
pub struct ConnectionLimits {
    per_ip: usize,
    overrides: HashMap<IpAddr, usize>,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; dropping it frees its address's slot.
pub struct ConnectionSlot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl ConnectionLimits {
    /// The limits of `config`; an override naming a host is resolved once, here.
    pub fn new(config: &BrokerConfig) -> anyhow::Result<Self> {
        let mut overrides = HashMap::new();
        for entry in config.max_connections_per_ip_overrides().split(',') {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let (host, limit) = entry.rsplit_once(':').ok_or_else(|| {
                anyhow::anyhow!("max.connections.per.ip.overrides: {entry} is not host:count")
            })?;
            let limit: usize = limit.trim().parse().map_err(|_| {
                anyhow::anyhow!("max.connections.per.ip.overrides: {limit} is not a count")
            })?;
            let ips: Vec<IpAddr> = match host.parse::<IpAddr>() {
                Ok(ip) => vec![ip],
                Err(_) => (host, 0)
                    .to_socket_addrs()
                    .map_err(|e| anyhow::anyhow!("max.connections.per.ip.overrides: {host}: {e}"))?
                    .map(|a| a.ip())
                    .collect(),
            };
            for ip in ips {
                overrides.insert(ip, limit);
            }
        }
        Ok(Self {
            per_ip: config.max_connections_per_ip(),
            overrides,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for a new connection from `ip`, or None when the address has its limit's
    /// worth open.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ConnectionSlot> {
        let limit = self.overrides.get(&ip).copied().unwrap_or(self.per_ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(ip).or_insert(0);
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
        let mut open = self.limits.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.ip);
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
    }
}
