//! Property tests: the decoder never panics, whatever bytes arrive, and any stream of valid frames
//! decodes to the same frames however the bytes are split into reads.

use bytes::BytesMut;
use magnetar_protocol::pulsar::{CommandFlow, CommandSend, MessageMetadata};
use magnetar_protocol::{Frame, Payload, PulsarCodec, TopicName};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

fn drain(codec: &mut PulsarCodec, buf: &mut BytesMut) -> Result<Vec<Frame>, ()> {
    let mut out = Vec::new();
    loop {
        match codec.decode(buf) {
            Ok(Some(frame)) => out.push(frame),
            Ok(None) => return Ok(out),
            Err(_) => return Err(()),
        }
    }
}

fn frame_strategy() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (any::<u64>(), any::<u32>()).prop_map(|(consumer_id, message_permits)| CommandFlow {
            consumer_id,
            message_permits
        }
        .into()),
        (
            any::<u64>(),
            ".{0,20}",
            proptest::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|(sequence_id, producer_name, body)| {
                let metadata = MessageMetadata {
                    producer_name,
                    sequence_id,
                    publish_time: 1,
                    ..Default::default()
                };
                Frame::with_payload(
                    CommandSend {
                        producer_id: 1,
                        sequence_id,
                        ..Default::default()
                    },
                    Payload::new(&metadata, &body),
                )
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut buf = BytesMut::from(&bytes[..]);
        let _ = drain(&mut PulsarCodec::default(), &mut buf);
    }

    #[test]
    fn arbitrary_bytes_after_a_plausible_header_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        // Give the garbage a consistent length prefix so it reaches the command/payload parsers.
        let mut buf = BytesMut::from(&(body.len() as u32).to_be_bytes()[..]);
        buf.extend_from_slice(&body);
        if let Ok(frames) = drain(&mut PulsarCodec::default(), &mut buf) {
            for frame in frames {
                if let Some(payload) = frame.payload {
                    let _ = payload.verify_checksum();
                    let _ = payload.metadata();
                }
            }
        }
    }

    #[test]
    fn frames_survive_any_read_split(
        frames in proptest::collection::vec(frame_strategy(), 1..6),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut codec = PulsarCodec::default();
        let mut wire = BytesMut::new();
        for frame in &frames {
            codec.encode(frame, &mut wire).expect("encodes");
        }
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
        cuts.push(wire.len());
        cuts.sort_unstable();
        let mut decoded = Vec::new();
        let mut buf = BytesMut::new();
        let mut from = 0;
        for cut in cuts {
            buf.extend_from_slice(&wire[from..cut]);
            from = cut;
            decoded.extend(drain(&mut codec, &mut buf).expect("valid stream"));
        }
        prop_assert_eq!(decoded, frames);
    }

    #[test]
    fn topic_parsing_never_panics_and_normal_form_is_stable(name in "[a-z/:.-]{0,40}") {
        if let Ok(topic) = TopicName::parse(&name) {
            let again = TopicName::parse(&topic.to_string()).expect("normal form parses");
            prop_assert_eq!(again, topic);
        }
    }
}
