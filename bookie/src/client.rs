//! A connection to one bookie: requests are pipelined over one TCP connection and each call's
//! future resolves when the response with its request id arrives, in whatever order they come.
//! With a cluster token, the connection presents it first and is usable only once the bookie
//! has accepted it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use magnetar_protocol::ClusterToken;
use magnetar_protocol::bookie::{
    AddEntryRequest, AuthenticateRequest, DeleteLedgerRequest, FenceLedgerRequest,
    ReadEntryRequest, ReadEntryResponse, ReadLastAddConfirmedRequest, ReadLastAddConfirmedResponse,
    Request, Response, StatusCode, request, response,
};
use prost::Message;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

use crate::wire;

/// Largest response frame the client accepts (an entry of the bookie's default maximum size fits).
pub const DEFAULT_MAX_FRAME_SIZE: usize = 8 * 1024 * 1024;

/// How a client connects.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Presented as the connection's first request (the bookie's `cluster_token`).
    pub cluster_token: Option<ClusterToken>,
    /// TCP connect plus authentication.
    pub connect_timeout: Duration,
    pub max_frame_size: usize,
}

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions {
            cluster_token: None,
            connect_timeout: Duration::from_secs(10),
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
        }
    }
}

/// Why a call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to bookie {addr}: {message}")]
    Connect { addr: SocketAddr, message: String },
    #[error("connection to the bookie is closed")]
    Closed,
    #[error("bookie answered {status:?}: {message}")]
    Status { status: StatusCode, message: String },
    #[error("bookie answered with an unexpected response body")]
    UnexpectedResponse,
}

impl ClientError {
    /// The bookie's status code, when it answered with one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Response>>>>;

/// A pipelined connection to one bookie. Dropping it closes the connection; calls still waiting
/// then fail with [`ClientError::Closed`].
#[derive(Debug)]
pub struct BookieClient {
    addr: SocketAddr,
    next_id: AtomicU64,
    pending: Pending,
    out: mpsc::UnboundedSender<Bytes>,
    tasks: TaskTracker,
    stopped: CancellationToken,
    _stop: DropGuard,
}

impl BookieClient {
    /// Connects with the default options (no cluster token).
    pub async fn connect(addr: SocketAddr) -> Result<BookieClient, ClientError> {
        BookieClient::connect_with(addr, &ConnectOptions::default()).await
    }

    /// Connects and, with a cluster token, authenticates, within `options.connect_timeout`.
    pub async fn connect_with(
        addr: SocketAddr,
        options: &ConnectOptions,
    ) -> Result<BookieClient, ClientError> {
        let connect = async {
            let client = BookieClient::open(addr, options).await?;
            if let Some(token) = &options.cluster_token {
                client.authenticate(token).await?;
            }
            Ok(client)
        };
        tokio::time::timeout(options.connect_timeout, connect)
            .await
            .unwrap_or_else(|_| {
                Err(ClientError::Connect {
                    addr,
                    message: format!("no connection within {:?}", options.connect_timeout),
                })
            })
    }

    async fn open(addr: SocketAddr, options: &ConnectOptions) -> Result<BookieClient, ClientError> {
        let connect_err = |e: std::io::Error| ClientError::Connect {
            addr,
            message: e.to_string(),
        };
        let socket = TcpStream::connect(addr).await.map_err(connect_err)?;
        socket.set_nodelay(true).map_err(connect_err)?;
        let (read, write) = socket.into_split();
        let pending = Pending::default();
        let (out, out_rx) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let sink = FramedWrite::new(write, wire::codec(options.max_frame_size));
        tasks.spawn(write_requests(sink, out_rx, stop.clone()));
        let frames = FramedRead::new(read, wire::codec(options.max_frame_size));
        tasks.spawn(read_responses(frames, pending.clone(), stop.clone()));
        tasks.close();
        Ok(BookieClient {
            addr,
            next_id: AtomicU64::new(1),
            pending,
            out,
            tasks,
            stopped: stop.clone(),
            _stop: stop.drop_guard(),
        })
    }

    async fn authenticate(&self, token: &ClusterToken) -> Result<(), ClientError> {
        let op = request::Op::Authenticate(AuthenticateRequest {
            cluster_token: token.as_bytes().to_vec(),
        });
        match self.call_ok(op).await {
            Ok(Some(response::Body::Authenticate(_))) => Ok(()),
            Ok(_) => Err(ClientError::UnexpectedResponse),
            Err(e) => Err(ClientError::Connect {
                addr: self.addr,
                message: format!("authentication refused: {e}"),
            }),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the connection has broken or been closed.
    pub fn is_closed(&self) -> bool {
        self.stopped.is_cancelled()
    }

    /// Sends one request and waits for its response, whatever its status.
    pub async fn call(&self, op: request::Op) -> Result<Response, ClientError> {
        let request_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(request_id, tx);
        // The reader cancels before it clears `pending`: either it sees this waiter, or we see it
        // gone.
        if self.stopped.is_cancelled() {
            lock(&self.pending).remove(&request_id);
            return Err(ClientError::Closed);
        }
        let request = Request {
            request_id,
            op: Some(op),
        };
        if self.out.send(wire::encode(&request)).is_err() {
            lock(&self.pending).remove(&request_id);
            return Err(ClientError::Closed);
        }
        rx.await.map_err(|_| ClientError::Closed)
    }

    /// Calls and turns a non-OK status into an error; returns the response body.
    async fn call_ok(&self, op: request::Op) -> Result<Option<response::Body>, ClientError> {
        let response = self.call(op).await?;
        match StatusCode::try_from(response.status) {
            Ok(StatusCode::Ok) => Ok(response.body),
            Ok(status) => Err(ClientError::Status {
                status,
                message: response.message,
            }),
            Err(_) => Err(ClientError::UnexpectedResponse),
        }
    }

    /// Adds an entry; resolves once the bookie has made it durable.
    pub async fn add_entry(&self, add: AddEntryRequest) -> Result<(), ClientError> {
        match self.call_ok(request::Op::AddEntry(add)).await? {
            Some(response::Body::AddEntry(_)) => Ok(()),
            _ => Err(ClientError::UnexpectedResponse),
        }
    }

    /// Reads an entry; with `fence`, fences the ledger first (a recovery read).
    pub async fn read_entry(
        &self,
        ledger_id: u64,
        entry_id: u64,
        fence: bool,
    ) -> Result<ReadEntryResponse, ClientError> {
        let op = request::Op::ReadEntry(ReadEntryRequest {
            ledger_id,
            entry_id,
            fence,
        });
        match self.call_ok(op).await? {
            Some(response::Body::ReadEntry(read)) => Ok(read),
            _ => Err(ClientError::UnexpectedResponse),
        }
    }

    pub async fn read_last_add_confirmed(
        &self,
        ledger_id: u64,
    ) -> Result<ReadLastAddConfirmedResponse, ClientError> {
        let op = request::Op::ReadLastAddConfirmed(ReadLastAddConfirmedRequest { ledger_id });
        match self.call_ok(op).await? {
            Some(response::Body::ReadLastAddConfirmed(read)) => Ok(read),
            _ => Err(ClientError::UnexpectedResponse),
        }
    }

    /// Fences the ledger; returns its last-add-confirmed once the fence is durable.
    pub async fn fence_ledger(&self, ledger_id: u64) -> Result<Option<u64>, ClientError> {
        let op = request::Op::FenceLedger(FenceLedgerRequest { ledger_id });
        match self.call_ok(op).await? {
            Some(response::Body::FenceLedger(fence)) => Ok(fence.last_add_confirmed),
            _ => Err(ClientError::UnexpectedResponse),
        }
    }

    pub async fn delete_ledger(&self, ledger_id: u64) -> Result<(), ClientError> {
        let op = request::Op::DeleteLedger(DeleteLedgerRequest { ledger_id });
        match self.call_ok(op).await? {
            Some(response::Body::DeleteLedger(_)) => Ok(()),
            _ => Err(ClientError::UnexpectedResponse),
        }
    }

    /// Closes the connection and waits for its tasks to end.
    pub async fn close(self) {
        let tasks = self.tasks.clone();
        drop(self);
        tasks.wait().await;
    }
}

fn lock(pending: &Pending) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Response>>> {
    pending.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn write_requests(
    mut sink: FramedWrite<tokio::net::tcp::OwnedWriteHalf, tokio_util::codec::LengthDelimitedCodec>,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    stop: CancellationToken,
) {
    loop {
        let frame = tokio::select! {
            _ = stop.cancelled() => break,
            frame = rx.recv() => frame,
        };
        let Some(frame) = frame else { break };
        let mut result = sink.feed(frame).await;
        while result.is_ok() {
            match rx.try_recv() {
                Ok(frame) => result = sink.feed(frame).await,
                Err(_) => break,
            }
        }
        if let Err(e) = result.and(SinkExt::<Bytes>::flush(&mut sink).await) {
            tracing::debug!(error = %e, "bookie client write failed");
            break;
        }
    }
    stop.cancel(); // the reader ends too, failing every waiting call
}

async fn read_responses(
    mut frames: FramedRead<tokio::net::tcp::OwnedReadHalf, tokio_util::codec::LengthDelimitedCodec>,
    pending: Pending,
    stop: CancellationToken,
) {
    loop {
        let frame = tokio::select! {
            _ = stop.cancelled() => break,
            frame = frames.next() => frame,
        };
        let response = match frame {
            Some(Ok(bytes)) => match Response::decode(bytes.freeze()) {
                Ok(response) => response,
                Err(e) => {
                    tracing::warn!(error = %e, "undecodable response from bookie; closing");
                    break;
                }
            },
            Some(Err(e)) => {
                tracing::debug!(error = %e, "bookie connection read failed");
                break;
            }
            None => break,
        };
        let waiter = lock(&pending).remove(&response.request_id);
        match waiter {
            Some(waiter) => {
                let _ = waiter.send(response);
            }
            None => tracing::debug!(
                request_id = response.request_id,
                status = response.status,
                message = %response.message,
                "bookie response for no waiting request"
            ),
        }
    }
    stop.cancel();
    // Dropping the senders fails every call still waiting.
    lock(&pending).clear();
}
