//! JWT signing and validation. The algorithm is pinned: a validator accepts exactly the one it
//! was configured with, so a token claiming another algorithm (`none` included) is refused
//! before any signature is looked at. `exp` is enforced when present; a token without `exp`
//! never expires (as in Pulsar). The role is read from a configurable claim.

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use serde_json::{Map, Value};

pub use jsonwebtoken::Algorithm;

use crate::keys::{KeyError, SignKey, VerifyKey};

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("token is signed with {found}, but only {expected:?} is accepted")]
    WrongAlgorithm { found: String, expected: Algorithm },
    #[error("token signature does not match the configured key")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet (nbf)")]
    NotYetValid,
    #[error("token has no string claim {0:?} to take the role from")]
    MissingRole(String),
    #[error("token audience claim {claim:?} does not include {audience:?}")]
    WrongAudience { claim: String, audience: String },
    #[error("key {alg:?} cannot be used with this key type")]
    KeyMismatch { alg: Algorithm },
    #[error("unknown algorithm {0:?}")]
    UnknownAlgorithm(String),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Parses an algorithm name such as `HS256` or `RS256`.
pub fn parse_algorithm(name: &str) -> Result<Algorithm, TokenError> {
    name.trim()
        .to_ascii_uppercase()
        .parse()
        .map_err(|_| TokenError::UnknownAlgorithm(name.into()))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A token that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedToken {
    pub role: String,
    /// When the token stops being valid, in seconds since the epoch: `exp` plus the tolerated
    /// clock skew (live connections are checked against it); None for a token that never
    /// expires.
    pub expires_at: Option<u64>,
    pub claims: Map<String, Value>,
}

/// Checks tokens against one key and one algorithm.
#[derive(Clone)]
pub struct TokenValidator {
    key: jsonwebtoken::DecodingKey,
    alg: Algorithm,
    validation: jsonwebtoken::Validation,
    role_claim: String,
    audience: Option<(String, String)>,
}

impl std::fmt::Debug for TokenValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenValidator")
            .field("alg", &self.alg)
            .field("role_claim", &self.role_claim)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl TokenValidator {
    /// A validator accepting only `alg`, role in `role_claim`.
    pub fn new(
        key: &VerifyKey,
        alg: Algorithm,
        role_claim: &str,
    ) -> Result<TokenValidator, TokenError> {
        if !key.supports(alg) {
            return Err(TokenError::KeyMismatch { alg });
        }
        let mut validation = jsonwebtoken::Validation::new(alg);
        validation.required_spec_claims = HashSet::new();
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        // The audience is checked by hand: its claim name is configurable.
        validation.validate_aud = false;
        Ok(TokenValidator {
            key: key.decoding_key()?,
            alg,
            validation,
            role_claim: role_claim.to_string(),
            audience: None,
        })
    }

    /// Requires `audience` in claim `claim` (a string or an array of strings).
    pub fn with_audience(mut self, claim: &str, audience: &str) -> TokenValidator {
        self.audience = Some((claim.to_string(), audience.to_string()));
        self
    }

    /// Tolerates this much clock skew on `exp` and `nbf`.
    pub fn with_leeway(mut self, seconds: u64) -> TokenValidator {
        self.validation.leeway = seconds;
        self
    }

    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Checks algorithm, signature, time claims and audience; returns the role and claims.
    pub fn validate(&self, token: &str) -> Result<ValidatedToken, TokenError> {
        let token = token.trim();
        let found = header_algorithm(token)?;
        if found != format!("{:?}", self.alg) {
            return Err(TokenError::WrongAlgorithm {
                found,
                expected: self.alg,
            });
        }
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &self.validation)
            .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => TokenError::BadSignature,
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            ErrorKind::InvalidAlgorithm => TokenError::WrongAlgorithm {
                found: "another algorithm".into(),
                expected: self.alg,
            },
            _ => TokenError::Invalid(e.to_string()),
        })?;
        let claims = data.claims;
        if let Some((claim, audience)) = &self.audience {
            let ok = match claims.get(claim) {
                Some(Value::String(s)) => s == audience,
                Some(Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(audience)),
                _ => false,
            };
            if !ok {
                return Err(TokenError::WrongAudience {
                    claim: claim.clone(),
                    audience: audience.clone(),
                });
            }
        }
        let role = claims
            .get(&self.role_claim)
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| TokenError::MissingRole(self.role_claim.clone()))?
            .to_string();
        // When a live connection's token stops being valid: `exp` (any JSON number, a
        // fractional one floored) plus the tolerated clock skew, as validation applied it.
        let expires_at = claims
            .get("exp")
            .and_then(expiry_seconds)
            .map(|exp| exp.saturating_add(self.validation.leeway));
        Ok(ValidatedToken {
            role,
            expires_at,
            claims,
        })
    }
}

/// `exp` as whole seconds since the epoch: integers as they are, other numbers floored
/// (negative ones are long past: 0).
fn expiry_seconds(exp: &Value) -> Option<u64> {
    if let Some(seconds) = exp.as_u64() {
        return Some(seconds);
    }
    let seconds = exp.as_f64()?;
    Some(if seconds <= 0.0 || seconds.is_nan() {
        0
    } else {
        seconds.min(u64::MAX as f64).floor() as u64
    })
}

/// The `alg` a token's header names, without trusting anything else in it.
pub fn header_algorithm(token: &str) -> Result<String, TokenError> {
    let header = token
        .split('.')
        .next()
        .filter(|h| !h.is_empty() && token.matches('.').count() == 2)
        .ok_or_else(|| TokenError::Malformed("a JWT has three dot-separated parts".into()))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .map_err(|e| TokenError::Malformed(format!("header is not base64url: {e}")))?;
    let header: Value = serde_json::from_slice(&bytes)
        .map_err(|e| TokenError::Malformed(format!("header is not JSON: {e}")))?;
    header
        .get("alg")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| TokenError::Malformed("header has no alg".into()))
}

/// Signs tokens with one key and algorithm.
#[derive(Clone)]
pub struct TokenSigner {
    key: jsonwebtoken::EncodingKey,
    alg: Algorithm,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl TokenSigner {
    pub fn new(key: &SignKey, alg: Algorithm) -> Result<TokenSigner, TokenError> {
        if !key.verify_key().supports(alg) {
            return Err(TokenError::KeyMismatch { alg });
        }
        Ok(TokenSigner {
            key: key.encoding_key()?,
            alg,
        })
    }

    /// A token whose `sub` is `subject`, expiring `expires_in_secs` from now (never if None).
    pub fn create(
        &self,
        subject: &str,
        expires_in_secs: Option<u64>,
    ) -> Result<String, TokenError> {
        let mut claims = Map::new();
        claims.insert("sub".into(), Value::String(subject.into()));
        if let Some(secs) = expires_in_secs {
            claims.insert("exp".into(), Value::from(now_secs().saturating_add(secs)));
        }
        self.sign(&claims)
    }

    /// A token carrying exactly `claims`.
    pub fn sign(&self, claims: &Map<String, Value>) -> Result<String, TokenError> {
        let header = jsonwebtoken::Header::new(self.alg);
        jsonwebtoken::encode(&header, claims, &self.key)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }
}
