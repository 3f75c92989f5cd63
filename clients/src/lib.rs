//! Magnetar's client side: the Rust client library for the Pulsar binary protocol
//! ([`pulsar`]), the admin REST client, and the CLI tools behind `magnetar client`, `magnetar
//! perf`, `magnetar admin` and `magnetar tokens`. The REST client uses the model types of
//! `magnetar-admin-api`, so client and server cannot drift apart.

pub mod admin;
pub mod admin_client;
pub mod client_cli;
mod output;
pub mod perf;
pub mod pulsar;
pub mod tokens;
pub mod units;

pub use admin_client::{AdminClient, AdminClientError};
