//! The CI slice of the controller RPC fuzz target (issue 24): a node in this process, with a
//! cluster secret, gets on its controller listener each kind of request a peer controller
//! sends (after proving the secret), the secret exchange's first message, garbage and a Kafka
//! request from a process without the secret, then seeded mutations of them for a bounded
//! time, each on its own connection. Every input must end in an answer or a closed
//! connection, never a panic; the controller must keep answering and the node's memory stay
//! bounded. The long runs are `cargo fuzz run controller_rpc` (see fuzz/README.md).

mod support;

use std::time::Duration;

use support::request_fuzz::{
    controller_seeds, feed_mutations, rss_mib, write_corpus, FuzzNode, Port, Rng,
};

/// How long the mutations run.
const BUDGET: Duration = Duration::from_secs(20);

#[test]
fn arbitrary_controller_frames_never_crash_the_node_or_grow_it() {
    let node = FuzzNode::start();
    let seeds = controller_seeds();
    write_corpus(&seeds, Port::Peer);
    // Every peer seed is decoded and answered: the mutations start from requests that reach
    // the Raft member, not from ones the decoder refuses.
    for seed in seeds.iter().filter(|s| s.port == Port::Peer) {
        assert_eq!(node.feed(seed), 1, "no answer to {:?}", seed.bytes());
    }
    for seed in &seeds {
        node.feed(seed);
    }
    assert!(
        node.controller_answers(),
        "the controller stopped answering"
    );
    let rss_before = rss_mib();
    feed_mutations(
        &node,
        &seeds,
        Rng(0xc0de_5eed_0bad_f00d),
        BUDGET,
        rss_before,
        |n| n.controller_answers() && n.answers(),
    );
}
