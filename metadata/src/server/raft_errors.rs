//! Turns openraft's errors into the service's: "ask the leader", "try later", or bad input.

use openraft::error::{CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError};

use crate::error::MetadataError;
use crate::types::{Node, NodeId};

pub(crate) fn forward(f: ForwardToLeader<NodeId, Node>) -> MetadataError {
    MetadataError::NotLeader {
        leader_id: f.leader_id,
        leader_addr: f.leader_node.map(|n| n.addr),
    }
}

pub(crate) fn from_write(e: RaftError<NodeId, ClientWriteError<NodeId, Node>>) -> MetadataError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => forward(f),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            MetadataError::InvalidArgument(e.to_string())
        }
        RaftError::Fatal(e) => MetadataError::Unavailable(e.to_string()),
    }
}

pub(crate) fn from_write_api(e: ClientWriteError<NodeId, Node>) -> MetadataError {
    from_write(RaftError::APIError(e))
}

pub(crate) fn from_read(e: RaftError<NodeId, CheckIsLeaderError<NodeId, Node>>) -> MetadataError {
    match e {
        RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)) => forward(f),
        RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e)) => {
            MetadataError::Unavailable(e.to_string())
        }
        RaftError::Fatal(e) => MetadataError::Unavailable(e.to_string()),
    }
}
