//! The CI slice of the request-path fuzz target (issue 24): a node in this process is fed a
//! well-formed frame for every API key and version kafka-protocol knows, produces of real
//! record batches in every codec and SASL exchanges on a SASL listener, then seeded
//! mutations of them (bit flips, boundary values, cuts, insertions, wrong length prefixes)
//! for a bounded time, each on its own connection. Every input must end in an answer or a
//! closed connection, never a panic; the node must keep answering and its memory stay
//! bounded. The long runs are `cargo fuzz run request_frames` (see fuzz/README.md).

mod support;

use std::time::Duration;

use support::request_fuzz::{
    feed_mutations, produce_seeds, request_seeds, rss_mib, sasl_seeds, write_corpus, FuzzNode,
    Port, Rng,
};

/// How long the mutations run.
const BUDGET: Duration = Duration::from_secs(40);

#[test]
fn arbitrary_request_frames_never_crash_the_node_or_grow_it() {
    let node = FuzzNode::start();
    let mut seeds = request_seeds();
    assert!(seeds.len() > 250, "only {} seeds", seeds.len());
    seeds.extend(produce_seeds());
    // A PLAIN login on the SASL listener is answered through to its Metadata request: the
    // seeds reach past authentication.
    let sasl = sasl_seeds();
    let plain = sasl
        .iter()
        .find(|s| s.frames.len() == 4)
        .expect("a PLAIN seed");
    assert_eq!(
        node.feed(plain),
        4,
        "ApiVersions, handshake, login and Metadata answered"
    );
    seeds.extend(sasl);
    let rss_before = rss_mib();
    write_corpus(&seeds, Port::Sasl);
    for seed in &seeds {
        node.feed(seed);
    }
    assert!(node.answers(), "the node stopped answering after the seeds");
    // A fixed seed: a failure replays the same inputs.
    feed_mutations(
        &node,
        &seeds,
        Rng(0x5eed_f00d_cafe_d00d),
        BUDGET,
        rss_before,
        |n| n.answers(),
    );
}
