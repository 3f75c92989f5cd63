//! What a topic and its subscriptions need from the broker, and nothing more. The topic
//! registry builds a [`TopicContext`] for every topic it loads, so `topic`,
//! `subscription_actor`, `stats` and `metrics` never reach back into the broker.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use magnetar_bookie::ledger::LedgerClient;
use magnetar_protocol::Frame;
use prometheus::Histogram;
use tokio::sync::mpsc;

/// Where frames for a client connection are queued. Frames are boxed: a command is a few
/// kilobytes inline, and the queue's blocks hold 32 of them, allocated per connection.
pub type Outbound = mpsc::Sender<Box<Frame>>;

/// The broker's services a topic uses.
#[derive(Debug, Clone)]
pub struct TopicContext {
    /// The ledger client the topic's managed ledger writes through.
    pub ledgers: LedgerClient,
    /// The broker-wide publish latency histogram.
    pub publish_latency: Histogram,
    /// Whether a durable subscription may be created by subscribing
    /// (`allowAutoSubscriptionCreation`).
    pub allow_auto_subscription_creation: bool,
    /// The largest frame a connection sends.
    pub max_frame_size: usize,
    /// Producers, consumers and subscriptions a topic may hold.
    pub limits: TopicLimits,
    /// Counts what the limits refuse.
    pub guards: crate::limits::GuardMetrics,
    /// When deduplication snapshots are taken.
    pub dedup: crate::dedup::DedupSettings,
}

/// The per-topic part of the broker's limits (0: unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicLimits {
    pub max_producers: usize,
    pub max_consumers: usize,
    pub max_consumers_per_subscription: usize,
    pub max_subscriptions: usize,
    /// Delayed entries a subscription indexes in memory.
    pub delayed_index_entries: usize,
}

/// A topic's message and byte counters, shared by the topic (in) and its subscriptions (out),
/// read by stats and metrics; and the producer and consumer limits of its topic policies.
#[derive(Debug, Default)]
pub struct TopicCounters {
    pub msg_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub msg_out: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Consumers attached over all subscriptions (for `max_consumers_per_topic`).
    pub consumers: AtomicU64,
    /// The topic policy's `maxProducerPerTopic` (0: none), set by the broker's policy check.
    pub policy_max_producers: AtomicU64,
    /// The topic policy's `maxConsumerPerTopic` (0: none).
    pub policy_max_consumers: AtomicU64,
}

impl TopicCounters {
    /// The tighter of the broker's limit and the topic policy's (0 is no limit for either).
    pub fn tighter(broker: usize, policy: &AtomicU64) -> usize {
        let policy = policy.load(std::sync::atomic::Ordering::Relaxed) as usize;
        match (broker, policy) {
            (0, p) => p,
            (b, 0) => b,
            (b, p) => b.min(p),
        }
    }
}

/// Shared counters of one topic.
pub type SharedCounters = Arc<TopicCounters>;
