//! The CI slice of the request-path fuzz target (issue 24): a node in this process is fed a
//! well-formed frame for every API key and version kafka-protocol knows, produces of real
//! record batches in every codec and SASL exchanges on a SASL listener, then seeded
//! mutations of them (bit flips, boundary values, cuts, insertions, wrong length prefixes)
//! for a bounded time, each on its own connection. Every input must end in an answer or a
//! closed connection, never a panic; the node must keep answering and its memory stay
//! bounded. The long runs are `cargo fuzz run request_frames` (see fuzz/README.md).

mod support;

use std::time::{Duration, Instant};

use support::request_fuzz::{
    mutate, produce_seeds, request_seeds, rss_mib, sasl_seeds, FuzzNode, Port, Rng,
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
    // SLUICE_FUZZ_CORPUS=<dir>: the seeds become the cargo-fuzz target's starting corpus
    // (its input: a byte picking the listener, then the bytes sent).
    if let Some(dir) = std::env::var_os("SLUICE_FUZZ_CORPUS") {
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in seeds.iter().enumerate() {
            let mut file = vec![u8::from(seed.port == Port::Sasl)];
            file.extend(seed.bytes());
            std::fs::write(
                std::path::Path::new(&dir).join(format!("seed-{i:04}")),
                file,
            )
            .unwrap();
        }
    }
    for seed in &seeds {
        node.feed(seed);
    }
    assert!(node.answers(), "the node stopped answering after the seeds");
    // A fixed seed: a failure replays the same inputs.
    let mut rng = Rng(0x5eed_f00d_cafe_d00d);
    let started = Instant::now();
    let mut fed = 0usize;
    while started.elapsed() < BUDGET {
        let seed = &seeds[rng.below(seeds.len())];
        let input = mutate(seed, &mut rng);
        node.feed(&input);
        fed += 1;
        if fed.is_multiple_of(1000) {
            assert!(
                node.answers(),
                "the node stopped answering after {fed} inputs"
            );
        }
    }
    assert!(node.answers(), "the node stopped answering");
    assert_eq!(node.panics(), 0, "the node panicked (see stderr)");
    let rss_after = rss_mib();
    println!(
        "{} seeds and {fed} mutations in {:?}; RSS {rss_before} -> {rss_after} MiB",
        seeds.len(),
        started.elapsed()
    );
    assert!(
        rss_after < rss_before + 512,
        "memory grew from {rss_before} to {rss_after} MiB"
    );
}
