//! What travels on a replication stream. Each replicated topic has its own bidirectional QUIC
//! stream; frames are length-prefixed (`u32` big-endian) protobuf messages:
//!
//! - source → remote: one [`Hello`], then [`Entry`] frames in the source topic's order (and,
//!   about once a second, one without data carrying replicated subscriptions' positions);
//! - remote → source: one [`HelloReply`], then an [`Ack`] per entry once it is durable (or known
//!   to be stored already), in the same order.

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use prost::Message;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

/// A hello (with its token) must fit in this before the peer is authenticated.
pub const HELLO_MAX: usize = 16 * 1024;
/// The ALPN protocol of replication connections.
pub const ALPN: &[u8] = b"magnetar-repl/1";

#[derive(Clone, PartialEq, Message)]
pub struct Hello {
    /// The topic (a partition, never a partitioned topic's root), e.g.
    /// `persistent://public/default/orders-partition-3`.
    #[prost(string, tag = "1")]
    pub topic: String,
    /// The cluster the entries come from.
    #[prost(string, tag = "2")]
    pub source_cluster: String,
    /// The credentials configured for the remote cluster (its ClusterData
    /// `authenticationParameters`).
    #[prost(string, tag = "3")]
    pub token: String,
    /// The partitioned topic's partition count at the source (0: not partitioned), so the
    /// remote can create the same.
    #[prost(uint32, tag = "4")]
    pub partitions: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct HelloReply {
    /// Why the stream is refused; absent when accepted.
    #[prost(string, optional, tag = "1")]
    pub error: Option<String>,
    /// Another broker of the cluster owns the topic: its `quic://` endpoint.
    #[prost(string, optional, tag = "2")]
    pub redirect: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Entry {
    #[prost(int64, tag = "1")]
    pub ledger_id: i64,
    #[prost(int64, tag = "2")]
    pub entry_id: i64,
    /// The stored entry as the source has it (`[magic][crc][size][metadata][payload]`).
    /// Empty in a frame that only carries `updates` (it takes no acknowledgement).
    #[prost(bytes = "bytes", tag = "3")]
    pub data: Bytes,
    /// Replicated subscriptions' positions (see `subscriptions`).
    #[prost(message, repeated, tag = "4")]
    pub updates: Vec<SubscriptionUpdate>,
}

#[derive(Clone, PartialEq, Message)]
pub struct SubscriptionUpdate {
    #[prost(string, tag = "1")]
    pub subscription: String,
    #[prost(message, repeated, tag = "2")]
    pub watermarks: Vec<Watermark>,
}

/// Entries that originated in `cluster` below `(ledger_id, entry_id)` (exclusive) of that
/// cluster's ledger were consumed.
#[derive(Clone, PartialEq, Message)]
pub struct Watermark {
    #[prost(string, tag = "1")]
    pub cluster: String,
    #[prost(uint64, tag = "2")]
    pub ledger_id: u64,
    #[prost(uint64, tag = "3")]
    pub entry_id: u64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Ack {
    /// The source position of the entry now stored on the remote.
    #[prost(int64, tag = "1")]
    pub ledger_id: i64,
    #[prost(int64, tag = "2")]
    pub entry_id: i64,
    /// The entry could not be stored: the stream ends, the source resends from its cursor.
    #[prost(string, optional, tag = "3")]
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("stream closed by the peer")]
    Closed,
    #[error("stream: {0}")]
    Io(#[from] std::io::Error),
    #[error("undecodable frame: {0}")]
    Decode(#[from] prost::DecodeError),
}

fn codec(max: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(max)
        .new_codec()
}

pub type Reader<R> = FramedRead<R, LengthDelimitedCodec>;
pub type Writer<W> = FramedWrite<W, LengthDelimitedCodec>;

pub fn reader<R: AsyncRead>(r: R, max: usize) -> Reader<R> {
    FramedRead::new(r, codec(max))
}

pub fn writer<W: AsyncWrite>(w: W, max: usize) -> Writer<W> {
    FramedWrite::new(w, codec(max))
}

pub async fn read<M: Message + Default, R: AsyncRead + Unpin>(
    r: &mut Reader<R>,
) -> Result<M, WireError> {
    let frame: BytesMut = r.next().await.ok_or(WireError::Closed)??;
    Ok(M::decode(frame.freeze())?)
}

/// Queues a frame without flushing.
pub async fn feed<M: Message, W: AsyncWrite + Unpin>(
    w: &mut Writer<W>,
    m: &M,
) -> Result<(), WireError> {
    Ok(w.feed(Bytes::from(m.encode_to_vec())).await?)
}

pub async fn flush<W: AsyncWrite + Unpin>(w: &mut Writer<W>) -> Result<(), WireError> {
    Ok(SinkExt::<Bytes>::flush(w).await?)
}

pub async fn send<M: Message, W: AsyncWrite + Unpin>(
    w: &mut Writer<W>,
    m: &M,
) -> Result<(), WireError> {
    Ok(w.send(Bytes::from(m.encode_to_vec())).await?)
}
