//! Controller-to-controller RPC: serde-encoded messages in length-prefixed frames
//! (`frames.rs`) over TCP, one request and one response at a
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
use tokio_util::codec::Framed;

use crate::frames::Frames;
use crate::metadata::{Command, CommandResult};
use crate::secret::{ClusterSecret, Handshake};
use crate::TypeConfig;

/// Largest frame accepted (snapshot chunks are far smaller).
const MAX_FRAME: usize = 64 << 20;

/// Largest frame accepted before the other end has proved it holds the cluster secret (the
/// exchange's messages are under 200 bytes).
const HANDSHAKE_MAX_FRAME: usize = 1 << 10;

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
    /// Asks the receiving voter not to start elections for this long (0 ends a hold): a
    /// leader transfer keeps the voters other than its target from racing it.
    HoldElections {
        /// How long, capped by the receiver.
        millis: u64,
    },
}

impl Request {
    /// What openraft leaves to the leader it trusts: an AppendEntries whose entries do not
    /// follow `prev_log_id` one index after another, or carry a term beyond the sender's
    /// vote, leaves holes in the log store that a later commit index points into, and
    /// openraft panics applying them (found by the controller_rpc fuzz target). No leader
    /// sends one; only a process holding the cluster secret gets this far.
    fn is_well_formed(&self) -> bool {
        let Request::AppendEntries(r) = self else {
            return true;
        };
        let term = r.vote.leader_id().term;
        let mut prev = r.prev_log_id;
        if prev.is_some_and(|p| p.leader_id.term > term) {
            return false;
        }
        r.entries.iter().all(|e| {
            let next = match prev {
                Some(p) => p.index.checked_add(1),
                None => Some(0),
            };
            let in_order = Some(e.log_id.index) == next
                && prev.is_none_or(|p| p.leader_id.term <= e.log_id.leader_id.term)
                && e.log_id.leader_id.term <= term;
            prev = Some(e.log_id);
            in_order
        })
    }
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
    conn: Option<Conn>,
    /// Requests sent on `conn` whose answers are still owed (their calls timed out). The
    /// peer answers in order, so the next call reads and drops them before its own.
    owed: usize,
    /// Calls on `conn` that timed out in a row.
    stalled: usize,
}

/// Calls in a row that may time out on one connection before it is given up for a new one.
/// A slow peer is not worth a new connection (and secret exchange) at each Raft heartbeat:
/// under load that reconnecting is what keeps every call past its deadline.
const STALLS_BEFORE_RECONNECT: usize = 3;

/// How long each side of the secret exchange waits for the other's message.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type Conn = Framed<TcpStream, Frames>;

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

/// A connection's frames: small ones only until the secret exchange (if any) is over.
fn framed(stream: TcpStream, secret: Option<&ClusterSecret>) -> Conn {
    let max = if secret.is_some() {
        HANDSHAKE_MAX_FRAME
    } else {
        MAX_FRAME
    };
    Framed::new(stream, Frames::new(max))
}

impl Channel {
    /// A channel to `addr` (connects on first use, proving `secret` if there is one).
    pub fn new(addr: impl Into<String>, secret: Option<ClusterSecret>) -> Self {
        Self {
            addr: addr.into(),
            secret,
            conn: None,
            owed: 0,
            stalled: 0,
        }
    }

    /// Sends one request and waits up to `timeout` for its response.
    pub async fn call(&mut self, req: &Request, timeout: Duration) -> Result<Response, CallError> {
        if self.stalled >= STALLS_BEFORE_RECONNECT {
            self.conn = None;
            self.stalled = 0;
        }
        // Counted up front: openraft's own timeout may drop this future at any await.
        self.stalled += 1;
        match tokio::time::timeout(timeout, self.exchange(req)).await {
            Ok(Ok(response)) => {
                self.stalled = 0;
                Ok(response)
            }
            Ok(Err(e)) => {
                self.conn = None; // the stream failed or is out of step
                Err(e)
            }
            // The connection is kept: `owed` says what it still has to read. A frame cut
            // off mid-write stays in the codec's buffer and goes out before the next one.
            Err(_) => Err(CallError::Network(
                self.addr.clone(),
                std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"),
            )),
        }
    }

    /// One request and its answer. Cancelled at any await (the caller's timeout), it leaves
    /// `conn` and `owed` consistent: the stream is never left mid-frame on our side.
    async fn exchange(&mut self, req: &Request) -> Result<Response, CallError> {
        let addr = self.addr.clone();
        let net = |e: std::io::Error| CallError::Network(addr.clone(), e);
        if self.conn.is_none() {
            let stream = TcpStream::connect(&self.addr)
                .await
                .map_err(|e| CallError::Unreachable(self.addr.clone(), e))?;
            let _ = stream.set_nodelay(true);
            let mut conn = framed(stream, self.secret.as_ref());
            if let Some(secret) = &self.secret {
                prove_membership(&mut conn, secret).await.map_err(net)?;
                conn.codec_mut().set_max(MAX_FRAME);
            }
            self.conn = Some(conn);
            self.owed = 0;
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(net(std::io::Error::other("no connection")));
        };
        let eof = || net(std::io::ErrorKind::UnexpectedEof.into());
        while self.owed > 0 {
            conn.next().await.ok_or_else(eof)?.map_err(net)?;
            self.owed -= 1;
        }
        let frame = serde_json::to_vec(req).map_err(|e| net(std::io::Error::other(e)))?;
        conn.feed(Bytes::from(frame)).await.map_err(net)?;
        self.owed += 1; // encoded into the codec's buffer: it will be sent, and answered
        conn.flush().await.map_err(net)?;
        let reply = conn.next().await.ok_or_else(eof)?.map_err(net)?;
        self.owed -= 1;
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
    let mut framed = framed(stream, secret);
    if let Some(secret) = secret {
        if let Err(e) = check_membership(&mut framed, secret).await {
            tracing::warn!(?peer, error = %e, "controller connection refused");
            return;
        }
        framed.codec_mut().set_max(MAX_FRAME);
    }
    while let Some(Ok(frame)) = framed.next().await {
        let response = match serde_json::from_slice::<Request>(&frame) {
            Ok(req) if req.is_well_formed() => handle(req).await,
            Ok(_) => {
                tracing::warn!("AppendEntries with entries out of order; closing");
                return;
            }
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

/// One well-formed request of each kind a peer sends as it is sent on the wire: frames
/// (length prefix included) behind the secret exchange. The seeds of the controller RPC fuzz
/// target. Membership changes are left out: grown from them, an input could add a voter no
/// one runs, and the fuzzed node would stop committing for the rest of the run.
#[doc(hidden)]
pub fn example_request_frames() -> Vec<Vec<u8>> {
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, SnapshotMeta, Vote};
    let log_id = |term, index| LogId::new(CommittedLeaderId::new(term, 2), index);
    let topic = crate::metadata::NewTopic {
        name: "fuzzed".into(),
        id: uuid::Uuid::nil(),
        num_partitions: 3,
        replication_factor: 1,
        assignment: None,
        configs: [("cleanup.policy".to_string(), "compact".to_string())].into(),
    };
    let entry = |index, payload| Entry::<TypeConfig> {
        log_id: log_id(1, index),
        payload,
    };
    let requests = [
        Request::Vote(VoteRequest::new(Vote::new(1, 2), Some(log_id(1, 3)))),
        Request::AppendEntries(AppendEntriesRequest {
            vote: Vote::new_committed(1, 2),
            prev_log_id: Some(log_id(1, 3)),
            entries: vec![
                entry(4, EntryPayload::Blank),
                entry(
                    5,
                    EntryPayload::Normal(Command::DeleteTopics(vec!["x".into()])),
                ),
            ],
            leader_commit: Some(log_id(1, 4)),
        }),
        Request::InstallSnapshot(InstallSnapshotRequest {
            vote: Vote::new_committed(1, 2),
            meta: SnapshotMeta {
                last_log_id: Some(log_id(1, 9)),
                last_membership: Default::default(),
                snapshot_id: "1-9-0".into(),
            },
            offset: 0,
            data: b"{\"topics\":{}}".to_vec(),
            done: false,
        }),
        Request::Execute(Command::CreateTopics(vec![topic])),
        Request::Execute(Command::CreatePartitions {
            topic: "fuzzed".into(),
            total: 4,
            assignment: Some(vec![vec![1]]),
        }),
        Request::Execute(Command::AllocateProducerIds { count: 1000 }),
        Request::Execute(Command::ElectLeaders {
            partitions: vec![("fuzzed".into(), 0)],
            unclean: false,
        }),
        Request::BrokerHeartbeat { broker_id: 1 },
        Request::Elect,
        Request::HoldElections { millis: 12_000 },
    ];
    requests
        .iter()
        .filter_map(|r| serde_json::to_vec(r).ok())
        .map(|json| {
            let mut frame = (json.len() as u32).to_be_bytes().to_vec();
            frame.extend(json);
            frame
        })
        .collect()
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

    #[test]
    fn append_entries_must_follow_prev_log_id_one_index_after_another() {
        use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};
        let log_id = |term, index| LogId::new(CommittedLeaderId::new(term, 2), index);
        let append = |prev: Option<LogId<u64>>, entries: &[(u64, u64)]| {
            Request::AppendEntries(AppendEntriesRequest {
                vote: Vote::new_committed(3, 2),
                prev_log_id: prev,
                entries: entries
                    .iter()
                    .map(|&(term, index)| Entry::<TypeConfig> {
                        log_id: log_id(term, index),
                        payload: EntryPayload::Blank,
                    })
                    .collect(),
                leader_commit: None,
            })
        };
        assert!(append(None, &[]).is_well_formed());
        assert!(append(None, &[(1, 0), (1, 1), (3, 2)]).is_well_formed());
        assert!(append(Some(log_id(2, 7)), &[(2, 8), (3, 9)]).is_well_formed());
        assert!(
            !append(None, &[(1, 1)]).is_well_formed(),
            "does not start at 0"
        );
        assert!(
            !append(Some(log_id(2, 7)), &[(2, 8), (2, 10)]).is_well_formed(),
            "a hole"
        );
        assert!(
            !append(Some(log_id(2, 7)), &[(2, 7)]).is_well_formed(),
            "no progress"
        );
        assert!(
            !append(Some(log_id(2, 7)), &[(1, 8)]).is_well_formed(),
            "term goes back"
        );
        assert!(
            !append(Some(log_id(2, 7)), &[(4, 8)]).is_well_formed(),
            "term past the vote"
        );
        assert!(
            !append(Some(log_id(4, 7)), &[]).is_well_formed(),
            "prev past the vote"
        );
        assert!(
            !append(Some(log_id(2, u64::MAX)), &[(2, 0)]).is_well_formed(),
            "overflow"
        );
    }

    #[tokio::test]
    async fn a_timed_out_call_keeps_its_connection_and_the_next_call_gets_its_own_answer() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(serve_connection(stream, None, |req| async move {
                    let Request::BrokerHeartbeat { broker_id } = req else {
                        return Response::Done(Ok(()));
                    };
                    if broker_id == 1 {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    Response::HeartbeatTaken(Ok(broker_id as u64))
                }));
            }
        });
        let mut channel = Channel::new(addr, None);
        let slow = Request::BrokerHeartbeat { broker_id: 1 };
        let timed_out = channel.call(&slow, Duration::from_millis(100)).await;
        assert!(
            matches!(timed_out, Err(CallError::Network(..))),
            "{timed_out:?}"
        );
        let next = Request::BrokerHeartbeat { broker_id: 2 };
        let answer = channel.call(&next, Duration::from_secs(5)).await.unwrap();
        assert!(
            matches!(answer, Response::HeartbeatTaken(Ok(2))),
            "{answer:?}"
        );
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn kafka_clients_are_told_from_peer_controllers_by_their_first_bytes() {
        // A Kafka ApiVersions request: length, then api key 18.
        assert!(judged(&[0, 0, 0, 20, 0, 18, 0, 3]).await);
        // A peer's JSON frame.
        assert!(!judged(b"\x00\x00\x00\x10{\"Vote\":{}}").await);
    }
}
