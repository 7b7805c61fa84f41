//! The request path exactly as a socket feeds it: the input's first byte picks the listener
//! (even: PLAINTEXT, odd: SASL_PLAINTEXT, where the SASL exchange runs first), the rest is
//! sent as it is on a fresh connection to a node running in this process (the harness of
//! `broker/tests/fuzz_requests.rs`, which is this target's CI slice). A panic anywhere in the
//! node aborts the process, so libFuzzer keeps the input.
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
        Port::Plaintext
    } else {
        Port::Sasl
    };
    node.feed_bytes(port, bytes);
});
