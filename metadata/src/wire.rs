//! The metadata wire without I/O: what a node and a client do with bytes from the network
//! before any state is touched. The connection loops and the Raft transport call these, and
//! so do the fuzz targets (`magnetar-fuzz metadata_wire`), so that what is fuzzed is what runs.
//!
//! - framing: [`codec`], `[u32 length][protobuf Request or Response]`, at most
//!   [`MAX_FRAME_SIZE`](crate::keys::MAX_FRAME_SIZE) bytes;
//! - client requests: the checks a node makes before proposing ([`put_op`], [`delete_op`],
//!   [`expected_from_proto`], and [`keys`](crate::keys)' key, prefix and value rules);
//! - responses: [`into_result`] turns a response into a body or a [`MetadataError`];
//! - Raft: a `RaftRequest` carries a postcard-encoded [`RaftRpc`] ([`decode_raft_rpc`]), a
//!   `RaftResponse` one of [`AppendResult`], [`VoteResult`], [`SnapshotResult`]
//!   ([`decode_raft_reply`]).

use serde::de::DeserializeOwned;

use crate::error::MetadataError;

pub use crate::conn::{codec, into_result};
pub use crate::network::{AppendResult, RaftRpc, SnapshotResult, VoteResult};
pub use crate::server::service::{delete_op, expected_from_proto, put_op};

/// The Raft RPC in a `RaftRequest` payload.
pub fn decode_raft_rpc(payload: &[u8]) -> Result<RaftRpc, MetadataError> {
    postcard::from_bytes(payload)
        .map_err(|e| MetadataError::InvalidArgument(format!("bad raft rpc: {e}")))
}

/// The answer in a `RaftResponse` payload: an [`AppendResult`], [`VoteResult`] or
/// [`SnapshotResult`], as the RPC that was sent expects.
pub fn decode_raft_reply<T: DeserializeOwned>(payload: &[u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(payload)
}
