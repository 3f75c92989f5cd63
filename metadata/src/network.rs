//! Raft traffic between metadata nodes: openraft's RPCs, postcard-encoded inside the metadata
//! protocol's `RaftRequest`/`RaftResponse`, over the same connections and port as clients use.

// openraft's network trait fixes the error type (`RPCError`); boxing it is not ours to choose.
#![allow(clippy::result_large_err)]

use std::time::Duration;

use magnetar_protocol::ClusterToken;
use magnetar_protocol::metadata::{RaftRequest, RaftResponse, request, response};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::conn::Connection;
use crate::error::MetadataError;
use crate::types::{Node, NodeId, TypeConfig};

/// The RPCs one node sends another.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftRpc {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
}

pub type AppendResult = Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>;
pub type VoteResult = Result<VoteResponse<NodeId>, RaftError<NodeId>>;
pub type SnapshotResult =
    Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>;

#[derive(Debug, Clone, Default)]
pub struct Network {
    /// Presented first on every connection to a peer.
    pub(crate) cluster_token: Option<ClusterToken>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> Peer {
        Peer {
            target,
            addr: node.addr.clone(),
            cluster_token: self.cluster_token.clone(),
            conn: None,
        }
    }
}

/// The connection to one peer, opened on first use and re-opened after it breaks.
#[derive(Debug)]
pub struct Peer {
    target: NodeId,
    addr: String,
    cluster_token: Option<ClusterToken>,
    conn: Option<Connection>,
}

impl Peer {
    async fn rpc<T: DeserializeOwned, E: std::error::Error>(
        &mut self,
        rpc: RaftRpc,
        option: &RPCOption,
    ) -> Result<T, RPCError<NodeId, Node, E>> {
        let timeout = option.hard_ttl();
        if self.conn.as_ref().is_none_or(Connection::is_closed) {
            let connect_timeout = timeout.min(Duration::from_secs(1));
            let conn =
                Connection::connect(
                    &self.addr,
                    connect_timeout,
                    self.cluster_token.as_ref(),
                    None,
                )
                    .await
                    .map_err(|e| {
                        if let MetadataError::Unauthenticated(_) = e {
                            tracing::warn!(peer = self.target, addr = %self.addr, error = %e, "a peer refused this node's cluster token");
                        }
                        RPCError::Unreachable(Unreachable::new(&e))
                    })?;
            self.conn = Some(conn);
        }
        let conn = self.conn.as_ref().expect("connected above");
        let payload =
            postcard::to_allocvec(&rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let call = conn.call(
            request::Body::Raft(RaftRequest { payload }),
            Instant::now() + timeout,
        );
        let reply = match call.await {
            Ok(response::Body::Raft(RaftResponse { payload })) => payload,
            Ok(_) => {
                let e = MetadataError::Internal("unexpected reply to a raft rpc".into());
                return Err(RPCError::Network(NetworkError::new(&e)));
            }
            Err(e) => {
                self.conn = None;
                return Err(RPCError::Unreachable(Unreachable::new(&e)));
            }
        };
        crate::wire::decode_raft_reply(&reply).map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }
}

fn remote<T, E: std::error::Error>(
    target: NodeId,
    result: Result<T, E>,
) -> Result<T, RPCError<NodeId, Node, E>> {
    result.map_err(|e| RPCError::RemoteError(RemoteError::new(target, e)))
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        let result: AppendResult = self.rpc(RaftRpc::AppendEntries(rpc), &option).await?;
        remote(self.target, result)
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let result: SnapshotResult = self.rpc(RaftRpc::InstallSnapshot(rpc), &option).await?;
        remote(self.target, result)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        let result: VoteResult = self.rpc(RaftRpc::Vote(rpc), &option).await?;
        remote(self.target, result)
    }
}
