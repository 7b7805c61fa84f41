//! Response frames as a list of buffers. A Fetch response's record batches go to the socket
//! as the very `Bytes` the storage read returned: encoding them into one contiguous frame
//! would copy every fetched byte once more (and again at each growth of the buffer).

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;

/// Buffers shorter than this are copied: a separate write costs more than the copy.
const SHARE_MIN: usize = 16 << 10;

/// One size-prefixed response, in parts to be written back to back.
#[derive(Debug)]
pub struct Frame(Vec<Bytes>);

impl Frame {
    /// The parts, in write order; the first starts with the 4-byte size.
    pub fn parts(&self) -> &[Bytes] {
        &self.0
    }

    /// Bytes on the wire, size prefix included.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.iter().map(Bytes::len).sum()
    }
}

/// Encodes one size-prefixed frame. `shared` lists buffers the encoder will write, in the
/// order it writes them; those at least [`SHARE_MIN`] long become parts of their own.
pub fn encode(
    shared: Vec<Bytes>,
    write: impl FnOnce(&mut FrameBuf) -> anyhow::Result<()>,
) -> anyhow::Result<Frame> {
    let mut buf = FrameBuf {
        head: None,
        done: Vec::new(),
        done_len: 0,
        tail: BytesMut::with_capacity(256),
        shared: shared
            .into_iter()
            .filter(|b| b.len() >= SHARE_MIN)
            .collect(),
        next_shared: 0,
    };
    buf.tail.put_i32(0);
    write(&mut buf)?;
    let size = i32::try_from(buf.offset() - 4)?.to_be_bytes();
    let FrameBuf {
        head,
        mut done,
        mut tail,
        ..
    } = buf;
    // The size slot opens the head, or the tail when nothing was shared.
    let parts = match head {
        Some(mut head) => {
            head[..4].copy_from_slice(&size);
            done.insert(0, head.freeze());
            if !tail.is_empty() {
                done.push(tail.freeze());
            }
            done
        }
        None => {
            tail[..4].copy_from_slice(&size);
            vec![tail.freeze()]
        }
    };
    Ok(Frame(parts))
}

/// Wraps a frame that is already one contiguous buffer.
impl From<BytesMut> for Frame {
    fn from(frame: BytesMut) -> Self {
        Frame(vec![frame.freeze()])
    }
}

/// The encoder's buffer: the parts written so far, then the tail still being written.
pub struct FrameBuf {
    /// The first part, from the size slot to the first shared buffer; set once one is met.
    head: Option<BytesMut>,
    /// Later parts, in order.
    done: Vec<Bytes>,
    /// Bytes in `head` and `done`.
    done_len: usize,
    tail: BytesMut,
    shared: Vec<Bytes>,
    next_shared: usize,
}

impl FrameBuf {
    /// Whether `src` is the next shared buffer (the same memory, not just equal bytes).
    fn is_next_shared(&self, src: &[u8]) -> bool {
        src.len() >= SHARE_MIN
            && self
                .shared
                .get(self.next_shared)
                .is_some_and(|b| b.as_ptr() == src.as_ptr() && b.len() == src.len())
    }

    /// Joins everything back into the tail, so `range` and `seek` can reach any offset.
    /// Message encoders never look back; this keeps the buffer correct if one ever does.
    fn flatten(&mut self) {
        let Some(head) = self.head.take() else {
            return;
        };
        let mut all = BytesMut::with_capacity(self.done_len + self.tail.len());
        all.extend_from_slice(&head);
        for part in self.done.drain(..) {
            all.extend_from_slice(&part);
        }
        all.extend_from_slice(&self.tail);
        self.tail = all;
        self.done_len = 0;
    }
}

// SAFETY: every method delegates to the tail `BytesMut`, whose own implementation upholds
// the trait's contract; `put_slice` either does the same or records a whole part.
unsafe impl BufMut for FrameBuf {
    fn remaining_mut(&self) -> usize {
        self.tail.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of the tail's `chunk_mut`.
        unsafe { self.tail.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.tail.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if self.is_next_shared(src) {
            let part = self.shared[self.next_shared].clone();
            self.next_shared += 1;
            let written = self.tail.split();
            self.done_len += written.len();
            match self.head {
                None => self.head = Some(written),
                Some(_) if !written.is_empty() => self.done.push(written.freeze()),
                Some(_) => {}
            }
            self.done_len += part.len();
            self.done.push(part);
        } else {
            self.tail.put_slice(src);
        }
    }
}

impl ByteBufMut for FrameBuf {
    fn offset(&self) -> usize {
        self.done_len + self.tail.len()
    }

    fn seek(&mut self, offset: usize) {
        if offset < self.done_len {
            self.flatten();
        }
        self.tail.resize(offset - self.done_len, 0);
    }

    fn range(&mut self, r: std::ops::Range<usize>) -> &mut [u8] {
        if r.start < self.done_len {
            self.flatten();
        }
        let done = self.done_len;
        &mut self.tail[r.start - done..r.end - done]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(frame: &Frame) -> Vec<u8> {
        frame
            .parts()
            .iter()
            .flat_map(|p| p.iter().copied())
            .collect()
    }

    #[test]
    fn shared_buffers_become_parts_and_the_size_covers_all() {
        let big = Bytes::from(vec![7u8; SHARE_MIN * 2]);
        let small = Bytes::from(vec![9u8; 10]);
        let frame = encode(vec![big.clone(), small.clone()], |buf| {
            buf.put_i16(1);
            buf.put_slice(&big);
            buf.put_slice(&small);
            buf.put_i16(2);
            Ok(())
        })
        .unwrap();
        assert_eq!(frame.parts().len(), 3, "head, the shared buffer, tail");
        assert_eq!(frame.parts()[1].as_ptr(), big.as_ptr(), "not copied");
        let bytes = joined(&frame);
        assert_eq!(bytes.len(), frame.len());
        let size = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        assert_eq!(size as usize, bytes.len() - 4);
        let mut want = vec![0, 1];
        want.extend_from_slice(&big);
        want.extend_from_slice(&small);
        want.extend_from_slice(&[0, 2]);
        assert_eq!(&bytes[4..], &want[..]);
    }

    #[test]
    fn equal_bytes_elsewhere_are_copied_and_looking_back_still_works() {
        let big = Bytes::from(vec![5u8; SHARE_MIN]);
        let twin = big.to_vec();
        let frame = encode(vec![big.clone()], |buf| {
            buf.put_slice(&twin); // same bytes, other memory: copied
            buf.put_slice(&big);
            buf.put_u8(3);
            buf.range(4..6).copy_from_slice(&[1, 1]);
            Ok(())
        })
        .unwrap();
        let bytes = joined(&frame);
        assert_eq!(bytes.len(), 4 + 2 * SHARE_MIN + 1);
        assert_eq!(&bytes[4..7], &[1, 1, 5]);
        assert_eq!(bytes.last(), Some(&3));
    }
}
