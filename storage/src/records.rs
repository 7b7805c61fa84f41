//! The records inside a RecordBatch v2, for the few places that must look past the header:
//! log compaction (keys, tombstones) and the rewrite that keeps only some records.
//!
//! A rewritten batch keeps its header (base offset, last offset delta, timestamps, producer
//! fields), as Kafka's cleaner does, so offsets and idempotent-producer state are unchanged;
//! each kept record keeps its bytes, hence its offset delta. Only the record count, the batch
//! length and the CRC change.

use bytes::{Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};

use crate::batch::{self, BatchHeader, HEADER_LEN};
use crate::error::{Result, StorageError};

/// One record's identity: where it sits and what compaction needs to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordInfo {
    /// Absolute offset.
    pub offset: i64,
    /// Key bytes (None for a null key).
    pub key: Option<Bytes>,
    /// Value bytes (None for a null value: a delete marker for its key).
    pub value: Option<Bytes>,
}

impl RecordInfo {
    /// A null value: a delete marker for its key.
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }
}

/// What is left of a batch after [`retain`].
#[derive(Debug, PartialEq, Eq)]
pub enum Retained {
    /// Every record kept: the stored batch stays as it is.
    All,
    /// No record kept.
    None,
    /// Some records kept, in this rewritten batch.
    Some(Bytes),
}

/// The records of a batch, in order.
pub fn records(batch_bytes: &[u8]) -> Result<(BatchHeader, Vec<RecordInfo>)> {
    let header = batch::parse_header(batch_bytes)?;
    let body = body(&header, batch_bytes)?;
    let infos = split(&header, &body)?
        .into_iter()
        .map(|(info, _)| info)
        .collect();
    Ok((header, infos))
}

/// Keeps the records for which `keep` says yes.
pub fn retain(batch_bytes: &[u8], mut keep: impl FnMut(&RecordInfo) -> bool) -> Result<Retained> {
    let header = batch::parse_header(batch_bytes)?;
    let body = body(&header, batch_bytes)?;
    let split = split(&header, &body)?;
    let total = split.len();
    let kept: Vec<std::ops::Range<usize>> = split
        .into_iter()
        .filter(|(info, _)| keep(info))
        .map(|(_, range)| range)
        .collect();
    if kept.len() == total {
        return Ok(Retained::All);
    }
    if kept.is_empty() {
        return Ok(Retained::None);
    }
    let mut records = Vec::with_capacity(kept.iter().map(|r| r.len()).sum());
    for range in &kept {
        records.extend_from_slice(&body[range.clone()]);
    }
    let records = compress(header.compression(), records)?;
    let mut out = Vec::with_capacity(HEADER_LEN + records.len());
    out.extend_from_slice(&batch_bytes[..HEADER_LEN]);
    out.extend_from_slice(&records);
    batch::set_records_count(&mut out, kept.len() as i32);
    Ok(Retained::Some(Bytes::from(out)))
}

/// The uncompressed records section.
fn body(header: &BatchHeader, batch_bytes: &[u8]) -> Result<Bytes> {
    let end = header.total_len().min(batch_bytes.len());
    let mut raw = batch_bytes.get(HEADER_LEN..end).unwrap_or_default();
    let out = match header.compression() {
        0 => Ok(Bytes::copy_from_slice(raw)),
        1 => Gzip::decompress(&mut raw, |b| Ok(b.clone())),
        2 => Snappy::decompress(&mut raw, |b| Ok(b.clone())),
        3 => Lz4::decompress(&mut raw, |b| Ok(b.clone())),
        4 => Zstd::decompress(&mut raw, |b| Ok(b.clone())),
        _ => return Err(StorageError::InvalidBatch("unknown compression codec")),
    };
    out.map_err(|_| StorageError::InvalidBatch("records do not decompress"))
}

fn compress(codec: i16, records: Vec<u8>) -> Result<Vec<u8>> {
    let mut out = BytesMut::new();
    let fill = |b: &mut BytesMut| {
        b.extend_from_slice(&records);
        Ok(())
    };
    let done = match codec {
        0 => return Ok(records),
        1 => Gzip::compress(&mut out, fill),
        2 => Snappy::compress(&mut out, fill),
        3 => Lz4::compress(&mut out, fill),
        4 => Zstd::compress(&mut out, fill),
        _ => return Err(StorageError::InvalidBatch("unknown compression codec")),
    };
    done.map_err(|_| StorageError::InvalidBatch("records do not compress"))?;
    Ok(out.to_vec())
}

/// Splits the records section into (info, byte range) per record.
fn split(header: &BatchHeader, body: &Bytes) -> Result<Vec<(RecordInfo, std::ops::Range<usize>)>> {
    let bad = || StorageError::InvalidBatch("malformed record");
    let mut out = Vec::with_capacity(header.records_count.clamp(0, 1 << 16) as usize);
    let mut pos = 0usize;
    while pos < body.len() {
        let start = pos;
        let len = varint(body, &mut pos)?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| pos.checked_add(l))
            .filter(|e| *e <= body.len())
            .ok_or_else(bad)?;
        let mut at = pos + 1; // attributes
        varint(body, &mut at)?; // timestamp delta
        let offset_delta = varint(body, &mut at)?;
        let key = bytes_field(body, &mut at, end)?;
        let value = bytes_field(body, &mut at, end)?;
        out.push((
            RecordInfo {
                offset: header.base_offset + offset_delta,
                key,
                value,
            },
            start..end,
        ));
        pos = end;
    }
    Ok(out)
}

/// A length-prefixed (zig-zag varint, -1 = null) byte field that must end by `limit`.
fn bytes_field(body: &Bytes, at: &mut usize, limit: usize) -> Result<Option<Bytes>> {
    let len = varint(body, at)?;
    if len < 0 {
        return Ok(None);
    }
    let end = at
        .checked_add(len as usize)
        .filter(|e| *e <= limit)
        .ok_or(StorageError::InvalidBatch("record field past its record"))?;
    let field = body.slice(*at..end);
    *at = end;
    Ok(Some(field))
}

/// A zig-zag encoded varint/varlong.
fn varint(body: &[u8], at: &mut usize) -> Result<i64> {
    let mut raw: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *body
            .get(*at)
            .ok_or(StorageError::InvalidBatch("truncated varint"))?;
        *at += 1;
        raw |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    Err(StorageError::InvalidBatch("varint too long"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::Compression;

    fn encode(codec: Compression, keys: &[(&str, Option<&str>)]) -> Vec<u8> {
        crate::tests::keyed_batch_with(codec, keys, 1_000)
    }

    #[test]
    fn lists_keys_offsets_and_tombstones() {
        let b = encode(Compression::None, &[("a", Some("1")), ("b", None)]);
        let (header, recs) = records(&b).unwrap();
        assert_eq!(header.base_offset, 0);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].offset, 1);
        assert_eq!(recs[1].key.as_deref(), Some(&b"b"[..]));
        assert!(recs[1].is_tombstone() && !recs[0].is_tombstone());
    }

    #[test]
    fn rewrite_keeps_offsets_header_and_a_valid_crc_for_every_codec() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let b = encode(
                codec,
                &[("a", Some("1")), ("b", Some("2")), ("c", Some("3"))],
            );
            let Retained::Some(out) = retain(&b, |r| r.offset != 1).unwrap() else {
                panic!("expected a rewrite for {codec:?}");
            };
            let header = batch::validate(&out).unwrap();
            assert_eq!(header.base_offset, 0);
            assert_eq!(header.last_offset(), 2);
            assert_eq!(header.records_count, 2);
            let (_, recs) = records(&out).unwrap();
            let offsets: Vec<i64> = recs.iter().map(|r| r.offset).collect();
            assert_eq!(offsets, vec![0, 2], "{codec:?}");
            assert_eq!(retain(&b, |_| true).unwrap(), Retained::All);
            assert_eq!(retain(&b, |_| false).unwrap(), Retained::None);
        }
    }

    #[test]
    fn malformed_records_are_errors_not_panics() {
        let mut b = encode(Compression::None, &[("a", Some("1"))]);
        let n = b.len();
        b[HEADER_LEN] = 0x7e; // a record length far past the end
        assert!(records(&b).is_err());
        assert!(records(&b[..n - 2]).is_err());
    }
}
