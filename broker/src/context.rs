//! The broker's shared services, built once at start: [`BrokerContext`] — its settings and
//! URLs, the clients of the metadata service and the bookies, authentication and authorization,
//! metrics, and membership with bundle ownership. Connections, the admin API and the topic
//! registry (`service`) read it; nothing in it changes after start but through its own handles.
//!
//! What a topic and its subscriptions need is narrower: a
//! [`TopicContext`](crate::topic_context::TopicContext).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use magnetar_admin_api::AdminState;
use magnetar_bookie::ledger::LedgerClient;
use magnetar_metadata::MetadataClient;
use tokio::sync::Semaphore;

use crate::cluster::NamespaceService;
use crate::config::BrokerConfig;
use crate::managed_ledger::{CacheBudget, ManagedLedgerConfig};
use crate::metrics::BrokerMetrics;
use crate::topic_context::{TopicContext, TopicLimits};

/// Where this broker is reached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceUrls {
    /// `pulsar://host:port`, which LOOKUP answers with for topics owned here.
    pub service_url: String,
    /// `pulsar+ssl://host:port` when TLS is on.
    pub service_url_tls: Option<String>,
    /// `http://host:port` of the admin API.
    pub web_url: Option<String>,
    /// `https://host:port` when TLS is on.
    pub web_url_tls: Option<String>,
}

/// The broker's shared services.
#[derive(Debug)]
pub struct BrokerContext {
    pub config: BrokerConfig,
    /// Managed-ledger defaults; namespace policies override them per topic.
    pub ml_config: ManagedLedgerConfig,
    pub metadata: MetadataClient,
    pub ledgers: LedgerClient,
    pub urls: ServiceUrls,
    /// Authentication, authorization and the admin resources (policies) the broker checks.
    pub admin: AdminState,
    pub metrics: BrokerMetrics,
    /// Membership and bundle ownership: the gate every topic load passes.
    pub namespaces: Arc<NamespaceService>,
    /// Bytes of SENDs that may wait for storage at once, over all connections
    /// (`limits.max_message_publish_buffer_bytes`).
    pub publish_buffer: Arc<Semaphore>,
    next_id: AtomicU64,
}

impl BrokerContext {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: BrokerConfig,
        mut ml_config: ManagedLedgerConfig,
        metadata: MetadataClient,
        ledgers: LedgerClient,
        urls: ServiceUrls,
        admin: AdminState,
        metrics: BrokerMetrics,
        namespaces: Arc<NamespaceService>,
    ) -> BrokerContext {
        // One entry-cache budget for every topic of the broker.
        ml_config
            .cache_budget
            .get_or_insert_with(|| CacheBudget::new(config.limits.entry_cache_bytes));
        let publish_buffer = Arc::new(Semaphore::new(
            config
                .limits
                .max_message_publish_buffer_bytes
                .min(Semaphore::MAX_PERMITS),
        ));
        BrokerContext {
            publish_buffer,
            config,
            ml_config,
            metadata,
            ledgers,
            urls,
            admin,
            metrics,
            namespaces,
            next_id: AtomicU64::new(1),
        }
    }

    /// A broker-wide unique number (connection and consumer ids, producer names).
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// What a topic loaded here gets from the broker.
    pub fn topic_context(&self) -> TopicContext {
        TopicContext {
            ledgers: self.ledgers.clone(),
            publish_latency: self.metrics.publish_latency.clone(),
            allow_auto_subscription_creation: self.config.allow_auto_subscription_creation,
            max_frame_size: self.config.max_frame_size(),
            limits: TopicLimits {
                max_producers: self.config.limits.max_producers_per_topic,
                max_consumers: self.config.limits.max_consumers_per_topic,
                max_consumers_per_subscription: self.config.limits.max_consumers_per_subscription,
                max_subscriptions: self.config.limits.max_subscriptions_per_topic,
                delayed_index_entries: self.config.limits.delayed_index_entries_per_subscription,
            },
            guards: self.metrics.guards.clone(),
            dedup: self.config.dedup_settings(),
        }
    }
}
