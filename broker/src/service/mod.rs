//! The broker's topic registry: the topics loaded here, each opened only through the ownership
//! gate of its bundle, and their unloading by topic, by bundle, and on shutdown.

use std::collections::HashMap;
use std::sync::Arc;

use magnetar_admin_api::keys;
use magnetar_admin_api::models::Policies;
use magnetar_protocol::TopicName;
use tokio::sync::{Mutex, OnceCell, mpsc};
use tokio_util::sync::CancellationToken;

use crate::cluster::BundleName;
use crate::context::BrokerContext;
use crate::error::BrokerError;
use crate::managed_ledger::ManagedLedgerConfig;
use crate::managed_ledger::OwnershipGuard;
use crate::topic::{Topic, managed_ledger_name};

mod enforce;
mod non_persistent;
mod storage_policies;
mod sweep;

use futures::StreamExt;
use storage_policies::{apply_offload, apply_retention};

/// Topics unloaded (or closed) at once when a bundle is handed over or the broker stops.
const UNLOAD_PARALLELISM: usize = 128;

/// The topics loaded on this broker, behind the ownership gate: loading (and creating),
/// unloading by topic and by bundle, and the broker's shared services they are loaded with.
#[derive(Debug)]
pub struct BrokerService {
    ctx: Arc<BrokerContext>,
    topics: Mutex<HashMap<String, Arc<OnceCell<Arc<Topic>>>>>,
    /// Non-persistent topics (see `non_persistent`).
    np_topics: std::sync::Mutex<HashMap<String, Arc<crate::non_persistent::NpTopic>>>,
    /// Topics whose managed ledger was fenced (another broker took them): the broker unloads
    /// them (see [`BrokerService::unload_fenced`]) so their clients look them up again.
    fenced: mpsc::UnboundedSender<TopicName>,
    /// The geo-replication endpoint, once the broker has opened it.
    replication: std::sync::OnceLock<Arc<dyn ReplicationHook>>,
}

/// What the topic registry needs of geo-replication (the `replication` module implements it
/// and the broker plugs it in): replicators started and stopped as topics load and policies
/// change.
#[async_trait::async_trait]
pub trait ReplicationHook: Send + Sync + std::fmt::Debug {
    /// `quic://host:port`, when this broker receives.
    fn url(&self) -> Option<&str>;
    /// Makes the topic's replicators match its namespace's replication clusters.
    async fn sync(
        &self,
        topic: &Arc<Topic>,
        clusters: &std::collections::BTreeSet<String>,
        partitions: u32,
    ) -> Result<(), BrokerError>;
}

/// The receiving end of the topics fenced while loaded here.
#[derive(Debug)]
pub struct FencedTopics(mpsc::UnboundedReceiver<TopicName>);

impl BrokerService {
    pub fn new(ctx: BrokerContext) -> (BrokerService, FencedTopics) {
        let (fenced, rx) = mpsc::unbounded_channel();
        let service = BrokerService {
            ctx: Arc::new(ctx),
            topics: Mutex::default(),
            np_topics: Default::default(),
            fenced,
            replication: std::sync::OnceLock::new(),
        };
        (service, FencedTopics(rx))
    }

    /// Unloads every topic reported fenced, until `cancel`: a fenced topic refuses every write,
    /// so keeping it loaded would answer its clients ServiceNotReady forever.
    pub async fn unload_fenced(&self, mut fenced: FencedTopics, cancel: CancellationToken) {
        loop {
            let name = tokio::select! {
                _ = cancel.cancelled() => return,
                name = fenced.0.recv() => match name { Some(n) => n, None => return },
            };
            let current = self.topics.lock().await.get(&name.to_string()).cloned();
            if let Some(topic) = current.and_then(|cell| cell.get().cloned())
                && topic.managed_ledger().is_fenced()
            {
                tracing::warn!(topic = %name, "the topic's storage was fenced by another owner; unloading it");
                self.unload_topic(&name).await;
            }
        }
    }

    /// Sets the geo-replication endpoint (once, before topics load).
    pub fn set_replication(&self, replication: Arc<dyn ReplicationHook>) {
        let _ = self.replication.set(replication);
    }

    /// `quic://host:port` of this broker's replication endpoint, when it receives.
    pub fn replication_url(&self) -> Option<String> {
        self.replication.get()?.url().map(str::to_string)
    }

    /// Starts and stops the topic's replicators to match its namespace's replication clusters.
    async fn sync_replication(
        &self,
        topic: &Arc<Topic>,
        policies: &Policies,
    ) -> Result<(), BrokerError> {
        let Some(replication) = self.replication.get() else {
            return Ok(());
        };
        let partitions = match topic.name().partition() {
            Some(_) => self.partitions(&topic.name().partitioned_topic()).await?,
            None => 0,
        };
        replication
            .sync(topic, &policies.replication_clusters, partitions)
            .await
    }

    /// The broker's shared services.
    pub fn ctx(&self) -> &Arc<BrokerContext> {
        &self.ctx
    }

    /// The managed-ledger settings of `topic` (see [`Self::ml_config_for`]), with every
    /// metadata write guarded by this broker's ownership of `bundle`.
    async fn ml_config_owned(
        &self,
        topic: &TopicName,
        bundle: &BundleName,
    ) -> Result<ManagedLedgerConfig, BrokerError> {
        let mut config = self.ml_config_for(topic).await?;
        let guard: OwnershipGuard =
            self.ctx.namespaces.ownership_guard(bundle).ok_or_else(|| {
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
        let mut config = self.ctx.ml_config.clone();
        let namespace = format!("{}/{}", topic.tenant(), topic.namespace_local());
        let Some(namespace_policies) = self.ctx.namespaces.policies(&namespace).await? else {
            let own = self.ctx.namespaces.topic_policies(topic)?;
            apply_retention(&mut config, own.retention_policies.as_ref());
            apply_offload(&mut config, &Policies::default(), &self.ctx.config.offload);
            return Ok(config);
        };
        let policies = self
            .ctx
            .namespaces
            .topic_policies(topic)?
            .applied_to(&namespace_policies);
        if let Some(p) = &policies.persistence {
            config.ensemble = p.bookkeeper_ensemble.max(1) as usize;
            config.write_quorum = p.bookkeeper_write_quorum.max(1) as usize;
            config.ack_quorum = p.bookkeeper_ack_quorum.max(1) as usize;
            let rate = p.mark_delete_rate();
            if rate > 0.0 {
                config.cursor_persist_interval = std::time::Duration::from_secs_f64(1.0 / rate);
            }
        }
        apply_retention(&mut config, policies.retention_policies.as_ref());
        apply_offload(&mut config, &policies, &self.ctx.config.offload);
        Ok(config)
    }

    /// A broker-wide unique number (connection and consumer ids, producer names).
    /// Whether `topic` (by its own policy, else its namespace's, else the broker's)
    /// deduplicates messages.
    pub async fn dedup_enabled(&self, topic: &TopicName) -> Result<bool, BrokerError> {
        let policies = self.ctx.namespaces.applied_policies(topic).await?;
        Ok(policies
            .deduplication_enabled
            .unwrap_or(self.ctx.config.deduplication_enabled))
    }

    pub fn next_id(&self) -> u64 {
        self.ctx.next_id()
    }

    /// Partitions of a partitioned topic, 0 for a plain one.
    pub async fn partitions(&self, topic: &TopicName) -> Result<u32, BrokerError> {
        let key = keys::partitioned_topic(topic);
        match self.ctx.metadata.get(&key).await? {
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
        if self.ctx.metadata.get(&key).await?.is_some() {
            return Ok(true);
        }
        // A partition of a partitioned topic exists with its parent.
        Ok(topic.partition().is_some() && self.partitions(topic).await? > 0)
    }

    /// The loaded topic, loading it (and creating it when allowed) on first use.
    pub async fn topic(&self, name: &TopicName, create: bool) -> Result<Arc<Topic>, BrokerError> {
        self.load(name, create && self.ctx.config.allow_auto_topic_creation)
            .await
    }

    /// Creates (or loads) a topic whatever auto-creation allows: the admin API's create.
    pub async fn create_topic(&self, name: &TopicName) -> Result<Arc<Topic>, BrokerError> {
        self.load(name, true).await
    }

    async fn load(&self, name: &TopicName, create: bool) -> Result<Arc<Topic>, BrokerError> {
        if !name.is_persistent() {
            return Err(BrokerError::NotAllowed(format!(
                "{name} is a non-persistent topic: this operation needs a persistent one"
            )));
        }
        // The ownership gate: a broker that does not own the bundle never opens the ledger
        // (opening it would fence the owner's).
        let bundle = self.ctx.namespaces.ensure_owned(name).await?;
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
            && !topic.managed_ledger().is_fenced()
        {
            return Ok(topic.clone());
        }
        if cell
            .get()
            .is_some_and(|topic| topic.managed_ledger().is_fenced())
        {
            // Fenced under us and not unloaded yet: give it up and load again through the gate.
            self.unload_topic(name).await;
            return Err(BrokerError::ServiceNotReady(format!(
                "topic {name} was taken over by another broker"
            )));
        }
        if !create && !self.topic_exists(name).await? {
            self.forget_cell(&key, &cell).await;
            return Err(BrokerError::TopicNotFound(name.to_string()));
        }
        if create && let Err(e) = self.check_topic_limit(name).await {
            self.forget_cell(&key, &cell).await;
            return Err(e);
        }
        let loaded = cell
            .get_or_try_init(|| async {
                let topic = Topic::load(
                    name.clone(),
                    self.ml_config_owned(name, &bundle).await?,
                    self.ctx.topic_context(),
                    self.dedup_enabled(name).await?,
                )
                .await?;
                let topic = Arc::new(topic);
                let policies = self.ctx.namespaces.applied_policies(name).await?;
                let own = self.ctx.namespaces.topic_policies(name)?;
                topic.set_policy_limits(own.max_producer_per_topic, own.max_consumer_per_topic);
                apply_delayed_delivery(&topic, &policies);
                // Replication cursors exist before the first publish can be accepted.
                if self.replication.get().is_some()
                    && let Err(e) = self.sync_replication(&topic, &policies).await
                {
                    topic.close().await;
                    return Err(e);
                }
                tracing::info!(topic = %name, "topic loaded");
                let (fenced, fenced_name) = (self.fenced.clone(), name.clone());
                topic.managed_ledger().on_fenced(move || {
                    let _ = fenced.send(fenced_name);
                });
                Ok::<_, BrokerError>(topic)
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
        if !self.ctx.namespaces.still_serving(&bundle) {
            self.unload_topic(name).await;
            return Err(BrokerError::ServiceNotReady(format!(
                "Namespace bundle {} is being unloaded",
                bundle.name()
            )));
        }
        Ok(topic)
    }

    /// `limits.max_topics_per_namespace`: a topic that does not exist yet may be created only
    /// while its namespace holds fewer.
    async fn check_topic_limit(&self, name: &TopicName) -> Result<(), BrokerError> {
        let limit = self.ctx.config.limits.max_topics_per_namespace;
        if limit == 0 || self.topic_exists(name).await? {
            return Ok(());
        }
        let namespace = name.namespace();
        let count = self.topics_of_namespace(&namespace).await?.len();
        if crate::limits::reached(count, limit) {
            self.ctx.metrics.guards.refused("max_topics_per_namespace");
            return Err(BrokerError::NotAllowed(format!(
                "namespace {namespace} holds {count} topics, limits.max_topics_per_namespace"
            )));
        }
        Ok(())
    }

    /// Drops an empty cell from the registry, unless another task holds it too: that task may
    /// be loading the topic into it (a stats call for a topic not created yet racing with the
    /// producer or replication stream creating it), and a cell dropped under it would leave
    /// its topic loaded outside the registry, to be loaded a second time and fenced.
    async fn forget_cell(&self, key: &str, cell: &Arc<OnceCell<Arc<Topic>>>) {
        let mut topics = self.topics.lock().await;
        // Clones are taken under this lock: the registry's and ours mean nobody else has it.
        if topics
            .get(key)
            .is_some_and(|c| Arc::ptr_eq(c, cell) && c.get().is_none() && Arc::strong_count(c) <= 2)
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
            if let Ok(of) = self.ctx.namespaces.bundle_of(topic.name()).await
                && of == *bundle
            {
                topics.push(topic);
            }
        }
        topics
    }

    /// Loaded topics grouped by bundle, each topic's bundle worked out once. Finding the topics
    /// of many bundles one bundle at a time works out every loaded topic's bundle once per
    /// bundle: 400,000 lookups to shut down 100,000 topics in four bundles, and a thousand
    /// bundles would make it a hundred million.
    async fn topics_by_bundle(&self) -> HashMap<BundleName, Vec<Arc<Topic>>> {
        let mut grouped: HashMap<BundleName, Vec<Arc<Topic>>> = HashMap::new();
        for topic in self.loaded_topics().await {
            if let Ok(bundle) = self.ctx.namespaces.bundle_of(topic.name()).await {
                grouped.entry(bundle).or_default().push(topic);
            }
        }
        grouped
    }

    /// Hands a bundle over: refuse new work on it, unload its topics, release ownership.
    /// False when this broker does not own it.
    pub async fn unload_bundle(&self, bundle: &BundleName) -> bool {
        if !self.ctx.namespaces.begin_unload(bundle) {
            return false;
        }
        let topics = self.topics_of_bundle(bundle).await;
        self.finish_unload(bundle, topics).await;
        true
    }

    /// The rest of an unload once the bundle refuses new work: its topics closed, its
    /// non-persistent topics stopped, its ownership released.
    async fn finish_unload(&self, bundle: &BundleName, topics: Vec<Arc<Topic>>) {
        tracing::info!(
            bundle = bundle.name(),
            topics = topics.len(),
            "unloading bundle"
        );
        // Each unload waits on the metadata service and the bookies (cursors written, the
        // ledger sealed): many at once, so the round trips overlap.
        futures::stream::iter(topics)
            .for_each_concurrent(UNLOAD_PARALLELISM, |topic| async move {
                self.unload_topic(topic.name()).await;
            })
            .await;
        for name in self.np_topics_of_bundle(bundle).await {
            self.unload_np_topic(&name).await;
        }
        self.ctx.namespaces.release(bundle).await;
    }

    /// Bundles this broker lost with its session: their topics stop at once (clients move
    /// to the next owner). Their ledgers may no longer be sealable; the next owner recovers.
    pub async fn drop_lost_bundles(&self, lost: &[BundleName]) {
        let mut grouped = self.topics_by_bundle().await;
        for bundle in lost {
            for name in self.np_topics_of_bundle(bundle).await {
                if let Some(topic) = self.np_map().remove(&name.to_string()) {
                    topic.unload();
                }
            }
            let topics = grouped.remove(bundle).unwrap_or_default();
            futures::stream::iter(topics)
                .for_each_concurrent(UNLOAD_PARALLELISM, |topic| async move {
                    let name = topic.name().clone();
                    let cell = self.topics.lock().await.remove(&name.to_string());
                    drop(cell);
                    // Closing may wait on the metadata service this broker cannot reach:
                    // bounded.
                    let closing =
                        tokio::time::timeout(std::time::Duration::from_secs(5), topic.unload());
                    if closing.await.is_err() {
                        tracing::warn!(topic = %name, "topic of a lost bundle did not close in time");
                    }
                })
                .await;
        }
    }

    /// Unloads every owned bundle (graceful shutdown): clients move to other brokers.
    pub async fn unload_all(&self) {
        // Every bundle refuses new work first, so that the topics grouped next are all there
        // will be; then a few bundles at once, each with its own bound: at most
        // 4 × UNLOAD_PARALLELISM topics closing together.
        let bundles: Vec<BundleName> = self
            .ctx
            .namespaces
            .owned_bundles()
            .into_iter()
            .filter(|bundle| self.ctx.namespaces.begin_unload(bundle))
            .collect();
        let mut grouped = self.topics_by_bundle().await;
        let work: Vec<(BundleName, Vec<Arc<Topic>>)> = bundles
            .into_iter()
            .map(|bundle| {
                let topics = grouped.remove(&bundle).unwrap_or_default();
                (bundle, topics)
            })
            .collect();
        futures::stream::iter(work)
            .for_each_concurrent(4, |(bundle, topics)| async move {
                self.finish_unload(&bundle, topics).await;
            })
            .await;
    }

    /// Drops a topic from the loaded set (before its storage is deleted).
    pub async fn forget_topic(&self, name: &TopicName) {
        self.topics.lock().await.remove(&name.to_string());
    }

    /// Unloads topics that stayed idle — no producer, no consumer — for `idle` (checked every
    /// `idle / 4`), until `cancel`: their ledgers are sealed and their memory freed; the next
    /// client loads them again.
    pub async fn unload_idle(&self, idle: std::time::Duration, cancel: CancellationToken) {
        let every = (idle / 4).clamp(
            std::time::Duration::from_millis(100),
            std::time::Duration::from_secs(60),
        );
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut idle_since: HashMap<String, std::time::Instant> = HashMap::new();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let now = std::time::Instant::now();
            let mut seen = HashMap::new();
            for topic in self.loaded_topics().await {
                if !topic.is_idle() {
                    continue;
                }
                let key = topic.name().to_string();
                let since = idle_since.get(&key).copied().unwrap_or(now);
                if now.duration_since(since) >= idle {
                    tracing::info!(topic = %topic.name(), ?idle, "unloading an idle topic");
                    self.unload_topic(topic.name()).await;
                } else {
                    seen.insert(key, since);
                }
            }
            idle_since = seen;
        }
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
            .ctx
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
        self.stop_np_topics();
        futures::stream::iter(self.loaded_topics().await)
            .for_each_concurrent(UNLOAD_PARALLELISM, |topic| async move {
                topic.close().await;
            })
            .await;
    }
}

/// The namespace's delayed-delivery policy (on, without a limit, when unset).
fn apply_delayed_delivery(topic: &Topic, policies: &Policies) {
    let delayed = policies.delayed_delivery_policies;
    topic.set_delayed_delivery(
        delayed.is_none_or(|policy| policy.active),
        delayed.map_or(0, |policy| {
            u64::try_from(policy.max_delivery_delay_in_millis).unwrap_or(0)
        }),
    );
}
