//! The records inside a RecordBatch v2, for the few places that must look past the header:
//! log compaction (keys, tombstones) and the rewrite that keeps only some records.
//!
//! A rewritten batch keeps its header (base offset, last offset delta, timestamps, producer
//! fields), as Kafka's cleaner does, so offsets and idempotent-producer state are unchanged;
//! each kept record keeps its bytes, hence its offset delta. Only the record count, the batch
//! length and the CRC change.

use bytes::{Bytes, BytesMut};
use std::io::Read;

use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};

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

/// The most a batch's records section may decompress to. A batch is at most
/// `message.max.bytes` on the wire, but a few KiB of gzip or zstd can claim gigabytes (a
/// decompression bomb): past this the batch is refused, never inflated further.
pub const MAX_RECORDS_BYTES: usize = 64 << 20;

/// The uncompressed records section, read through each codec's stream so that no more than
/// [`MAX_RECORDS_BYTES`] is ever allocated, whatever the compressed bytes claim.
fn body(header: &BatchHeader, batch_bytes: &[u8]) -> Result<Bytes> {
    let end = header.total_len().min(batch_bytes.len());
    let raw = batch_bytes.get(HEADER_LEN..end).unwrap_or_default();
    let undecodable = |_| StorageError::InvalidBatch("records do not decompress");
    match header.compression() {
        0 => Ok(Bytes::copy_from_slice(raw)),
        // Java's GZIPInputStream reads concatenated members too.
        1 => read_bounded(flate2::read::MultiGzDecoder::new(raw)),
        2 => snappy(raw),
        3 => read_bounded(lz4::Decoder::new(raw).map_err(undecodable)?),
        4 => read_bounded(zstd::stream::read::Decoder::with_buffer(raw).map_err(undecodable)?),
        _ => Err(StorageError::InvalidBatch("unknown compression codec")),
    }
}

fn read_bounded(stream: impl Read) -> Result<Bytes> {
    let mut out = Vec::new();
    stream
        .take(MAX_RECORDS_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| StorageError::InvalidBatch("records do not decompress"))?;
    if out.len() > MAX_RECORDS_BYTES {
        return Err(StorageError::RecordsTooLarge);
    }
    Ok(Bytes::from(out))
}

/// Kafka's snappy: snappy-java's framing (a 16-byte header, then blocks each prefixed with
/// its big-endian length), or one raw block as snappy-java also reads. Each block states its
/// uncompressed length, which is checked against the bound before anything is allocated.
fn snappy(raw: &[u8]) -> Result<Bytes> {
    const FRAMED: &[u8; 8] = b"\x82SNAPPY\x00";
    const HEADER: usize = 16;
    let bad = || StorageError::InvalidBatch("records do not decompress");
    let mut blocks = Vec::new();
    if raw.len() >= HEADER && raw.starts_with(FRAMED) {
        let mut rest = &raw[HEADER..];
        while !rest.is_empty() {
            let (len, tail) = rest.split_first_chunk::<4>().ok_or_else(bad)?;
            let len = u32::from_be_bytes(*len) as usize;
            let block = tail.get(..len).ok_or_else(bad)?;
            blocks.push(block);
            rest = &tail[len..];
        }
    } else {
        blocks.push(raw);
    }
    let mut out = Vec::new();
    for block in blocks {
        let len = snap::raw::decompress_len(block).map_err(|_| bad())?;
        let start = out.len();
        if start.saturating_add(len) > MAX_RECORDS_BYTES {
            return Err(StorageError::RecordsTooLarge);
        }
        out.resize(start + len, 0);
        snap::raw::Decoder::new()
            .decompress(block, &mut out[start..])
            .map_err(|_| bad())?;
    }
    Ok(Bytes::from(out))
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
pub(crate) mod tests {
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

    /// One record keyed "a" whose value is `len` zero bytes: a few KiB once compressed.
    pub(crate) fn zeros(codec: Compression, len: usize) -> Vec<u8> {
        crate::tests::keyed_batch_with(codec, &[("a", Some(&"\0".repeat(len)))], 1_000)
    }

    #[test]
    fn a_batch_that_inflates_past_the_bound_is_refused_in_every_codec() {
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let bomb = zeros(codec, MAX_RECORDS_BYTES + 1024);
            assert!(bomb.len() < 4 << 20, "{codec:?}: {} bytes", bomb.len());
            assert!(
                matches!(records(&bomb), Err(StorageError::RecordsTooLarge)),
                "{codec:?}"
            );
            assert!(matches!(
                retain(&bomb, |_| true),
                Err(StorageError::RecordsTooLarge)
            ));
            let (_, recs) = records(&zeros(codec, 1 << 20)).unwrap();
            assert_eq!(recs[0].value.as_ref().map(Bytes::len), Some(1 << 20));
        }
    }

    /// A snappy batch whose records section is `section`.
    fn snappy_section(section: &[u8]) -> Vec<u8> {
        let mut b = encode(Compression::Snappy, &[("a", Some("1"))]);
        b.truncate(HEADER_LEN);
        b.extend_from_slice(section);
        let len = (b.len() - 12) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        b
    }

    #[test]
    fn a_snappy_block_claiming_gigabytes_is_refused_before_any_allocation() {
        // A raw block whose length varint says 4 GiB - 1, then nothing.
        let claim = [0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0];
        let raw = snappy_section(&claim);
        assert!(matches!(records(&raw), Err(StorageError::RecordsTooLarge)));
        // The same block inside snappy-java's framing, after a small honest one.
        let mut framed = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
        let small = snap::raw::Encoder::new().compress_vec(b"abc").unwrap();
        for block in [&small[..], &claim[..]] {
            framed.extend_from_slice(&(block.len() as u32).to_be_bytes());
            framed.extend_from_slice(block);
        }
        let framed = snappy_section(&framed);
        assert!(matches!(
            records(&framed),
            Err(StorageError::RecordsTooLarge)
        ));
        // A block length past the section's end.
        let mut cut = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
        cut.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            records(&snappy_section(&cut)),
            Err(StorageError::InvalidBatch(_))
        ));
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
