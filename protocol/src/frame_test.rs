use super::*;
use crate::pulsar::{CommandPing, CommandSend};

fn send_frame() -> Frame {
    let metadata = MessageMetadata {
        producer_name: "p".into(),
        sequence_id: 1,
        publish_time: 1_700_000_000_000,
        ..Default::default()
    };
    Frame::with_payload(
        CommandSend {
            producer_id: 1,
            sequence_id: 1,
            ..Default::default()
        },
        Payload::new(&metadata, b"hello"),
    )
}

fn encode(frame: &Frame) -> BytesMut {
    let mut buf = BytesMut::new();
    PulsarCodec::default()
        .encode(frame, &mut buf)
        .expect("encodes");
    buf
}

#[test]
fn payload_frame_round_trips_with_valid_checksum() {
    let frame = send_frame();
    let mut buf = encode(&frame);
    assert_eq!(buf.len(), frame.encoded_len());
    let decoded = PulsarCodec::default()
        .decode(&mut buf)
        .expect("decodes")
        .expect("complete");
    assert_eq!(decoded, frame);
    let payload = decoded.payload.expect("payload");
    payload.verify_checksum().expect("checksum");
    assert_eq!(payload.body(), Bytes::from_static(b"hello"));
    assert_eq!(payload.metadata().expect("metadata").producer_name, "p");
    assert!(buf.is_empty());
}

#[test]
fn every_truncation_asks_for_more() {
    let full = encode(&send_frame());
    for len in 0..full.len() {
        let mut partial = BytesMut::from(&full[..len]);
        assert!(
            PulsarCodec::default()
                .decode(&mut partial)
                .expect("no error")
                .is_none(),
            "len {len}"
        );
    }
}

#[test]
fn two_frames_in_one_read_come_out_one_by_one() {
    let mut buf = encode(&Frame::from(CommandPing {}));
    buf.extend_from_slice(&encode(&send_frame()));
    let mut codec = PulsarCodec::default();
    assert!(
        codec
            .decode(&mut buf)
            .expect("ok")
            .expect("ping")
            .payload
            .is_none()
    );
    assert!(
        codec
            .decode(&mut buf)
            .expect("ok")
            .expect("send")
            .payload
            .is_some()
    );
    assert!(codec.decode(&mut buf).expect("ok").is_none());
}

#[test]
fn corrupted_payload_is_reported_not_fatal() {
    let mut buf = encode(&send_frame());
    let last = buf.len() - 1;
    buf[last] ^= 0xff;
    let frame = PulsarCodec::default()
        .decode(&mut buf)
        .expect("frame still decodes")
        .expect("complete");
    let err = frame
        .payload
        .expect("payload")
        .verify_checksum()
        .expect_err("mismatch");
    assert_ne!(err.expected, err.actual);
}

#[test]
fn oversized_frames_are_refused_from_their_header() {
    let mut codec = PulsarCodec::new(64);
    let mut buf = BytesMut::from(&1000u32.to_be_bytes()[..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(FrameError::TooLarge {
            size: 1004,
            max: 64
        })
    ));
    let mut out = BytesMut::new();
    let big = Frame::with_payload(
        CommandSend::default(),
        Payload::new(&MessageMetadata::default(), &[0u8; 100]),
    );
    assert!(matches!(
        codec.encode(&big, &mut out),
        Err(FrameError::TooLarge { .. })
    ));
}

#[test]
fn malformed_sizes_are_errors() {
    let cases: [&[u8]; 4] = [
        &[0, 0, 0, 2, 0, 0],          // total size smaller than the command size field
        &[0, 0, 0, 5, 0, 0, 0, 9, 0], // command longer than the frame
        &[0, 0, 0, 6, 0, 0, 0, 1, 0xff, 0xff], // undecodable command bytes... then a stray byte
        &[0, 0, 0, 7, 0, 0, 0, 0, 0x0e, 0x01, 0], // payload too short for its checksum and size
    ];
    for case in cases {
        let mut buf = BytesMut::from(case);
        assert!(PulsarCodec::default().decode(&mut buf).is_err(), "{case:?}");
    }
}

#[test]
fn payload_without_magic_is_accepted_and_stored_with_a_checksum() {
    let metadata = MessageMetadata {
        producer_name: "old".into(),
        ..Default::default()
    };
    let with = Payload::new(&metadata, b"body");
    let without = Payload::parse(with.as_bytes().slice(6..)).expect("no magic");
    assert!(!without.has_checksum());
    without.verify_checksum().expect("nothing to verify");
    assert_eq!(without.body(), Bytes::from_static(b"body"));
    assert_eq!(without.to_entry(), *with.as_bytes());
}

#[test]
fn broker_entry_metadata_block_is_skipped() {
    let inner = Payload::new(&MessageMetadata::default(), b"x");
    let mut data = BytesMut::new();
    data.put_u16(MAGIC_BROKER_ENTRY_METADATA);
    data.put_u32(3);
    data.put_slice(&[0x08, 0x01, 0x10]);
    data.put_slice(inner.as_bytes());
    let parsed = Payload::parse(data.freeze()).expect("parses");
    assert_eq!(parsed, inner);
}
