//! Code shared by the integration tests (and the fuzz targets, which include it by path).
#![allow(dead_code)] // each test binary uses part of it

pub mod request_fuzz;

use std::path::Path;

use sluice::config::ServeArgs;

/// The `serve` arguments of a one-node cluster run in a test process: ephemeral ports on
/// 127.0.0.1, data in `data_dir`, no initial rebalance delay.
pub fn one_node_args(data_dir: &Path) -> ServeArgs {
    ServeArgs {
        node_id: 1,
        data_dir: data_dir.to_path_buf(),
        kafka_addr: "127.0.0.1:0".into(),
        advertised_addr: None,
        controller_addr: "127.0.0.1:0".into(),
        http_addr: "127.0.0.1:0".into(),
        voters: None,
        roles: "broker,controller".into(),
        configs: vec!["group.initial.rebalance.delay.ms=0".into()],
        log_json: false,
    }
}
