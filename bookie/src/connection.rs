//! One client connection: requests are read and dispatched as they come (pipelined); responses
//! go out through one writer task in completion order, which need not be request order.
//!
//! Memory per connection is bounded: a request holds its share of `max_inflight_bytes` (at
//! least 1 KiB) until its response has been written to the socket, and the reader takes no
//! request beyond that; the payloads of read responses waiting to be written hold a second
//! budget of the same size. A peer that stops reading its responses therefore stops the bookie
//! reading its requests. Once a write fails the connection stops reading too.
//!
//! With a cluster token configured, the first request must present it: anything else, or a
//! wrong token, is answered `UNAUTHENTICATED` and the connection is closed.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use magnetar_protocol::ClusterToken;
use magnetar_protocol::bookie::{
    AddEntryResponse, AuthenticateResponse, DeleteLedgerResponse, FenceLedgerResponse,
    ReadEntryResponse, ReadLastAddConfirmedResponse, Request, Response, StatusCode, request,
    response,
};
use prost::Message;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bookie::{AddEntry, Bookie};
use crate::error::OpError;
use crate::wire;

/// What a connection needs from its server.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionContext {
    pub bookie: Arc<Bookie>,
    pub max_frame_size: usize,
    pub max_inflight_bytes: usize,
    /// Required as the first request of every connection, when set.
    pub cluster_token: Option<ClusterToken>,
    pub tasks: TaskTracker,
}

/// A response and the budget it holds until it is written.
struct Outgoing {
    response: Response,
    _request: OwnedSemaphorePermit,
    _payload: Option<OwnedSemaphorePermit>,
}

/// The reader's and the request tasks' side of the response queue.
#[derive(Clone)]
struct Responses {
    tx: mpsc::Sender<Outgoing>,
    /// Budget for the payloads of read responses.
    payloads: Arc<Semaphore>,
    max_payload_cost: usize,
}

impl Responses {
    /// Queues a response from a task. Room is certain: every queued response holds a request
    /// permit, and the queue has a place for each.
    async fn send(&self, response: Response, request: OwnedSemaphorePermit) {
        let payload_len = match &response.body {
            Some(response::Body::ReadEntry(read)) => read.payload.len(),
            _ => 0,
        };
        let payload = match payload_len {
            0 => None,
            len => {
                let cost = len.min(self.max_payload_cost) as u32;
                self.payloads.clone().acquire_many_owned(cost).await.ok()
            }
        };
        let _ = self
            .tx
            .send(Outgoing {
                response,
                _request: request,
                _payload: payload,
            })
            .await;
    }

    /// Queues a response without waiting (from the journal's thread); see [`Responses::send`].
    fn send_now(&self, response: Response, request: OwnedSemaphorePermit) {
        let outgoing = Outgoing {
            response,
            _request: request,
            _payload: None,
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(outgoing) {
            tracing::error!("bookie response queue full; a response is lost");
        }
    }
}

/// What the smallest request counts against a connection's in-flight bytes.
const MIN_REQUEST_COST: usize = 1024;
/// Responses written per flush at most, so that their budgets come back promptly.
const MAX_WRITE_BATCH: usize = 256;

/// Serves `socket` until the peer closes it, it sends an undelimitable frame, a response cannot
/// be written, or `shutdown`. Requests already taken are answered before this returns.
pub(crate) async fn serve(socket: TcpStream, ctx: ConnectionContext, shutdown: CancellationToken) {
    let peer = socket.peer_addr().ok();
    let (read, write) = socket.into_split();
    let inflight = Arc::new(Semaphore::new(ctx.max_inflight_bytes));
    serve_io(read, write, peer, ctx, inflight, shutdown).await
}

/// The largest frame read before a connection has authenticated (an AuthenticateRequest is a
/// few dozen bytes).
const UNAUTHENTICATED_FRAME_LIMIT: usize = 4096;
/// How long a connection to a bookie with a cluster token has to authenticate.
const AUTHENTICATE_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// [`serve`] over any byte streams; `inflight` holds the connection's `max_inflight_bytes`.
pub(crate) async fn serve_io<R, W>(
    read: R,
    write: W,
    peer: Option<SocketAddr>,
    ctx: ConnectionContext,
    inflight: Arc<Semaphore>,
    shutdown: CancellationToken,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let mut authenticated = ctx.cluster_token.is_none();
    // A peer that has not authenticated gets a small frame and a short time to do so: strangers
    // hold neither memory nor sockets.
    let first_frame_limit = if authenticated {
        ctx.max_frame_size
    } else {
        ctx.max_frame_size.min(UNAUTHENTICATED_FRAME_LIMIT)
    };
    let mut frames = FramedRead::new(read, wire::codec(first_frame_limit));
    let authenticate_by = tokio::time::Instant::now() + AUTHENTICATE_WITHIN;
    let (tx, rx) = mpsc::channel(ctx.max_inflight_bytes / MIN_REQUEST_COST + 1);
    let responses = Responses {
        tx,
        payloads: Arc::new(Semaphore::new(ctx.max_inflight_bytes)),
        max_payload_cost: ctx.max_inflight_bytes,
    };
    let write_failed = CancellationToken::new();
    let writer = tokio::spawn(write_responses(
        FramedWrite::new(write, wire::codec(ctx.max_frame_size)),
        rx,
        write_failed.clone(),
    ));
    loop {
        let frame = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = write_failed.cancelled() => break,
            _ = tokio::time::sleep_until(authenticate_by), if !authenticated => {
                tracing::warn!(?peer, "refused a bookie connection: no authentication in time");
                break;
            }
            frame = frames.next() => frame,
        };
        let bytes = match frame {
            None => break,
            Some(Ok(bytes)) => bytes.freeze(),
            Some(Err(e)) => {
                tracing::debug!(?peer, error = %e, "closing bookie connection: bad frame");
                break;
            }
        };
        // Frames are at most `max_frame_size` <= `max_inflight_bytes` (validated), so this fits.
        let cost = bytes.len().clamp(MIN_REQUEST_COST, ctx.max_inflight_bytes);
        let permit = tokio::select! {
            permit = inflight.clone().acquire_many_owned(cost as u32) => permit,
            _ = write_failed.cancelled() => break,
        };
        let Ok(permit) = permit else {
            break;
        };
        let request = match Request::decode(bytes) {
            Ok(request) => request,
            Err(e) => {
                let message = format!("undecodable request: {e}");
                responses
                    .send(wire::error(0, StatusCode::BadRequest, message), permit)
                    .await;
                if authenticated {
                    continue;
                }
                break;
            }
        };
        let authenticating = matches!(request.op, Some(request::Op::Authenticate(_)));
        if !authenticated || authenticating {
            // Answered here, in request order: a request pipelined behind a valid token is
            // served, one behind a wrong token never is.
            let answer = authenticate(ctx.cluster_token.as_ref(), &request);
            authenticated = answer.status == StatusCode::Ok as i32;
            if !authenticated {
                tracing::warn!(?peer, reason = %answer.message, "refused a bookie connection");
            }
            responses.send(answer, permit).await;
            if authenticated {
                frames
                    .decoder_mut()
                    .set_max_frame_length(ctx.max_frame_size);
                continue;
            }
            break;
        }
        dispatch(request, &ctx, &responses, permit);
    }
    // In-flight requests hold clones of the queue; the writer ends once the last one has answered.
    drop(responses);
    if writer.await.is_err() {
        tracing::error!(?peer, "bookie connection writer panicked");
    }
}

/// The answer to a request on a connection that has not authenticated, or that authenticates
/// again: OK if it presents the bookie's token (any token when the bookie has none).
fn authenticate(token: Option<&ClusterToken>, request: &Request) -> Response {
    let id = request.request_id;
    let refuse = |message: &str| wire::error(id, StatusCode::Unauthenticated, message.into());
    let Some(request::Op::Authenticate(auth)) = &request.op else {
        return refuse("the first request must present the cluster token; closing the connection");
    };
    match token {
        Some(token) if !token.matches(&auth.cluster_token) => {
            refuse("wrong cluster token; closing the connection")
        }
        _ => wire::ok(id, response::Body::Authenticate(AuthenticateResponse {})),
    }
}

async fn write_responses<W: AsyncWrite + Unpin>(
    mut sink: FramedWrite<W, LengthDelimitedCodec>,
    mut rx: mpsc::Receiver<Outgoing>,
    failed: CancellationToken,
) {
    let mut batch = Vec::with_capacity(MAX_WRITE_BATCH);
    while let Some(first) = rx.recv().await {
        if failed.is_cancelled() {
            continue; // drain, releasing each response's budget, until every sender is gone
        }
        batch.push(first);
        while batch.len() < MAX_WRITE_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let mut result = Ok(());
        for outgoing in &batch {
            result = sink.feed(wire::encode(&outgoing.response)).await;
            if result.is_err() {
                break;
            }
        }
        let result = result.and(SinkExt::<Bytes>::flush(&mut sink).await);
        // Written (or failed): the requests no longer count in flight.
        batch.clear();
        if let Err(e) = result {
            tracing::debug!(error = %e, "bookie connection write failed; closing");
            failed.cancel();
        }
    }
}

fn dispatch(
    request: Request,
    ctx: &ConnectionContext,
    responses: &Responses,
    permit: OwnedSemaphorePermit,
) {
    let id = request.request_id;
    let Some(op) = request.op else {
        let message = "request carries no operation".to_string();
        responses.send_now(wire::error(id, StatusCode::BadRequest, message), permit);
        return;
    };
    if let request::Op::AddEntry(add) = op {
        // The hot path: no task, the journal's apply thread answers directly.
        let (ledger_id, entry_id) = (add.ledger_id, add.entry_id);
        let responses = responses.clone();
        let add = AddEntry {
            ledger_id,
            entry_id,
            last_add_confirmed: add.last_add_confirmed,
            data: Bytes::from(add.payload),
            recovery: add.recovery,
        };
        ctx.bookie.add_entry(add, move |result| {
            let response = match result {
                Ok(()) => wire::ok(
                    id,
                    response::Body::AddEntry(AddEntryResponse {
                        ledger_id,
                        entry_id,
                    }),
                ),
                Err(e) => wire::op_error(id, &e),
            };
            responses.send_now(response, permit);
        });
        return;
    }
    let bookie = ctx.bookie.clone();
    let responses = responses.clone();
    ctx.tasks.spawn(async move {
        let response = match handle(&bookie, op).await {
            Ok(body) => wire::ok(id, body),
            Err(e) => wire::op_error(id, &e),
        };
        responses.send(response, permit).await;
    });
}

/// Every operation but adds. Storage reads run on blocking threads.
async fn handle(bookie: &Arc<Bookie>, op: request::Op) -> Result<response::Body, OpError> {
    match op {
        request::Op::AddEntry(_) => Err(OpError::Internal("add dispatched as a slow op".into())),
        request::Op::Authenticate(_) => Err(OpError::Internal(
            "authentication dispatched as an operation".into(),
        )),
        request::Op::ReadEntry(read) => {
            if read.fence {
                bookie.fence(read.ledger_id).await?;
            }
            let (ledger_id, entry_id) = (read.ledger_id, read.entry_id);
            let entry = blocking(bookie, move |b| b.read_entry(ledger_id, entry_id)).await?;
            Ok(response::Body::ReadEntry(ReadEntryResponse {
                ledger_id,
                entry_id,
                last_add_confirmed: entry.last_add_confirmed,
                payload: entry.data.to_vec(),
            }))
        }
        request::Op::ReadLastAddConfirmed(read) => {
            let ledger_id = read.ledger_id;
            let meta = blocking(bookie, move |b| b.ledger(ledger_id)).await?;
            Ok(response::Body::ReadLastAddConfirmed(
                ReadLastAddConfirmedResponse {
                    ledger_id,
                    last_add_confirmed: meta.last_add_confirmed,
                    fenced: meta.fenced,
                },
            ))
        }
        request::Op::FenceLedger(fence) => {
            let ledger_id = fence.ledger_id;
            bookie.fence(ledger_id).await?;
            let meta = blocking(bookie, move |b| b.ledger(ledger_id)).await?;
            Ok(response::Body::FenceLedger(FenceLedgerResponse {
                ledger_id,
                last_add_confirmed: meta.last_add_confirmed,
            }))
        }
        request::Op::DeleteLedger(delete) => {
            bookie.delete_ledger(delete.ledger_id).await?;
            Ok(response::Body::DeleteLedger(DeleteLedgerResponse {
                ledger_id: delete.ledger_id,
            }))
        }
    }
}

async fn blocking<T: Send + 'static>(
    bookie: &Arc<Bookie>,
    f: impl FnOnce(&Bookie) -> Result<T, OpError> + Send + 'static,
) -> Result<T, OpError> {
    let bookie = bookie.clone();
    tokio::task::spawn_blocking(move || f(&bookie))
        .await
        .unwrap_or_else(|e| Err(OpError::Internal(format!("request task failed: {e}"))))
}

#[cfg(test)]
#[path = "connection_test.rs"]
mod tests;
