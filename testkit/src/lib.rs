//! Dev-only harnesses shared by every crate's tests (a dev-dependency, never linked into the
//! `magnetar` binary):
//!
//! - [`wait`]: the one way tests wait — poll a condition until it holds or a deadline passes;
//!   no fixed sleeps.
//! - [`metadata`]: the in-process metadata group (`magnetar_metadata::testing`, which
//!   `magnetar metadata bench` uses too).
//! - [`bookie`]: a real bookie server in this process, registered in metadata or not, and
//!   [`bookie::Storage`] (a metadata node, bookies and a ledger client) for storage tests.
//! - [`cluster`]: `Cluster::builder().metadata(3).bookies(3).brokers(2)` — metadata group,
//!   bookies and brokers in this process with kill/restart handles.
//! - [`raw`]: a bare Pulsar protocol client that shows exactly what a broker sends.
//!
//! Tests that need `kill -9` of real processes start the `magnetar` binary instead
//! (`tests/bookie_harness`, `tests/compat`).

pub mod bookie;
pub mod cluster;
pub mod raw;
pub mod wait;

pub use wait::{try_wait_for, wait_for, wait_until};

/// The in-process metadata group.
pub mod metadata {
    pub use magnetar_metadata::testing::{ClusterOptions, LocalCluster};
}
