//! Batch-granular compaction of `__consumer_offsets`, so its storage stays bounded.
//!
//! A batch is removed once every record in it has a newer record with the same key: the
//! latest value per key survives, offsets are unchanged, and the coordinator rebuilds the
//! same state on load. Tombstones are kept: dropping one could bring back an older value
//! still held by a batch that has other live records.

use std::collections::HashMap;

use bytes::Bytes;

use super::{scan_records, OFFSETS_TOPIC};
use crate::context::Broker;
use crate::error::BrokerError;

/// Base offsets of batches whose records are all superseded (never the last batch).
pub fn dead_batches(batches: &[(i64, Vec<(Bytes, i64)>)]) -> Vec<i64> {
    let mut latest: HashMap<&Bytes, i64> = HashMap::new();
    for (_, records) in batches {
        for (key, offset) in records {
            let e = latest.entry(key).or_insert(*offset);
            *e = (*e).max(*offset);
        }
    }
    let keep_last = batches.len().saturating_sub(1);
    batches[..keep_last]
        .iter()
        .filter(|(_, records)| {
            records
                .iter()
                .all(|(k, o)| latest.get(k).is_some_and(|l| l > o))
        })
        .map(|(base, _)| *base)
        .collect()
}

/// Compacts every local `__consumer_offsets` partition that grew by `min_growth` offsets
/// since `last_ends` saw it; returns how many batches were removed.
pub fn compact(
    ctx: &Broker,
    last_ends: &mut HashMap<i32, i64>,
    min_growth: i64,
) -> Result<usize, BrokerError> {
    let image = ctx.controller.image();
    let Some(topic) = image.topics.get(OFFSETS_TOPIC) else {
        return Ok(0);
    };
    let mut removed = 0;
    for p in 0..topic.partitions.len() as i32 {
        let Ok(leader) = ctx.replicas.leader(topic, p) else {
            continue;
        };
        let end = leader.log.log_end_offset();
        if end - last_ends.get(&p).copied().unwrap_or(0) < min_growth {
            continue;
        }
        let mut batches: Vec<(i64, Vec<(Bytes, i64)>)> = Vec::new();
        scan_records(ctx, &leader.log, |base, r| {
            let key = r.key.unwrap_or_default();
            match batches.last_mut() {
                Some((b, records)) if *b == base => records.push((key, r.offset)),
                _ => batches.push((base, vec![(key, r.offset)])),
            }
        })?;
        let dead = dead_batches(&batches);
        removed += ctx.store.delete_batches(&leader.log, &dead)?;
        last_ends.insert(p, end);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn only_fully_superseded_batches_go_and_the_last_stays() {
        let batches = vec![
            (0, vec![(k("a"), 0), (k("b"), 1)]), // a and b rewritten later: dead
            (2, vec![(k("a"), 2), (k("c"), 3)]), // c is only here: live
            (4, vec![(k("a"), 4), (k("b"), 5)]),
            (6, vec![(k("a"), 6)]), // last: always kept
        ];
        assert_eq!(dead_batches(&batches), vec![0]);
        assert!(dead_batches(&batches[..1]).is_empty());
        assert!(dead_batches(&[]).is_empty());
    }
}
