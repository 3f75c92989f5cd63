//! Payload compression with Pulsar's exact framing: LZ4 raw blocks, zlib streams (with header),
//! ZSTD frames, Snappy raw format. The uncompressed size travels in `MessageMetadata`, so
//! decompression is given it and refuses to produce more (no decompression bombs).
//!
//! Brokers never decompress; clients and tests do.

use std::io::{Read, Write};

use crate::pulsar::CompressionType;

/// Zstd level Pulsar's Java client uses.
const ZSTD_LEVEL: i32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum CompressionError {
    #[error("unknown compression type {0}")]
    UnknownType(i32),
    #[error("uncompressed size {size} exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("{codec:?} data is corrupt: {reason}")]
    Corrupt {
        codec: CompressionType,
        reason: String,
    },
    #[error("{codec:?} output is {actual} bytes, metadata says {expected}")]
    SizeMismatch {
        codec: CompressionType,
        expected: usize,
        actual: usize,
    },
}

/// Compresses `data` as a Pulsar client would.
pub fn compress(codec: CompressionType, data: &[u8]) -> Vec<u8> {
    match codec {
        CompressionType::None => data.to_vec(),
        CompressionType::Lz4 => lz4_flex::block::compress(data),
        CompressionType::Zlib => {
            let mut encoder =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            encoder
                .write_all(data)
                .expect("writing to a Vec does not fail");
            encoder.finish().expect("writing to a Vec does not fail")
        }
        CompressionType::Zstd => {
            zstd::bulk::compress(data, ZSTD_LEVEL).expect("compressing into a Vec does not fail")
        }
        CompressionType::Snappy => snap::raw::Encoder::new()
            .compress_vec(data)
            .expect("input sizes here are far below snappy's limit"),
    }
}

/// Decompresses `data` that the metadata says is `uncompressed_size` bytes long, refusing sizes
/// above `limit` before doing any work.
pub fn decompress(
    codec: i32,
    data: &[u8],
    uncompressed_size: usize,
    limit: usize,
) -> Result<Vec<u8>, CompressionError> {
    let codec =
        CompressionType::try_from(codec).map_err(|_| CompressionError::UnknownType(codec))?;
    if uncompressed_size > limit {
        return Err(CompressionError::TooLarge {
            size: uncompressed_size,
            limit,
        });
    }
    let corrupt = |reason: String| CompressionError::Corrupt { codec, reason };
    let out = match codec {
        CompressionType::None => return Ok(data.to_vec()),
        CompressionType::Lz4 => lz4_flex::block::decompress(data, uncompressed_size)
            .map_err(|e| corrupt(e.to_string()))?,
        CompressionType::Zlib => {
            let mut out = Vec::with_capacity(uncompressed_size);
            // Read one byte past the expected size so that too-long output is noticed.
            flate2::read::ZlibDecoder::new(data)
                .take(uncompressed_size as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| corrupt(e.to_string()))?;
            out
        }
        CompressionType::Zstd => {
            zstd::bulk::decompress(data, uncompressed_size).map_err(|e| corrupt(e.to_string()))?
        }
        CompressionType::Snappy => {
            let len = snap::raw::decompress_len(data).map_err(|e| corrupt(e.to_string()))?;
            if len != uncompressed_size {
                return Err(CompressionError::SizeMismatch {
                    codec,
                    expected: uncompressed_size,
                    actual: len,
                });
            }
            snap::raw::Decoder::new()
                .decompress_vec(data)
                .map_err(|e| corrupt(e.to_string()))?
        }
    };
    if out.len() != uncompressed_size {
        return Err(CompressionError::SizeMismatch {
            codec,
            expected: uncompressed_size,
            actual: out.len(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [CompressionType; 5] = [
        CompressionType::None,
        CompressionType::Lz4,
        CompressionType::Zlib,
        CompressionType::Zstd,
        CompressionType::Snappy,
    ];

    #[test]
    fn round_trip_every_codec() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for codec in ALL {
            let compressed = compress(codec, &data);
            let out =
                decompress(codec as i32, &compressed, data.len(), 1 << 20).expect("round trip");
            assert_eq!(out, data, "{codec:?}");
        }
    }

    #[test]
    fn lies_about_size_and_garbage_are_errors() {
        let data = vec![7u8; 1000];
        for codec in ALL.into_iter().skip(1) {
            let compressed = compress(codec, &data);
            assert!(
                decompress(codec as i32, &compressed, 999, 1 << 20).is_err(),
                "{codec:?} short"
            );
            assert!(
                decompress(codec as i32, &compressed, 1001, 1 << 20).is_err(),
                "{codec:?} long"
            );
            assert!(
                decompress(codec as i32, b"\xff\xfe garbage", 1000, 1 << 20).is_err(),
                "{codec:?}"
            );
            assert!(matches!(
                decompress(codec as i32, &compressed, 1000, 999),
                Err(CompressionError::TooLarge { .. })
            ));
        }
        assert!(matches!(
            decompress(9, b"", 0, 10),
            Err(CompressionError::UnknownType(9))
        ));
    }
}
