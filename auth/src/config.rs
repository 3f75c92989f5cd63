//! Authentication and authorization settings. Everything is off by default (as in Pulsar's
//! standalone); one switch, `authentication_enabled`, plus a key turns token auth on.
//! Field names are Pulsar's broker.conf names in snake_case.

use serde::{Deserialize, Serialize};

use crate::authn::{AuthenticationError, Authenticator};
use crate::authz::Authorizer;

/// The `[auth]` section of a broker's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Require every client to authenticate (Pulsar `authenticationEnabled`).
    pub authentication_enabled: bool,
    /// Check permissions on every operation (Pulsar `authorizationEnabled`). Needs
    /// authentication: without it there is no role to check.
    pub authorization_enabled: bool,
    /// Roles allowed everything (Pulsar `superUserRoles`).
    pub superuser_roles: Vec<String>,
    /// Role given to a client that sends no credentials while authentication is on (Pulsar
    /// `anonymousUserRole`); unset means such clients are refused.
    pub anonymous_user_role: Option<String>,
    /// How JWT tokens are checked (the `token` provider).
    pub token: TokenSettings,
}

/// Settings of the `token` authentication provider (Pulsar's `AuthenticationProviderToken`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenSettings {
    /// HMAC secret as a key URL: `data:;base64,<…>`, `file:///path` (raw bytes) or bare
    /// base64 (Pulsar `tokenSecretKey`). Exclusive with `public_key`.
    pub secret_key: Option<String>,
    /// Algorithm tokens signed with the secret must use: HS256 (default), HS384 or HS512.
    pub secret_alg: String,
    /// Public key as a key URL, DER (X.509 SubjectPublicKeyInfo, as Pulsar writes it) or PEM
    /// (Pulsar `tokenPublicKey`).
    pub public_key: Option<String>,
    /// Algorithm tokens signed with the private key must use: RS256 (default), RS384, RS512 or
    /// ES256 (Pulsar `tokenPublicAlg`).
    pub public_alg: String,
    /// Claim holding the role (Pulsar `tokenAuthClaim`).
    pub auth_claim: String,
    /// Claim holding the audience (Pulsar `tokenAudienceClaim`).
    pub audience_claim: String,
    /// When set, tokens must carry this audience in `audience_claim` (Pulsar `tokenAudience`).
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds (Pulsar
    /// `tokenAllowedClockSkewSeconds`).
    pub allowed_clock_skew_seconds: u64,
}

impl Default for TokenSettings {
    fn default() -> TokenSettings {
        TokenSettings {
            secret_key: None,
            secret_alg: "HS256".into(),
            public_key: None,
            public_alg: "RS256".into(),
            auth_claim: "sub".into(),
            audience_claim: "aud".into(),
            audience: None,
            allowed_clock_skew_seconds: 0,
        }
    }
}

impl AuthConfig {
    /// The authenticator these settings describe; fails on unreadable keys or unknown
    /// algorithms, so a broker refuses to start with a broken configuration.
    pub fn authenticator(&self) -> Result<Authenticator, AuthenticationError> {
        Authenticator::from_config(self)
    }

    /// The authorization policy these settings describe.
    pub fn authorizer(&self) -> Authorizer {
        Authorizer::new(
            self.authorization_enabled,
            self.superuser_roles.iter().cloned(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_reads_toml_like_json() {
        let config = AuthConfig::default();
        assert!(!config.authentication_enabled && !config.authorization_enabled);
        let parsed: AuthConfig = serde_json::from_str(
            r#"{"authentication_enabled":true,"superuser_roles":["admin"],
                "token":{"secret_key":"data:;base64,AAAA","auth_claim":"role"}}"#,
        )
        .expect("valid config");
        assert!(parsed.authentication_enabled);
        assert_eq!(parsed.token.auth_claim, "role");
        assert_eq!(parsed.token.secret_alg, "HS256");
        assert!(serde_json::from_str::<AuthConfig>(r#"{"bogus":1}"#).is_err());
    }
}
