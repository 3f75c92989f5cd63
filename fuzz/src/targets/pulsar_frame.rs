//! `pulsar_frame`: the broker's and clients' view of a Pulsar byte stream.
//!
//! Input: `[u8 read plan][u8 options][stream]`. The stream is fed to [`PulsarCodec`] in chunks
//! (as a socket would deliver it, split by the plan) until it ends or the codec fails; options
//! bit 0 picks a 1 KiB frame limit instead of the default 5 MiB + 10 KiB. Every frame decoded
//! has its payload checked and parsed as the broker does (`verify_checksum`, `metadata`,
//! `body`), and must survive a round trip: encoding it and decoding it again gives the same
//! bytes once more.

use bytes::BytesMut;
use magnetar_protocol::pulsar::base_command::Type;
use magnetar_protocol::pulsar::{BaseCommand, MessageMetadata};
use magnetar_protocol::{Frame, Payload, PulsarCodec};
use prost::Message;
use tokio_util::codec::{Decoder, Encoder};

use crate::engine::{Signal, Target};
use crate::input::{Input, InputBuilder, chunks};
use crate::proto_gen::{grow, random_message, wrap_field};
use crate::rng::Rng;

#[derive(Debug)]
pub struct PulsarFrame;

const SMALL_LIMIT: usize = 1024;

impl Target for PulsarFrame {
    fn name(&self) -> &'static str {
        "pulsar_frame"
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        let mut rng = Rng::new(0x5eed);
        let mut seeds = Vec::new();
        let golden = super::golden_frames();
        for frame in &golden {
            seeds.push(seed(0, 0, frame));
            seeds.push(seed(1 + rng.byte() % 200, 0, frame));
        }
        seeds.push(seed(3, 0, &golden.concat()));
        let mut generated = Vec::new();
        for frame in every_command(&mut rng) {
            let wire = encode(&frame);
            seeds.push(seed(rng.byte(), 0, &wire));
            generated.push(wire);
        }
        for _ in 0..32 {
            let mut stream = Vec::new();
            for _ in 0..3 {
                let wire: &Vec<u8> = rng.pick(&generated);
                stream.extend_from_slice(wire);
            }
            seeds.push(seed(rng.byte(), rng.byte() & 1, &stream));
        }
        seeds
    }

    fn run(&mut self, input: &[u8]) -> Signal {
        let mut input = Input::new(input);
        let plan = input.u8();
        let options = input.u8();
        let stream = input.rest();
        let mut codec = if options & 1 == 1 {
            PulsarCodec::new(SMALL_LIMIT)
        } else {
            PulsarCodec::default()
        };
        let mut signal = Signal::new("pulsar_frame");
        let mut buf = BytesMut::new();
        let mut frames = 0u64;
        for chunk in chunks(stream, plan) {
            buf.extend_from_slice(chunk);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(frame)) => {
                        frames += 1;
                        signal = signal.with(check_frame(&frame));
                    }
                    Ok(None) => break,
                    Err(e) => return signal.with("error").with_variant(&e),
                }
            }
        }
        signal
            .with_num(frames.min(4))
            .with_num(u64::from(!buf.is_empty()))
    }
}

/// What the broker does with a decoded frame, and the round trip; returns a signal detail.
fn check_frame(frame: &Frame) -> String {
    let mut detail = frame.command.kind_name();
    if let Some(payload) = &frame.payload {
        detail.push_str(match payload.verify_checksum() {
            Ok(()) => "/crc-ok",
            Err(_) => "/crc-bad",
        });
        match payload.metadata() {
            Ok(metadata) => {
                detail.push_str("/metadata");
                let _ = payload.body();
                if let Some(n) = metadata.num_messages_in_batch {
                    detail.push_str(if n > 1 { "/batch" } else { "/single" });
                }
            }
            Err(_) => detail.push_str("/bad-metadata"),
        }
        let _ = payload.to_entry();
    }
    // Re-encoding may grow a frame (prost writes packed fields unpacked), so no limit here.
    let mut codec = PulsarCodec::new(usize::MAX);
    let once = encode_with(&mut codec, frame);
    let mut buf = BytesMut::from(&once[..]);
    let again = codec
        .decode(&mut buf)
        .unwrap_or_else(|e| panic!("a re-encoded frame does not decode: {e}"))
        .expect("a re-encoded frame is complete");
    assert!(buf.is_empty(), "a re-encoded frame leaves bytes over");
    assert_eq!(
        encode_with(&mut codec, &again),
        once,
        "a frame changes on a second round trip"
    );
    detail
}

fn encode_with(codec: &mut PulsarCodec, frame: &Frame) -> Vec<u8> {
    let mut out = BytesMut::new();
    codec
        .encode(frame, &mut out)
        .unwrap_or_else(|e| panic!("a decoded frame does not encode: {e}"));
    out.to_vec()
}

fn encode(frame: &Frame) -> Vec<u8> {
    encode_with(&mut PulsarCodec::new(usize::MAX), frame)
}

fn seed(plan: u8, options: u8, stream: &[u8]) -> Vec<u8> {
    InputBuilder::new().u8(plan).u8(options).raw(stream).build()
}

/// Two frames of every command type this protocol version knows, with random but valid
/// fields: the sub-command (field number = type number in `BaseCommand`) is grown field by
/// field while the whole command still decodes. SEND and MESSAGE get a payload.
pub fn every_command(rng: &mut Rng) -> Vec<Frame> {
    let mut frames = Vec::new();
    for number in 0..=128i32 {
        let Ok(kind) = Type::try_from(number) else {
            continue;
        };
        for _ in 0..2 {
            let mut prefix = vec![0x08];
            prefix.extend(varint_bytes(number as u64));
            let whole = |body: &[u8]| {
                let mut bytes = prefix.clone();
                bytes.extend(wrap_field(number as u32, body));
                bytes
            };
            let body = grow(rng, 24, 60, |body| {
                BaseCommand::decode(&whole(body)[..]).is_ok()
            });
            let Ok(command) = BaseCommand::decode(&whole(&body)[..]) else {
                continue;
            };
            let payload = matches!(kind, Type::Send | Type::Message).then(|| {
                let metadata: MessageMetadata = random_message(rng, 32, 60);
                let len = rng.below(64);
                Payload::new(&metadata, &rng.bytes(len))
            });
            frames.push(Frame { command, payload });
        }
    }
    frames
}

fn varint_bytes(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_command_type_gets_frames() {
        let frames = every_command(&mut Rng::new(1));
        let kinds: std::collections::HashSet<_> = frames.iter().map(|f| f.command.r#type).collect();
        let known = (0..=128).filter(|n| Type::try_from(*n).is_ok()).count();
        assert_eq!(kinds.len(), known);
        assert!(frames.iter().any(|f| f.payload.is_some()));
    }

    #[test]
    fn seeds_run_clean() {
        let mut target = PulsarFrame;
        for seed in target.seeds() {
            target.run(&seed);
        }
    }
}
