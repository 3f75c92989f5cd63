//! Magnetar's broker: the Pulsar protocol server, topics stored as managed ledgers on bookies,
//! and subscriptions with Pulsar's semantics.
//!
//! - sans-IO cores, tested without a runtime: [`position`] (entry positions, a topic's ledger
//!   layout), [`cursor`] (a durable cursor's acknowledgement state), [`dispatch`] (consumer
//!   selection for the four subscription types), [`subscription`] (cursor + dispatcher);
//! - storage: [`managed_ledger`] (a topic's ledgers and cursors in bookies and metadata);
//! - the async shell: [`server`] (connections), [`topic`] (with its narrow [`topic_context`]),
//!   [`subscription_actor`], [`service`] (the registry of loaded topics), [`context`] (the
//!   broker's shared services), [`cluster`] (membership and bundle ownership),
//!   [`broker::Broker`], and [`standalone`];
//! - operating it: [`http`] (the admin REST API from `magnetar-admin-api` over [`admin`], and
//!   [`metrics`] at `/metrics`, both fed by [`stats`]), the web [`console`], token auth on connections
//!   (`server::auth`), and [`tls`] for `pulsar+ssl://` and HTTPS.

pub mod admin;
pub mod broker;
pub mod cli;
pub mod cluster;
pub mod compaction;
pub mod config;
pub mod console;
pub mod context;
pub mod cursor;
pub mod dedup;
pub mod dispatch;
pub mod error;
pub mod http;
pub mod limits;
pub mod listen;
pub mod managed_ledger;
pub mod metrics;
pub mod non_persistent;
pub mod position;
pub mod publish_time;
pub mod records;
pub mod replication;
pub mod role_http;
pub mod schema;
pub mod security_config;
pub mod server;
pub mod service;
pub mod standalone;
pub mod stats;
pub mod subscription;
pub mod subscription_actor;
pub mod tiered;
pub mod tls;
pub mod topic;
pub mod topic_context;
pub mod topic_list;
pub mod topic_producers;
pub mod topic_replication;

pub use broker::{Broker, BrokerListeners};
pub use config::BrokerConfig;
pub use error::BrokerError;
