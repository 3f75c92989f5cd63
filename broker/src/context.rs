//! What a topic and its subscriptions need from the broker, and nothing more. The broker
//! service builds a [`TopicContext`] for every topic it loads, so `topic`, `subscription_actor`,
//! `stats` and `metrics` never reach back into the service.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use magnetar_bookie::ledger::LedgerClient;
use magnetar_metadata::MetadataClient;
use prometheus::Histogram;

/// The broker's services a topic uses.
#[derive(Debug, Clone)]
pub struct TopicContext {
    /// The ledger client the topic's managed ledger writes through.
    pub ledgers: LedgerClient,
    /// For namespace policies its subscriptions read (message TTL).
    pub metadata: MetadataClient,
    /// The broker-wide publish latency histogram.
    pub publish_latency: Histogram,
    /// Whether a durable subscription may be created by subscribing
    /// (`allowAutoSubscriptionCreation`).
    pub allow_auto_subscription_creation: bool,
}

/// A topic's message and byte counters, shared by the topic (in) and its subscriptions (out),
/// read by stats and metrics.
#[derive(Debug, Default)]
pub struct TopicCounters {
    pub msg_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub msg_out: AtomicU64,
    pub bytes_out: AtomicU64,
}

/// Shared counters of one topic.
pub type SharedCounters = Arc<TopicCounters>;
