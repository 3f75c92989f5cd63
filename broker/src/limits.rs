//! Bounds on what clients can make a broker hold: connections, producers, consumers,
//! subscriptions, topics, schemas, publish memory, the entry cache, idle topics and HTTP
//! requests. Each has Pulsar's setting name where Pulsar has one; `0` means unlimited where
//! Pulsar's does. A refusal travels as Pulsar's error for it, with a message naming the limit.
//! The figures and how to size them are in `docs/operations.md`; [`GuardMetrics`] counts what
//! the limits did.

use std::time::Duration;

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Client connections this broker accepts (`brokerMaxConnections`); 0: unlimited.
    pub max_connections: usize,
    /// Client connections from one IP address (`brokerMaxConnectionsPerIp`); 0: unlimited.
    pub max_connections_per_ip: usize,
    /// A connection that has not sent CONNECT within this long is closed.
    pub connect_timeout_ms: u64,
    /// A write to a client that makes no progress for this long closes the connection (a
    /// consumer that stopped reading: zero TCP window).
    pub write_timeout_ms: u64,
    /// SENDs of one connection waiting for storage before the broker stops reading it
    /// (`maxPendingPublishRequestsPerConnection`).
    pub max_pending_publish_requests_per_connection: usize,
    /// Bytes of SENDs waiting for storage, over all connections, before the broker stops
    /// reading publishers (`maxMessagePublishBufferSizeInMB`).
    pub max_message_publish_buffer_bytes: usize,
    /// Producers one connection may hold open.
    pub max_producers_per_connection: usize,
    /// Consumers one connection may hold open.
    pub max_consumers_per_connection: usize,
    /// `maxProducersPerTopic`; 0: unlimited.
    pub max_producers_per_topic: usize,
    /// `maxConsumersPerTopic`; 0: unlimited.
    pub max_consumers_per_topic: usize,
    /// `maxConsumersPerSubscription`; 0: unlimited.
    pub max_consumers_per_subscription: usize,
    /// `maxSubscriptionsPerTopic`; 0: unlimited.
    pub max_subscriptions_per_topic: usize,
    /// Topics of one namespace; creating more (automatically or by the admin API) is refused
    /// (`maxTopicsPerNamespace`); 0: unlimited.
    pub max_topics_per_namespace: usize,
    /// Bytes of one schema definition.
    pub max_schema_size_bytes: usize,
    /// Schema versions one topic keeps.
    pub max_schema_versions: usize,
    /// A topic with no producers and no connected consumers for this long is unloaded (its
    /// ledger sealed, its memory freed; the next client loads it again); 0: never.
    pub topic_idle_unload_ms: u64,
    /// Delayed messages one Shared or Key_Shared subscription holds in memory (about 110 bytes
    /// each); beyond it the ones due last are read again from the ledger when room returns.
    pub delayed_index_entries_per_subscription: usize,
    /// Bytes of recently written entries cached for tailing readers, over all topics
    /// (`managedLedgerCacheSizeMB`).
    pub entry_cache_bytes: usize,
    /// An HTTP client must send its request headers within this long.
    pub http_header_read_timeout_ms: u64,
    /// An HTTP request (body included) must be answered within this long.
    pub http_request_timeout_ms: u64,
    /// Largest HTTP request body (`httpMaxRequestSize`).
    pub http_max_request_bytes: usize,
    /// HTTP connections served at once (`maxHttpServerConnections`).
    pub http_max_connections: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 20_000,
            max_connections_per_ip: 0,
            connect_timeout_ms: 10_000,
            write_timeout_ms: 30_000,
            max_pending_publish_requests_per_connection: 1000,
            max_message_publish_buffer_bytes: 256 * 1024 * 1024,
            max_producers_per_connection: 10_000,
            max_consumers_per_connection: 10_000,
            max_producers_per_topic: 0,
            max_consumers_per_topic: 0,
            max_consumers_per_subscription: 0,
            max_subscriptions_per_topic: 0,
            max_topics_per_namespace: 0,
            max_schema_size_bytes: 256 * 1024,
            max_schema_versions: 100,
            topic_idle_unload_ms: 10 * 60 * 1000,
            delayed_index_entries_per_subscription: 1_000_000,
            entry_cache_bytes: 512 * 1024 * 1024,
            http_header_read_timeout_ms: 10_000,
            http_request_timeout_ms: 60_000,
            http_max_request_bytes: 10 * 1024 * 1024,
            http_max_connections: 2048,
        }
    }
}

/// `limit` with Pulsar's "0 is unlimited".
pub fn reached(count: usize, limit: usize) -> bool {
    limit > 0 && count >= limit
}

impl Limits {
    /// The schema bounds, as the registry takes them.
    pub fn schema_limits(&self) -> magnetar_admin_api::resources::SchemaLimits {
        magnetar_admin_api::resources::SchemaLimits {
            max_size: self.max_schema_size_bytes,
            max_versions: self.max_schema_versions,
        }
    }

    /// Reads a TOML file of limits (unknown keys refused); absent keys keep their defaults.
    pub fn read(path: &std::path::Path) -> anyhow::Result<Limits> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms.max(1))
    }

    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms.max(1))
    }

    pub fn topic_idle_unload(&self) -> Option<Duration> {
        (self.topic_idle_unload_ms > 0).then(|| Duration::from_millis(self.topic_idle_unload_ms))
    }

    pub fn validate(&self, max_message_size: usize) -> Result<(), String> {
        if self.max_pending_publish_requests_per_connection == 0 {
            return Err(
                "limits.max_pending_publish_requests_per_connection must be positive".into(),
            );
        }
        if self.max_message_publish_buffer_bytes < max_message_size {
            return Err(format!(
                "limits.max_message_publish_buffer_bytes ({}) must hold at least one message of max_message_size ({max_message_size})",
                self.max_message_publish_buffer_bytes
            ));
        }
        if self.max_producers_per_connection == 0 || self.max_consumers_per_connection == 0 {
            return Err("limits.max_producers/consumers_per_connection must be positive".into());
        }
        if self.max_schema_versions == 0 || self.max_schema_size_bytes == 0 {
            return Err(
                "limits.max_schema_versions and max_schema_size_bytes must be positive".into(),
            );
        }
        if self.http_max_connections == 0 || self.http_max_request_bytes == 0 {
            return Err(
                "limits.http_max_connections and http_max_request_bytes must be positive".into(),
            );
        }
        Ok(())
    }
}

/// What the broker's limits and guards did.
#[derive(Debug, Clone)]
pub struct GuardMetrics {
    pub connections: IntGauge,
    pub pending_publish_bytes: IntGauge,
    pub publish_throttled: IntCounter,
    pub stalled_connections: IntCounter,
    refusals: IntCounterVec,
}

impl GuardMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<GuardMetrics> {
        let connections = IntGauge::new(
            "magnetar_broker_connections",
            "Client connections open on the binary protocol",
        )?;
        let pending_publish_bytes = IntGauge::new(
            "magnetar_broker_pending_publish_bytes",
            "Bytes of SENDs waiting for storage, over all connections",
        )?;
        let publish_throttled = IntCounter::new(
            "magnetar_broker_publish_throttled_total",
            "Times a connection stopped being read because of its pending publishes",
        )?;
        let stalled_connections = IntCounter::new(
            "magnetar_broker_stalled_connections_total",
            "Connections closed because the client stopped reading what was sent to it",
        )?;
        let refusals = IntCounterVec::new(
            Opts::new(
                "magnetar_broker_limit_refusals_total",
                "Requests refused by a broker limit, by limit",
            ),
            &["limit"],
        )?;
        registry.register(Box::new(connections.clone()))?;
        registry.register(Box::new(pending_publish_bytes.clone()))?;
        registry.register(Box::new(publish_throttled.clone()))?;
        registry.register(Box::new(stalled_connections.clone()))?;
        registry.register(Box::new(refusals.clone()))?;
        Ok(GuardMetrics {
            connections,
            pending_publish_bytes,
            publish_throttled,
            stalled_connections,
            refusals,
        })
    }

    /// Counts a refusal by `limit` (a `limits` setting name).
    pub fn refused(&self, limit: &str) {
        self.refusals.with_label_values(&[limit]).inc();
    }
}
