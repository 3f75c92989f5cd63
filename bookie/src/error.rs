//! Errors of the bookie: fatal ones ([`BookieError`]: it cannot start or go on) and the outcome
//! of one request ([`OpError`], which maps onto the wire's status codes).

use std::sync::Arc;

use magnetar_protocol::bookie::StatusCode;

use crate::config::ConfigError;
use crate::journal::{AppendError, JournalError, ReplayError};
use crate::storage::StorageError;

/// Why the bookie cannot start or go on.
#[derive(Debug, thiserror::Error)]
pub enum BookieError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{action}: {source}")]
    Io {
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The listening address cannot be bound.
    #[error(
        "cannot listen on {addr} for the bookie: {source}; choose another address with --listen"
    )]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("metadata service: {0}")]
    Metadata(#[from] magnetar_metadata::MetadataError),
    #[error("a bookie task failed: {0}")]
    Task(String),
}

impl BookieError {
    pub(crate) fn io(action: &'static str, source: std::io::Error) -> Self {
        BookieError::Io { action, source }
    }
}

impl From<ReplayError<StorageError>> for BookieError {
    fn from(e: ReplayError<StorageError>) -> Self {
        match e {
            ReplayError::Journal(e) => BookieError::Journal(e),
            ReplayError::Apply(e) => BookieError::Storage(e),
        }
    }
}

/// Why one request did not succeed. `Fenced` and `ReadOnly` tell the client to stop or go
/// elsewhere; the `NoSuch*` ones are answers, not failures; the rest are the bookie's trouble.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OpError {
    #[error("no such ledger {ledger_id}")]
    NoSuchLedger { ledger_id: u64 },
    #[error("no such entry {ledger_id}:{entry_id}")]
    NoSuchEntry { ledger_id: u64, entry_id: u64 },
    #[error("ledger {ledger_id} is fenced")]
    Fenced { ledger_id: u64 },
    #[error("bookie is read-only")]
    ReadOnly,
    #[error("entry of {len} bytes exceeds the maximum of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error(transparent)]
    Journal(#[from] AppendError),
    #[error(transparent)]
    Storage(Arc<StorageError>),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StorageError> for OpError {
    fn from(e: StorageError) -> Self {
        OpError::Storage(Arc::new(e))
    }
}

impl OpError {
    pub fn status(&self) -> StatusCode {
        match self {
            OpError::NoSuchLedger { .. } => StatusCode::NoSuchLedger,
            OpError::NoSuchEntry { .. } => StatusCode::NoSuchEntry,
            OpError::Fenced { .. } => StatusCode::Fenced,
            OpError::ReadOnly | OpError::Journal(AppendError::Closed) => StatusCode::ReadOnly,
            OpError::TooLarge { .. } | OpError::Journal(AppendError::TooLarge { .. }) => {
                StatusCode::TooLarge
            }
            OpError::BadRequest(_) => StatusCode::BadRequest,
            OpError::Journal(_) | OpError::Storage(_) | OpError::Internal(_) => StatusCode::IoError,
        }
    }
}
