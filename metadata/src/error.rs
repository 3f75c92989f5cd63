//! Errors of the metadata service as callers see them. Retry-or-redirect conditions
//! (`NotLeader`, `Unavailable`) are kept apart from answers (`BadVersion`, `SessionExpired`)
//! and from bad input.

use magnetar_protocol::metadata as pb;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("not the leader (leader: {leader_addr:?})")]
    NotLeader {
        leader_id: Option<u64>,
        leader_addr: Option<String>,
    },
    #[error("version conflict on {key}: actual version {actual_version} (0 = absent)")]
    BadVersion { key: String, actual_version: u64 },
    #[error("session {0} has expired")]
    SessionExpired(u64),
    #[error("revision {requested} is older than the retained history (oldest: {oldest})")]
    Compacted { requested: u64, oldest: u64 },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("too large: {0}")]
    TooLarge(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The request was sent but the connection broke before an answer: a write may or may not
    /// have applied.
    #[error("outcome unknown: {0}")]
    Indeterminate(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// The node requires the cluster token and this connection did not present it (or
    /// presented another): a configuration error, never retried.
    #[error("not authenticated: {0}")]
    Unauthenticated(String),
}

impl MetadataError {
    /// Errors after which the same request may simply be sent again (possibly elsewhere).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            MetadataError::NotLeader { .. } | MetadataError::Unavailable(_)
        )
    }

    pub fn to_proto(&self) -> pb::Error {
        let mut error = pb::Error {
            message: self.to_string(),
            ..Default::default()
        };
        let code = match self {
            MetadataError::NotLeader {
                leader_id,
                leader_addr,
            } => {
                error.leader_id = leader_id.unwrap_or(0);
                error.leader_addr = leader_addr.clone().unwrap_or_default();
                pb::ErrorCode::NotLeader
            }
            MetadataError::BadVersion {
                key,
                actual_version,
            } => {
                error.key = key.clone();
                error.actual_version = *actual_version;
                pb::ErrorCode::BadVersion
            }
            MetadataError::SessionExpired(session) => {
                error.session = *session;
                pb::ErrorCode::SessionExpired
            }
            MetadataError::Compacted { oldest, .. } => {
                error.actual_version = *oldest;
                pb::ErrorCode::Compacted
            }
            MetadataError::InvalidArgument(_) => pb::ErrorCode::InvalidArgument,
            MetadataError::TooLarge(_) => pb::ErrorCode::TooLarge,
            MetadataError::Unavailable(_) | MetadataError::Indeterminate(_) => {
                pb::ErrorCode::Unavailable
            }
            MetadataError::Internal(_) => pb::ErrorCode::Internal,
            MetadataError::Unauthenticated(_) => pb::ErrorCode::Unauthenticated,
        };
        error.code = code as i32;
        error
    }

    pub fn from_proto(error: pb::Error) -> MetadataError {
        let message = error.message;
        match pb::ErrorCode::try_from(error.code).unwrap_or(pb::ErrorCode::Unknown) {
            pb::ErrorCode::NotLeader => MetadataError::NotLeader {
                leader_id: (error.leader_id != 0).then_some(error.leader_id),
                leader_addr: (!error.leader_addr.is_empty()).then_some(error.leader_addr),
            },
            pb::ErrorCode::BadVersion => MetadataError::BadVersion {
                key: error.key,
                actual_version: error.actual_version,
            },
            pb::ErrorCode::SessionExpired => MetadataError::SessionExpired(error.session),
            pb::ErrorCode::Compacted => MetadataError::Compacted {
                requested: 0,
                oldest: error.actual_version,
            },
            pb::ErrorCode::InvalidArgument => MetadataError::InvalidArgument(message),
            pb::ErrorCode::TooLarge => MetadataError::TooLarge(message),
            pb::ErrorCode::Unavailable => MetadataError::Unavailable(message),
            pb::ErrorCode::Unauthenticated => MetadataError::Unauthenticated(message),
            pb::ErrorCode::Internal | pb::ErrorCode::Unknown => MetadataError::Internal(message),
        }
    }
}
