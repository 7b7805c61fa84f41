//! Controller-to-controller RPC: serde-encoded messages in length-delimited frames
//! (`tokio_util::codec::LengthDelimitedCodec`) over TCP, one request and one response at a
//! time per connection. Carries Raft's own RPCs, commands forwarded to the leader, learner
//! joins, broker heartbeats and voter changes. With a cluster secret, each connection first
//! proves both ends hold it (`secret.rs`).

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
use crate::secret::{ClusterSecret, Handshake};
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
    /// To `BrokerHeartbeat`: the index the leader had applied when it took the heartbeat
    /// (every fencing of the broker decided before is applied by then, or refused it).
    HeartbeatTaken(Result<u64, RemoteError>),
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
    secret: Option<ClusterSecret>,
    conn: Option<Framed<TcpStream, LengthDelimitedCodec>>,
}

/// How long each side of the secret exchange waits for the other's message.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type Conn = Framed<TcpStream, LengthDelimitedCodec>;

async fn send_json<T: Serialize>(conn: &mut Conn, message: &T) -> std::io::Result<()> {
    let frame = serde_json::to_vec(message).map_err(std::io::Error::other)?;
    conn.send(Bytes::from(frame)).await
}

async fn recv_json<T: serde::de::DeserializeOwned>(conn: &mut Conn) -> std::io::Result<T> {
    let frame = tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.next())
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))??;
    serde_json::from_slice(&frame).map_err(std::io::Error::other)
}

fn not_a_member() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        "the other end does not hold the cluster secret",
    )
}

/// The client's side of the secret exchange.
async fn prove_membership(conn: &mut Conn, secret: &ClusterSecret) -> std::io::Result<()> {
    let nonce = ClusterSecret::nonce();
    send_json(
        conn,
        &Handshake::Hello {
            nonce: nonce.clone(),
        },
    )
    .await?;
    match recv_json(conn).await? {
        Handshake::Challenge {
            nonce: server,
            proof,
        } if secret.verify("server", &nonce, &server, &proof) => {
            let proof = secret.proof("client", &nonce, &server);
            send_json(conn, &Handshake::Proof { proof }).await
        }
        _ => Err(not_a_member()),
    }
}

/// The server's side of the secret exchange.
async fn check_membership(conn: &mut Conn, secret: &ClusterSecret) -> std::io::Result<()> {
    let Handshake::Hello { nonce: client } = recv_json(conn).await? else {
        return Err(not_a_member());
    };
    let nonce = ClusterSecret::nonce();
    let proof = secret.proof("server", &client, &nonce);
    send_json(
        conn,
        &Handshake::Challenge {
            nonce: nonce.clone(),
            proof,
        },
    )
    .await?;
    match recv_json(conn).await? {
        Handshake::Proof { proof } if secret.verify("client", &client, &nonce, &proof) => Ok(()),
        _ => Err(not_a_member()),
    }
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
    /// A channel to `addr` (connects on first use, proving `secret` if there is one).
    pub fn new(addr: impl Into<String>, secret: Option<ClusterSecret>) -> Self {
        Self {
            addr: addr.into(),
            secret,
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
            let mut conn = Framed::new(stream, codec());
            if let Some(secret) = &self.secret {
                prove_membership(&mut conn, secret).await.map_err(net)?;
            }
            self.conn = Some(conn);
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
    secret: Option<&ClusterSecret>,
    req: &Request,
    timeout: Duration,
) -> Result<Response, CallError> {
    Channel::new(addr, secret.cloned()).call(req, timeout).await
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

/// Serves requests on one accepted connection until it closes; with a `secret`, only once
/// the client has proved it holds it.
pub(crate) async fn serve_connection<F, Fut>(
    stream: TcpStream,
    secret: Option<&ClusterSecret>,
    handle: F,
) where
    F: Fn(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok();
    let mut framed = Framed::new(stream, codec());
    if let Some(secret) = secret {
        if let Err(e) = check_membership(&mut framed, secret).await {
            tracing::warn!(?peer, error = %e, "controller connection refused");
            return;
        }
    }
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
