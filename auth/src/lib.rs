//! Magnetar's security core: who a caller is (token authentication) and what it may do
//! (authorization policy). Brokers use it for the binary protocol (`CONNECT` with
//! `auth_method_name = "token"`) and the admin REST API (`Authorization: Bearer <jwt>`); the
//! `magnetar tokens` CLI uses its key handling to create and check tokens.
//!
//! - [`config::AuthConfig`]: the settings (off by default), Pulsar's names in snake_case.
//! - [`keys`]: key URLs (`data:;base64,…`, `file:///…`, bare base64), secret and public/private
//!   key decoding (DER as Pulsar writes it, or PEM), key generation.
//! - [`token`]: JWT signing and validation with the algorithm pinned by configuration.
//! - [`Authenticator`]: (method name, credential bytes) → role.
//! - [`authz`]: a sans-IO policy evaluator over superusers, tenant admins and namespace/topic
//!   grants; the caller fetches the policies, the evaluator decides.

pub mod authn;
pub mod authz;
pub mod config;
pub mod keys;
pub mod token;

pub use authn::{AuthenticationError, Authenticator, TOKEN_METHOD};
pub use authz::{
    AuthAction, AuthPolicies, AuthorizationError, Authorizer, SubscriptionAuthMode,
    TopicAuthContext, TopicOperation,
};
pub use config::{AuthConfig, TokenSettings};
pub use keys::{KeyError, SignKey, VerifyKey};
pub use token::{Algorithm, TokenError, TokenSigner, TokenValidator};
