//! openraft's view of the peer transport: one [`Channel`] per target controller.

use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;

use crate::rpc::{CallError, Channel, Request, Response};
use crate::secret::ClusterSecret;
use crate::TypeConfig;

/// Creates connections to peer controllers, proving the cluster secret if there is one.
#[derive(Clone, Default)]
pub struct PeerNetwork {
    /// The cluster secret.
    pub secret: Option<ClusterSecret>,
}

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
            channel: Channel::new(node.addr.clone(), self.secret.clone()),
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

impl RaftNetwork<TypeConfig> for PeerConnection {
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
