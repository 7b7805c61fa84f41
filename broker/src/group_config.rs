//! Group configs (Kafka 4's GROUP config resources, `kafka-configs --entity-type groups`):
//! one group's overrides of the broker's `group.consumer.*` settings, kept in the metadata
//! log and read by the group coordinator at its next tick or heartbeat.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{check_type, BrokerConfig, ConfigType};
use crate::topic_config::{ConfigDef, EffectiveConfigs};

const SESSION_TIMEOUT: &str = "consumer.session.timeout.ms";
const HEARTBEAT_INTERVAL: &str = "consumer.heartbeat.interval.ms";

/// The group configs Sluice honours, those of KIP-848 consumer groups (Kafka's share and
/// streams group configs wait for those group types).
pub const GROUP_CONFIGS: &[ConfigDef] = &[
    ConfigDef {
        name: HEARTBEAT_INTERVAL,
        default: "5000",
        ty: ConfigType::Int,
        broker_synonym: Some("group.consumer.heartbeat.interval.ms"),
    },
    ConfigDef {
        name: SESSION_TIMEOUT,
        default: "45000",
        ty: ConfigType::Int,
        broker_synonym: Some("group.consumer.session.timeout.ms"),
    },
];

/// Looks up a group config definition.
pub fn group_config(name: &str) -> Option<&'static ConfigDef> {
    GROUP_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks a group's overrides as they would be after a change: known names, value types,
/// the broker's bounds (`group.consumer.{min,max}.{session.timeout,heartbeat.interval}.ms`)
/// and a heartbeat interval below the session timeout, as Kafka does.
pub fn validate(overrides: &BTreeMap<String, String>, broker: &BrokerConfig) -> Result<(), String> {
    for (name, value) in overrides {
        let def = group_config(name).ok_or_else(|| format!("Unknown group config name: {name}"))?;
        check_type(name, value, def.ty)?;
    }
    let effective = EffectiveConfigs::of_group(overrides, broker);
    let value = |name: &str| -> i64 {
        group_config(name)
            .and_then(|d| effective.resolve(d).0.parse().ok())
            .unwrap_or(0)
    };
    let bound = |name: &str| -> i64 { broker.get(name).and_then(|v| v.parse().ok()).unwrap_or(0) };
    let (session, heartbeat) = (value(SESSION_TIMEOUT), value(HEARTBEAT_INTERVAL));
    for (name, v, min, max) in [
        (
            SESSION_TIMEOUT,
            session,
            "group.consumer.min.session.timeout.ms",
            "group.consumer.max.session.timeout.ms",
        ),
        (
            HEARTBEAT_INTERVAL,
            heartbeat,
            "group.consumer.min.heartbeat.interval.ms",
            "group.consumer.max.heartbeat.interval.ms",
        ),
    ] {
        let (min, max) = (bound(min), bound(max));
        if v < min || v > max {
            return Err(format!(
                "{name} must be in the range {min} to {max} inclusive."
            ));
        }
    }
    if session <= heartbeat {
        return Err(format!(
            "{SESSION_TIMEOUT} must be greater than {HEARTBEAT_INTERVAL}"
        ));
    }
    Ok(())
}

/// How long a member of the group may go without a heartbeat: the group's override, else the
/// broker's `group.consumer.session.timeout.ms` (`default`).
pub fn session_timeout(
    overrides: Option<&BTreeMap<String, String>>,
    default: Duration,
) -> Duration {
    overrides
        .and_then(|c| c.get(SESSION_TIMEOUT))
        .and_then(|v| v.parse().ok())
        .map_or(default, Duration::from_millis)
}

/// How often the group's members heartbeat: the group's override, else the broker's
/// `group.consumer.heartbeat.interval.ms` (`default`).
pub fn heartbeat_interval_ms(overrides: Option<&BTreeMap<String, String>>, default: i32) -> i32 {
    overrides
        .and_then(|c| c.get(HEARTBEAT_INTERVAL))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn overrides_are_checked_against_the_brokers_bounds() {
        let broker = BrokerConfig::parse(&[]).unwrap();
        assert!(validate(&configs(&[(SESSION_TIMEOUT, "50000")]), &broker).is_ok());
        assert!(validate(&configs(&[(SESSION_TIMEOUT, "10000")]), &broker).is_err());
        assert!(validate(&configs(&[(HEARTBEAT_INTERVAL, "20000")]), &broker).is_err());
        assert!(validate(&configs(&[(HEARTBEAT_INTERVAL, "soon")]), &broker).is_err());
        assert!(validate(&configs(&[("share.record.lock.duration.ms", "1")]), &broker).is_err());
        let relaxed = BrokerConfig::parse(&[
            "group.consumer.min.session.timeout.ms=1000".into(),
            "group.consumer.min.heartbeat.interval.ms=500".into(),
        ])
        .unwrap();
        assert!(validate(&configs(&[(SESSION_TIMEOUT, "6000")]), &relaxed).is_ok());
        // The interval must stay below the timeout.
        let both = configs(&[(SESSION_TIMEOUT, "6000"), (HEARTBEAT_INTERVAL, "6000")]);
        assert!(validate(&both, &relaxed).is_err());
    }

    #[test]
    fn a_groups_override_wins_over_the_broker_default() {
        let set = configs(&[(SESSION_TIMEOUT, "50000"), (HEARTBEAT_INTERVAL, "7000")]);
        let default = Duration::from_secs(45);
        assert_eq!(
            session_timeout(Some(&set), default),
            Duration::from_secs(50)
        );
        assert_eq!(session_timeout(None, default), default);
        assert_eq!(heartbeat_interval_ms(Some(&set), 5000), 7000);
        assert_eq!(heartbeat_interval_ms(None, 5000), 5000);
    }
}
