//! `batch`: reading a batch payload (`magnetar_protocol::batch::decode_batch`), as consumers do
//! with an entry whose metadata says `num_messages_in_batch`.
//!
//! Input: `[u8 count mode][u32 count][batch bytes]`. Count mode bit 0 uses the u32 as the count
//! (so hostile counts up to 4 Gi are tried), else only its low byte. A batch that decodes must
//! hold exactly `count` messages, and laying the messages out again with `encode_batch` must
//! decode to the same messages.

use bytes::Bytes;
use magnetar_protocol::batch::{decode_batch, encode_batch};
use magnetar_protocol::pulsar::SingleMessageMetadata;
use prost::Message;

use crate::engine::{Signal, Target};
use crate::input::{Input, InputBuilder};
use crate::proto_gen::random_message;
use crate::rng::Rng;

#[derive(Debug)]
pub struct Batch;

impl Target for Batch {
    fn name(&self) -> &'static str {
        "batch"
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        let mut rng = Rng::new(0xba7c);
        let mut seeds = Vec::new();
        for count in [0usize, 1, 2, 3, 5, 16] {
            let messages: Vec<(SingleMessageMetadata, Vec<u8>)> = (0..count)
                .map(|_| {
                    let len = rng.below(40);
                    (random_message(&mut rng, 32, 50), rng.bytes(len))
                })
                .collect();
            let batch = encode_batch(messages.iter().map(|(m, p)| (m.clone(), &p[..])));
            seeds.push(seed(0, count as u32, &batch));
            seeds.push(seed(1, count as u32 + 1, &batch));
        }
        seeds.push(seed(1, u32::MAX, &[0, 0, 0, 0]));
        seeds
    }

    fn run(&mut self, input: &[u8]) -> Signal {
        let mut input = Input::new(input);
        let mode = input.u8();
        let count = input.u32();
        let count = if mode & 1 == 1 {
            count as usize
        } else {
            (count & 0xff) as usize
        };
        let data = Bytes::copy_from_slice(input.rest());
        let signal = Signal::new("batch");
        match decode_batch(&data, count) {
            Ok(messages) => {
                assert_eq!(messages.len(), count, "a decoded batch has another count");
                let again = encode_batch(
                    messages
                        .iter()
                        .map(|m| (m.metadata.clone(), &m.payload[..])),
                );
                let decoded = decode_batch(&again, count)
                    .unwrap_or_else(|e| panic!("a re-encoded batch does not decode: {e}"));
                for (a, b) in messages.iter().zip(&decoded) {
                    assert_eq!(a.payload, b.payload, "payload changed on a round trip");
                    assert_eq!(
                        a.metadata.encode_to_vec(),
                        b.metadata.encode_to_vec(),
                        "metadata changed on a round trip"
                    );
                }
                signal.with("ok").with_num(count.min(8) as u64)
            }
            Err(e) => signal.with_variant(&e),
        }
    }
}

fn seed(mode: u8, count: u32, batch: &[u8]) -> Vec<u8> {
    InputBuilder::new().u8(mode).u32(count).raw(batch).build()
}
