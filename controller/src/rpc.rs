//! Controller-to-controller RPC: serde-encoded messages in length-delimited frames
//! (`tokio_util::codec::LengthDelimitedCodec`) over TCP, one request and one response at a
//! time per connection. Carries Raft's own RPCs, commands forwarded to the leader, learner
//! joins, broker heartbeats and voter changes.

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use crate::metadata::{Command, CommandResult};
use crate::TypeConfig;

/// Largest frame accepted (snapshot chunks are far smaller).
const MAX_FRAME: usize = 64 << 20;

/// What one controller asks another.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    /// Raft: replicate log entries / heartbeat.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Raft: request a vote.
    Vote(VoteRequest<u64>),
    /// Raft: a snapshot chunk.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A command for the leader to commit (sent by a node that is not the leader).
    Execute(Command),
    /// A node asks the leader to add it as a learner.
    AddLearner {
        /// Node id.
        id: u64,
        /// Its controller address.
        addr: String,
    },
    /// A broker is alive.
    BrokerHeartbeat {
        /// Broker id.
        broker_id: i32,
    },
    /// Asks the receiving voter to start an election now (leader transfer: with an
    /// up-to-date log it wins, and the old leader steps down on seeing the higher term).
    Elect,
    /// Makes the given nodes the voters (each must already be a learner or voter).
    ChangeVoters {
        /// The new voter set.
        voters: Vec<u64>,
    },
}

/// The answer to a [`Request`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Response {
    /// To `AppendEntries`.
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    /// To `Vote`.
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    /// To `InstallSnapshot`.
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    /// To `Execute`: the result and the log index it was committed at.
    Executed(Result<(CommandResult, u64), RemoteError>),
    /// To the rest.
    Done(Result<(), RemoteError>),
}

/// Why a remote controller could not do what was asked.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub(crate) enum RemoteError {
    /// The receiver is not the leader (it names the one it knows, if any).
    #[error("not the controller leader (leader: {0:?})")]
    NotLeader(Option<u64>),
    /// Anything else.
    #[error("{0}")]
    Failed(String),
}

/// A connection to one controller, reopened on demand after a failure.
pub(crate) struct Channel {
    addr: String,
    conn: Option<Framed<TcpStream, LengthDelimitedCodec>>,
}

/// Why a call failed: `Unreachable` when no connection could be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// Could not connect.
    #[error("cannot reach {0}: {1}")]
    Unreachable(String, std::io::Error),
    /// Connected, but the exchange failed or timed out.
    #[error("rpc to {0} failed: {1}")]
    Network(String, std::io::Error),
}

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

impl Channel {
    /// A channel to `addr` (connects on first use).
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            conn: None,
        }
    }

    /// Sends one request and waits up to `timeout` for its response.
    pub async fn call(&mut self, req: &Request, timeout: Duration) -> Result<Response, CallError> {
        let result = tokio::time::timeout(timeout, self.exchange(req)).await;
        let result = match result {
            Ok(r) => r,
            Err(_) => Err(CallError::Network(
                self.addr.clone(),
                std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"),
            )),
        };
        if result.is_err() {
            self.conn = None; // a half-finished exchange leaves the stream unusable
        }
        result
    }

    async fn exchange(&mut self, req: &Request) -> Result<Response, CallError> {
        let addr = self.addr.clone();
        let net = |e: std::io::Error| CallError::Network(addr.clone(), e);
        if self.conn.is_none() {
            let stream = TcpStream::connect(&self.addr)
                .await
                .map_err(|e| CallError::Unreachable(self.addr.clone(), e))?;
            let _ = stream.set_nodelay(true);
            self.conn = Some(Framed::new(stream, codec()));
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(net(std::io::Error::other("no connection")));
        };
        let frame = serde_json::to_vec(req).map_err(|e| net(std::io::Error::other(e)))?;
        conn.send(Bytes::from(frame)).await.map_err(net)?;
        let reply = conn
            .next()
            .await
            .ok_or_else(|| net(std::io::ErrorKind::UnexpectedEof.into()))?
            .map_err(net)?;
        serde_json::from_slice(&reply).map_err(|e| net(std::io::Error::other(e)))
    }
}

/// One-off call to `addr` (forwarding, joins: rare, so no pooling).
pub(crate) async fn call_once(
    addr: &str,
    req: &Request,
    timeout: Duration,
) -> Result<Response, CallError> {
    Channel::new(addr).call(req, timeout).await
}

/// Whether a new connection is a Kafka client's rather than a peer controller's: both frame
/// with a 4-byte length, but a peer's frame is JSON (`{`) and a Kafka request starts with
/// its API key, whose high byte is 0.
pub(crate) async fn speaks_kafka(stream: &TcpStream) -> bool {
    let mut head = [0u8; 5];
    let peeked = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.peek(&mut head).await {
                Ok(n) if n >= head.len() => return true,
                Ok(0) | Err(_) => return false,
                // Part of the head so far: wait for the rest.
                Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    })
    .await;
    matches!(peeked, Ok(true)) && head[4] == 0
}

/// Serves requests on one accepted connection until it closes.
pub(crate) async fn serve_connection<F, Fut>(stream: TcpStream, handle: F)
where
    F: Fn(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let _ = stream.set_nodelay(true);
    let mut framed = Framed::new(stream, codec());
    while let Some(Ok(frame)) = framed.next().await {
        let response = match serde_json::from_slice::<Request>(&frame) {
            Ok(req) => handle(req).await,
            Err(e) => {
                tracing::warn!(error = %e, "undecodable controller request; closing");
                return;
            }
        };
        let Ok(bytes) = serde_json::to_vec(&response) else {
            return;
        };
        if framed.send(Bytes::from(bytes)).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    /// What `speaks_kafka` makes of a connection whose client first writes `head`.
    async fn judged(head: &'static [u8]) -> bool {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(head).await.unwrap();
            s
        });
        let (server, _) = listener.accept().await.unwrap();
        let verdict = speaks_kafka(&server).await;
        drop(client.await);
        verdict
    }

    #[tokio::test]
    async fn kafka_clients_are_told_from_peer_controllers_by_their_first_bytes() {
        // A Kafka ApiVersions request: length, then api key 18.
        assert!(judged(&[0, 0, 0, 20, 0, 18, 0, 3]).await);
        // A peer's JSON frame.
        assert!(!judged(b"\x00\x00\x00\x10{\"Vote\":{}}").await);
    }
}
