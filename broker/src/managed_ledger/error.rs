//! Errors of the managed ledger. `Fenced` (another broker took the topic) is kept apart from
//! storage failures: the caller unloads the topic rather than retrying.

use magnetar_bookie::ledger::LedgerError;
use magnetar_metadata::MetadataError;

use crate::position::Position;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MlError {
    #[error("ledger: {0}")]
    Ledger(LedgerError),
    #[error("metadata: {0}")]
    Metadata(MetadataError),
    /// Another broker owns the topic now (its ledger was fenced or its metadata changed under
    /// us); this managed ledger takes no more writes.
    #[error("managed ledger is fenced: another broker owns the topic")]
    Fenced,
    #[error("managed ledger is closed")]
    Closed,
    #[error("cursor is closed or deleted")]
    CursorClosed,
    /// The cursor's state is held by another holder (one subscription per cursor).
    #[error("cursor {0} is already open")]
    CursorInUse(String),
    #[error("corrupt managed-ledger data: {0}")]
    Corrupt(String),
    #[error("position {0} is not an entry of this topic")]
    UnknownPosition(Position),
    /// Tiered storage failed (the store refused or lost an object, or none is configured).
    #[error("tiered storage: {0}")]
    Offload(String),
    #[error("invalid managed-ledger configuration: {0}")]
    InvalidConfig(String),
}

impl MlError {
    /// Errors after which this managed ledger is unusable and the topic must be reloaded.
    pub fn is_fatal(&self) -> bool {
        matches!(self, MlError::Fenced | MlError::Closed)
    }
}

impl From<LedgerError> for MlError {
    fn from(e: LedgerError) -> MlError {
        match e {
            LedgerError::Fenced(_) => MlError::Fenced,
            other => MlError::Ledger(other),
        }
    }
}

impl From<MetadataError> for MlError {
    /// Every managed-ledger write is a compare-and-set on a version we hold: losing one means
    /// someone else wrote the topic's metadata, i.e. took the topic.
    fn from(e: MetadataError) -> MlError {
        match e {
            MetadataError::BadVersion { .. } => MlError::Fenced,
            other => MlError::Metadata(other),
        }
    }
}

impl From<crate::cursor::AckError> for MlError {
    fn from(e: crate::cursor::AckError) -> MlError {
        match e {
            crate::cursor::AckError::UnknownPosition(p) => MlError::UnknownPosition(p),
        }
    }
}
