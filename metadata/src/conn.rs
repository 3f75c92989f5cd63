//! One TCP connection to a metadata node with many requests in flight: requests carry ids,
//! responses are matched back by id, and a watch keeps receiving responses under its id.
//! Used by the client library and by the Raft transport between nodes.
//!
//! Every call has a deadline: a node that accepts a connection and never answers (wedged, or
//! the far end of a half-open connection) costs the caller that much and no more. TCP
//! keepalive finds connections whose peer is gone without a word, such as an idle watch's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use magnetar_protocol::ClusterToken;
use magnetar_protocol::metadata::{AuthRequest, Request, Response, request, response};
use prost::Message;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

use crate::error::MetadataError;
use crate::keys::MAX_FRAME_SIZE;

/// Idle time before the first keepalive probe, the time between probes, and the probes
/// unanswered before the kernel gives up: a silent dead peer is found in about 25 s.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
#[cfg(any(target_os = "linux", target_os = "macos"))]
const KEEPALIVE_RETRIES: u32 = 3;

/// The framing of the metadata wire: `[u32 length][protobuf message]`.
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME_SIZE)
        .new_codec()
}

/// Socket options of every metadata connection, both ends: no Nagle delay, TCP keepalive.
pub(crate) fn configure(stream: &TcpStream) {
    stream.set_nodelay(true).ok();
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL);
    #[cfg(any(target_os = "linux", target_os = "macos"))]
    let keepalive = keepalive.with_retries(KEEPALIVE_RETRIES);
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
        tracing::debug!(error = %e, "cannot set TCP keepalive");
    }
}

/// Bytes an in-memory connection buffers each way before the writer waits for the reader.
const PIPE_BUFFER: usize = 256 * 1024;

/// A metadata node running in this very process (the standalone): its clients here reach it
/// through in-memory pipes rather than loopback TCP, with the same framing, cluster-token check
/// and server code, and none of the socket system calls (half of the CPU of a topic load went
/// to the loopback round trips to the metadata node).
#[derive(Debug, Clone)]
pub struct LocalConnector {
    addr: String,
    accept: mpsc::UnboundedSender<DuplexStream>,
}

impl LocalConnector {
    /// A connector for the node listening on `addr`, and the pipes its server is to serve.
    pub(crate) fn new(addr: String) -> (LocalConnector, mpsc::UnboundedReceiver<DuplexStream>) {
        let (accept, accepted) = mpsc::unbounded_channel();
        (LocalConnector { addr, accept }, accepted)
    }

    /// The address clients name the node by; connections to any other address use TCP.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn connect(&self) -> Result<DuplexStream, MetadataError> {
        let (client, server) = tokio::io::duplex(PIPE_BUFFER);
        self.accept.send(server).map_err(|_| {
            MetadataError::Unavailable(format!("the metadata node at {} has stopped", self.addr))
        })?;
        Ok(client)
    }
}

/// Messages written to a socket in one go at most, when more are queued.
const MAX_WRITE_BATCH: usize = 256;

/// Writes `first` and whatever else is already queued behind it, then flushes once: one
/// syscall for a burst of requests or responses (a topic load makes several) rather than one
/// each. The codec still flushes whenever its buffer passes its boundary.
pub(crate) async fn write_batch<S, M>(
    sink: &mut S,
    first: M,
    queue: &mut mpsc::Receiver<M>,
) -> Result<(), std::io::Error>
where
    S: futures::Sink<Bytes, Error = std::io::Error> + Unpin,
    M: Message,
{
    sink.feed(Bytes::from(first.encode_to_vec())).await?;
    for _ in 1..MAX_WRITE_BATCH {
        let Ok(next) = queue.try_recv() else { break };
        if let Err(e) = sink.feed(Bytes::from(next.encode_to_vec())).await {
            // A frame the codec refuses (over the size limit) ends the connection, but what was
            // fed before it still goes out, as it would have one frame at a time.
            let _ = sink.flush().await;
            return Err(e);
        }
    }
    sink.flush().await
}

enum Pending {
    Once(oneshot::Sender<Response>),
    Stream(mpsc::Sender<Response>),
}

type PendingMap = Arc<Mutex<HashMap<u64, Pending>>>;

#[derive(Debug)]
pub struct Connection {
    addr: String,
    outgoing: mpsc::Sender<Request>,
    pending: PendingMap,
    next_id: AtomicU64,
    closed: CancellationToken,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Pending::Once(_) => "Once",
            Pending::Stream(_) => "Stream",
        })
    }
}

impl Connection {
    /// Opens a connection and, with a `token`, presents it first: a node that refuses it is
    /// `Unauthenticated`. `timeout` bounds both steps. A node of this very process (`local`,
    /// when its address is `addr`) is reached through an in-memory pipe instead of loopback TCP.
    pub async fn connect(
        addr: &str,
        timeout: Duration,
        token: Option<&ClusterToken>,
        local: Option<&LocalConnector>,
    ) -> Result<Connection, MetadataError> {
        let deadline = Instant::now() + timeout;
        if let Some(local) = local.filter(|local| local.addr == addr) {
            return Connection::over(local.connect()?, addr, deadline, token).await;
        }
        let stream = tokio::time::timeout_at(deadline, TcpStream::connect(addr))
            .await
            .map_err(|_| MetadataError::Unavailable(format!("connecting to {addr} timed out")))?
            .map_err(|e| MetadataError::Unavailable(format!("cannot connect to {addr}: {e}")))?;
        configure(&stream);
        Connection::over(stream, addr, deadline, token).await
    }

    async fn over<S>(
        stream: S,
        addr: &str,
        deadline: Instant,
        token: Option<&ClusterToken>,
    ) -> Result<Connection, MetadataError>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (mut sink, mut source) = Framed::new(stream, codec()).split();
        let (outgoing, mut queue) = mpsc::channel::<Request>(1024);
        let pending: PendingMap = Arc::default();
        let closed = CancellationToken::new();

        let writer_closed = closed.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = writer_closed.cancelled() => break,
                    request = queue.recv() => {
                        let Some(request) = request else { break };
                        if write_batch(&mut sink, request, &mut queue).await.is_err() {
                            break;
                        }
                    }
                }
            }
            writer_closed.cancel();
        });

        let reader_pending = pending.clone();
        let reader_closed = closed.clone();
        tokio::spawn(async move {
            loop {
                let frame = tokio::select! {
                    _ = reader_closed.cancelled() => break,
                    frame = source.next() => frame,
                };
                let Some(Ok(frame)) = frame else { break };
                let Ok(response) = Response::decode(frame) else {
                    break;
                };
                let mut map = reader_pending
                    .lock()
                    .expect("pending map lock is never poisoned");
                match map.get(&response.id) {
                    Some(Pending::Once(_)) => {
                        if let Some(Pending::Once(tx)) = map.remove(&response.id) {
                            let _ = tx.send(response);
                        }
                    }
                    // A full or dropped watch receiver ends that watch only.
                    Some(Pending::Stream(tx)) if tx.try_send(response.clone()).is_err() => {
                        map.remove(&response.id);
                    }
                    Some(Pending::Stream(_)) => {}
                    None => {}
                }
            }
            reader_closed.cancel();
            // Dropping the senders tells every waiter the connection is gone.
            reader_pending
                .lock()
                .expect("pending map lock is never poisoned")
                .clear();
        });

        let conn = Connection {
            addr: addr.to_string(),
            outgoing,
            pending,
            next_id: AtomicU64::new(1),
            closed,
        };
        if let Some(token) = token {
            let auth = request::Body::Auth(AuthRequest {
                token: token.as_bytes().to_vec(),
            });
            match conn.call(auth, deadline).await {
                Ok(_) => {}
                Err(MetadataError::Indeterminate(_)) => {
                    return Err(MetadataError::Unavailable(format!(
                        "{addr} did not answer the cluster token in time"
                    )));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(conn)
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    fn register(&self, pending: Pending) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.pending
            .lock()
            .expect("pending map lock is never poisoned")
            .insert(id, pending);
        id
    }

    async fn send(&self, id: u64, body: request::Body) -> Result<(), MetadataError> {
        if self.is_closed() {
            self.pending
                .lock()
                .expect("pending map lock is never poisoned")
                .remove(&id);
            return Err(MetadataError::Unavailable(format!(
                "connection to {} is closed",
                self.addr
            )));
        }
        self.outgoing
            .send(Request {
                id,
                body: Some(body),
            })
            .await
            .map_err(|_| {
                MetadataError::Unavailable(format!("connection to {} is closed", self.addr))
            })
    }

    /// Sends one request and waits for its answer until `deadline`. `Indeterminate` means it
    /// may have been sent but no answer came: the connection broke, or the deadline passed.
    pub async fn call(
        &self,
        body: request::Body,
        deadline: Instant,
    ) -> Result<response::Body, MetadataError> {
        let (tx, rx) = oneshot::channel();
        let id = self.register(Pending::Once(tx));
        let exchange = async {
            self.send(id, body).await?;
            rx.await.map_err(|_| {
                MetadataError::Indeterminate(format!("connection to {} broke", self.addr))
            })
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(response) => into_result(response?),
            Err(_) => {
                self.forget(id);
                Err(MetadataError::Indeterminate(format!(
                    "no answer from {} in time",
                    self.addr
                )))
            }
        }
    }

    /// Sends a request answered by a stream of responses (a watch).
    pub async fn stream(
        &self,
        body: request::Body,
    ) -> Result<(u64, mpsc::Receiver<Response>), MetadataError> {
        let (tx, rx) = mpsc::channel(1024);
        let id = self.register(Pending::Stream(tx));
        self.send(id, body).await?;
        Ok((id, rx))
    }

    /// Stops receiving a stream (the server is told separately).
    pub fn forget(&self, id: u64) {
        self.pending
            .lock()
            .expect("pending map lock is never poisoned")
            .remove(&id);
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.closed.cancel();
    }
}

/// A response's body, or its error.
pub fn into_result(response: Response) -> Result<response::Body, MetadataError> {
    if let Some(error) = response.error {
        return Err(MetadataError::from_proto(error));
    }
    response
        .body
        .ok_or_else(|| MetadataError::Internal("response without a body".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch whose second frame is over the size limit fails, and its first frame (an answer a
    /// peer waits on) still reaches the other end.
    #[tokio::test]
    async fn a_refused_frame_in_a_batch_does_not_take_the_earlier_ones_with_it() {
        use futures::StreamExt;
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let small = |n: usize| {
            LengthDelimitedCodec::builder()
                .max_frame_length(n)
                .new_codec()
        };
        let mut sink = tokio_util::codec::FramedWrite::new(ours, small(64));
        let (queue_tx, mut queue) = mpsc::channel(4);
        let oversized = Response {
            id: 2,
            error: Some(magnetar_protocol::metadata::Error {
                message: "x".repeat(200),
                ..Default::default()
            }),
            body: None,
        };
        queue_tx.try_send(oversized).expect("queued");
        let first = Response {
            id: 1,
            ..Default::default()
        };
        let written = write_batch(&mut sink, first.clone(), &mut queue).await;
        assert!(written.is_err(), "the oversized frame is refused");
        drop(sink);
        let mut reader = tokio_util::codec::FramedRead::new(theirs, small(64));
        let got = reader.next().await.expect("a frame").expect("readable");
        assert_eq!(Response::decode(got).expect("decode"), first);
    }

    #[tokio::test]
    async fn connections_probe_idle_peers() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let stream = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        configure(&stream);
        let socket = socket2::SockRef::from(&stream);
        assert!(socket.keepalive().expect("SO_KEEPALIVE"));
        assert_eq!(
            socket.tcp_keepalive_time().expect("TCP_KEEPIDLE"),
            KEEPALIVE_IDLE
        );
        assert!(socket.tcp_nodelay().expect("TCP_NODELAY"));
    }
}
