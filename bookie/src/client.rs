//! A connection to one bookie: requests are pipelined over one TCP connection and each call's
//! future resolves when the response with its request id arrives, in whatever order they come.
//!
//! - With a cluster token, the connection presents it first and is usable only once the bookie
//!   has accepted it.
//! - Requests wait in a queue bounded in bytes ([`ConnectOptions::max_queued_bytes`]); a call
//!   waits for room, so a slow bookie slows its callers down instead of growing memory.
//! - [`BookieClient::within`] bounds the wait for an answer, counted from when the request was
//!   written to the socket: time spent queued behind other requests is not the bookie's fault.
//! - A socket write that makes no progress for [`ConnectOptions::write_timeout`] (a peer that
//!   stopped reading) breaks the connection, failing every call on it.

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
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

use crate::wire;

/// Largest response frame the client accepts (an entry of the bookie's default maximum size fits).
pub const DEFAULT_MAX_FRAME_SIZE: usize = 8 * 1024 * 1024;

/// What the smallest request counts against the queue.
const MIN_REQUEST_COST: usize = 1024;
/// Requests written to the socket per flush at most, so that each is reported written promptly.
const MAX_WRITE_BATCH: usize = 256;

/// How a client connects and queues.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Presented as the connection's first request (the bookie's `cluster_token`).
    pub cluster_token: Option<ClusterToken>,
    /// TCP connect plus authentication.
    pub connect_timeout: Duration,
    /// A socket write that does not complete in this time breaks the connection.
    pub write_timeout: Duration,
    /// Bytes of requests waiting to be written (each counts at least 1 KiB); calls wait for
    /// room beyond it.
    pub max_queued_bytes: usize,
    pub max_frame_size: usize,
}

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions {
            cluster_token: None,
            connect_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            max_queued_bytes: 16 * 1024 * 1024,
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
    #[error("no answer within {0:?} of sending the request")]
    TimedOut(Duration),
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

/// A request on its way to the socket.
struct Outgoing {
    frame: Bytes,
    /// Told once the frame is written, for calls that time their answer from then.
    written: Option<oneshot::Sender<()>>,
    /// The frame's room in the queue, freed once it is written.
    _room: OwnedSemaphorePermit,
}

/// A pipelined connection to one bookie. Dropping it closes the connection; calls still waiting
/// then fail with [`ClientError::Closed`].
#[derive(Debug)]
pub struct BookieClient {
    addr: SocketAddr,
    next_id: AtomicU64,
    pending: Pending,
    out: mpsc::UnboundedSender<Outgoing>,
    /// Room in the queue, in bytes.
    room: Arc<Semaphore>,
    max_queued_bytes: usize,
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
        tasks.spawn(write_requests(
            sink,
            out_rx,
            options.write_timeout,
            stop.clone(),
        ));
        let frames = FramedRead::new(read, wire::codec(options.max_frame_size));
        tasks.spawn(read_responses(frames, pending.clone(), stop.clone()));
        tasks.close();
        // Semaphore permits are counted in u32 per acquisition.
        let max_queued_bytes = options
            .max_queued_bytes
            .clamp(MIN_REQUEST_COST, u32::MAX as usize);
        Ok(BookieClient {
            addr,
            next_id: AtomicU64::new(1),
            pending,
            out,
            room: Arc::new(Semaphore::new(max_queued_bytes)),
            max_queued_bytes,
            tasks,
            stopped: stop.clone(),
            _stop: stop.drop_guard(),
        })
    }

    async fn authenticate(&self, token: &ClusterToken) -> Result<(), ClientError> {
        let op = request::Op::Authenticate(AuthenticateRequest {
            cluster_token: token.as_bytes().to_vec(),
        });
        match self.untimed().call_ok(op).await {
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

    /// Bytes of requests queued and not yet written to the socket (as the queue counts them).
    pub fn queued_bytes(&self) -> usize {
        self.max_queued_bytes - self.room.available_permits()
    }

    /// Whether the connection has broken or been closed.
    pub fn is_closed(&self) -> bool {
        self.stopped.is_cancelled()
    }

    /// Calls whose answers must come within `timeout` of their requests being written to the
    /// socket, or fail with [`ClientError::TimedOut`].
    pub fn within(&self, timeout: Duration) -> Calls<'_> {
        Calls {
            client: self,
            timeout: Some(timeout),
        }
    }

    fn untimed(&self) -> Calls<'_> {
        Calls {
            client: self,
            timeout: None,
        }
    }

    /// Sends one request and waits for its response, whatever its status.
    pub async fn call(&self, op: request::Op) -> Result<Response, ClientError> {
        self.untimed().call(op).await
    }

    /// Adds an entry; resolves once the bookie has made it durable.
    pub async fn add_entry(&self, add: AddEntryRequest) -> Result<(), ClientError> {
        self.untimed().add_entry(add).await
    }

    /// Reads an entry; with `fence`, fences the ledger first (a recovery read).
    pub async fn read_entry(
        &self,
        ledger_id: u64,
        entry_id: u64,
        fence: bool,
    ) -> Result<ReadEntryResponse, ClientError> {
        self.untimed().read_entry(ledger_id, entry_id, fence).await
    }

    pub async fn read_last_add_confirmed(
        &self,
        ledger_id: u64,
    ) -> Result<ReadLastAddConfirmedResponse, ClientError> {
        self.untimed().read_last_add_confirmed(ledger_id).await
    }

    /// Fences the ledger; returns its last-add-confirmed once the fence is durable.
    pub async fn fence_ledger(&self, ledger_id: u64) -> Result<Option<u64>, ClientError> {
        self.untimed().fence_ledger(ledger_id).await
    }

    pub async fn delete_ledger(&self, ledger_id: u64) -> Result<(), ClientError> {
        self.untimed().delete_ledger(ledger_id).await
    }

    /// Closes the connection and waits for its tasks to end.
    pub async fn close(self) {
        let tasks = self.tasks.clone();
        drop(self);
        tasks.wait().await;
    }
}

/// The calls of a [`BookieClient`], with or without a bound on the wait for each answer.
#[derive(Debug, Clone, Copy)]
pub struct Calls<'a> {
    client: &'a BookieClient,
    timeout: Option<Duration>,
}

impl Calls<'_> {
    /// Sends one request and waits for its response, whatever its status.
    pub async fn call(&self, op: request::Op) -> Result<Response, ClientError> {
        let client = self.client;
        let request_id = client.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = wire::encode(&Request {
            request_id,
            op: Some(op),
        });
        let cost = frame.len().clamp(MIN_REQUEST_COST, client.max_queued_bytes);
        // Backpressure: wait for room in the queue, or for the connection to end.
        let room = tokio::select! {
            room = client.room.clone().acquire_many_owned(cost as u32) => {
                room.map_err(|_| ClientError::Closed)?
            }
            _ = client.stopped.cancelled() => return Err(ClientError::Closed),
        };
        let (tx, mut rx) = oneshot::channel();
        lock(&client.pending).insert(request_id, tx);
        let _waiting = Waiting {
            pending: &client.pending,
            request_id,
        };
        // The reader cancels before it clears `pending`: either it sees this waiter, or we see it
        // gone.
        if client.stopped.is_cancelled() {
            return Err(ClientError::Closed);
        }
        let (written, mut on_written) = match self.timeout {
            Some(_) => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let outgoing = Outgoing {
            frame,
            written,
            _room: room,
        };
        if client.out.send(outgoing).is_err() {
            return Err(ClientError::Closed);
        }
        let (Some(timeout), Some(on_written)) = (self.timeout, on_written.take()) else {
            return rx.await.map_err(|_| ClientError::Closed);
        };
        tokio::select! {
            biased;
            response = &mut rx => return response.map_err(|_| ClientError::Closed),
            written = on_written => written.map_err(|_| ClientError::Closed)?,
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(response) => response.map_err(|_| ClientError::Closed),
            Err(_) => Err(ClientError::TimedOut(timeout)),
        }
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
}

/// Removes a call's waiter when the call ends (answered, timed out or dropped).
struct Waiting<'a> {
    pending: &'a Pending,
    request_id: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        lock(self.pending).remove(&self.request_id);
    }
}

fn lock(pending: &Pending) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Response>>> {
    pending.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn write_requests(
    mut sink: FramedWrite<tokio::net::tcp::OwnedWriteHalf, LengthDelimitedCodec>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    write_timeout: Duration,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(MAX_WRITE_BATCH);
    loop {
        let first = tokio::select! {
            _ = stop.cancelled() => break,
            first = rx.recv() => first,
        };
        let Some(first) = first else { break };
        batch.push(first);
        while batch.len() < MAX_WRITE_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let write = async {
            for outgoing in &batch {
                sink.feed(outgoing.frame.clone()).await?;
            }
            SinkExt::<Bytes>::flush(&mut sink).await
        };
        match tokio::time::timeout(write_timeout, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "bookie client write failed");
                break;
            }
            Err(_) => {
                tracing::debug!(?write_timeout, "bookie client write stalled; closing");
                break;
            }
        }
        for outgoing in batch.drain(..) {
            if let Some(written) = outgoing.written {
                let _ = written.send(());
            }
        }
    }
    stop.cancel(); // the reader ends too, failing every waiting call
}

async fn read_responses(
    mut frames: FramedRead<tokio::net::tcp::OwnedReadHalf, LengthDelimitedCodec>,
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
