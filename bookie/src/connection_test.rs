//! The connection over in-memory pipes whose buffers the test sizes, so that "written" and "not
//! yet written" are states the test controls.

use std::time::Duration;

use magnetar_protocol::bookie::ReadEntryRequest;
use magnetar_testkit::{wait_for, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::*;
use crate::journal::JournalConfig;
use crate::storage::MemoryStorage;

/// Payload bytes of the one stored entry (ledger 1, entry 0).
const ENTRY: usize = 8 * 1024;
const MAX_INFLIGHT: usize = 1024 * 1024;
const WAIT: Duration = Duration::from_secs(10);

struct Harness {
    /// The client's end of the request pipe.
    requests: DuplexStream,
    /// The client's end of the response pipe.
    responses: Option<DuplexStream>,
    inflight: Arc<Semaphore>,
    shutdown: CancellationToken,
    server: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// A bookie holding one entry, served over pipes; responses flow through a pipe of
/// `response_buffer` bytes.
async fn start(response_buffer: usize) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Arc::new(MemoryStorage::new());
    let bookie = Bookie::open_with(dir.path(), &JournalConfig::default(), storage, 1 << 20)
        .expect("open bookie");
    let (tx, rx) = oneshot::channel();
    let add = AddEntry {
        ledger_id: 1,
        entry_id: 0,
        last_add_confirmed: None,
        data: Bytes::from(vec![7; ENTRY]),
        recovery: false,
    };
    bookie.add_entry(add, move |r| {
        let _ = tx.send(r);
    });
    rx.await.expect("answered").expect("stored");
    let (requests, server_read) = tokio::io::duplex(64 * 1024);
    let (server_write, responses) = tokio::io::duplex(response_buffer);
    let ctx = ConnectionContext {
        bookie: Arc::new(bookie),
        max_frame_size: 2 << 20,
        max_inflight_bytes: MAX_INFLIGHT,
        cluster_token: None,
        tasks: TaskTracker::new(),
    };
    let inflight = Arc::new(Semaphore::new(MAX_INFLIGHT));
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve_io(
        server_read,
        server_write,
        None,
        ctx,
        inflight.clone(),
        shutdown.clone(),
    ));
    Harness {
        requests,
        responses: Some(responses),
        inflight,
        shutdown,
        server,
        _dir: dir,
    }
}

fn read_request(request_id: u64) -> Bytes {
    let request = Request {
        request_id,
        op: Some(request::Op::ReadEntry(ReadEntryRequest {
            ledger_id: 1,
            entry_id: 0,
            fence: false,
        })),
    };
    let body = request.encode_to_vec();
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    Bytes::from(frame)
}

/// Steps: read an 8 KiB entry through a response pipe of 1 KiB; once the response has begun
/// to arrive (so it was queued and the writer is busy with it) the request still counts
/// against the connection's in-flight bytes; once it has been read whole, it no longer does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_counts_in_flight_until_its_response_is_written() {
    let mut h = start(1024).await;
    h.requests.write_all(&read_request(1)).await.expect("send");
    let responses = h.responses.as_mut().expect("responses");
    let mut head = [0u8; 4];
    responses
        .read_exact(&mut head)
        .await
        .expect("response begins");
    assert_eq!(
        h.inflight.available_permits(),
        MAX_INFLIGHT - MIN_REQUEST_COST,
        "released before its response was written"
    );
    let mut body = vec![0u8; u32::from_be_bytes(head) as usize];
    responses
        .read_exact(&mut body)
        .await
        .expect("response body");
    let response = Response::decode(body.as_slice()).expect("response");
    assert_eq!(response.status, StatusCode::Ok as i32);
    let inflight = h.inflight.clone();
    wait_until("the request's bytes released", WAIT, || {
        let released = inflight.available_permits() == MAX_INFLIGHT;
        async move { released }
    })
    .await;
    h.shutdown.cancel();
    h.server.await.expect("server task");
}

/// Steps: the peer stops taking responses (its end of the response pipe is gone); after the
/// first response fails to go out, the bookie stops reading requests too, so the peer's
/// writes fail instead of being taken and answered into the void.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_cannot_write_stops_reading() {
    let mut h = start(64 * 1024).await;
    drop(h.responses.take());
    let requests = Arc::new(tokio::sync::Mutex::new(h.requests));
    let mut request_id = 0;
    wait_for("the bookie to stop reading", WAIT, || {
        request_id += 1;
        let frame = read_request(request_id);
        let requests = requests.clone();
        async move { requests.lock().await.write_all(&frame).await.err() }
    })
    .await;
    h.server.await.expect("server task ends by itself");
}
