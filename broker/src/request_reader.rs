//! Reading request frames off a socket, ahead of the connection loop: a body is allocated
//! as its bytes arrive, never from the length the client claims, and each frame holds its
//! share of the broker-wide `queued.max.request.bytes` until its request is answered. Past
//! that cap every connection stops reading from its socket instead of the broker growing.

use std::io::ErrorKind;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, BufReader};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// The bytes of requests read and not yet answered, across the broker.
pub struct RequestBudget {
    /// None: no cap (`queued.max.request.bytes` -1, Kafka's default).
    permits: Option<(Arc<Semaphore>, usize)>,
}

/// A frame's share of the budget, given back when dropped (once its request is answered).
pub struct Held {
    _permit: Option<OwnedSemaphorePermit>,
}

impl RequestBudget {
    /// A budget of `cap` bytes; a negative cap is none.
    pub fn new(cap: i64) -> Self {
        let permits = usize::try_from(cap)
            .ok()
            .filter(|c| *c > 0)
            .map(|c| c.min(Semaphore::MAX_PERMITS).min(u32::MAX as usize))
            .map(|c| (Arc::new(Semaphore::new(c)), c));
        Self { permits }
    }

    /// Waits until `bytes` fit in the budget (a frame larger than the whole budget waits for
    /// all of it) and holds them.
    async fn hold(&self, bytes: usize) -> Held {
        let Some((semaphore, cap)) = &self.permits else {
            return Held { _permit: None };
        };
        let wanted = bytes.clamp(1, *cap) as u32;
        Held {
            _permit: semaphore.clone().acquire_many_owned(wanted).await.ok(),
        }
    }
}

/// One request frame (without its length prefix) and its share of the budget, or why the
/// connection must close.
pub type Incoming = Result<(Bytes, Held), String>;

/// Reads size-prefixed frames from `reader` into `frames` until the client closes the
/// connection, sends a frame over `max_frame` bytes, or `frames` is dropped.
pub async fn read_frames(
    reader: impl AsyncRead + Unpin,
    max_frame: usize,
    budget: Arc<RequestBudget>,
    frames: mpsc::Sender<Incoming>,
) {
    let mut reader = BufReader::with_capacity(64 << 10, reader);
    loop {
        let mut prefix = [0u8; 4];
        match reader.read_exact(&mut prefix).await {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return,
            Err(e) => {
                let _ = frames.send(Err(e.to_string())).await;
                return;
            }
        }
        let claimed = i32::from_be_bytes(prefix);
        let len = match usize::try_from(claimed) {
            Ok(len) if len <= max_frame => len,
            _ => {
                let why =
                    format!("frame of {claimed} bytes (socket.request.max.bytes {max_frame})");
                let _ = frames.send(Err(why)).await;
                return;
            }
        };
        let held = budget.hold(len).await;
        let body = match read_body(&mut reader, len).await {
            Ok(Some(body)) => body,
            Ok(None) => return, // closed in the middle of a frame
            Err(e) => {
                let _ = frames.send(Err(e.to_string())).await;
                return;
            }
        };
        if frames.send(Ok((Bytes::from(body), held))).await.is_err() {
            return;
        }
    }
}

/// Reads a body of `len` bytes into a buffer that grows as they arrive (doubling, never past
/// `len`), so a claimed length costs nothing until it is sent; None if the stream ends first.
async fn read_body(
    reader: &mut (impl AsyncRead + Unpin),
    len: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut body = Vec::new();
    while body.len() < len {
        let remaining = len - body.len();
        if body.len() == body.capacity() {
            body.reserve_exact(remaining.min(body.len().max(64 << 10)));
        }
        let room = (body.capacity() - body.len()).min(remaining);
        if (&mut *reader).take(room as u64).read_buf(&mut body).await? == 0 {
            return Ok(None);
        }
    }
    Ok(Some(body))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as i32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    #[tokio::test]
    async fn frames_wait_for_budget_held_by_unanswered_ones() {
        let budget = Arc::new(RequestBudget::new(10));
        let input = [frame(b"0123456789"), frame(b"abc")].concat();
        let (tx, mut rx) = mpsc::channel(4);
        tokio::spawn(read_frames(std::io::Cursor::new(input), 100, budget, tx));
        let (first, held) = rx.recv().await.unwrap().unwrap();
        assert_eq!(&first[..], b"0123456789");
        // The second frame waits while the first holds the whole budget.
        let waited = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await;
        assert!(waited.is_err(), "read past the budget");
        drop(held);
        let (second, _) = rx.recv().await.unwrap().unwrap();
        assert_eq!(&second[..], b"abc");
        assert!(rx.recv().await.is_none(), "closed at the end");
    }

    #[tokio::test]
    async fn a_frame_over_the_limit_closes_the_connection_without_allocating() {
        let input = (i32::MAX).to_be_bytes().to_vec();
        let (tx, mut rx) = mpsc::channel(1);
        read_frames(
            input.as_slice(),
            1 << 20,
            Arc::new(RequestBudget::new(-1)),
            tx,
        )
        .await;
        assert!(rx.recv().await.unwrap().is_err());
    }
}
