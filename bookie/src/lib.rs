//! Magnetar's storage node, the *bookie*: it stores ledger entries for brokers, durably and
//! fenceably, as Apache BookKeeper's bookies do.
//!
//! - [`journal`]: the write-ahead log (segment files, group commit with one fdatasync per batch,
//!   replay with torn-tail truncation).
//! - [`storage`]: ledger storage in RocksDB with its own WAL off, checkpointed against the journal.
//! - [`Bookie`]: the two together, plus fencing; no networking.
//! - [`server`]: the bookie protocol (`magnetar_protocol::bookie`) over TCP, pipelined.
//! - [`client`]: a pipelined connection to one bookie, for the ledger client and tests.
//! - [`ledger`]: the ledger client brokers use (create, append, recover, read, delete).
//! - [`registry`]: bookie registrations in the metadata service; the server keeps its own up to
//!   date, with its read-only state from the [`disk`] monitor, and garbage-collects ledgers whose
//!   metadata is gone (`gc`).
//! - [`autorecovery`]: the elected auditor that finds ledgers a lost bookie left under-replicated
//!   and copies their entries to other bookies.
//! - [`simpletest`]: the operator's end-to-end check of a cluster through the ledger client.
//!
//! Brokers reach bookies only through the ledger client; a bookie knows nothing of topics.

pub mod autorecovery;
pub mod bench;
mod bookie;
pub mod cli;
pub mod client;
pub mod config;
mod connection;
pub mod disk;
mod error;
pub mod gc;
pub mod journal;
pub mod ledger;
pub mod metrics;
mod registration;
pub mod registry;
pub mod server;
pub mod simpletest;
pub mod storage;
pub mod wire;

pub use bookie::{AddEntry, Bookie};
pub use client::{BookieClient, ClientError};
pub use config::{BookieConfig, ConfigError};
pub use error::{BookieError, OpError};
pub use server::{BookieServer, run};
