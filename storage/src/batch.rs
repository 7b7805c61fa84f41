//! Kafka RecordBatch v2 headers: validation and the in-place rewrites a leader makes.
//!
//! Only the fixed 61-byte header is parsed; records stay opaque bytes. The CRC-32C covers
//! `attributes..end`, so base offset, batch length, partition leader epoch and magic can be
//! rewritten without recomputing it.

use crate::error::{Result, StorageError};

/// Size of the RecordBatch v2 header, up to and including the record count.
pub const HEADER_LEN: usize = 61;
/// Bytes before `batchLength` ends: baseOffset (8) + batchLength (4).
pub const LOG_OVERHEAD: usize = 12;

const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORDS_COUNT: usize = 57;

/// Attribute bit: the batch's timestamps are LogAppendTime.
pub const TIMESTAMP_TYPE_BIT: i16 = 0x08;
/// Attribute bit: the batch belongs to a transaction.
pub const TRANSACTIONAL_BIT: i16 = 0x10;
/// Attribute bit: the batch is a control batch (transaction markers).
pub const CONTROL_BIT: i16 = 0x20;

/// The parsed fixed header of one record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// First offset in the batch.
    pub base_offset: i64,
    /// Length of the batch after the `batchLength` field.
    pub batch_length: i32,
    /// Leader epoch stamped by the leader that appended it.
    pub partition_leader_epoch: i32,
    /// Compression, timestamp type, transactional and control bits.
    pub attributes: i16,
    /// Offset of the last record relative to `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent/transactional producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence number of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records.
    pub records_count: i32,
}

impl BatchHeader {
    /// Total size of the batch on the wire, including offset and length fields.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Sequence number of the last record (sequences wrap at `i32::MAX`).
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        let last = i64::from(self.base_sequence) + i64::from(self.last_offset_delta);
        (last % (i64::from(i32::MAX) + 1)) as i32
    }

    /// Compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> i16 {
        self.attributes & 0x07
    }

    /// Whether a producer id is set (idempotent or transactional producer).
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }

    /// Whether the batch is part of a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// Whether the batch is a control batch.
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// Parses the header of the batch at the start of `bytes` without checking the CRC.
///
/// Fails if fewer bytes than a header are present or the magic is not 2.
pub fn parse_header(bytes: &[u8]) -> Result<BatchHeader> {
    if bytes.len() < HEADER_LEN {
        return Err(StorageError::InvalidBatch("shorter than a batch header"));
    }
    if bytes[MAGIC] != 2 {
        return Err(StorageError::InvalidBatch(
            "only record batch magic 2 is supported",
        ));
    }
    let header = BatchHeader {
        base_offset: i64_at(bytes, BASE_OFFSET),
        batch_length: i32_at(bytes, BATCH_LENGTH),
        partition_leader_epoch: i32_at(bytes, LEADER_EPOCH),
        attributes: i16_at(bytes, ATTRIBUTES),
        last_offset_delta: i32_at(bytes, LAST_OFFSET_DELTA),
        base_timestamp: i64_at(bytes, BASE_TIMESTAMP),
        max_timestamp: i64_at(bytes, MAX_TIMESTAMP),
        producer_id: i64_at(bytes, PRODUCER_ID),
        producer_epoch: i16_at(bytes, PRODUCER_EPOCH),
        base_sequence: i32_at(bytes, BASE_SEQUENCE),
        records_count: i32_at(bytes, RECORDS_COUNT),
    };
    if (header.batch_length as i64) < (HEADER_LEN - LOG_OVERHEAD) as i64 {
        return Err(StorageError::InvalidBatch(
            "batch length smaller than its header",
        ));
    }
    Ok(header)
}

/// Validates one complete batch as a producer sent it: length, magic, codec, counts, CRC.
pub fn validate(bytes: &[u8]) -> Result<BatchHeader> {
    let header = parse_header(bytes)?;
    if header.total_len() != bytes.len() {
        return Err(StorageError::InvalidBatch(
            "batch length does not match its bytes",
        ));
    }
    if header.compression() > 4 {
        return Err(StorageError::InvalidBatch("unknown compression codec"));
    }
    if header.last_offset_delta < 0
        || header.records_count <= 0
        || header.last_offset_delta + 1 < header.records_count
    {
        return Err(StorageError::InvalidBatch(
            "record count and offset delta disagree",
        ));
    }
    let stored_crc = i32_at(bytes, CRC) as u32;
    if crc32c::crc32c(&bytes[ATTRIBUTES..]) != stored_crc {
        return Err(StorageError::CorruptBatch);
    }
    Ok(header)
}

/// Splits a produce request's `records` bytes into its batches (validating each).
pub fn split_batches(mut bytes: &[u8]) -> Result<Vec<(usize, BatchHeader)>> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while !bytes.is_empty() {
        if bytes.len() < LOG_OVERHEAD {
            return Err(StorageError::InvalidBatch(
                "trailing bytes after the last batch",
            ));
        }
        let header = parse_header(bytes)?;
        let len = header.total_len();
        if len > bytes.len() {
            return Err(StorageError::InvalidBatch("batch extends past the records"));
        }
        let header = validate(&bytes[..len])?;
        out.push((pos, header));
        pos += len;
        bytes = &bytes[len..];
    }
    Ok(out)
}

/// The last offset in a run of stored batches, from their headers alone: they were
/// validated when appended, and checking every CRC again on each read cost the fetch path
/// 14% of its CPU (`PERF=1 compat-tests/bench/consume-probe`).
pub fn last_offset_in(mut bytes: &[u8]) -> Option<i64> {
    let mut last = None;
    while !bytes.is_empty() {
        let header = parse_header(bytes).ok()?;
        let len = header.total_len();
        if len > bytes.len() {
            return None;
        }
        last = Some(header.last_offset());
        bytes = &bytes[len..];
    }
    last
}

/// Stamps a leader's base offset and partition leader epoch into a batch (CRC unaffected).
pub fn assign_offset(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    batch[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    batch[LEADER_EPOCH..LEADER_EPOCH + 4].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Bytes at the start of a batch that [`assign_offset`] rewrites (baseOffset through
/// partitionLeaderEpoch).
pub const STAMPED_HEAD: usize = LEADER_EPOCH + 4;

/// The first [`STAMPED_HEAD`] bytes of `batch` as [`assign_offset`] would leave them, so an
/// append can store the stamped head followed by the untouched rest without copying it.
pub fn stamped_head(batch: &[u8], base_offset: i64, leader_epoch: i32) -> [u8; STAMPED_HEAD] {
    let mut head = [0u8; STAMPED_HEAD];
    head.copy_from_slice(&batch[..STAMPED_HEAD]);
    assign_offset(&mut head, base_offset, leader_epoch);
    head
}

/// Switches a batch to LogAppendTime with the given time, recomputing the CRC.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attributes = i16_at(batch, ATTRIBUTES) | TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES..]);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Sets the record count of a rebuilt batch, fixing its length and CRC to match its bytes.
pub fn set_records_count(batch: &mut [u8], count: i32) {
    let length = (batch.len() - LOG_OVERHEAD) as i32;
    batch[BATCH_LENGTH..BATCH_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    batch[RECORDS_COUNT..RECORDS_COUNT + 4].copy_from_slice(&count.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES..]);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// The fields of a batch built here (not received from a client).
pub(crate) struct NewBatch<'a> {
    pub attributes: i16,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub timestamp: i64,
    pub records_count: i32,
    /// The records section, already encoded.
    pub records: &'a [u8],
}

/// Encodes an uncompressed batch at base offset 0 with a valid CRC.
pub(crate) fn encode(n: &NewBatch<'_>) -> Vec<u8> {
    let mut b = vec![0u8; HEADER_LEN];
    b.extend_from_slice(n.records);
    let len = (b.len() - LOG_OVERHEAD) as i32;
    b[BATCH_LENGTH..BATCH_LENGTH + 4].copy_from_slice(&len.to_be_bytes());
    b[LEADER_EPOCH..LEADER_EPOCH + 4].copy_from_slice(&(-1i32).to_be_bytes());
    b[MAGIC] = 2;
    b[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&n.attributes.to_be_bytes());
    let last_delta = (n.records_count - 1).max(0);
    b[LAST_OFFSET_DELTA..LAST_OFFSET_DELTA + 4].copy_from_slice(&last_delta.to_be_bytes());
    b[BASE_TIMESTAMP..BASE_TIMESTAMP + 8].copy_from_slice(&n.timestamp.to_be_bytes());
    b[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&n.timestamp.to_be_bytes());
    b[PRODUCER_ID..PRODUCER_ID + 8].copy_from_slice(&n.producer_id.to_be_bytes());
    b[PRODUCER_EPOCH..PRODUCER_EPOCH + 2].copy_from_slice(&n.producer_epoch.to_be_bytes());
    b[BASE_SEQUENCE..BASE_SEQUENCE + 4].copy_from_slice(&n.base_sequence.to_be_bytes());
    b[RECORDS_COUNT..RECORDS_COUNT + 4].copy_from_slice(&n.records_count.to_be_bytes());
    let crc = crc32c::crc32c(&b[ATTRIBUTES..]);
    b[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a valid uncompressed batch of `count` empty-ish records (for tests only).
    pub fn make_batch(count: i32, producer_id: i64, epoch: i16, base_seq: i32, ts: i64) -> Vec<u8> {
        let mut records = Vec::new();
        for i in 0..count {
            // length, attributes, timestampDelta, offsetDelta, keyLen=-1, valueLen=1, value, headers=0
            let body = [0u8, 0, zigzag(i), 1, 1, b'x', 0];
            records.push(zigzag(body.len() as i32));
            records.extend_from_slice(&body);
        }
        let mut b = vec![0u8; HEADER_LEN];
        b.extend_from_slice(&records);
        let len = (b.len() - LOG_OVERHEAD) as i32;
        b[BATCH_LENGTH..BATCH_LENGTH + 4].copy_from_slice(&len.to_be_bytes());
        b[MAGIC] = 2;
        b[LAST_OFFSET_DELTA..LAST_OFFSET_DELTA + 4].copy_from_slice(&(count - 1).to_be_bytes());
        b[BASE_TIMESTAMP..BASE_TIMESTAMP + 8].copy_from_slice(&ts.to_be_bytes());
        b[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&ts.to_be_bytes());
        b[PRODUCER_ID..PRODUCER_ID + 8].copy_from_slice(&producer_id.to_be_bytes());
        b[PRODUCER_EPOCH..PRODUCER_EPOCH + 2].copy_from_slice(&epoch.to_be_bytes());
        b[BASE_SEQUENCE..BASE_SEQUENCE + 4].copy_from_slice(&base_seq.to_be_bytes());
        b[RECORDS_COUNT..RECORDS_COUNT + 4].copy_from_slice(&count.to_be_bytes());
        let crc = crc32c::crc32c(&b[ATTRIBUTES..]);
        b[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
        b
    }

    fn zigzag(v: i32) -> u8 {
        (((v << 1) ^ (v >> 31)) & 0x7f) as u8
    }

    #[test]
    fn valid_batch_round_trips_its_header() {
        let b = make_batch(3, 7, 1, 10, 1000);
        let h = validate(&b).unwrap();
        assert_eq!(h.records_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.producer_id, 7);
        assert_eq!(h.last_sequence(), 12);
        assert_eq!(h.total_len(), b.len());
    }

    #[test]
    fn flipped_bit_is_detected_by_crc() {
        let mut b = make_batch(2, -1, -1, -1, 5);
        let last = b.len() - 1;
        b[last] ^= 1;
        assert!(matches!(validate(&b), Err(StorageError::CorruptBatch)));
    }

    #[test]
    fn last_offset_in_walks_headers_only() {
        let mut two = make_batch(3, -1, -1, -1, 5);
        assign_offset(&mut two, 10, 0);
        let mut next = make_batch(2, -1, -1, -1, 5);
        assign_offset(&mut next, 13, 0);
        two.extend_from_slice(&next);
        assert_eq!(last_offset_in(&two), Some(14));
        two[ATTRIBUTES + 5] ^= 1; // a CRC mismatch does not matter here
        assert_eq!(last_offset_in(&two), Some(14));
        assert_eq!(last_offset_in(&two[..two.len() - 1]), None);
        assert_eq!(last_offset_in(&[]), None);
    }

    #[test]
    fn offset_rewrite_keeps_crc_valid() {
        let mut b = make_batch(2, -1, -1, -1, 5);
        assign_offset(&mut b, 1234, 9);
        let h = validate(&b).unwrap();
        assert_eq!(h.base_offset, 1234);
        assert_eq!(h.partition_leader_epoch, 9);
        set_log_append_time(&mut b, 99);
        let h = validate(&b).unwrap();
        assert_eq!(h.max_timestamp, 99);
        assert_ne!(h.attributes & TIMESTAMP_TYPE_BIT, 0);
    }

    #[test]
    fn split_handles_several_batches_and_rejects_truncation() {
        let mut all = make_batch(2, -1, -1, -1, 5);
        all.extend(make_batch(1, -1, -1, -1, 6));
        let parts = split_batches(&all).unwrap();
        assert_eq!(parts.len(), 2);
        assert!(split_batches(&all[..all.len() - 1]).is_err());
        assert!(split_batches(&all[..5]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = split_batches(&bytes);
        }

        #[test]
        fn sequence_arithmetic_wraps(base in 0..i32::MAX, delta in 0..1000i32) {
            let h = BatchHeader { base_offset: 0, batch_length: 49, partition_leader_epoch: 0, attributes: 0,
                last_offset_delta: delta, base_timestamp: 0, max_timestamp: 0, producer_id: 1,
                producer_epoch: 0, base_sequence: base, records_count: delta + 1 };
            let expect = ((base as i64 + delta as i64) % (i32::MAX as i64 + 1)) as i32;
            proptest::prop_assert_eq!(h.last_sequence(), expect);
            proptest::prop_assert!(h.last_sequence() >= 0);
        }
    }
}
