//! The bookie protocol's messages: every request and response round-trips, truncated input is
//! an error (never a panic), and the bytes of an add are the documented proto3 encoding.

use magnetar_protocol::bookie::{
    AddEntryRequest, AddEntryResponse, AuthenticateRequest, AuthenticateResponse,
    DeleteLedgerRequest, DeleteLedgerResponse, FenceLedgerRequest, FenceLedgerResponse,
    ReadEntryRequest, ReadEntryResponse, ReadLastAddConfirmedRequest, ReadLastAddConfirmedResponse,
    Request, Response, StatusCode, request, response,
};
use prost::Message;

fn requests() -> Vec<Request> {
    let ops = [
        request::Op::AddEntry(AddEntryRequest {
            ledger_id: u64::MAX,
            entry_id: 0,
            last_add_confirmed: None,
            payload: vec![1, 2, 3],
            recovery: false,
        }),
        request::Op::AddEntry(AddEntryRequest {
            ledger_id: 5,
            entry_id: 1,
            last_add_confirmed: Some(0),
            payload: vec![0; 1024],
            recovery: true,
        }),
        request::Op::ReadEntry(ReadEntryRequest {
            ledger_id: 5,
            entry_id: 1,
            fence: true,
        }),
        request::Op::ReadLastAddConfirmed(ReadLastAddConfirmedRequest { ledger_id: 5 }),
        request::Op::FenceLedger(FenceLedgerRequest { ledger_id: 5 }),
        request::Op::DeleteLedger(DeleteLedgerRequest { ledger_id: 5 }),
        request::Op::Authenticate(AuthenticateRequest {
            cluster_token: b"0123456789abcdef".to_vec(),
        }),
    ];
    ops.into_iter()
        .enumerate()
        .map(|(i, op)| Request {
            request_id: i as u64 + 1,
            op: Some(op),
        })
        .collect()
}

fn responses() -> Vec<Response> {
    let ok = |request_id, body| Response {
        request_id,
        status: StatusCode::Ok as i32,
        message: String::new(),
        body: Some(body),
    };
    vec![
        ok(
            1,
            response::Body::AddEntry(AddEntryResponse {
                ledger_id: 5,
                entry_id: 1,
            }),
        ),
        ok(
            2,
            response::Body::ReadEntry(ReadEntryResponse {
                ledger_id: 5,
                entry_id: 1,
                last_add_confirmed: Some(0),
                payload: b"entry".to_vec(),
            }),
        ),
        ok(
            3,
            response::Body::ReadLastAddConfirmed(ReadLastAddConfirmedResponse {
                ledger_id: 5,
                last_add_confirmed: None,
                fenced: true,
            }),
        ),
        ok(
            4,
            response::Body::FenceLedger(FenceLedgerResponse {
                ledger_id: 5,
                last_add_confirmed: Some(7),
            }),
        ),
        ok(
            5,
            response::Body::DeleteLedger(DeleteLedgerResponse { ledger_id: 5 }),
        ),
        Response {
            request_id: 6,
            status: StatusCode::Fenced as i32,
            message: "ledger 5 is fenced".into(),
            body: None,
        },
        ok(7, response::Body::Authenticate(AuthenticateResponse {})),
        Response {
            request_id: 8,
            status: StatusCode::Unauthenticated as i32,
            message: "the cluster token is wrong".into(),
            body: None,
        },
    ]
}

#[test]
fn every_message_round_trips() {
    for request in requests() {
        let bytes = request.encode_to_vec();
        assert_eq!(Request::decode(bytes.as_slice()).expect("decodes"), request);
    }
    for response in responses() {
        let bytes = response.encode_to_vec();
        assert_eq!(
            Response::decode(bytes.as_slice()).expect("decodes"),
            response
        );
    }
}

#[test]
fn truncated_messages_fail_to_decode_without_panicking() {
    for request in requests() {
        let bytes = request.encode_to_vec();
        for cut in 1..bytes.len() {
            // A cut on a field boundary is a valid shorter message; anything else must error.
            if let Ok(decoded) = Request::decode(&bytes[..cut]) {
                assert_ne!(
                    decoded, request,
                    "cut at {cut} decoded as the whole message"
                );
            }
        }
    }
    for response in responses() {
        let bytes = response.encode_to_vec();
        for cut in 1..bytes.len() {
            let _ = Response::decode(&bytes[..cut]);
        }
    }
}

#[test]
fn add_entry_golden_bytes() {
    let request = Request {
        request_id: 1,
        op: Some(request::Op::AddEntry(AddEntryRequest {
            ledger_id: 2,
            entry_id: 3,
            last_add_confirmed: Some(2),
            payload: b"hi".to_vec(),
            recovery: true,
        })),
    };
    let golden = [
        0x08, 0x01, // request_id = 1
        0x12, 0x0c, // add_entry, 12 bytes:
        0x08, 0x02, //   ledger_id = 2
        0x10, 0x03, //   entry_id = 3
        0x18, 0x02, //   last_add_confirmed = 2
        0x22, 0x02, b'h', b'i', // payload
        0x28, 0x01, //   recovery = true
    ];
    assert_eq!(request.encode_to_vec(), golden);
}

#[test]
fn authenticate_golden_bytes() {
    let request = Request {
        request_id: 1,
        op: Some(request::Op::Authenticate(AuthenticateRequest {
            cluster_token: b"tok".to_vec(),
        })),
    };
    let golden = [
        0x08, 0x01, // request_id = 1
        0x3a, 0x05, // authenticate (field 7), 5 bytes:
        0x0a, 0x03, b't', b'o', b'k', // cluster_token
    ];
    assert_eq!(request.encode_to_vec(), golden);
    let refused = Response {
        request_id: 1,
        status: StatusCode::Unauthenticated as i32,
        message: String::new(),
        body: None,
    };
    assert_eq!(refused.encode_to_vec(), [0x08, 0x01, 0x10, 0x08]);
}

#[test]
fn last_add_confirmed_zero_is_not_absent() {
    let with_zero = AddEntryRequest {
        last_add_confirmed: Some(0),
        ..AddEntryRequest::default()
    };
    let decoded = AddEntryRequest::decode(with_zero.encode_to_vec().as_slice()).expect("decodes");
    assert_eq!(decoded.last_add_confirmed, Some(0));
    let absent = AddEntryRequest::decode(&[][..]).expect("decodes");
    assert_eq!(absent.last_add_confirmed, None);
}
