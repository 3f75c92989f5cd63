//! REST errors: a status and `{"reason": "..."}`, with Pulsar's status for each failure.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use magnetar_auth::{AuthenticationError, AuthorizationError};
use magnetar_metadata::MetadataError;

use crate::models::ErrorBody;
use crate::names::NameError;
use crate::resources::ResourceError;

/// An error answer of the admin API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {reason}")]
pub struct ApiError {
    pub status: StatusCode,
    pub reason: String,
    /// With a 307: the base URL (`http://host:port`) of the broker to send the request to;
    /// the router completes it with the request's path and query.
    pub redirect_base: Option<String>,
}

/// Carries [`ApiError::redirect_base`] from the error to the router's redirect layer.
pub(crate) const REDIRECT_BASE_HEADER: &str = "x-magnetar-redirect-base";

impl ApiError {
    pub fn new(status: StatusCode, reason: impl Into<String>) -> ApiError {
        ApiError {
            status,
            reason: reason.into(),
            redirect_base: None,
        }
    }
    /// 307 Temporary Redirect to the same path and query on the broker at `base`, with
    /// `authoritative=true` (what Pulsar answers on a broker that does not own the topic).
    pub fn redirect(base: impl Into<String>, reason: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::TEMPORARY_REDIRECT,
            reason: reason.into(),
            redirect_base: Some(base.into()),
        }
    }
    pub fn bad_request(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, reason)
    }
    pub fn unauthorized(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, reason)
    }
    pub fn forbidden(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, reason)
    }
    pub fn not_found(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, reason)
    }
    pub fn conflict(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, reason)
    }
    pub fn precondition_failed(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PRECONDITION_FAILED, reason)
    }
    pub fn not_allowed(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, reason)
    }
    pub fn not_implemented(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_IMPLEMENTED, reason)
    }
    pub fn unavailable(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, reason)
    }
    pub fn internal(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, reason)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, reason = %self.reason, "admin request failed");
        }
        let mut response = (
            self.status,
            Json(ErrorBody {
                reason: self.reason,
            }),
        )
            .into_response();
        if let Some(base) = self
            .redirect_base
            .as_deref()
            .and_then(|b| header::HeaderValue::from_str(b).ok())
        {
            response.headers_mut().insert(REDIRECT_BASE_HEADER, base);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<ResourceError> for ApiError {
    fn from(e: ResourceError) -> ApiError {
        match e {
            ResourceError::NotFound(reason) => ApiError::not_found(reason),
            ResourceError::Conflict(reason) => ApiError::conflict(reason),
            ResourceError::PreconditionFailed(reason) => ApiError::precondition_failed(reason),
            ResourceError::TooMuchContention { .. } => ApiError::conflict(e.to_string()),
            ResourceError::Metadata(
                MetadataError::NotLeader { .. }
                | MetadataError::Unavailable(_)
                | MetadataError::Indeterminate(_),
            ) => ApiError::unavailable(e.to_string()),
            ResourceError::Metadata(MetadataError::BadVersion { .. }) => {
                ApiError::conflict(format!("concurrent modification: {e}"))
            }
            ResourceError::Metadata(
                MetadataError::InvalidArgument(_) | MetadataError::TooLarge(_),
            ) => ApiError::precondition_failed(e.to_string()),
            ResourceError::Metadata(_) | ResourceError::Corrupt { .. } => {
                ApiError::internal(e.to_string())
            }
        }
    }
}

impl From<NameError> for ApiError {
    fn from(e: NameError) -> ApiError {
        ApiError::precondition_failed(e.to_string())
    }
}

impl From<AuthorizationError> for ApiError {
    fn from(e: AuthorizationError) -> ApiError {
        match e {
            AuthorizationError::Unauthenticated => ApiError::unauthorized(e.to_string()),
            _ => ApiError::forbidden(e.to_string()),
        }
    }
}

impl From<AuthenticationError> for ApiError {
    fn from(e: AuthenticationError) -> ApiError {
        ApiError::unauthorized(e.to_string())
    }
}
