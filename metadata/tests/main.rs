//! The metadata service's integration tests, one module per area, built as one test binary.
//! `cargo test -p magnetar-metadata --test integration cluster::` runs one area.

mod auth;
mod bad_input;
mod cache_and_leases;
mod cluster;
mod unresponsive_nodes;
