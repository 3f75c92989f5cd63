//! Messages going out ([`ProducerMessage`]) and coming in ([`Message`]), and the decoding of a
//! delivered entry: checksum, decompression, unbatching.

use std::sync::Arc;

use bytes::Bytes;
use magnetar_protocol::MessageId;
use magnetar_protocol::batch::decode_batch;
use magnetar_protocol::compression::decompress;
use magnetar_protocol::pulsar::command_ack::ValidationError;
use magnetar_protocol::pulsar::{CommandMessage, CompressionType, KeyValue};
use magnetar_protocol::{FrameError, Payload};

/// A message to publish.
#[derive(Debug, Clone, Default)]
pub struct ProducerMessage {
    pub payload: Bytes,
    /// Partition key: picks the partition and, on Key_Shared subscriptions, the consumer.
    pub key: Option<String>,
    pub properties: Vec<(String, String)>,
    /// Milliseconds since the epoch, set by the application.
    pub event_time: Option<u64>,
}

impl ProducerMessage {
    pub fn new(payload: impl Into<Bytes>) -> ProducerMessage {
        ProducerMessage {
            payload: payload.into(),
            ..Default::default()
        }
    }

    pub fn with_key(mut self, key: impl Into<String>) -> ProducerMessage {
        self.key = Some(key.into());
        self
    }

    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    pub fn with_event_time(mut self, millis: u64) -> ProducerMessage {
        self.event_time = Some(millis);
        self
    }

    pub(crate) fn properties_kv(&self) -> Vec<KeyValue> {
        self.properties
            .iter()
            .map(|(key, value)| KeyValue {
                key: key.clone(),
                value: value.clone(),
            })
            .collect()
    }
}

impl From<Vec<u8>> for ProducerMessage {
    fn from(payload: Vec<u8>) -> ProducerMessage {
        ProducerMessage::new(payload)
    }
}

impl From<&str> for ProducerMessage {
    fn from(payload: &str) -> ProducerMessage {
        ProducerMessage::new(payload.to_string())
    }
}

impl From<Bytes> for ProducerMessage {
    fn from(payload: Bytes) -> ProducerMessage {
        ProducerMessage::new(payload)
    }
}

/// A received message.
#[derive(Debug, Clone)]
pub struct Message {
    /// Ledger, entry, partition (−1 if not partitioned) and batch index (−1 if not batched).
    pub id: MessageId,
    /// The (partition) topic it came from (shared by the messages of a delivery).
    pub topic: Arc<str>,
    pub payload: Bytes,
    pub key: Option<String>,
    pub properties: Vec<(String, String)>,
    /// Milliseconds since the epoch, set by the producer's client.
    pub publish_time: u64,
    pub event_time: Option<u64>,
    pub producer_name: Arc<str>,
    pub sequence_id: u64,
    /// How often the broker delivered it before.
    pub redelivery_count: u32,
    /// Messages in its entry (0 if the entry is not a batch).
    pub(crate) batch_size: u32,
}

impl Message {
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a delivered entry could not be read; the consumer acks it with this validation error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CorruptEntry {
    #[error("checksum mismatch")]
    Checksum,
    #[error("undecodable metadata: {0}")]
    Metadata(String),
    #[error("decompression failed: {0}")]
    Decompression(String),
    #[error("bad batch: {0}")]
    Batch(String),
}

impl CorruptEntry {
    pub(crate) fn validation_error(&self) -> ValidationError {
        match self {
            CorruptEntry::Checksum => ValidationError::ChecksumMismatch,
            CorruptEntry::Metadata(_) | CorruptEntry::Batch(_) => {
                ValidationError::BatchDeSerializeError
            }
            CorruptEntry::Decompression(_) => ValidationError::DecompressionError,
        }
    }
}

impl From<FrameError> for CorruptEntry {
    fn from(e: FrameError) -> CorruptEntry {
        CorruptEntry::Metadata(e.to_string())
    }
}

/// Decodes one delivered entry into its messages. Batch indexes whose bit is cleared in the
/// MESSAGE's `ack_set` (already acknowledged) are left out; the second value counts every
/// message of the entry, for permits.
pub(crate) fn decode_entry(
    topic: &str,
    partition: i32,
    command: &CommandMessage,
    payload: &Payload,
    max_size: usize,
) -> Result<(Vec<Message>, u32), CorruptEntry> {
    payload
        .verify_checksum()
        .map_err(|_| CorruptEntry::Checksum)?;
    let metadata = payload
        .metadata()
        .map_err(|e| CorruptEntry::Metadata(e.to_string()))?;
    let mut body = payload.body();
    if metadata.compression() != CompressionType::None {
        let size = metadata.uncompressed_size.unwrap_or(0) as usize;
        let plain = decompress(metadata.compression.unwrap_or(0), &body, size, max_size)
            .map_err(|e| CorruptEntry::Decompression(e.to_string()))?;
        body = Bytes::from(plain);
    }
    let id = MessageId {
        partition,
        ..MessageId::from(&command.message_id)
    };
    let topic: Arc<str> = Arc::from(topic);
    let producer_name: Arc<str> = Arc::from(metadata.producer_name.as_str());
    let redelivery_count = command.redelivery_count.unwrap_or(0);
    let Some(count) = metadata.num_messages_in_batch else {
        let message = Message {
            id,
            topic,
            payload: body,
            key: metadata.partition_key,
            properties: pairs(&metadata.properties),
            publish_time: metadata.publish_time,
            event_time: metadata.event_time.filter(|t| *t > 0),
            producer_name,
            sequence_id: metadata.sequence_id,
            redelivery_count,
            batch_size: 0,
        };
        return Ok((vec![message], 1));
    };
    let count = usize::try_from(count).map_err(|_| CorruptEntry::Batch("negative count".into()))?;
    let batch = decode_batch(&body, count).map_err(|e| CorruptEntry::Batch(e.to_string()))?;
    let unacked = |i: usize| {
        command.ack_set.is_empty()
            || command
                .ack_set
                .get(i / 64)
                .is_some_and(|word| word & (1 << (i % 64)) != 0)
    };
    // Built field by field: each message of a batch shares the entry's topic and producer
    // name, and clones nothing it then drops.
    let messages = batch
        .into_iter()
        .enumerate()
        .filter(|(i, m)| unacked(*i) && !m.metadata.compacted_out())
        .map(|(i, m)| Message {
            id: MessageId {
                batch_index: i as i32,
                ..id
            },
            topic: topic.clone(),
            payload: m.payload,
            key: m.metadata.partition_key,
            properties: pairs(&m.metadata.properties),
            publish_time: metadata.publish_time,
            event_time: m.metadata.event_time.filter(|t| *t > 0),
            producer_name: producer_name.clone(),
            sequence_id: m
                .metadata
                .sequence_id
                .unwrap_or(metadata.sequence_id + i as u64),
            redelivery_count,
            batch_size: count as u32,
        })
        .collect();
    Ok((messages, count as u32))
}

fn pairs(properties: &[KeyValue]) -> Vec<(String, String)> {
    properties
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect()
}
