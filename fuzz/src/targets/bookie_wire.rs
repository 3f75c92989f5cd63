//! `bookie_wire`: the bookie protocol as its two ends read it (`magnetar_bookie::wire`), plus
//! the journal's on-disk records, which replay reads back after a crash.
//!
//! Input: `[u8 read plan][u8 mode][stream]`. Mode (low 2 bits): 0, the bookie's side: the stream
//! is split into frames by `wire::codec` (8 MiB limit, as the client's default) and each frame
//! decoded as a `Request`, then checked as `connection::dispatch` does (an operation must be
//! present); 1, the client's side: frames decoded as `Response`s; 3, both; 2, the stream is a
//! journal segment, read record by record with `journal::decode` as replay does. Decoded
//! messages and records must survive a round trip.

use bytes::{Bytes, BytesMut};
use magnetar_bookie::client::DEFAULT_MAX_FRAME_SIZE;
use magnetar_bookie::journal::{self, Decoded, Record};
use magnetar_bookie::wire;
use magnetar_protocol::bookie::{Request, Response};
use prost::Message;
use tokio_util::codec::{Decoder, Encoder};

use crate::engine::{Signal, Target};
use crate::input::{Input, InputBuilder, chunks};
use crate::proto_gen::{grow, wrap_field};
use crate::rng::Rng;

#[derive(Debug)]
pub struct BookieWire;

impl Target for BookieWire {
    fn name(&self) -> &'static str {
        "bookie_wire"
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        let mut rng = Rng::new(0xb00c);
        let mut seeds = Vec::new();
        // Requests: one per operation (fields 2–6 of `Request`), responses: one per body (4–8).
        let requests = one_per_oneof::<Request>(&mut rng, 2..=6);
        let responses = one_per_oneof::<Response>(&mut rng, 4..=8);
        let framed = [
            (0u8, requests.iter().map(frame).collect::<Vec<_>>()),
            (1, responses.iter().map(frame).collect()),
        ];
        for (mode, frames) in framed {
            for frame in &frames {
                seeds.push(seed(0, mode, frame));
                seeds.push(seed(rng.byte(), mode, frame));
            }
            seeds.push(seed(rng.byte(), 3, &frames.concat()));
        }
        let mut segment = Vec::new();
        for record in [
            Record::Entry {
                ledger_id: 7,
                entry_id: 0,
                last_add_confirmed: None,
                data: Bytes::from_static(b"entry"),
            },
            Record::Entry {
                ledger_id: 7,
                entry_id: 1,
                last_add_confirmed: Some(0),
                data: Bytes::new(),
            },
            Record::Fence { ledger_id: 7 },
            Record::DeleteLedger { ledger_id: 7 },
        ] {
            record.encode(&mut segment);
        }
        seeds.push(seed(0, 2, &segment));
        segment.extend_from_slice(&[0; 64]);
        seeds.push(seed(0, 2, &segment));
        seeds
    }

    fn run(&mut self, input: &[u8]) -> Signal {
        let mut input = Input::new(input);
        let plan = input.u8();
        let mode = input.u8() & 3;
        let stream = input.rest();
        let signal = Signal::new("bookie_wire").with_num(u64::from(mode));
        if mode == 2 {
            return replay(stream, signal);
        }
        let mut codec = wire::codec(DEFAULT_MAX_FRAME_SIZE);
        let mut buf = BytesMut::new();
        let mut signal = signal;
        for chunk in chunks(stream, plan) {
            buf.extend_from_slice(chunk);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(frame)) => {
                        let frame = frame.freeze();
                        if mode != 1 {
                            signal = signal.with(check_request(frame.clone()));
                        }
                        if mode != 0 {
                            signal = signal.with(check_response(frame));
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return signal.with("frame-error").with(e.kind().to_string()),
                }
            }
        }
        signal
    }
}

/// The bookie's reading of a request frame.
fn check_request(frame: Bytes) -> String {
    match Request::decode(frame) {
        Ok(request) => {
            round_trip(&request);
            match &request.op {
                None => "request/no-op".into(),
                Some(op) => format!("request/{}", crate::engine::variant_name(op)),
            }
        }
        Err(_) => "request/undecodable".into(),
    }
}

/// The client's reading of a response frame.
fn check_response(frame: Bytes) -> String {
    match Response::decode(frame) {
        Ok(response) => {
            round_trip(&response);
            let body = response
                .body
                .as_ref()
                .map_or("none".into(), crate::engine::variant_name);
            format!("response/{}/{body}", response.status)
        }
        Err(_) => "response/undecodable".into(),
    }
}

fn round_trip<M: Message + Default + PartialEq + std::fmt::Debug>(message: &M) {
    let bytes = wire::encode(message);
    let again = M::decode(bytes.clone()).expect("an encoded message decodes");
    assert_eq!(&again, message, "a message changes on a round trip");
    let mut framed = BytesMut::new();
    wire::codec(DEFAULT_MAX_FRAME_SIZE)
        .encode(bytes, &mut framed)
        .expect("a small message frames");
}

/// Reads records from the start of a segment until the end marker or damage, as replay does.
fn replay(segment: &[u8], signal: Signal) -> Signal {
    let mut offset = 0;
    let mut records = 0u64;
    loop {
        match journal::decode(&segment[offset..]) {
            Decoded::Record { record, len } => {
                assert!(
                    len > 0 && offset + len <= segment.len(),
                    "record length {len}"
                );
                let mut bytes = Vec::new();
                record.encode(&mut bytes);
                assert_eq!(bytes.len(), record.encoded_len());
                match journal::decode(&bytes) {
                    Decoded::Record { record: again, .. } => {
                        assert_eq!(again, record, "a record changes on a round trip");
                    }
                    other => panic!("an encoded record decodes as {other:?}"),
                }
                offset += len;
                records += 1;
            }
            Decoded::End => return signal.with("end").with_num(records.min(4)),
            Decoded::Damaged(damage) => {
                return signal.with_variant(&damage).with_num(records.min(4));
            }
        }
    }
}

/// For each oneof field number: a random valid message with that field set (grown field by
/// field while it decodes), in normal form.
pub fn one_per_oneof<M: Message + Default>(
    rng: &mut Rng,
    fields: std::ops::RangeInclusive<u32>,
) -> Vec<M> {
    let mut out = Vec::new();
    for field in fields {
        for _ in 0..2 {
            let body = grow(rng, 8, 30, |body| {
                M::decode(&wrap_field(field, body)[..]).is_ok()
            });
            let mut bytes = grow(rng, 3, 6, |head| M::decode(head).is_ok());
            bytes.extend(wrap_field(field, &body));
            if let Ok(message) = M::decode(&bytes[..]) {
                out.push(message);
            }
        }
    }
    out
}

fn frame(message: &impl Message) -> Vec<u8> {
    let mut out = BytesMut::new();
    wire::codec(DEFAULT_MAX_FRAME_SIZE)
        .encode(wire::encode(message), &mut out)
        .expect("a small message frames");
    out.to_vec()
}

fn seed(plan: u8, mode: u8, stream: &[u8]) -> Vec<u8> {
    InputBuilder::new().u8(plan).u8(mode).raw(stream).build()
}
