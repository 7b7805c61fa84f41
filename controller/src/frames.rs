//! The controller RPC's framing: a 4-byte big-endian length, then that many bytes (the
//! layout of `tokio_util`'s `LengthDelimitedCodec`, which this replaces because it reserves
//! the whole claimed length as soon as it reads a frame's prefix: any process reaching the
//! controller port could make a node allocate 64 MiB per connection by sending four bytes).
//! Here the read buffer grows only as a frame's bytes arrive, and the cap is small until the
//! peer has proved it holds the cluster secret.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Length-prefixed frames up to `max` bytes each.
pub(crate) struct Frames {
    max: usize,
}

impl Frames {
    /// Frames of at most `max` bytes.
    pub fn new(max: usize) -> Self {
        Self { max }
    }

    /// Changes the cap (raised once the peer is authenticated).
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }
}

const PREFIX: usize = 4;

impl Decoder for Frames {
    type Item = BytesMut;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, std::io::Error> {
        let Some(prefix) = src.get(..PREFIX) else {
            return Ok(None);
        };
        let claimed = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if claimed > self.max {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("controller frame of {claimed} bytes (cap {})", self.max),
            ));
        }
        if src.len() < PREFIX + claimed {
            // No reserve here: the framed reader grows the buffer as bytes come in.
            return Ok(None);
        }
        src.advance(PREFIX);
        Ok(Some(src.split_to(claimed)))
    }
}

impl Encoder<Bytes> for Frames {
    type Error = std::io::Error;

    fn encode(&mut self, frame: Bytes, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        let len = u32::try_from(frame.len())
            .ok()
            .filter(|l| *l as usize <= self.max)
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "controller frame of {} bytes (cap {})",
                        frame.len(),
                        self.max
                    ),
                )
            })?;
        dst.reserve(PREFIX + frame.len());
        dst.put_u32(len);
        dst.extend_from_slice(&frame);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_length_costs_nothing_until_its_bytes_arrive() {
        let mut frames = Frames::new(64 << 20);
        let mut buf = BytesMut::with_capacity(16);
        buf.put_u32(60 << 20);
        buf.put_slice(b"{\"Vo");
        assert!(frames.decode(&mut buf).unwrap().is_none());
        assert!(buf.capacity() < 1024, "reserved {} bytes", buf.capacity());
    }

    #[test]
    fn frames_round_trip_and_oversized_ones_are_refused() {
        let mut frames = Frames::new(8);
        let mut buf = BytesMut::new();
        frames
            .encode(Bytes::from_static(b"hello"), &mut buf)
            .unwrap();
        frames.encode(Bytes::from_static(b""), &mut buf).unwrap();
        assert_eq!(&frames.decode(&mut buf).unwrap().unwrap()[..], b"hello");
        assert_eq!(&frames.decode(&mut buf).unwrap().unwrap()[..], b"");
        assert!(frames.decode(&mut buf).unwrap().is_none());
        assert!(frames
            .encode(Bytes::from_static(b"too long!"), &mut BytesMut::new())
            .is_err());
        let mut over = BytesMut::new();
        over.put_u32(9);
        assert!(frames.decode(&mut over).is_err());
    }
}
