//! Log levels changed at run time, as Kafka's BROKER_LOGGER resource changes them: a logger
//! is a tracing target (`sluice::group`, `openraft`), `root` the level of every other one.
//! Changes apply to this node only and last until it restarts, as in Kafka.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::error::BrokerError;

/// Kafka's name for the level of every logger not named.
pub const ROOT_LOGGER: &str = "root";

/// The loggers described besides those a filter names: this crate, its modules that log, the
/// crates below it and the Raft library (Kafka's tools only let a described logger be set).
const KNOWN_LOGGERS: &[&str] = &[
    "sluice",
    "sluice::connection",
    "sluice::coordinator",
    "sluice::dispatch",
    "sluice::group",
    "sluice::handlers",
    "sluice::log_cleaner",
    "sluice::replication",
    "sluice::retention",
    "sluice::server",
    "sluice::txn",
    "sluice_controller",
    "sluice_storage",
    "openraft",
];

/// The levels Kafka accepts for a logger (FATAL is tracing's ERROR).
const LEVELS: &[&str] = &["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

/// Installs a new filter (an `EnvFilter` directive string) in the process' subscriber.
pub type ApplyFilter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// The node's loggers and their levels.
pub struct LogLevels {
    state: Mutex<Filter>,
    apply: Option<ApplyFilter>,
}

/// A filter as loggers and levels: what `RUST_LOG`-style directives say.
#[derive(Clone)]
struct Filter {
    root: String,
    loggers: BTreeMap<String, String>,
    /// Directives that are not a plain `target=level` (span or field filters), kept as given.
    other: Vec<String>,
}

impl Filter {
    fn parse(directives: &str) -> Self {
        let mut filter = Filter {
            root: "ERROR".into(),
            loggers: BTreeMap::new(),
            other: Vec::new(),
        };
        for d in directives
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            match d.split_once('=') {
                None if LEVELS.contains(&d.to_uppercase().as_str()) => {
                    filter.root = d.to_uppercase()
                }
                Some((target, level))
                    if !target.contains(['[', '{'])
                        && LEVELS.contains(&level.to_uppercase().as_str()) =>
                {
                    filter
                        .loggers
                        .insert(target.to_string(), level.to_uppercase());
                }
                _ => filter.other.push(d.to_string()),
            }
        }
        filter
    }

    fn directives(&self) -> String {
        let level = |l: &str| {
            if l == "FATAL" {
                "error".to_string()
            } else {
                l.to_lowercase()
            }
        };
        std::iter::once(level(&self.root))
            .chain(self.other.iter().cloned())
            .chain(
                self.loggers
                    .iter()
                    .map(|(t, l)| format!("{t}={}", level(l))),
            )
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl LogLevels {
    /// The levels `directives` set, changed in the subscriber through `apply` (None: a node
    /// that does not own the process' subscriber, as in the in-process tests).
    pub fn new(directives: &str, apply: Option<ApplyFilter>) -> Self {
        Self {
            state: Mutex::new(Filter::parse(directives)),
            apply,
        }
    }

    /// Every known or named logger with the level it logs at (that of the most specific
    /// logger named that contains it, else the root's), `root` first.
    pub fn describe(&self) -> Vec<(String, String)> {
        let filter = self.lock().clone();
        let mut names: Vec<&str> = KNOWN_LOGGERS.to_vec();
        names.extend(filter.loggers.keys().map(String::as_str));
        names.sort_unstable();
        names.dedup();
        let level_of = |logger: &str| {
            let within =
                |target: &str| logger == target || logger.starts_with(&format!("{target}::"));
            (filter.loggers.iter())
                .filter(|(target, _)| within(target))
                .max_by_key(|(target, _)| target.len())
                .map_or(filter.root.clone(), |(_, level)| level.clone())
        };
        std::iter::once((ROOT_LOGGER.to_string(), filter.root.clone()))
            .chain(names.into_iter().map(|n| (n.to_string(), level_of(n))))
            .collect()
    }

    /// Sets `logger` to `level` (`validate_only`: only checks it).
    pub fn set(&self, logger: &str, level: &str, validate_only: bool) -> Result<(), BrokerError> {
        let level = level.to_uppercase();
        if !LEVELS.contains(&level.as_str()) {
            return Err(BrokerError::InvalidConfig(format!(
                "Cannot set the log level of {logger} to {level} as it is not a supported log \
                 level. Valid log levels are {}",
                LEVELS.join(", ")
            )));
        }
        if logger.is_empty()
            || !logger
                .chars()
                .all(|c| c.is_alphanumeric() || "_:-".contains(c))
        {
            return Err(BrokerError::InvalidConfig(format!(
                "Logger {logger} does not exist!"
            )));
        }
        self.change(validate_only, |f| {
            if logger == ROOT_LOGGER {
                f.root = level;
            } else {
                f.loggers.insert(logger.to_string(), level);
            }
        })
    }

    /// Gives `logger` the root level again.
    pub fn reset(&self, logger: &str, validate_only: bool) -> Result<(), BrokerError> {
        if logger == ROOT_LOGGER {
            return Err(BrokerError::InvalidConfig(
                "Removing the log level of the root logger is not allowed".into(),
            ));
        }
        self.change(validate_only, |f| {
            f.loggers.remove(logger);
        })
    }

    fn change(
        &self,
        validate_only: bool,
        edit: impl FnOnce(&mut Filter),
    ) -> Result<(), BrokerError> {
        let mut state = self.lock();
        let mut changed = state.clone();
        edit(&mut changed);
        if validate_only {
            return Ok(());
        }
        if let Some(apply) = &self.apply {
            apply(&changed.directives()).map_err(BrokerError::InvalidConfig)?;
        }
        tracing::info!(filter = %changed.directives(), "log levels changed");
        *state = changed;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Filter> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loggers_are_the_targets_of_the_filter_and_root_its_level() {
        let levels = LogLevels::new("info,openraft=warn,sluice::txn[x]=debug,x::y=trace", None);
        let described = |levels: &LogLevels| -> BTreeMap<String, String> {
            levels.describe().into_iter().collect()
        };
        let before = described(&levels);
        assert_eq!(before["root"], "INFO");
        assert_eq!(before["openraft"], "WARN");
        assert_eq!(before["x::y"], "TRACE");
        assert_eq!(before["sluice::group"], "INFO");
        levels.set("sluice", "debug", false).unwrap();
        levels.set("root", "WARN", false).unwrap();
        let after = described(&levels);
        assert_eq!(after["sluice::group"], "DEBUG");
        assert_eq!(after["sluice_storage"], "WARN");
        assert_eq!(
            levels.lock().directives(),
            "warn,sluice::txn[x]=debug,openraft=warn,sluice=debug,x::y=trace"
        );
        levels.reset("sluice", false).unwrap();
        assert!(levels.reset("root", false).is_err());
        assert!(levels.set("sluice", "LOUD", false).is_err());
        levels.set("openraft", "FATAL", true).unwrap();
        assert_eq!(
            levels.lock().directives(),
            "warn,sluice::txn[x]=debug,openraft=warn,x::y=trace"
        );
    }
}
