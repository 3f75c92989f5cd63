//! The broker's shared state: loaded topics, the clients of the metadata service and of the
//! bookies, and the names and ids it hands out.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use magnetar_admin_api::AdminState;
use magnetar_bookie::ledger::LedgerClient;
use magnetar_metadata::MetadataClient;
use magnetar_protocol::TopicName;
use tokio::sync::{Mutex, OnceCell};

use crate::config::BrokerConfig;
use crate::error::BrokerError;
use crate::managed_ledger::ManagedLedgerConfig;
use crate::metrics::BrokerMetrics;
use crate::topic::Topic;

/// Where the admin API records partitioned topics (`{"partitions": N}`).
pub fn partitioned_topic_key(topic: &TopicName) -> String {
    format!(
        "/admin/partitioned-topics/{}/{}/persistent/{}",
        topic.tenant(),
        topic.namespace_local(),
        topic.local_name()
    )
}

/// The managed ledger name of a persistent topic: `tenant/ns/persistent/local`.
pub fn managed_ledger_name(topic: &TopicName) -> String {
    format!(
        "{}/{}/persistent/{}",
        topic.tenant(),
        topic.namespace_local(),
        topic.local_name()
    )
}

/// Where this broker is reached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceUrls {
    /// `pulsar://host:port`, which LOOKUP always answers.
    pub service_url: String,
    /// `pulsar+ssl://host:port` when TLS is on.
    pub service_url_tls: Option<String>,
    /// `http://host:port` of the admin API.
    pub web_url: Option<String>,
    /// `https://host:port` when TLS is on.
    pub web_url_tls: Option<String>,
}

#[derive(Debug)]
pub struct BrokerService {
    pub config: BrokerConfig,
    pub ml_config: ManagedLedgerConfig,
    pub metadata: MetadataClient,
    pub ledgers: LedgerClient,
    /// `pulsar://host:port` clients are sent to by LOOKUP.
    pub service_url: String,
    pub urls: ServiceUrls,
    /// Authentication, authorization and the admin resources (policies) the broker checks.
    pub admin: AdminState,
    pub metrics: BrokerMetrics,
    topics: Mutex<HashMap<String, Arc<OnceCell<Arc<Topic>>>>>,
    next_id: AtomicU64,
}

impl BrokerService {
    pub fn new(
        config: BrokerConfig,
        ml_config: ManagedLedgerConfig,
        metadata: MetadataClient,
        ledgers: LedgerClient,
        urls: ServiceUrls,
        admin: AdminState,
        metrics: BrokerMetrics,
    ) -> BrokerService {
        BrokerService {
            config,
            ml_config,
            metadata,
            ledgers,
            service_url: urls.service_url.clone(),
            urls,
            admin,
            metrics,
            topics: Mutex::default(),
            next_id: AtomicU64::new(1),
        }
    }

    /// A broker-wide unique number (consumer ids inside subscriptions, producer names).
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Partitions of a partitioned topic, 0 for a plain one.
    pub async fn partitions(&self, topic: &TopicName) -> Result<u32, BrokerError> {
        let key = partitioned_topic_key(&topic.partitioned_topic());
        match self.metadata.get(&key).await? {
            None => Ok(0),
            Some(record) => {
                #[derive(serde::Deserialize)]
                struct Partitions {
                    partitions: u32,
                }
                let parsed: Partitions = serde_json::from_slice(&record.value).map_err(|e| {
                    BrokerError::Metadata(format!("unreadable partitioned topic {key}: {e}"))
                })?;
                Ok(parsed.partitions)
            }
        }
    }

    /// Whether the topic has storage, or is a partition of a partitioned topic.
    pub async fn topic_exists(&self, topic: &TopicName) -> Result<bool, BrokerError> {
        let key = format!("/managed-ledgers/{}", managed_ledger_name(topic));
        if self.metadata.get(&key).await?.is_some() {
            return Ok(true);
        }
        // A partition of a partitioned topic exists with its parent.
        Ok(topic.partition().is_some() && self.partitions(topic).await? > 0)
    }

    /// The loaded topic, loading it (and creating it when allowed) on first use.
    pub async fn topic(&self, name: &TopicName, create: bool) -> Result<Arc<Topic>, BrokerError> {
        self.load(name, create && self.config.allow_auto_topic_creation)
            .await
    }

    /// Creates (or loads) a topic whatever auto-creation allows: the admin API's create.
    pub async fn create_topic(&self, name: &TopicName) -> Result<Arc<Topic>, BrokerError> {
        self.load(name, true).await
    }

    async fn load(&self, name: &TopicName, create: bool) -> Result<Arc<Topic>, BrokerError> {
        if !name.is_persistent() {
            return Err(BrokerError::NotAllowed(
                "non-persistent topics are not supported".into(),
            ));
        }
        let key = name.to_string();
        let cell = self.topics.lock().await.entry(key).or_default().clone();
        if let Some(topic) = cell.get() {
            return Ok(topic.clone());
        }
        if !create && !self.topic_exists(name).await? {
            return Err(BrokerError::TopicNotFound(name.to_string()));
        }
        let topic = cell
            .get_or_try_init(|| async {
                let topic = Topic::load(name.clone(), self).await?;
                tracing::info!(topic = %name, "topic loaded");
                Ok::<_, BrokerError>(Arc::new(topic))
            })
            .await?;
        Ok(topic.clone())
    }

    /// Drops a topic from the loaded set (before its storage is deleted).
    pub async fn forget_topic(&self, name: &TopicName) {
        self.topics.lock().await.remove(&name.to_string());
    }

    /// Topics loaded on this broker.
    pub async fn loaded_topics(&self) -> Vec<Arc<Topic>> {
        self.topics
            .lock()
            .await
            .values()
            .filter_map(|cell| cell.get().cloned())
            .collect()
    }

    /// Persistent topics of a namespace known to the metadata service.
    pub async fn topics_of_namespace(&self, namespace: &str) -> Result<Vec<String>, BrokerError> {
        let prefix = format!("/managed-ledgers/{namespace}/persistent/");
        let names = self.metadata.children(prefix.trim_end_matches('/')).await?;
        Ok(names
            .into_iter()
            .map(|local| format!("persistent://{namespace}/{local}"))
            .collect())
    }

    /// Closes every loaded topic (flushing cursors and sealing ledgers).
    pub async fn close_all(&self) {
        for topic in self.loaded_topics().await {
            topic.close().await;
        }
    }
}
