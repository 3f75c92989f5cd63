//! The broker's shared state: loaded topics, the clients of the metadata service and of the
//! bookies, and the names and ids it hands out.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use magnetar_admin_api::{AdminState, keys};
use magnetar_bookie::ledger::LedgerClient;
use magnetar_metadata::MetadataClient;
use magnetar_protocol::TopicName;
use tokio::sync::{Mutex, OnceCell};

use crate::cluster::{BundleName, NamespaceService};
use crate::config::BrokerConfig;
use crate::context::TopicContext;
use crate::error::BrokerError;
use crate::managed_ledger::ManagedLedgerConfig;
use crate::managed_ledger::OwnershipGuard;
use crate::metrics::BrokerMetrics;
use crate::topic::{Topic, managed_ledger_name};

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
    /// Membership and bundle ownership: the gate every topic load passes.
    pub namespaces: Arc<NamespaceService>,
    topics: Mutex<HashMap<String, Arc<OnceCell<Arc<Topic>>>>>,
    next_id: AtomicU64,
}

/// What a [`BrokerService`] is made of.
#[derive(Debug)]
pub struct ServiceParts {
    pub config: BrokerConfig,
    pub ml_config: ManagedLedgerConfig,
    pub metadata: MetadataClient,
    pub ledgers: LedgerClient,
    pub urls: ServiceUrls,
    pub admin: AdminState,
    pub metrics: BrokerMetrics,
    pub namespaces: Arc<NamespaceService>,
}

impl BrokerService {
    pub fn new(parts: ServiceParts) -> BrokerService {
        let ServiceParts {
            config,
            ml_config,
            metadata,
            ledgers,
            urls,
            admin,
            metrics,
            namespaces,
        } = parts;
        BrokerService {
            config,
            ml_config,
            metadata,
            ledgers,
            service_url: urls.service_url.clone(),
            urls,
            admin,
            metrics,
            namespaces,
            topics: Mutex::default(),
            next_id: AtomicU64::new(1),
        }
    }

    /// The managed-ledger settings of a topic: the broker's, with the namespace's persistence
    /// (E, Qw, Qa, cursor write rate) and retention policies applied.
    /// What a topic loaded here gets from the broker.
    pub fn topic_context(&self) -> TopicContext {
        TopicContext {
            ledgers: self.ledgers.clone(),
            metadata: self.metadata.clone(),
            publish_latency: self.metrics.publish_latency.clone(),
            allow_auto_subscription_creation: self.config.allow_auto_subscription_creation,
        }
    }

    /// The managed-ledger settings of `topic` (see [`Self::ml_config_for`]), with every
    /// metadata write guarded by this broker's ownership of `bundle`.
    async fn ml_config_owned(
        &self,
        topic: &TopicName,
        bundle: &BundleName,
    ) -> Result<ManagedLedgerConfig, BrokerError> {
        let mut config = self.ml_config_for(topic).await?;
        let guard: OwnershipGuard = self.namespaces.ownership_guard(bundle).ok_or_else(|| {
            BrokerError::ServiceNotReady(format!(
                "Namespace bundle {} is being unloaded",
                bundle.name()
            ))
        })?;
        config.ownership = Some(guard);
        Ok(config)
    }

    pub async fn ml_config_for(
        &self,
        topic: &TopicName,
    ) -> Result<ManagedLedgerConfig, BrokerError> {
        let mut config = self.ml_config.clone();
        let namespace = format!("{}/{}", topic.tenant(), topic.namespace_local());
        let Some(policies) = self.namespaces.policies(&namespace).await? else {
            return Ok(config);
        };
        if let Some(p) = policies.persistence {
            config.ensemble = p.bookkeeper_ensemble.max(1) as usize;
            config.write_quorum = p.bookkeeper_write_quorum.max(1) as usize;
            config.ack_quorum = p.bookkeeper_ack_quorum.max(1) as usize;
            let rate = p.mark_delete_rate();
            if rate > 0.0 {
                config.cursor_persist_interval = std::time::Duration::from_secs_f64(1.0 / rate);
            }
        }
        if let Some(r) = policies.retention_policies {
            config.retention_time = match r.retention_time_in_minutes {
                m if m < 0 => Some(std::time::Duration::MAX),
                0 => None,
                m => Some(std::time::Duration::from_secs(
                    u64::from(m.unsigned_abs()) * 60,
                )),
            };
            config.retention_size = match r.retention_size_in_mb {
                mb if mb < 0 => Some(u64::MAX),
                0 => None,
                mb => Some((mb as u64).saturating_mul(1024 * 1024)),
            };
        }
        Ok(config)
    }

    /// A broker-wide unique number (consumer ids inside subscriptions, producer names).
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Partitions of a partitioned topic, 0 for a plain one.
    pub async fn partitions(&self, topic: &TopicName) -> Result<u32, BrokerError> {
        let key = keys::partitioned_topic(topic);
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
        let key = keys::managed_ledger(&managed_ledger_name(topic));
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
        // The ownership gate: a broker that does not own the bundle never opens the ledger
        // (opening it would fence the owner's).
        let bundle = self.namespaces.ensure_owned(name).await?;
        let key = name.to_string();
        let cell = self
            .topics
            .lock()
            .await
            .entry(key.clone())
            .or_default()
            .clone();
        if let Some(topic) = cell.get()
            && !topic.is_unloading()
        {
            return Ok(topic.clone());
        }
        if !create && !self.topic_exists(name).await? {
            self.forget_cell(&key, &cell).await;
            return Err(BrokerError::TopicNotFound(name.to_string()));
        }
        let loaded = cell
            .get_or_try_init(|| async {
                let topic = Topic::load(
                    name.clone(),
                    self.ml_config_owned(name, &bundle).await?,
                    self.topic_context(),
                )
                .await?;
                tracing::info!(topic = %name, "topic loaded");
                Ok::<_, BrokerError>(Arc::new(topic))
            })
            .await;
        let topic = match loaded {
            Ok(topic) => topic.clone(),
            Err(e) => {
                self.forget_cell(&key, &cell).await;
                return Err(e);
            }
        };
        if topic.is_unloading() {
            return Err(BrokerError::ServiceNotReady(format!(
                "topic {name} is being unloaded"
            )));
        }
        // The bundle may have gone while the ledger was opening: give the topic up again.
        if !self.namespaces.still_serving(&bundle) {
            self.unload_topic(name).await;
            return Err(BrokerError::ServiceNotReady(format!(
                "Namespace bundle {} is being unloaded",
                bundle.name()
            )));
        }
        Ok(topic)
    }

    /// Drops a map entry that holds no topic (a failed or refused load), so lookups of
    /// missing topics leave nothing behind.
    async fn forget_cell(&self, key: &str, cell: &Arc<OnceCell<Arc<Topic>>>) {
        let mut topics = self.topics.lock().await;
        if topics
            .get(key)
            .is_some_and(|c| Arc::ptr_eq(c, cell) && c.get().is_none())
        {
            topics.remove(key);
        }
    }

    /// Unloads one topic: clients are told to look it up again, cursors flushed, ledger sealed.
    pub async fn unload_topic(&self, name: &TopicName) -> bool {
        let cell = self.topics.lock().await.remove(&name.to_string());
        match cell.and_then(|c| c.get().cloned()) {
            Some(topic) => {
                topic.unload().await;
                tracing::info!(topic = %name, "topic unloaded");
                true
            }
            None => false,
        }
    }

    /// Loaded topics of a bundle.
    pub async fn topics_of_bundle(&self, bundle: &BundleName) -> Vec<Arc<Topic>> {
        let mut topics = Vec::new();
        for topic in self.loaded_topics().await {
            if let Ok(of) = self.namespaces.bundle_of(topic.name()).await
                && of == *bundle
            {
                topics.push(topic);
            }
        }
        topics
    }

    /// Hands a bundle over: refuse new work on it, unload its topics, release ownership.
    /// False when this broker does not own it.
    pub async fn unload_bundle(&self, bundle: &BundleName) -> bool {
        if !self.namespaces.begin_unload(bundle) {
            return false;
        }
        let topics = self.topics_of_bundle(bundle).await;
        tracing::info!(
            bundle = bundle.name(),
            topics = topics.len(),
            "unloading bundle"
        );
        for topic in topics {
            self.unload_topic(topic.name()).await;
        }
        self.namespaces.release(bundle).await;
        true
    }

    /// Bundles this broker lost with its session: their topics stop at once (clients move
    /// to the next owner). Their ledgers may no longer be sealable; the next owner recovers.
    pub async fn drop_lost_bundles(&self, lost: &[BundleName]) {
        for bundle in lost {
            for topic in self.topics_of_bundle(bundle).await {
                let name = topic.name().clone();
                let cell = self.topics.lock().await.remove(&name.to_string());
                drop(cell);
                // Closing may wait on the metadata service this broker cannot reach: bounded.
                let closing =
                    tokio::time::timeout(std::time::Duration::from_secs(5), topic.unload());
                if closing.await.is_err() {
                    tracing::warn!(topic = %name, "topic of a lost bundle did not close in time");
                }
            }
        }
    }

    /// Unloads every owned bundle (graceful shutdown): clients move to other brokers.
    pub async fn unload_all(&self) {
        for bundle in self.namespaces.owned_bundles() {
            self.unload_bundle(&bundle).await;
        }
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
        let names = self
            .metadata
            .children(&keys::persistent_managed_ledgers(namespace))
            .await?;
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
