//! Jepsen-style fault testing (after Jepsen's Kafka workload): a workload of real clients
//! whose output is the history, nemeses that fault the cluster, and a checker that counts
//! every anomaly in the history. `tests/faults.rs` runs one fixed sequence of faults;
//! `tests/fault_matrix.rs` runs each nemesis across replication factors and acks settings
//! and writes the report.

mod checker;
mod nemesis;
mod workload;

pub use checker::*;
pub use nemesis::*;
pub use workload::*;
