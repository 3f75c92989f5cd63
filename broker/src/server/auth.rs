//! Authentication and authorization on the binary protocol, as Pulsar does them:
//!
//! - `CONNECT` carries `auth_method_name = "token"` and the JWT; a refusal is
//!   `ERROR{request_id: -1, AuthenticationError}` and the connection closes (nothing else is ever
//!   sent before `CONNECTED`);
//! - every `auth_refresh_check` the connection's token is checked: once it has expired, a client
//!   that set `supports_auth_refresh` gets `AUTH_CHALLENGE` and must answer with a valid token
//!   for the same role before the next check; any other client is disconnected;
//! - `LOOKUP`, `PARTITIONED_METADATA`, `PRODUCER` and `SUBSCRIBE` are authorized with the same
//!   policy as the admin API ([`AdminState::authorize_topic`]).

use std::time::{SystemTime, UNIX_EPOCH};

use magnetar_admin_api::{AdminState, ApiError};
use magnetar_auth::{AuthenticationError, Authenticator, TOKEN_METHOD, TopicOperation};
use magnetar_protocol::TopicName;
use magnetar_protocol::pulsar::{
    AuthData, CommandAuthChallenge, CommandAuthResponse, CommandConnect,
};

use crate::error::BrokerError;

/// What a connection proved about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ConnectionAuth {
    /// None while authentication is off.
    pub role: Option<String>,
    /// Seconds since the epoch; None: never expires.
    expires_at: Option<u64>,
    supports_refresh: bool,
    /// An AUTH_CHALLENGE went out and no valid answer came back yet.
    challenged: bool,
}

/// What the periodic check asks the connection to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refresh {
    Nothing,
    Challenge,
    Close,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl ConnectionAuth {
    /// Checks `CONNECT`'s credentials (when authentication is on).
    pub fn connect(
        authn: &Authenticator,
        connect: &CommandConnect,
    ) -> Result<ConnectionAuth, AuthenticationError> {
        let supports_refresh = connect
            .feature_flags
            .as_ref()
            .and_then(|f| f.supports_auth_refresh)
            .unwrap_or(false);
        if !authn.is_enabled() {
            return Ok(ConnectionAuth::default());
        }
        let method = connect.auth_method_name.as_deref().unwrap_or("");
        let data = connect.auth_data.as_deref().unwrap_or(&[]);
        let role = authn.authenticate(method, data)?;
        Ok(ConnectionAuth {
            role: Some(role.role),
            expires_at: role.expires_at,
            supports_refresh,
            challenged: false,
        })
    }

    /// The periodic check at `now` (seconds since the epoch).
    pub fn check(&mut self, now: u64) -> Refresh {
        if self.challenged {
            return Refresh::Close;
        }
        match self.expires_at {
            Some(at) if at <= now && self.supports_refresh => {
                self.challenged = true;
                Refresh::Challenge
            }
            Some(at) if at <= now => Refresh::Close,
            _ => Refresh::Nothing,
        }
    }

    pub fn check_now(&mut self) -> Refresh {
        self.check(now_secs())
    }

    /// An `AUTH_RESPONSE`: a valid token for the same role renews the connection.
    pub fn respond(
        &mut self,
        authn: &Authenticator,
        response: &CommandAuthResponse,
    ) -> Result<(), String> {
        if !authn.is_enabled() {
            return Ok(());
        }
        let data = response.response.clone().unwrap_or_default();
        let method = data.auth_method_name.as_deref().unwrap_or(TOKEN_METHOD);
        let renewed = authn
            .authenticate(method, data.auth_data.as_deref().unwrap_or(&[]))
            .map_err(|e| e.to_string())?;
        if self.role.as_deref() != Some(renewed.role.as_str()) {
            return Err(format!(
                "the refreshed token is for role {:?}, not {:?}",
                renewed.role,
                self.role.as_deref().unwrap_or("")
            ));
        }
        self.expires_at = renewed.expires_at;
        self.challenged = false;
        Ok(())
    }
}

/// The challenge Java sends for an expired token.
pub(super) fn challenge(server_version: &str, protocol_version: i32) -> CommandAuthChallenge {
    CommandAuthChallenge {
        server_version: Some(server_version.into()),
        challenge: Some(AuthData {
            auth_method_name: Some(TOKEN_METHOD.into()),
            auth_data: Some(b"refresh".to_vec()),
        }),
        protocol_version: Some(protocol_version),
    }
}

/// Whether `role` may do `operation` on `topic`; refusals are `AuthorizationError`.
pub(crate) async fn authorize(
    admin: &AdminState,
    role: Option<&str>,
    topic: &TopicName,
    operation: TopicOperation<'_>,
) -> Result<(), BrokerError> {
    if !admin.authorizer().is_enabled() {
        return Ok(());
    }
    admin
        .authorize_topic(role, topic, operation)
        .await
        .map_err(|e: ApiError| {
            if e.status.is_server_error() {
                BrokerError::Metadata(e.reason)
            } else {
                BrokerError::AuthorizationError(format!(
                    "role {:?} may not use {topic}: {}",
                    role.unwrap_or(""),
                    e.reason
                ))
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(expires_at: Option<u64>, supports_refresh: bool) -> ConnectionAuth {
        ConnectionAuth {
            role: Some("app".into()),
            expires_at,
            supports_refresh,
            challenged: false,
        }
    }

    #[test]
    fn expired_tokens_are_challenged_once_then_closed() {
        let mut a = auth(Some(100), true);
        assert_eq!(a.check(99), Refresh::Nothing);
        assert_eq!(a.check(100), Refresh::Challenge);
        // No valid answer by the next check.
        assert_eq!(a.check(160), Refresh::Close);

        let mut b = auth(Some(100), false);
        assert_eq!(b.check(101), Refresh::Close);

        let mut never = auth(None, true);
        assert_eq!(never.check(u64::MAX), Refresh::Nothing);
    }
}
