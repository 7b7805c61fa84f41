//! One client connection: size-prefixed framing with a frame cap, requests handled in
//! order, responses written back in order and coalesced.

use bytes::BytesMut;
use std::sync::Arc;

use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

use crate::context::Ctx;
use crate::dispatch::dispatch;
use crate::metrics;
use crate::read_ahead::{self, ReadAhead};

tokio::task_local! {
    /// The client address of the request being handled (for DescribeGroups' client host).
    static PEER: Option<std::net::SocketAddr>;
}

/// The address of the client whose request is being handled, if known.
pub fn peer() -> Option<std::net::SocketAddr> {
    PEER.try_with(|p| *p).ok().flatten()
}

/// Responses queued for writing before the reader pauses.
const WRITE_QUEUE: usize = 64;

/// Serves one connection until the client closes it, sends garbage, or shutdown.
pub async fn serve(ctx: Ctx, stream: TcpStream, shutdown: CancellationToken) {
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    let (reader, mut writer) = stream.into_split();
    let codec = LengthDelimitedCodec::builder()
        .length_field_length(4)
        .max_frame_length(ctx.config.max_request_bytes())
        .new_codec();
    let mut frames = FramedRead::new(reader, codec);
    let (tx, mut rx) = mpsc::channel::<BytesMut>(WRITE_QUEUE);

    let write_task = tokio::spawn(async move {
        let mut out = tokio::io::BufWriter::with_capacity(64 << 10, &mut writer);
        while let Some(frame) = rx.recv().await {
            if out.write_all(&frame).await.is_err() {
                return;
            }
            // Coalesce: flush only when nothing else is ready to go.
            if rx.is_empty() && out.flush().await.is_err() {
                return;
            }
        }
        let _ = out.flush().await;
        let _ = writer.shutdown().await;
    });

    let _active = metrics::ConnectionGauge::open();
    let read_ahead = Arc::new(ReadAhead::default());
    loop {
        let frame = tokio::select! {
            _ = shutdown.cancelled() => break,
            f = frames.next() => f,
        };
        let frame = match frame {
            Some(Ok(f)) => f.freeze(),
            Some(Err(e)) => {
                tracing::debug!(?peer, error = %e, "closing connection: bad frame");
                break;
            }
            None => break,
        };
        let request = PEER.scope(peer, dispatch(&ctx, frame));
        match read_ahead::scope(Arc::clone(&read_ahead), request).await {
            Ok(Some(response)) => {
                if tx.send(response).await.is_err() {
                    break;
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(?peer, error = %e, "closing connection");
                break;
            }
        }
    }
    drop(tx);
    let _ = write_task.await;
}
