//! # sluice-client: talking to a Sluice node
//!
//! ```text
//! kafka.rs      a minimal Kafka protocol client: one connection, one request at a time
//! security.rs   TLS and SASL (PLAIN, SCRAM) for it, from a Kafka client properties file
//! admin_api.rs  the HTTP admin API: its paths, request bodies and replies, typed
//! http.rs       a client for it (typed JSON), and plain GETs such as /metrics
//! ```
//!
//! The broker serves the admin API with these types and its follower fetchers use the Kafka
//! client; `sluice admin` (the sluice-admin crate) uses all three.

pub mod admin_api;
pub mod http;
pub mod kafka;
pub mod security;

pub use kafka::KafkaClient;
pub use security::ClientSecurity;
