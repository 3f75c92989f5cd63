//! End-to-end tests of the `magnetar` binary (real bookie processes, the Rust `pulsar` client),
//! one module per area, built as one test binary. `bookie_crash` and `network_abuse` (10,000
//! sockets) stay binaries of their own.

mod bookie_autorecovery;
mod bookie_cluster;
mod bookie_harness;
mod bookie_registration;
mod pulsar_rs_compat;
