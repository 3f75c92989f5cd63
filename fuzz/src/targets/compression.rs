//! `compression`: every codec's `decompress` (`magnetar_protocol::compression`) with arbitrary
//! data and an arbitrary claimed uncompressed size, under the limit clients use (5 MiB).
//!
//! Input: `[u8 codec][u32 claimed size][data]`. Codec byte: the low 4 bits are the
//! `CompressionType` number (0–4 are codecs, 5–15 unknown types); bit 7 also runs a round trip
//! of `data` through `compress` and `decompress`. A success must produce exactly the claimed
//! size; a round trip must give the data back.

use magnetar_protocol::DEFAULT_MAX_MESSAGE_SIZE;
use magnetar_protocol::compression::{compress, decompress};
use magnetar_protocol::pulsar::CompressionType;

use crate::engine::{Signal, Target};
use crate::input::{Input, InputBuilder};
use crate::rng::Rng;

#[derive(Debug)]
pub struct Compression;

const CODECS: [CompressionType; 5] = [
    CompressionType::None,
    CompressionType::Lz4,
    CompressionType::Zlib,
    CompressionType::Zstd,
    CompressionType::Snappy,
];

impl Target for Compression {
    fn name(&self) -> &'static str {
        "compression"
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        let mut rng = Rng::new(0xc0de);
        let mut seeds = Vec::new();
        for codec in CODECS {
            for len in [0usize, 1, 17, 300, 2000] {
                let plain: Vec<u8> = if rng.one_in(2) {
                    rng.bytes(len)
                } else {
                    (0..len).map(|i| b"pulsar"[i % 6]).collect()
                };
                let packed = compress(codec, &plain);
                seeds.push(seed(codec as u8, plain.len() as u32, &packed));
                seeds.push(seed(codec as u8 | 0x80, plain.len() as u32, &plain));
                seeds.push(seed(codec as u8, plain.len() as u32 + 1, &packed));
            }
        }
        seeds
    }

    fn run(&mut self, input: &[u8]) -> Signal {
        let mut input = Input::new(input);
        let codec_byte = input.u8();
        let claimed = input.u32() as usize;
        let data = input.rest();
        let codec = i32::from(codec_byte & 0x0f);
        let mut signal = Signal::new("compression").with_num(codec as u64);
        match decompress(codec, data, claimed, DEFAULT_MAX_MESSAGE_SIZE) {
            Ok(out) => {
                if codec != CompressionType::None as i32 {
                    assert_eq!(out.len(), claimed, "output differs from the claimed size");
                }
                signal = signal.with("ok");
            }
            Err(e) => signal = signal.with_variant(&e),
        }
        if codec_byte & 0x80 != 0
            && let Ok(kind) = CompressionType::try_from(codec)
        {
            let packed = compress(kind, data);
            let out = decompress(codec, &packed, data.len(), usize::MAX)
                .unwrap_or_else(|e| panic!("{kind:?} round trip fails: {e}"));
            assert_eq!(out, data, "{kind:?} round trip changes the data");
        }
        signal
    }

    fn max_len(&self) -> usize {
        8192
    }
}

fn seed(codec: u8, claimed: u32, data: &[u8]) -> Vec<u8> {
    InputBuilder::new().u8(codec).u32(claimed).raw(data).build()
}
