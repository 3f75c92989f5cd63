//! Batch payloads: N messages in one entry, laid out as
//! `([u32 size][SingleMessageMetadata][message bytes]) × N` where `size` is the length of the
//! encoded `SingleMessageMetadata` and its `payload_size` the length of the message bytes.
//! Compression, when used, applies to the whole laid-out batch.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;

use crate::pulsar::SingleMessageMetadata;

/// One message of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchMessage {
    pub metadata: SingleMessageMetadata,
    pub payload: Bytes,
}

/// Why a batch could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch holds {found} messages, metadata says {expected}")]
    Count { expected: usize, found: usize },
    #[error("message {index} of the batch is truncated")]
    Truncated { index: usize },
    #[error("message {index} of the batch has undecodable metadata: {source}")]
    Metadata {
        index: usize,
        source: prost::DecodeError,
    },
    #[error("message {index} of the batch has a negative payload size")]
    NegativeSize { index: usize },
}

/// Lays out messages as a batch. Each message's `payload_size` is set from its bytes.
pub fn encode_batch<'a>(
    messages: impl IntoIterator<Item = (SingleMessageMetadata, &'a [u8])>,
) -> Bytes {
    let mut buf = BytesMut::new();
    for (mut metadata, payload) in messages {
        metadata.payload_size = payload.len() as i32;
        buf.put_u32(metadata.encoded_len() as u32);
        metadata.encode(&mut buf).expect("BytesMut grows as needed");
        buf.put_slice(payload);
    }
    buf.freeze()
}

/// Reads exactly `count` messages (the entry's `num_messages_in_batch`) from a batch.
pub fn decode_batch(data: &Bytes, count: usize) -> Result<Vec<BatchMessage>, BatchError> {
    let mut rest = data.clone();
    // A hostile count must not make us allocate: every message takes at least 4 bytes.
    let mut messages = Vec::with_capacity(count.min(data.len() / 4));
    for index in 0..count {
        if rest.remaining() < 4 {
            return Err(if rest.is_empty() && index > 0 {
                BatchError::Count {
                    expected: count,
                    found: index,
                }
            } else {
                BatchError::Truncated { index }
            });
        }
        let metadata_len = rest.get_u32() as usize;
        if rest.remaining() < metadata_len {
            return Err(BatchError::Truncated { index });
        }
        let metadata = SingleMessageMetadata::decode(&rest[..metadata_len])
            .map_err(|source| BatchError::Metadata { index, source })?;
        rest.advance(metadata_len);
        let payload_len = usize::try_from(metadata.payload_size)
            .map_err(|_| BatchError::NegativeSize { index })?;
        if rest.remaining() < payload_len {
            return Err(BatchError::Truncated { index });
        }
        let payload = rest.split_to(payload_len);
        messages.push(BatchMessage { metadata, payload });
    }
    if !rest.is_empty() {
        return Err(BatchError::Count {
            expected: count,
            found: count + 1,
        });
    }
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pulsar::KeyValue;

    fn message(key: &str) -> SingleMessageMetadata {
        SingleMessageMetadata {
            partition_key: Some(key.to_string()),
            properties: vec![KeyValue {
                key: "k".into(),
                value: key.into(),
            }],
            sequence_id: Some(3),
            ..Default::default()
        }
    }

    #[test]
    fn round_trip() {
        let batch = encode_batch([
            (message("a"), &b"one"[..]),
            (message("b"), &b""[..]),
            (message("c"), &b"three"[..]),
        ]);
        let decoded = decode_batch(&batch, 3).expect("valid batch");
        assert_eq!(decoded.len(), 3);
        assert_eq!(decoded[0].payload, Bytes::from_static(b"one"));
        assert_eq!(decoded[1].payload, Bytes::new());
        assert_eq!(decoded[2].metadata.partition_key.as_deref(), Some("c"));
        assert_eq!(decoded[2].metadata.payload_size, 5);
    }

    #[test]
    fn wrong_counts_and_truncations_are_errors() {
        let batch = encode_batch([(message("a"), &b"one"[..]), (message("b"), &b"two"[..])]);
        assert!(matches!(
            decode_batch(&batch, 3),
            Err(BatchError::Count {
                expected: 3,
                found: 2
            })
        ));
        assert!(matches!(
            decode_batch(&batch, 1),
            Err(BatchError::Count { .. })
        ));
        for len in 1..batch.len() {
            assert!(
                decode_batch(&batch.slice(..len), 2).is_err(),
                "truncated at {len}"
            );
        }
    }

    #[test]
    fn hostile_count_does_not_allocate() {
        assert!(decode_batch(&Bytes::new(), usize::MAX).is_err());
    }
}
