//! One client connection: requests are read and dispatched as they come (pipelined); responses
//! go out through one writer task in completion order, which need not be request order.

use std::sync::Arc;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use magnetar_protocol::bookie::{
    AddEntryResponse, DeleteLedgerResponse, FenceLedgerResponse, ReadEntryResponse,
    ReadLastAddConfirmedResponse, Request, Response, StatusCode, request, response,
};
use prost::Message;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
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
    pub tasks: TaskTracker,
}

type Responses = mpsc::UnboundedSender<Response>;

/// What the smallest request counts against a connection's in-flight bytes.
const MIN_REQUEST_COST: usize = 1024;

/// Serves `socket` until the peer closes it, it sends an undelimitable frame, or `shutdown`.
/// Requests already taken are answered before this returns.
pub(crate) async fn serve(socket: TcpStream, ctx: ConnectionContext, shutdown: CancellationToken) {
    let peer = socket.peer_addr().ok();
    let (read, write) = socket.into_split();
    let mut frames = FramedRead::new(read, wire::codec(ctx.max_frame_size));
    let (tx, rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_responses(
        FramedWrite::new(write, wire::codec(ctx.max_frame_size)),
        rx,
    ));
    let inflight = Arc::new(Semaphore::new(ctx.max_inflight_bytes));
    loop {
        let frame = tokio::select! {
            _ = shutdown.cancelled() => break,
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
        let Ok(permit) = inflight.clone().acquire_many_owned(cost as u32).await else {
            break;
        };
        match Request::decode(bytes) {
            Ok(request) => dispatch(request, &ctx, &tx, permit),
            Err(e) => {
                let message = format!("undecodable request: {e}");
                let _ = tx.send(wire::error(0, StatusCode::BadRequest, message));
            }
        }
    }
    // In-flight requests hold clones of `tx`; the writer ends once the last one has answered.
    drop(tx);
    if writer.await.is_err() {
        tracing::error!(?peer, "bookie connection writer panicked");
    }
}

async fn write_responses(
    mut sink: FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>,
    mut rx: mpsc::UnboundedReceiver<Response>,
) {
    let mut failed = false;
    while let Some(response) = rx.recv().await {
        if failed {
            continue; // keep draining so senders never block on a dead peer
        }
        let mut result = sink.feed(wire::encode(&response)).await;
        while result.is_ok() {
            match rx.try_recv() {
                Ok(response) => result = sink.feed(wire::encode(&response)).await,
                Err(_) => break,
            }
        }
        if let Err(e) = result.and(SinkExt::<Bytes>::flush(&mut sink).await) {
            tracing::debug!(error = %e, "bookie connection write failed");
            failed = true;
        }
    }
}

fn dispatch(
    request: Request,
    ctx: &ConnectionContext,
    tx: &Responses,
    permit: OwnedSemaphorePermit,
) {
    let id = request.request_id;
    let Some(op) = request.op else {
        let message = "request carries no operation".to_string();
        let _ = tx.send(wire::error(id, StatusCode::BadRequest, message));
        return;
    };
    if let request::Op::AddEntry(add) = op {
        // The hot path: no task, the journal's apply thread answers directly.
        let (ledger_id, entry_id) = (add.ledger_id, add.entry_id);
        let tx = tx.clone();
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
            let _ = tx.send(response);
            drop(permit);
        });
        return;
    }
    let bookie = ctx.bookie.clone();
    let tx = tx.clone();
    ctx.tasks.spawn(async move {
        let response = match handle(&bookie, op).await {
            Ok(body) => wire::ok(id, body),
            Err(e) => wire::op_error(id, &e),
        };
        let _ = tx.send(response);
        drop(permit);
    });
}

/// Every operation but adds. Storage reads run on blocking threads.
async fn handle(bookie: &Arc<Bookie>, op: request::Op) -> Result<response::Body, OpError> {
    match op {
        request::Op::AddEntry(_) => Err(OpError::Internal("add dispatched as a slow op".into())),
        // A bookie without a cluster token takes any token.
        request::Op::Authenticate(_) => Ok(response::Body::Authenticate(
            magnetar_protocol::bookie::AuthenticateResponse {},
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
