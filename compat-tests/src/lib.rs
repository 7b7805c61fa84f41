//! # sluice-compat-tests: real clients against real `sluice` processes
//!
//! ## Layout
//!
//! ```text
//! src/node.rs       Node: start a `sluice serve` on ephemeral ports in a temp dir, wait
//!                   until ready, SIGKILL/SIGTERM/restart it
//! src/cluster.rs    clusters of nodes, plain or behind proxies; fast-failover flags
//! src/proxy.rs      TCP proxy with cut/heal, for network-partition tests
//! src/clients.rs    client launchers, commands with time limits, kcat, polling
//! src/wire.rs       raw Kafka produce frames and the node's HTTP listener
//! src/tls.rs        throwaway CA, server and client certificates (openssl CLI)
//! src/jepsen/      fault testing: workload clients, nemeses, the history's checker
//! tests/*.rs        one file per client family or fault: kcat, Java + Kafka CLI, Python,
//!                   Go, raw-protocol bad input, crash recovery
//! setup.sh          installs every client (apt, Maven, PyPI, Go, npm) into a cache
//! bin/              launchers that hide install paths (roundtrip-*, kafka-*)
//! clients/          the client programs (one roundtrip contract for all of them)
//! ```
//!
//! Every test bounds its own time: nodes must be ready within `READY_TIMEOUT`, client
//! commands are killed after their timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod clients;
mod cluster;
pub mod jepsen;
mod node;
pub mod proxy;
pub mod tls;
mod wire;

pub use clients::*;
pub use cluster::*;
pub use node::*;
pub use wire::*;
