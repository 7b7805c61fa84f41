//! Connections per client address (Kafka's `max.connections.per.ip` and
//! `max.connections.per.ip.overrides`, both dynamic): past its limit an address's new
//! connection is closed at once, as Kafka closes it. The broker-wide `max.connections` is
//! the accept loop's: past it the broker stops accepting until a connection closes.
//!
//! Connection creation rates (KIP-612), measured over the client quotas' sampled windows:
//! past the broker-wide `max.connection.creation.rate` the accept loop pauses; an address
//! past its `connection_creation_rate` quota (IP entities of the client quotas) has its new
//! connection closed after the throttle time, so its client does not reconnect at once.

use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_controller::MetadataImage;

use crate::config::BrokerConfig;
use crate::quota::{ip_connection_rate, SampledRate};

/// Open connections per address, against their limits.
pub struct ConnectionLimits {
    config: BrokerConfig,
    state: Mutex<State>,
}

struct State {
    open: HashMap<IpAddr, usize>,
    /// The overrides as last read: their spec and what it says.
    overrides: (String, HashMap<IpAddr, usize>),
    /// New connections per second, broker-wide.
    created: SampledRate,
    /// New connections per second of each address with a `connection_creation_rate` quota.
    created_by_ip: HashMap<IpAddr, SampledRate>,
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
                created: SampledRate::new(config.quota_window(), config.quota_window_samples()),
                created_by_ip: HashMap::new(),
            }),
        })
    }

    /// Counts a new connection against `max.connection.creation.rate` and answers how long
    /// the accept loop must pause (at most one quota window, as Kafka bounds it).
    pub fn record_created(&self, now: Instant) -> Duration {
        let bound = self.config.max_connection_creation_rate();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.created.record(1.0, now);
        if bound >= f64::from(i32::MAX) {
            return Duration::ZERO;
        }
        state
            .created
            .throttle(bound, now)
            .min(self.config.quota_window())
    }

    /// Counts a new connection from `ip` against its `connection_creation_rate` quota and
    /// answers how long to hold it before closing it, or zero to serve it. A refused
    /// connection is not counted, as in Kafka.
    pub fn record_created_by(&self, image: &MetadataImage, ip: IpAddr, now: Instant) -> Duration {
        let Some(bound) = ip_connection_rate(image, ip) else {
            return Duration::ZERO;
        };
        let (window, samples) = (
            self.config.quota_window(),
            self.config.quota_window_samples(),
        );
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !state.created_by_ip.contains_key(&ip) {
            // Forget the addresses gone quiet, so many clients do not grow the map for ever.
            state.created_by_ip.retain(|_, rate| !rate.is_idle(now));
        }
        let rate = state
            .created_by_ip
            .entry(ip)
            .or_insert_with(|| SampledRate::new(window, samples));
        rate.record(1.0, now);
        let throttle = rate.throttle(bound, now).min(window);
        if !throttle.is_zero() {
            rate.record(-1.0, now);
        }
        throttle
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

    #[test]
    fn connections_past_a_creation_rate_are_paused_or_held() {
        let config = BrokerConfig::parse(&[
            "max.connection.creation.rate=5".to_string(),
            "quota.window.num=2".to_string(),
        ])
        .unwrap();
        let limits = ConnectionLimits::new(&config).unwrap();
        let t0 = Instant::now();
        // 5 a second over at least one whole window: the sixth is over.
        for _ in 0..5 {
            assert_eq!(limits.record_created(t0), Duration::ZERO);
        }
        assert!(limits.record_created(t0) > Duration::ZERO);

        let mut image = MetadataImage::default();
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        image.client_quotas.push(sluice_controller::ClientQuota {
            entity: [(crate::quota::IP.to_string(), Some(ip.to_string()))].into(),
            values: [(
                crate::quota::CONNECTION_CREATION_RATE.to_string(),
                sluice_controller::QuotaValue(2.0),
            )]
            .into(),
        });
        assert_eq!(limits.record_created_by(&image, ip, t0), Duration::ZERO);
        assert_eq!(limits.record_created_by(&image, ip, t0), Duration::ZERO);
        let held = limits.record_created_by(&image, ip, t0);
        assert!(
            held > Duration::ZERO && held <= Duration::from_secs(1),
            "{held:?}"
        );
        // A held connection is not counted: one window on, the rate is back under.
        let later = t0 + Duration::from_millis(1500);
        assert_eq!(limits.record_created_by(&image, ip, later), Duration::ZERO);
        let other: IpAddr = "10.0.0.3".parse().unwrap();
        assert_eq!(limits.record_created_by(&image, other, t0), Duration::ZERO);
    }
}
