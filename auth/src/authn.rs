//! Authentication: turns what a client presents into a role. One entry point serves both the
//! binary protocol (`CONNECT.auth_method_name` + `auth_data`) and REST (`Authorization: Bearer`).
//! Only the `token` method exists today; the method name is still checked so that a client
//! asking for something else gets a clear refusal instead of a confusing token error.

use crate::config::AuthConfig;
use crate::keys::VerifyKey;
use crate::token::{TokenError, TokenValidator, ValidatedToken, parse_algorithm};

/// Pulsar's name of the JWT provider, as sent in `CONNECT.auth_method_name`.
pub const TOKEN_METHOD: &str = "token";

/// Why a client was not authenticated. Every variant means "401" on REST and an
/// `AuthenticationError` on the binary protocol.
#[derive(Debug, thiserror::Error)]
pub enum AuthenticationError {
    #[error("authentication method {0:?} is not supported (supported: \"token\")")]
    UnsupportedMethod(String),
    #[error("authentication required: no credentials were given")]
    MissingCredentials,
    #[error("invalid Authorization header: expected \"Bearer <token>\"")]
    BadHeader,
    #[error("credentials are not valid UTF-8")]
    NotUtf8,
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("authentication misconfigured: {0}")]
    Config(String),
}

/// Who the client is, and until when the proof holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedRole {
    pub role: String,
    /// When the token expires (seconds since the epoch); the broker challenges the client
    /// for a fresh one after that. None: never.
    pub expires_at: Option<u64>,
}

impl From<ValidatedToken> for AuthenticatedRole {
    fn from(token: ValidatedToken) -> AuthenticatedRole {
        AuthenticatedRole {
            role: token.role,
            expires_at: token.expires_at,
        }
    }
}

/// Checks credentials; cheap to clone behind an `Arc`, immutable after construction.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    enabled: bool,
    token: Option<TokenValidator>,
    anonymous_role: Option<String>,
}

impl Authenticator {
    /// Authentication off: every caller is let in without a role.
    pub fn disabled() -> Authenticator {
        Authenticator::default()
    }

    /// Authentication on, tokens checked by `validator`.
    pub fn with_token_validator(validator: TokenValidator) -> Authenticator {
        Authenticator {
            enabled: true,
            token: Some(validator),
            anonymous_role: None,
        }
    }

    /// Callers without credentials get `role` instead of a refusal.
    pub fn with_anonymous_role(mut self, role: Option<String>) -> Authenticator {
        self.anonymous_role = role;
        self
    }

    pub fn from_config(config: &AuthConfig) -> Result<Authenticator, AuthenticationError> {
        if !config.authentication_enabled {
            return Ok(Authenticator::disabled());
        }
        let settings = &config.token;
        let (key, alg) = match (&settings.secret_key, &settings.public_key) {
            (Some(secret), None) => (VerifyKey::secret_from_url(secret), &settings.secret_alg),
            (None, Some(public)) => (VerifyKey::public_from_url(public), &settings.public_alg),
            (Some(_), Some(_)) => {
                return Err(AuthenticationError::Config(
                    "set either token.secret_key or token.public_key, not both".into(),
                ));
            }
            (None, None) => {
                return Err(AuthenticationError::Config(
                    "authentication is enabled but neither token.secret_key nor token.public_key is set"
                        .into(),
                ));
            }
        };
        let key = key.map_err(|e| AuthenticationError::Config(format!("token key: {e}")))?;
        let alg = parse_algorithm(alg)?;
        let mut validator = TokenValidator::new(&key, alg, &settings.auth_claim)?
            .with_leeway(settings.allowed_clock_skew_seconds);
        if let Some(audience) = &settings.audience {
            validator = validator.with_audience(&settings.audience_claim, audience);
        }
        Ok(Authenticator::with_token_validator(validator)
            .with_anonymous_role(config.anonymous_user_role.clone()))
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    pub fn anonymous_role(&self) -> Option<&str> {
        self.anonymous_role.as_deref()
    }

    /// Authenticates `credentials` presented with auth method `method` (binary protocol).
    /// An empty method or `none` with no data is an anonymous client.
    pub fn authenticate(
        &self,
        method: &str,
        credentials: &[u8],
    ) -> Result<AuthenticatedRole, AuthenticationError> {
        if (method.is_empty() || method == "none") && credentials.is_empty() {
            return self.anonymous();
        }
        if method != TOKEN_METHOD {
            return Err(AuthenticationError::UnsupportedMethod(method.into()));
        }
        let token = std::str::from_utf8(credentials).map_err(|_| AuthenticationError::NotUtf8)?;
        let validator = self.token.as_ref().ok_or_else(|| {
            AuthenticationError::Config("token authentication is not configured".into())
        })?;
        Ok(validator.validate(token)?.into())
    }

    /// Authenticates an HTTP request by its `Authorization` header value. `Ok(None)` when
    /// authentication is off (no role is known).
    pub fn authenticate_http(
        &self,
        authorization: Option<&str>,
    ) -> Result<Option<AuthenticatedRole>, AuthenticationError> {
        if !self.enabled {
            return Ok(None);
        }
        let Some(header) = authorization else {
            return self.anonymous().map(Some);
        };
        let (scheme, token) = header
            .trim()
            .split_once(' ')
            .ok_or(AuthenticationError::BadHeader)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AuthenticationError::BadHeader);
        }
        self.authenticate(TOKEN_METHOD, token.trim().as_bytes())
            .map(Some)
    }

    fn anonymous(&self) -> Result<AuthenticatedRole, AuthenticationError> {
        match &self.anonymous_role {
            Some(role) => Ok(AuthenticatedRole {
                role: role.clone(),
                expires_at: None,
            }),
            None => Err(AuthenticationError::MissingCredentials),
        }
    }
}
