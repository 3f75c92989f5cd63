//! The broker's integration tests, one module per area, built as one test binary.
//! `cargo test -p magnetar-broker --test integration guards::` runs one area.

mod admin_rest;
mod authorization_table;
mod binary_auth;
mod cluster;
mod cluster_pulsar_rs;
mod geo_replication_cluster;
mod guards;
mod managed_ledger;
mod managed_ledger_cursors;
mod metrics;
mod module_layering;
mod protocol_errors;
mod tiered_storage;
mod tls;
mod topic_policies;
