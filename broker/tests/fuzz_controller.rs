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

/// Regression (issue 24, found by `cargo fuzz run controller_rpc` on its seeds): a
/// secret-holding peer claiming leadership of the node's own term (a made-up vote) with a
/// `prev_log_id` that contradicts a committed entry made openraft truncate committed entries
/// and panic applying them; an entry far past `prev_log_id` would leave a hole the same way.
/// Both are refused now, and the node's own quorum goes on.
#[test]
fn made_up_leaders_neither_rewrite_nor_hole_the_controller_log() {
    let node = FuzzNode::start();
    let seed = sluice_controller::example_request_frames()
        .into_iter()
        .find(|f| f.windows(15).any(|w| w == b"\"AppendEntries\""))
        .expect("an AppendEntries seed");
    let frame_of = |request: &serde_json::Value| {
        let json = request.to_string().into_bytes();
        let mut frame = (json.len() as u32).to_be_bytes().to_vec();
        frame.extend(json);
        frame
    };
    let same_term: serde_json::Value = serde_json::from_slice(&seed[4..]).expect("JSON");
    let mut hole = same_term.clone();
    let append = &mut hole["AppendEntries"];
    let far = |v: &mut serde_json::Value, index: u64| {
        v["leader_id"]["term"] = 1000.into();
        v["index"] = index.into();
    };
    append["vote"]["leader_id"]["term"] = 1000.into();
    let mut entry = append["entries"][0].clone();
    far(&mut entry["log_id"], 1_000_000);
    append["entries"] = serde_json::Value::Array(vec![entry]);
    far(&mut append["leader_commit"], 999_999);

    // The seeds in libFuzzer's order (smallest first) brought the node to the same-term
    // AppendEntries with its vote unchanged.
    let mut seeds = controller_seeds();
    seeds.sort_by_key(|s| s.bytes().len());
    for seed in &seeds {
        node.feed(seed);
    }
    for request in [&same_term, &hole] {
        node.feed_bytes(Port::Peer, &frame_of(request));
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(node.panics(), 0, "the node panicked on {request}");
        assert!(
            node.controller_answers(),
            "the controller stopped answering after {request}"
        );
    }
}
