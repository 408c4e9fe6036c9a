//! Raft between masters over gRPC: the client side ([`Network`], one connection per peer)
//! and the server side ([`RaftServer`], internal only: reachable by cluster nodes on
//! `journal.rpc_port`). Each openraft request and response travels encoded by
//! [`codec`] (bincode; JSON from an older master still decodes) in a `RaftMessage`; a
//! remote Raft error comes back inside the response, not as a status.

use super::codec;
use super::types::{NodeId, RPCError, Raft, RaftError, TypeConfig};
use crate::rpc::auth::{AuthChannel, Token};
use crate::rpc::pb::raft::{
    raft_service_client::RaftServiceClient, raft_service_server::RaftService, RaftMessage,
};
use crate::rpc::tls::ClientTls;
use openraft::error::{InstallSnapshotError, NetworkError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;
use tonic::{Request, Response, Status};

/// Opens connections to peers.
#[derive(Debug, Clone)]
pub struct Network {
    connect_timeout: Duration,
    /// Where this master reaches each peer: its own `journal.journal_addrs` (the same on
    /// every master in a normal deployment); the membership's address otherwise.
    peers: std::collections::BTreeMap<NodeId, String>,
    /// The cluster token every Raft request carries.
    token: Option<Token>,
    /// TLS to peers, when the cluster uses it.
    tls: Option<ClientTls>,
}

impl Network {
    /// A network whose connections give up connecting after `connect_timeout`, reaching
    /// peers at `peers` (by id), with `token` on every request, over TLS when `tls` is set.
    pub fn new(
        connect_timeout: Duration,
        peers: std::collections::BTreeMap<NodeId, String>,
        token: Option<Token>,
        tls: Option<ClientTls>,
    ) -> Self {
        Network {
            connect_timeout,
            peers,
            token,
            tls,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerConnection {
        let addr = self.peers.get(&target).unwrap_or(&node.addr).clone();
        let client = crate::rpc::channel(&addr, self.connect_timeout, None, self.tls.as_ref())
            .ok()
            .map(|ch| {
                RaftServiceClient::new(crate::rpc::auth::attach(ch, &self.token))
                    .max_decoding_message_size(crate::rpc::MAX_MESSAGE)
                    .max_encoding_message_size(crate::rpc::MAX_MESSAGE)
            });
        PeerConnection {
            target,
            addr,
            client,
        }
    }
}

/// A connection to one peer.
#[derive(Debug)]
pub struct PeerConnection {
    target: NodeId,
    addr: String,
    client: Option<RaftServiceClient<AuthChannel>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

impl PeerConnection {
    async fn call<Req, Resp, E>(
        &mut self,
        method: Method,
        req: &Req,
        ttl: Duration,
    ) -> Result<Resp, RPCError<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let Some(client) = self.client.as_mut() else {
            return Err(RPCError::Unreachable(Unreachable::new(&TransportError(
                format!("bad peer address {}", self.addr),
            ))));
        };
        let data = codec::encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut request = Request::new(RaftMessage { data: data.into() });
        request.set_timeout(ttl);
        let result = match method {
            Method::Append => client.append_entries(request).await,
            Method::Vote => client.vote(request).await,
            Method::Snapshot => client.install_snapshot(request).await,
        };
        let reply = result.map_err(|status| {
            let err = TransportError(format!(
                "{} to {}: {}",
                method.name(),
                self.addr,
                status.message()
            ));
            if status.code() == tonic::Code::Unavailable {
                RPCError::Unreachable(Unreachable::new(&err))
            } else {
                RPCError::Network(NetworkError::new(&err))
            }
        })?;
        let decoded: Result<Resp, RaftError<E>> = codec::decode(&reply.into_inner().data)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        decoded.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

#[derive(Debug, Clone, Copy)]
enum Method {
    Append,
    Vote,
    Snapshot,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Append => "append_entries",
            Method::Vote => "vote",
            Method::Snapshot => "install_snapshot",
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        req: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError> {
        self.call(Method::Append, &req, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        req: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<InstallSnapshotError>> {
        self.call(Method::Snapshot, &req, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        req: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError> {
        self.call(Method::Vote, &req, option.hard_ttl()).await
    }
}

/// The inbound side: hands peer requests to the local Raft.
#[derive(Clone)]
pub struct RaftServer {
    raft: Raft,
}

impl RaftServer {
    /// Serves `raft`.
    pub fn new(raft: Raft) -> Self {
        RaftServer { raft }
    }
}

fn decode<T: DeserializeOwned>(req: Request<RaftMessage>) -> Result<T, Status> {
    codec::decode(&req.into_inner().data)
        .map_err(|e| Status::invalid_argument(format!("bad raft message: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Response<RaftMessage>, Status> {
    let data = codec::encode(value).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(RaftMessage { data: data.into() }))
}

#[tonic::async_trait]
impl RaftService for RaftServer {
    async fn append_entries(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = decode(req)?;
        encode(&self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc: VoteRequest<NodeId> = decode(req)?;
        encode(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc: InstallSnapshotRequest<TypeConfig> = decode(req)?;
        encode(&self.raft.install_snapshot(rpc).await)
    }
}
