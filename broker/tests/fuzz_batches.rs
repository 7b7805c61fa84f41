//! The CI slice of the record-batch fuzz target (issue 24): batches as producers send them
//! (keys, values, headers, every codec) and seeded mutations of them, for a bounded time,
//! through what the broker runs on a stored batch: validation as a produce arrives, splitting
//! a fetch's bytes into batches, and the compaction cleaner's record reader and rewriter
//! (which decompress). Every input must end in Ok or an error, never a panic. The long runs
//! are `cargo fuzz run record_batches` (fuzz/README.md).

mod support;

use std::time::{Duration, Instant};

use support::request_fuzz::{batch_seeds, feed_batch, mutate_frame, Rng};

/// How long the mutations run.
const BUDGET: Duration = Duration::from_secs(15);

#[test]
fn arbitrary_record_batches_never_panic_the_batch_readers() {
    let seeds = batch_seeds();
    for (i, seed) in seeds.iter().enumerate() {
        let valid = sluice_storage::batch::validate(seed);
        assert!(valid.is_ok(), "seed {i} is not a valid batch: {valid:?}");
        feed_batch(seed);
    }
    let mut rng = Rng(0x0ba7_c4e5_f022_0001);
    let started = Instant::now();
    let mut fed = 0usize;
    while started.elapsed() < BUDGET {
        let seed = &seeds[rng.below(seeds.len())];
        feed_batch(&mutate_frame(seed, &mut rng));
        fed += 1;
    }
    println!(
        "{} seeds and {fed} mutations in {:?}",
        seeds.len(),
        started.elapsed()
    );
}
