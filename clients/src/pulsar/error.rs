//! What can go wrong talking to a broker. Errors the broker reports keep its `ServerError` code,
//! so callers can tell a retryable `ServiceNotReady` from a fatal `ConsumerBusy`.

use std::time::Duration;

use magnetar_protocol::pulsar::ServerError;
use magnetar_protocol::{FrameError, TopicNameError};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid service URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: &'static str },
    #[error(transparent)]
    InvalidTopic(#[from] TopicNameError),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("connection to {url} failed: {source}")]
    Frame {
        url: String,
        #[source]
        source: FrameError,
    },
    /// The broker answered with an error code.
    #[error("broker error {code:?}: {message}")]
    Server { code: ServerError, message: String },
    #[error("the connection to the broker was lost")]
    Disconnected,
    #[error("{operation} timed out after {timeout:?}")]
    Timeout {
        operation: &'static str,
        timeout: Duration,
    },
    #[error("unexpected reply from the broker: {0}")]
    Unexpected(String),
    #[error("lookup of {topic} was redirected too many times")]
    TooManyRedirects { topic: String },
    #[error("message of {size} bytes exceeds the broker's limit of {max} bytes")]
    MessageTooBig { size: usize, max: usize },
    #[error("{0} is not allowed on this subscription type")]
    NotAllowed(&'static str),
    #[error("the producer or consumer is closed")]
    Closed,
}

impl ClientError {
    /// The broker's error code, if the broker reported this error.
    pub fn server_error(&self) -> Option<ServerError> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub(crate) fn server(code: i32, message: impl Into<String>) -> ClientError {
        ClientError::Server {
            code: ServerError::try_from(code).unwrap_or(ServerError::UnknownError),
            message: message.into(),
        }
    }

    /// Worth trying again after a pause (a topic moving, a connection lost, a busy broker).
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Disconnected
            | ClientError::Connect { .. }
            | ClientError::Frame { .. }
            | ClientError::Timeout { .. } => true,
            ClientError::Server { code, .. } => matches!(
                code,
                ServerError::ServiceNotReady
                    | ServerError::TooManyRequests
                    | ServerError::MetadataError
                    | ServerError::PersistenceError
                    | ServerError::UnknownError
            ),
            _ => false,
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;
