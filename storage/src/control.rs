//! Transaction markers: the control batches that end a transaction on a partition.
//!
//! A marker is a batch with the control and transactional bits and one record whose key is
//! (version 0, type: 0 abort, 1 commit) and whose value is (version 0, coordinator epoch), as
//! Kafka writes them; consumers skip it, and the log uses it to close the producer's open
//! transaction (and, for an abort, to remember the aborted range for `read_committed`).

use bytes::Bytes;

use crate::batch::{self, NewBatch, CONTROL_BIT, TRANSACTIONAL_BIT};
use crate::error::{Result, StorageError};
use crate::records;

const ABORT: i16 = 0;
const COMMIT: i16 = 1;

/// A marker batch ending `producer_id`'s transaction at `producer_epoch`.
pub fn marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp_ms: i64,
) -> Bytes {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&(if commit { COMMIT } else { ABORT }).to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    // attributes 0, timestamp delta 0, offset delta 0, key, value, no headers
    let mut body = vec![0u8, 0, 0, zigzag(key.len())];
    body.extend_from_slice(&key);
    body.push(zigzag(value.len()));
    body.extend_from_slice(&value);
    body.push(0);
    let mut records = vec![zigzag(body.len())];
    records.extend_from_slice(&body);
    Bytes::from(batch::encode(&NewBatch {
        attributes: CONTROL_BIT | TRANSACTIONAL_BIT,
        producer_id,
        producer_epoch,
        base_sequence: -1,
        timestamp: timestamp_ms,
        records_count: 1,
        records: &records,
    }))
}

/// One-byte zig-zag varint of a small length (markers' fields are a few bytes).
fn zigzag(len: usize) -> u8 {
    ((len as u8) << 1) & 0x7f
}

/// What a marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkerRecord {
    /// Commit (true) or abort.
    pub commit: bool,
    /// The epoch of the coordinator that wrote it (-1 if its value does not say).
    pub coordinator_epoch: i32,
}

/// For a control batch, what its marker says; `None` for any other batch.
pub fn parse_marker(batch_bytes: &[u8]) -> Result<Option<MarkerRecord>> {
    let header = batch::parse_header(batch_bytes)?;
    if !header.is_control() {
        return Ok(None);
    }
    let (_, recs) = records::records(batch_bytes)?;
    let first = recs.first();
    let key = first
        .and_then(|r| r.key.clone())
        .filter(|k| k.len() >= 4)
        .ok_or(StorageError::InvalidBatch(
            "control record without a marker key",
        ))?;
    let commit = match i16::from_be_bytes([key[2], key[3]]) {
        ABORT => false,
        COMMIT => true,
        _ => return Err(StorageError::InvalidBatch("unknown control record type")),
    };
    let coordinator_epoch = first
        .and_then(|r| r.value.clone())
        .filter(|v| v.len() >= 6)
        .map_or(-1, |v| i32::from_be_bytes([v[2], v[3], v[4], v[5]]));
    Ok(Some(MarkerRecord {
        commit,
        coordinator_epoch,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn markers_are_valid_control_batches_that_say_what_they_end() {
        for commit in [true, false] {
            let b = marker_batch(9, 3, commit, 5, 1_000);
            let h = batch::validate(&b).unwrap();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.records_count),
                (9, 3, 1)
            );
            let expected = MarkerRecord {
                commit,
                coordinator_epoch: 5,
            };
            assert_eq!(parse_marker(&b).unwrap(), Some(expected));
            // Kafka's own decoder reads it as a control record.
            let set = RecordBatchDecoder::decode(&mut b.clone()).unwrap();
            assert!(set.records[0].control);
        }
        let data = crate::batch::tests::make_batch(1, 9, 3, 0, 0);
        assert_eq!(parse_marker(&data).unwrap(), None);
    }
}
