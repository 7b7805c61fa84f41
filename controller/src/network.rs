//! openraft's view of the peer transport: one [`Channel`] per target controller.

use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;

use crate::rpc::{CallError, Channel, Request, Response};
use crate::TypeConfig;

/// Creates connections to peer controllers.
#[derive(Clone, Default)]
pub struct PeerNetwork;

/// A connection to one peer controller.
pub struct PeerConnection {
    target: u64,
    channel: Channel,
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Self::Network {
        PeerConnection {
            target,
            channel: Channel::new(node.addr.clone()),
        }
    }
}

type RpcResult<T, E> = Result<T, RPCError<u64, BasicNode, E>>;

impl PeerConnection {
    async fn call<E: std::error::Error>(
        &mut self,
        req: Request,
        option: &RPCOption,
    ) -> RpcResult<Response, E> {
        let ttl = option.hard_ttl().max(Duration::from_millis(50));
        self.channel.call(&req, ttl).await.map_err(|e| match e {
            CallError::Unreachable(..) => RPCError::Unreachable(Unreachable::new(&e)),
            CallError::Network(..) => RPCError::Network(NetworkError::new(&e)),
        })
    }
}

fn unexpected<E: std::error::Error>() -> RPCError<u64, BasicNode, E> {
    let e = std::io::Error::other("peer answered a different request");
    RPCError::Network(NetworkError::new(&e))
}

/// First and longest pause before openraft retries a peer it could not reach.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(4);

impl RaftNetwork<TypeConfig> for PeerConnection {
    /// Doubling pauses, 0.5 s to 4 s, while a peer stays unreachable (openraft's default is
    /// 500 ms forever: a node down for an hour cost 7,200 failed connects and as many log
    /// lines); the first success resets them.
    fn backoff(&self) -> Backoff {
        let pauses = std::iter::successors(Some(RETRY_FIRST), |d| Some((*d * 2).min(RETRY_MAX)));
        Backoff::new(pauses)
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>, RaftError<u64>> {
        match self.call(Request::AppendEntries(rpc), &option).await? {
            Response::AppendEntries(r) => {
                r.map_err(|e| RPCError::RemoteError(remote(self.target, e)))
            }
            _ => Err(unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>> {
        match self.call(Request::InstallSnapshot(rpc), &option).await? {
            Response::InstallSnapshot(r) => {
                r.map_err(|e| RPCError::RemoteError(remote(self.target, e)))
            }
            _ => Err(unexpected()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<u64>, RaftError<u64>> {
        match self.call(Request::Vote(rpc), &option).await? {
            Response::Vote(r) => r.map_err(|e| RPCError::RemoteError(remote(self.target, e))),
            _ => Err(unexpected()),
        }
    }
}

fn remote<E: std::error::Error>(
    target: u64,
    e: E,
) -> openraft::error::RemoteError<u64, BasicNode, E> {
    openraft::error::RemoteError::new(target, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_of_an_unreachable_peer_back_off_to_a_ceiling() {
        let conn = PeerConnection {
            target: 2,
            channel: Channel::new("127.0.0.1:1"),
        };
        let pauses: Vec<u64> = conn
            .backoff()
            .take(6)
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(pauses, [500, 1000, 2000, 4000, 4000, 4000]);
    }
}
