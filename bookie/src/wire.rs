//! Framing of the bookie protocol (messages in `magnetar_protocol::bookie`): each message is a
//! `LengthDelimitedCodec` frame (`[u32 big-endian length][prost bytes]`), with a maximum frame
//! size beyond which the connection is closed, since the stream can no longer be trusted.

use bytes::Bytes;
use magnetar_protocol::bookie::{Response, StatusCode, response};
use prost::Message;
use tokio_util::codec::LengthDelimitedCodec;

use crate::error::OpError;

/// The codec both sides use, refusing frames over `max_frame_size` bytes.
pub fn codec(max_frame_size: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .big_endian()
        .length_field_length(4)
        .max_frame_length(max_frame_size)
        .new_codec()
}

pub fn encode(message: &impl Message) -> Bytes {
    Bytes::from(message.encode_to_vec())
}

pub fn ok(request_id: u64, body: response::Body) -> Response {
    Response {
        request_id,
        status: StatusCode::Ok as i32,
        message: String::new(),
        body: Some(body),
    }
}

pub fn error(request_id: u64, status: StatusCode, message: String) -> Response {
    Response {
        request_id,
        status: status as i32,
        message,
        body: None,
    }
}

pub fn op_error(request_id: u64, e: &OpError) -> Response {
    error(request_id, e.status(), e.to_string())
}
