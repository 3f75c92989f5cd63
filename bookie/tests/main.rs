//! The bookie's integration tests, one module per area, built as one test binary.
//! `cargo test -p magnetar-bookie --test integration ledger_client::` runs one area.

mod bad_input;
mod bookie_server;
mod cluster_token;
mod common;
mod connections;
mod journal_recovery;
mod ledger_client;
