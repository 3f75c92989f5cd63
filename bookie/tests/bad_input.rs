//! Bad input gets a clear answer, never a panic or a hang: malformed frames, requests without an
//! operation, oversized frames and entries, reads of ledgers and entries the bookie lacks.

use crate::common;

use bytes::Bytes;
use common::{add, config};
use futures::{SinkExt, StreamExt};
use magnetar_bookie::wire;
use magnetar_protocol::bookie::{
    AddEntryRequest, ReadLastAddConfirmedRequest, Request, Response, StatusCode, request,
};
use magnetar_testkit::bookie::TestBookie;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

type Raw = Framed<TcpStream, tokio_util::codec::LengthDelimitedCodec>;

async fn raw(bookie: &TestBookie) -> Raw {
    let socket = TcpStream::connect(bookie.addr).await.expect("connect");
    Framed::new(socket, wire::codec(1024 * 1024))
}

async fn next_response(raw: &mut Raw) -> Response {
    let frame = raw.next().await.expect("a response").expect("a frame");
    Response::decode(frame.freeze()).expect("decodable response")
}

fn status(response: &Response) -> StatusCode {
    StatusCode::try_from(response.status).expect("known status")
}

/// Steps: send undecodable bytes in a well-delimited frame, then a request with no operation;
/// each gets BadRequest; the same connection then still serves a valid request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_bad_request_and_the_connection_survives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bookie = TestBookie::start(config(dir.path())).await;
    let mut raw = raw(&bookie).await;

    raw.send(Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0x42]))
        .await
        .expect("send");
    let response = next_response(&mut raw).await;
    assert_eq!(status(&response), StatusCode::BadRequest);
    assert!(response.message.contains("undecodable"), "{response:?}");

    let empty = Request {
        request_id: 5,
        op: None,
    };
    raw.send(wire::encode(&empty)).await.expect("send");
    let response = next_response(&mut raw).await;
    assert_eq!(
        (response.request_id, status(&response)),
        (5, StatusCode::BadRequest)
    );

    let lac = Request {
        request_id: 6,
        op: Some(request::Op::ReadLastAddConfirmed(
            ReadLastAddConfirmedRequest { ledger_id: 1 },
        )),
    };
    raw.send(wire::encode(&lac)).await.expect("send");
    let response = next_response(&mut raw).await;
    assert_eq!(
        (response.request_id, status(&response)),
        (6, StatusCode::NoSuchLedger)
    );
    bookie.stop().await;
}

/// Steps: announce a frame larger than the bookie's maximum; the bookie closes the connection
/// (the stream cannot be resynchronised) and keeps serving new ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_closes_the_connection_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bookie = TestBookie::start(config(dir.path())).await;
    let mut socket = TcpStream::connect(bookie.addr).await.expect("connect");
    // A frame header announcing 512 KiB (the test config allows 128 KiB), then a little body.
    let mut header = (512 * 1024u32).to_be_bytes().to_vec();
    header.extend_from_slice(&[0; 16]);
    socket.write_all(&header).await.expect("send header");
    let mut rest = Vec::new();
    // Closed by the bookie: end of stream (or a reset), and no response.
    let _ = socket.read_to_end(&mut rest).await;
    assert!(rest.is_empty(), "no response to an undelimitable frame");

    let client = bookie.client().await;
    client
        .add_entry(add(1, 0, false))
        .await
        .expect("new connection works");
    client.close().await;
    bookie.stop().await;
}

/// Steps: read from a ledger the bookie never saw, an entry past a ledger's end, the LAC of an
/// unknown ledger, and add an entry above the maximum size: each gets its own status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_ledgers_entries_and_oversized_entries_get_clear_statuses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bookie = TestBookie::start(config(dir.path())).await;
    let client = bookie.client().await;
    client.add_entry(add(3, 0, false)).await.expect("add");

    let err = client
        .read_entry(42, 0, false)
        .await
        .expect_err("no ledger");
    assert_eq!(err.status(), Some(StatusCode::NoSuchLedger));
    let err = client.read_entry(3, 1, false).await.expect_err("no entry");
    assert_eq!(err.status(), Some(StatusCode::NoSuchEntry));
    assert!(err.to_string().contains("3:1"), "{err}");
    let err = client
        .read_last_add_confirmed(42)
        .await
        .expect_err("no ledger");
    assert_eq!(err.status(), Some(StatusCode::NoSuchLedger));

    let too_large = AddEntryRequest {
        ledger_id: 3,
        entry_id: 1,
        last_add_confirmed: Some(0),
        payload: vec![7; 64 * 1024 + 1],
        recovery: false,
    };
    let err = client.add_entry(too_large).await.expect_err("too large");
    assert_eq!(err.status(), Some(StatusCode::TooLarge));
    client.close().await;
    bookie.stop().await;
}
