//! Magnetar's metadata service: what ZooKeeper is to Pulsar. A replicated, linearizable
//! key-value store on openraft with RocksDB, holding clusters, tenants, policies, ledger
//! metadata, cursors, ownership and live-node registrations.
//!
//! - Keys are paths (`/a/b`); every key has a version (from 1), and every change a revision.
//! - Writes are compare-and-set (`Expected`), alone or in multi-key transactions.
//! - `list` (ordered, paged), `children` (one level), `watch` (every change under a prefix from a
//!   revision, exactly once, surviving reconnects and leader changes).
//! - Sessions with a TTL own ephemeral keys, deleted through the log when the session expires.
//!
//! [`MetadataNode`] is a server node (a single-node group is the embedded mode `standalone`
//! uses); [`MetadataClient`] talks to any node of a group and follows its leader.

mod bench;
pub mod cli;
pub mod client;
pub mod config;
mod conn;
pub mod error;
pub mod keys;
mod network;
mod server;
mod store;
pub mod testing;
pub mod types;
pub mod wire;

pub use client::{
    MetadataClient, PrefixCache, Record, Session, SessionKeeper, SessionState, Txn, Watch,
    WatchEvent,
};
pub use config::{NodeConfig, PeerConfig};
pub use conn::LocalConnector;
pub use error::MetadataError;
pub use server::{MetadataNode, RaftStatus, run};
pub use store::StateReader;
pub use types::{EventKind, Expected};
