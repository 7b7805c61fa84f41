//! Record batches as the broker reads them: produce validation, splitting a fetch's bytes
//! into batches, and the compaction cleaner's record reader and rewriter (which decompress);
//! the harness of `broker/tests/fuzz_batches.rs`, this target's CI slice.
#![no_main]

#[path = "../../broker/tests/support/mod.rs"]
mod support;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    support::request_fuzz::feed_batch(data);
});
