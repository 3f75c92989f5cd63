//! Frames of the Pulsar binary protocol and their tokio codec.
//!
//! Every integer is big-endian. A *simple* frame is
//! `[u32 totalSize][u32 commandSize][BaseCommand]`; a *payload* frame (SEND, MESSAGE) continues with
//! `[u16 0x0e01][u32 crc32c][u32 metadataSize][MessageMetadata][payload]`, where the CRC32C covers
//! everything after itself and the payload length is whatever the frame has left. Clients may put
//! an optional `[u16 0x0e02][u32 size][BrokerEntryMetadata]` block before the checksum magic; it is
//! skipped on decode and never produced. Very old clients send no magic and no checksum.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;
use tokio_util::codec::{Decoder, Encoder};

use crate::pulsar::{BaseCommand, MessageMetadata};

/// Magic number in front of the CRC32C of a payload.
pub const MAGIC_CRC32C: u16 = 0x0e01;
/// Magic number in front of broker entry metadata (accepted, skipped, never emitted).
pub const MAGIC_BROKER_ENTRY_METADATA: u16 = 0x0e02;

/// Why a frame could not be read or written. Each of these ends the connection: the byte stream
/// cannot be trusted past a frame it could not delimit or decode.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {size} bytes exceeds the maximum of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    #[error("undecodable command: {0}")]
    Command(#[source] prost::DecodeError),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// A payload whose CRC32C does not match its content. The broker answers it with
/// `SEND_ERROR(ChecksumError)` and keeps the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("checksum mismatch: frame says {expected:#010x}, content has {actual:#010x}")]
pub struct ChecksumMismatch {
    pub expected: u32,
    pub actual: u32,
}

/// One protocol frame: a command, and for SEND and MESSAGE the payload that follows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub command: BaseCommand,
    pub payload: Option<Payload>,
}

impl Frame {
    /// A frame carrying a payload (SEND from clients, MESSAGE from brokers).
    pub fn with_payload(command: impl Into<BaseCommand>, payload: Payload) -> Frame {
        Frame {
            command: command.into(),
            payload: Some(payload),
        }
    }

    /// Bytes this frame takes on the wire.
    pub fn encoded_len(&self) -> usize {
        4 + 4 + self.command.encoded_len() + self.payload.as_ref().map_or(0, |p| p.wire_len())
    }
}

impl<C: Into<BaseCommand>> From<C> for Frame {
    fn from(command: C) -> Frame {
        Frame {
            command: command.into(),
            payload: None,
        }
    }
}

/// The bytes after the command of a payload frame: what a broker stores as an entry and sends
/// back unchanged, `[magic][crc][metadataSize][metadata][payload]` (magic and CRC absent only
/// when an old client sent none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    data: Bytes,
    has_checksum: bool,
    metadata_start: usize,
    metadata_end: usize,
}

impl Payload {
    /// Builds a payload from metadata and message bytes, with its checksum.
    pub fn new(metadata: &MessageMetadata, body: &[u8]) -> Payload {
        let metadata_len = metadata.encoded_len();
        let mut buf = BytesMut::with_capacity(2 + 4 + 4 + metadata_len + body.len());
        buf.put_u16(MAGIC_CRC32C);
        buf.put_u32(0);
        buf.put_u32(metadata_len as u32);
        metadata.encode(&mut buf).expect("BytesMut grows as needed");
        buf.put_slice(body);
        let crc = crc32c::crc32c(&buf[6..]);
        buf[2..6].copy_from_slice(&crc.to_be_bytes());
        Payload {
            data: buf.freeze(),
            has_checksum: true,
            metadata_start: 10,
            metadata_end: 10 + metadata_len,
        }
    }

    /// Parses a stored entry or the tail of a frame: an optional broker-entry-metadata block, an
    /// optional checksum, then the metadata and payload.
    pub fn parse(mut data: Bytes) -> Result<Payload, FrameError> {
        if data.len() >= 2 && data[..2] == MAGIC_BROKER_ENTRY_METADATA.to_be_bytes() {
            if data.len() < 6 {
                return Err(FrameError::Malformed("truncated broker entry metadata"));
            }
            let size = u32::from_be_bytes([data[2], data[3], data[4], data[5]]) as usize;
            if data.len() < 6 + size {
                return Err(FrameError::Malformed(
                    "broker entry metadata overruns the frame",
                ));
            }
            data.advance(6 + size);
        }
        let has_checksum = data.len() >= 2 && data[..2] == MAGIC_CRC32C.to_be_bytes();
        let size_at = if has_checksum { 6 } else { 0 };
        if data.len() < size_at + 4 {
            return Err(FrameError::Malformed(
                "payload too short for its metadata size",
            ));
        }
        let metadata_len = u32::from_be_bytes([
            data[size_at],
            data[size_at + 1],
            data[size_at + 2],
            data[size_at + 3],
        ]) as usize;
        let metadata_start = size_at + 4;
        let metadata_end = metadata_start
            .checked_add(metadata_len)
            .filter(|end| *end <= data.len())
            .ok_or(FrameError::Malformed("message metadata overruns the frame"))?;
        Ok(Payload {
            data,
            has_checksum,
            metadata_start,
            metadata_end,
        })
    }

    /// Checks the CRC32C. A payload sent without a checksum passes.
    pub fn verify_checksum(&self) -> Result<(), ChecksumMismatch> {
        if !self.has_checksum {
            return Ok(());
        }
        let expected = u32::from_be_bytes([self.data[2], self.data[3], self.data[4], self.data[5]]);
        let actual = crc32c::crc32c(&self.data[6..]);
        if expected == actual {
            Ok(())
        } else {
            Err(ChecksumMismatch { expected, actual })
        }
    }

    pub fn has_checksum(&self) -> bool {
        self.has_checksum
    }

    /// The encoded `MessageMetadata`.
    pub fn metadata_bytes(&self) -> &[u8] {
        &self.data[self.metadata_start..self.metadata_end]
    }

    /// Decodes the `MessageMetadata`.
    pub fn metadata(&self) -> Result<MessageMetadata, prost::DecodeError> {
        MessageMetadata::decode(self.metadata_bytes())
    }

    /// The message bytes after the metadata (a single message, or a batch; maybe compressed).
    pub fn body(&self) -> Bytes {
        self.data.slice(self.metadata_end..)
    }

    /// The bytes as they travel after the command.
    pub fn as_bytes(&self) -> &Bytes {
        &self.data
    }

    /// The bytes to store as an entry: always with magic and checksum, so that consumers (some
    /// of which assume a checksum is present) can read it. Payloads that had one are unchanged.
    pub fn to_entry(&self) -> Bytes {
        if self.has_checksum {
            return self.data.clone();
        }
        let mut buf = BytesMut::with_capacity(6 + self.data.len());
        buf.put_u16(MAGIC_CRC32C);
        buf.put_u32(crc32c::crc32c(&self.data));
        buf.put_slice(&self.data);
        buf.freeze()
    }

    fn wire_len(&self) -> usize {
        self.data.len()
    }
}

/// Splits a byte stream into Pulsar frames and writes frames back.
///
/// The frame-size limit covers the whole frame including its 4-byte length, like Pulsar's
/// `LengthFieldBasedFrameDecoder(maxMessageSize + 10 KiB)`. Checksums are not verified here but by
/// whoever handles the payload ([`Payload::verify_checksum`]), because a bad checksum fails one
/// message, not the connection.
#[derive(Debug, Clone)]
pub struct PulsarCodec {
    max_frame_size: usize,
}

impl PulsarCodec {
    pub fn new(max_frame_size: usize) -> PulsarCodec {
        PulsarCodec { max_frame_size }
    }

    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }
}

impl Default for PulsarCodec {
    fn default() -> PulsarCodec {
        PulsarCodec::new(crate::DEFAULT_MAX_MESSAGE_SIZE + crate::FRAME_PADDING)
    }
}

impl Decoder for PulsarCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let total = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        let frame_len = total + 4;
        if frame_len > self.max_frame_size {
            return Err(FrameError::TooLarge {
                size: frame_len,
                max: self.max_frame_size,
            });
        }
        if total < 4 {
            return Err(FrameError::Malformed(
                "frame too short to hold a command size",
            ));
        }
        if src.len() < frame_len {
            src.reserve(frame_len - src.len());
            return Ok(None);
        }
        let frame = src.split_to(frame_len).freeze();
        decode_frame(frame).map(Some)
    }
}

/// Decodes one complete frame, length prefix included.
pub fn decode_frame(mut frame: Bytes) -> Result<Frame, FrameError> {
    if frame.len() < 8 {
        return Err(FrameError::Malformed(
            "frame too short to hold a command size",
        ));
    }
    frame.advance(4);
    let command_len = frame.get_u32() as usize;
    if command_len > frame.len() {
        return Err(FrameError::Malformed("command overruns the frame"));
    }
    let command = BaseCommand::decode(&frame[..command_len]).map_err(FrameError::Command)?;
    frame.advance(command_len);
    let payload = if frame.is_empty() {
        None
    } else {
        Some(Payload::parse(frame)?)
    };
    Ok(Frame { command, payload })
}

impl Encoder<Frame> for PulsarCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.encode(&frame, dst)
    }
}

impl Encoder<&Frame> for PulsarCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        let size = frame.encoded_len();
        if size > self.max_frame_size {
            return Err(FrameError::TooLarge {
                size,
                max: self.max_frame_size,
            });
        }
        let command_len = frame.command.encoded_len();
        dst.reserve(size);
        dst.put_u32((size - 4) as u32);
        dst.put_u32(command_len as u32);
        frame.command.encode(dst).expect("reserved above");
        if let Some(payload) = &frame.payload {
            dst.put_slice(payload.as_bytes());
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "frame_test.rs"]
mod tests;
