//! Broker errors and the Pulsar `ServerError` code each one travels as.

use magnetar_protocol::pulsar::ServerError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum BrokerError {
    #[error("{0}")]
    InvalidTopicName(String),
    #[error("topic {0} does not exist")]
    TopicNotFound(String),
    #[error("subscription {0} does not exist")]
    SubscriptionNotFound(String),
    #[error("{0}")]
    ConsumerBusy(String),
    #[error("{0}")]
    ProducerBusy(String),
    /// A STICKY Key_Shared consumer's hash ranges cannot be given (overlap, out of range).
    #[error("{0}")]
    ConsumerAssign(String),
    /// Another exclusive producer holds (or took) the topic: the client gives up.
    #[error("{0}")]
    ProducerFenced(String),
    #[error("{0}")]
    NotAllowed(String),
    /// A schema the topic's registry refuses (incompatible, invalid, or not allowed to be added).
    #[error("{0}")]
    IncompatibleSchema(String),
    #[error("the broker cannot serve this now: {0}")]
    ServiceNotReady(String),
    /// Another broker owns the topic's bundle (clients look up again; REST redirects there).
    #[error("{message}")]
    NotOwner {
        message: String,
        owner: Box<crate::records::OwnerData>,
    },
    /// The topic's backlog exceeds its namespace's quota (`producer_request_hold`: clients
    /// retry; `producer_exception`: they give up).
    #[error("{message}")]
    ProducerBlockedQuotaExceeded { message: String, exception: bool },
    #[error("storage failure: {0}")]
    Persistence(String),
    #[error("metadata failure: {0}")]
    Metadata(String),
    #[error("{0}")]
    AuthenticationError(String),
    #[error("{0}")]
    AuthorizationError(String),
    #[error("{0}")]
    Unknown(String),
}

impl BrokerError {
    pub fn code(&self) -> ServerError {
        match self {
            BrokerError::InvalidTopicName(_) => ServerError::InvalidTopicName,
            BrokerError::TopicNotFound(_) => ServerError::TopicNotFound,
            BrokerError::SubscriptionNotFound(_) => ServerError::SubscriptionNotFound,
            BrokerError::ConsumerBusy(_) => ServerError::ConsumerBusy,
            BrokerError::ProducerBusy(_) => ServerError::ProducerBusy,
            BrokerError::ConsumerAssign(_) => ServerError::ConsumerAssignError,
            BrokerError::ProducerFenced(_) => ServerError::ProducerFenced,
            BrokerError::NotAllowed(_) => ServerError::NotAllowedError,
            BrokerError::IncompatibleSchema(_) => ServerError::IncompatibleSchema,
            BrokerError::ServiceNotReady(_) | BrokerError::NotOwner { .. } => {
                ServerError::ServiceNotReady
            }
            BrokerError::ProducerBlockedQuotaExceeded {
                exception: false, ..
            } => ServerError::ProducerBlockedQuotaExceededError,
            BrokerError::ProducerBlockedQuotaExceeded {
                exception: true, ..
            } => ServerError::ProducerBlockedQuotaExceededException,
            BrokerError::Persistence(_) => ServerError::PersistenceError,
            BrokerError::Metadata(_) => ServerError::MetadataError,
            BrokerError::AuthenticationError(_) => ServerError::AuthenticationError,
            BrokerError::AuthorizationError(_) => ServerError::AuthorizationError,
            BrokerError::Unknown(_) => ServerError::UnknownError,
        }
    }
}

impl From<magnetar_admin_api::resources::ResourceError> for BrokerError {
    fn from(e: magnetar_admin_api::resources::ResourceError) -> BrokerError {
        BrokerError::Metadata(e.to_string())
    }
}

impl From<magnetar_metadata::MetadataError> for BrokerError {
    fn from(e: magnetar_metadata::MetadataError) -> BrokerError {
        BrokerError::Metadata(e.to_string())
    }
}
