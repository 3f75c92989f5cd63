//! Magnetar's client side: the admin REST client and the CLI tools behind `magnetar admin`
//! and `magnetar tokens`. (The messaging client library and the `client`/`perf` tools come
//! with the broker.) The REST client uses the model types of `magnetar-admin-api`, so client
//! and server cannot drift apart.

pub mod admin;
pub mod admin_client;
mod output;
pub mod tokens;
pub mod units;

pub use admin_client::{AdminClient, AdminClientError};
