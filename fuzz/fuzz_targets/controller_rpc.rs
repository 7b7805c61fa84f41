//! The controller listener exactly as a socket feeds it: the input's first byte picks who
//! sends the rest (even: a process without the cluster secret, so the Kafka-or-peer sniffing,
//! the framing and the secret exchange; odd: a peer that proved the secret, so the request
//! decoder and the Raft member behind it). The rest is sent as it is on a fresh connection to
//! a node running in this process (the harness of `broker/tests/fuzz_controller.rs`, this
//! target's CI slice). A panic anywhere in the node aborts the process, so libFuzzer keeps
//! the input.
#![no_main]

#[path = "../../broker/tests/support/mod.rs"]
mod support;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use support::request_fuzz::{FuzzNode, Port};

static NODE: OnceLock<FuzzNode> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let node = NODE.get_or_init(FuzzNode::start_aborting);
    let Some((selector, bytes)) = data.split_first() else {
        return;
    };
    let port = if selector & 1 == 0 {
        Port::Controller
    } else {
        Port::Peer
    };
    node.feed_bytes(port, bytes);
});
