//! A persistent topic on this broker: its managed ledger, its producers and its subscriptions.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use magnetar_admin_api::models::RetentionPolicy;
use magnetar_protocol::TopicName;

use crate::compaction::{self, CompactedTopic, CompactionReport};
use crate::dedup::{Dedup, Mark};
use crate::error::BrokerError;
use crate::limits;
use crate::managed_ledger::{ManagedLedger, ManagedLedgerConfig, MlError};
use crate::position::Position;
use crate::subscription_actor::{
    DelayedDelivery, SubscriptionHandle, SubscriptionOptions, TopicView,
};
use crate::topic_context::{TopicContext, TopicCounters};
use crate::topic_producers::{EPOCH_PROPERTY, Join, Joined, Producers};
use crate::topic_replication::{InboundStats, ReplicatorHandle, ReplicatorStats, SubscriptionSync};

pub use crate::topic_producers::{AccessMode, ProducerCloser, ProducerOwner};

/// The managed ledger name of a persistent topic: `tenant/ns/persistent/local`.
pub fn managed_ledger_name(topic: &TopicName) -> String {
    format!(
        "{}/{}/persistent/{}",
        topic.tenant(),
        topic.namespace_local(),
        topic.local_name()
    )
}

#[derive(Debug)]
pub struct Topic {
    name: TopicName,
    ml: ManagedLedger,
    producers: Mutex<Producers>,
    /// Set once the topic is unloading: no producer or subscription may join.
    unloading: std::sync::atomic::AtomicBool,
    subscriptions: tokio::sync::Mutex<HashMap<String, SubscriptionHandle>>,
    pub counters: Arc<TopicCounters>,
    context: TopicContext,
    /// The backlog quota policy this topic exceeds now, if any (the broker's policy check
    /// sets it): new producers are refused while it is set.
    quota_exceeded: Mutex<Option<RetentionPolicy>>,
    /// Message deduplication, and the marks of entries replicated into this topic.
    dedup: Dedup,
    /// Replicators to other clusters, by remote cluster.
    replicators: tokio::sync::Mutex<HashMap<String, ReplicatorHandle>>,
    /// Entries replicated into this topic, by source cluster.
    inbound: Mutex<HashMap<String, Arc<InboundStats>>>,
    /// Replicated subscriptions and what they need to follow consumers across clusters.
    subscription_sync: SubscriptionSync,
    /// The compacted view read by `read_compacted` subscriptions, and compaction's status.
    compacted: Arc<CompactedTopic>,
    /// The namespace's delayed-delivery policy, read by the subscriptions.
    delayed_delivery: Arc<DelayedDelivery>,
}

fn ml_error(e: MlError) -> BrokerError {
    match e {
        MlError::Fenced => BrokerError::ServiceNotReady("topic is owned by another broker".into()),
        other => BrokerError::Persistence(other.to_string()),
    }
}

impl Topic {
    /// Opens the topic's managed ledger with `config` (the namespace's persistence, the
    /// ownership guard of its bundle) and restores its deduplication state.
    pub(crate) async fn load(
        name: TopicName,
        config: ManagedLedgerConfig,
        context: TopicContext,
        dedup_enabled: bool,
    ) -> Result<Topic, BrokerError> {
        let ml = ManagedLedger::open(&managed_ledger_name(&name), context.ledgers.clone(), config)
            .await
            .map_err(ml_error)?;
        let dedup = match Dedup::load(&ml, dedup_enabled, context.dedup).await {
            Ok(dedup) => dedup,
            Err(e) => {
                let _ = ml.close().await;
                return Err(ml_error(e));
            }
        };
        let epoch = ml
            .property(EPOCH_PROPERTY)
            .and_then(|e| e.parse().ok())
            .unwrap_or(0);
        Ok(Topic {
            dedup,
            replicators: tokio::sync::Mutex::default(),
            inbound: Mutex::default(),
            subscription_sync: Default::default(),
            name,
            ml,
            producers: Mutex::new(Producers::with_epoch(epoch)),
            unloading: Default::default(),
            subscriptions: tokio::sync::Mutex::default(),
            counters: Arc::default(),
            context,
            quota_exceeded: Mutex::default(),
            delayed_delivery: Arc::default(),
            compacted: Arc::default(),
        })
    }

    /// The topic as its subscriptions see it.
    fn view(&self) -> TopicView {
        TopicView {
            name: self.name.clone(),
            ml: self.ml.clone(),
            counters: self.counters.clone(),
            max_frame_size: self.context.max_frame_size,
            limits: self.context.limits,
            guards: self.context.guards.clone(),
            delayed_delivery: self.delayed_delivery.clone(),
            compacted: self.compacted.clone(),
        }
    }

    pub fn name(&self) -> &TopicName {
        &self.name
    }

    pub fn managed_ledger(&self) -> &ManagedLedger {
        &self.ml
    }

    fn producers(&self) -> MutexGuard<'_, Producers> {
        self.producers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a producer as its access mode allows (see `topic_producers`); a name held by
    /// another producer is `ProducerBusy`. An exclusive takeover's new epoch is persisted by
    /// [`Topic::persist_epoch`] before the client is answered.
    pub fn add_producer(&self, join: Join) -> Result<Joined, BrokerError> {
        if self.is_unloading() {
            return Err(self.unloading_error());
        }
        if let Some(policy) = *self.quota_lock() {
            return Err(BrokerError::ProducerBlockedQuotaExceeded {
                message: format!(
                    "topic {} exceeds its namespace's backlog quota ({policy:?})",
                    self.name
                ),
                exception: policy == RetentionPolicy::ProducerException,
            });
        }
        let max = TopicCounters::tighter(
            self.context.limits.max_producers,
            &self.counters.policy_max_producers,
        );
        let fits = |n| {
            let fits = !limits::reached(n, max);
            if !fits {
                self.context.guards.refused("max_producers_per_topic");
            }
            fits
        };
        self.producers()
            .join(join, fits)
            .map_err(|e| self.about_topic(e))
    }

    /// Names the topic in a producer refusal.
    fn about_topic(&self, e: BrokerError) -> BrokerError {
        match e {
            BrokerError::ProducerBusy(m) => {
                BrokerError::ProducerBusy(format!("{}: {m}", self.name))
            }
            BrokerError::ProducerFenced(m) => {
                BrokerError::ProducerFenced(format!("{}: {m}", self.name))
            }
            other => other,
        }
    }

    /// Applies the topic policy's producer and consumer limits (None or 0: none), checked when
    /// a producer or consumer joins.
    pub fn set_policy_limits(&self, max_producers: Option<i32>, max_consumers: Option<i32>) {
        let limit = |n: Option<i32>| n.map_or(0, |n| n.max(0) as u64);
        self.counters
            .policy_max_producers
            .store(limit(max_producers), Ordering::Relaxed);
        self.counters
            .policy_max_consumers
            .store(limit(max_consumers), Ordering::Relaxed);
    }

    /// Records the topic epoch an exclusive producer's takeover moved to (in the managed
    /// ledger's properties, so a reloaded topic still fences producers of older epochs).
    pub async fn persist_epoch(&self, epoch: u64) -> Result<(), BrokerError> {
        self.ml
            .set_property(EPOCH_PROPERTY, epoch.to_string())
            .await
            .map_err(ml_error)
    }

    /// Applies the namespace's delayed-delivery policy: off releases every message the
    /// subscriptions hold; `max_delay_ms` (0: none) caps how long one is held.
    pub fn set_delayed_delivery(&self, enabled: bool, max_delay_ms: u64) {
        self.delayed_delivery
            .enabled
            .store(enabled, Ordering::Relaxed);
        self.delayed_delivery
            .max_delay_ms
            .store(max_delay_ms, Ordering::Relaxed);
    }

    fn quota_lock(&self) -> MutexGuard<'_, Option<RetentionPolicy>> {
        self.quota_exceeded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records whether the topic exceeds its backlog quota (`policy`) or not (`None`); true
    /// when it newly exceeds it.
    pub fn set_quota_exceeded(&self, policy: Option<RetentionPolicy>) -> bool {
        let mut current = self.quota_lock();
        let newly = current.is_none() && policy.is_some();
        *current = policy;
        newly
    }

    /// Closes every producer from the broker's side (CLOSE_PRODUCER); clients reconnect and
    /// are told why their new producer is refused.
    pub fn disconnect_producers(&self) {
        let why = self.unloading_error();
        self.producers().disconnect_all(&why);
    }

    /// The producer left; a producer waiting for exclusive access may take the topic now.
    pub fn remove_producer(&self, name: &str, owner: ProducerOwner) {
        self.producers().leave(name, owner);
    }

    pub fn is_unloading(&self) -> bool {
        self.unloading.load(Ordering::Acquire)
    }

    fn unloading_error(&self) -> BrokerError {
        BrokerError::ServiceNotReady(format!("topic {} is being unloaded", self.name))
    }

    /// No producer and no consumer (of any subscription) is attached.
    pub fn is_idle(&self) -> bool {
        self.producer_count() == 0
            && self.counters.consumers.load(Ordering::Relaxed) == 0
            && !self.replication_pending()
    }

    pub fn producer_count(&self) -> usize {
        self.producers().len()
    }

    pub fn producer_names(&self) -> Vec<String> {
        self.producers().names()
    }

    pub fn dedup(&self) -> &Dedup {
        &self.dedup
    }

    pub fn subscription_sync(&self) -> &SubscriptionSync {
        &self.subscription_sync
    }

    pub async fn replicator_remotes(&self) -> Vec<String> {
        let mut remotes: Vec<String> = self.replicators.lock().await.keys().cloned().collect();
        remotes.sort();
        remotes
    }

    pub async fn has_replicator(&self, remote: &str) -> bool {
        self.replicators.lock().await.contains_key(remote)
    }

    /// Registers a replicator; returns one it replaces. A topic that is unloading stops it.
    pub async fn add_replicator(
        &self,
        remote: &str,
        handle: ReplicatorHandle,
    ) -> Option<ReplicatorHandle> {
        let mut replicators = self.replicators.lock().await;
        if self.is_unloading() {
            drop(replicators);
            handle.stop().await;
            return None;
        }
        replicators.insert(remote.to_string(), handle)
    }

    pub async fn remove_replicator(&self, remote: &str) -> Option<ReplicatorHandle> {
        self.replicators.lock().await.remove(remote)
    }

    /// Each replicator's figures, by remote cluster.
    pub async fn replicator_stats(&self) -> Vec<(String, Arc<ReplicatorStats>)> {
        let mut stats: Vec<_> = self
            .replicators
            .lock()
            .await
            .iter()
            .map(|(remote, h)| (remote.clone(), h.stats.clone()))
            .collect();
        stats.sort_by(|a, b| a.0.cmp(&b.0));
        stats
    }

    /// The counters of entries replicated in from `source`.
    pub fn inbound(&self, source: &str) -> Arc<InboundStats> {
        self.inbound
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(source.to_string())
            .or_default()
            .clone()
    }

    pub fn inbound_stats(&self) -> Vec<(String, Arc<InboundStats>)> {
        let mut stats: Vec<_> = self
            .inbound
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        stats.sort_by(|a, b| a.0.cmp(&b.0));
        stats
    }

    /// Whether a replicator still has entries to send (an idle topic with a backlog to
    /// replicate is not unloaded).
    fn replication_pending(&self) -> bool {
        self.replicators
            .try_lock()
            .map_or(true, |r| r.values().any(|h| h.stats.backlog(&self.ml) > 0))
    }

    /// Appends one entry (a message or a batch as the producer sent it); resolves once durable.
    /// `tracked` names the producer and mark the deduplication check passed, recorded as
    /// persisted once the entry is durable.
    pub fn publish(
        self: &Arc<Self>,
        entry: Bytes,
        num_messages: u32,
        tracked: Option<(String, Mark)>,
    ) -> impl Future<Output = Result<Position, BrokerError>> + Send + 'static {
        let size = entry.len() as u64;
        let append = self.ml.append(entry);
        let counters = self.counters.clone();
        let latency = self.context.publish_latency.clone();
        let started = Instant::now();
        let topic = tracked.as_ref().map(|_| self.clone());
        async move {
            let appended = append.await;
            if let (Some(topic), Some((producer, mark))) = (topic, tracked) {
                match &appended {
                    Ok(_) => topic.dedup.persisted(&producer, mark),
                    Err(_) => topic.dedup.failed(&producer),
                }
            }
            let position = appended.map_err(ml_error)?;
            latency.observe(started.elapsed().as_secs_f64());
            counters
                .msg_in
                .fetch_add(u64::from(num_messages), Ordering::Relaxed);
            counters.bytes_in.fetch_add(size, Ordering::Relaxed);
            Ok(position)
        }
    }

    /// The last entry and how many messages it holds (read back from storage, so it is right
    /// after a restart too).
    pub async fn last_entry(&self) -> Result<Option<(Position, u32)>, BrokerError> {
        let Some(last) = self.ml.last_confirmed() else {
            return Ok(None);
        };
        if !self.ml.layout().contains(last) {
            // Trimmed: the topic holds no entry at all (a reader has nothing to wait for).
            return Ok(None);
        }
        let entries = self.ml.read_positions(&[last]).await.map_err(ml_error)?;
        let messages = entries
            .first()
            .and_then(|(_, bytes)| magnetar_protocol::Payload::parse(bytes.clone()).ok())
            .and_then(|payload| payload.metadata().ok())
            .and_then(|metadata| metadata.num_messages_in_batch)
            .unwrap_or(1);
        Ok(Some((last, messages.max(1) as u32)))
    }

    /// The largest batch compaction decompresses.
    pub fn compaction_limit(&self) -> usize {
        self.context.max_frame_size.saturating_mul(16)
    }

    pub fn compacted(&self) -> &Arc<CompactedTopic> {
        &self.compacted
    }

    /// Starts compacting the topic in the background; false if a compaction is running.
    pub fn start_compaction(self: &Arc<Self>) -> bool {
        if !self.compacted.start() {
            return false;
        }
        let topic = self.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let result = topic.compact_now().await;
            if let Err(e) = &result {
                tracing::warn!(topic = %topic.name, error = %e, "compaction failed");
            }
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            topic
                .compacted
                .finish(&result, now_ms, started.elapsed().as_millis() as u64);
        });
        true
    }

    /// Bytes not compacted yet: after the compaction cursor, or everything before the first
    /// compaction.
    pub fn uncompacted_bytes(&self) -> u64 {
        match self.ml.cursor(compaction::CURSOR) {
            Some(cursor) => self.ml.bytes_after(cursor.stats().persisted_mark_delete),
            None => self.ml.size_bytes(),
        }
    }

    async fn compact_now(&self) -> Result<CompactionReport, MlError> {
        compaction::compact(&self.ml, &self.compacted, self.compaction_limit()).await
    }

    /// The subscription, created (with its cursor) if it does not exist and creation is allowed.
    pub async fn subscription(
        &self,
        name: &str,
        options: SubscriptionOptions,
    ) -> Result<SubscriptionHandle, BrokerError> {
        let mut subscriptions = self.subscriptions.lock().await;
        if self.is_unloading() {
            return Err(self.unloading_error());
        }
        // Readers' subscriptions end with their reader: forget them.
        subscriptions.retain(|_, s| !s.is_closed());
        if let Some(existing) = subscriptions.get(name).cloned() {
            if existing.kind() == options.kind() {
                return Ok(existing);
            }
            if existing.has_consumers().await {
                return Err(BrokerError::ConsumerBusy(format!(
                    "subscription {name} is {:?}, not {:?} (type, Key_Shared policy and read-compacted must match)",
                    existing.kind(),
                    options.kind()
                )));
            }
            // A new type with nobody on the old one: the old task gives the cursor back first.
            existing.close().await;
            subscriptions.remove(name);
        }
        if crate::dedup::is_system_cursor(name) || name == compaction::CURSOR {
            return Err(BrokerError::NotAllowed(format!(
                "subscription name {name} is reserved for the broker"
            )));
        }
        let cursors = self.ml.cursor_names();
        let exists = cursors.iter().any(|c| c == name);
        if options.durable && !exists && !self.context.allow_auto_subscription_creation {
            return Err(BrokerError::SubscriptionNotFound(name.to_string()));
        }
        let count = cursors.len().max(subscriptions.len());
        if !exists && limits::reached(count, self.context.limits.max_subscriptions) {
            self.context.guards.refused("max_subscriptions_per_topic");
            return Err(BrokerError::NotAllowed(format!(
                "topic {} reached the maximum of {} subscriptions (limits.max_subscriptions_per_topic)",
                self.name, self.context.limits.max_subscriptions
            )));
        }
        let handle = SubscriptionHandle::start(self.view(), name.to_string(), options).await?;
        subscriptions.insert(name.to_string(), handle.clone());
        Ok(handle)
    }

    pub async fn subscription_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.ml.cursor_names();
        names.retain(|n| !crate::dedup::is_system_cursor(n));
        for name in self.subscriptions.lock().await.keys() {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names.sort();
        names
    }

    /// A running subscription, if a consumer or the admin API has loaded it.
    pub async fn loaded_subscription(&self, name: &str) -> Option<SubscriptionHandle> {
        self.subscriptions
            .lock()
            .await
            .get(name)
            .filter(|s| !s.is_closed())
            .cloned()
    }

    pub async fn loaded_subscriptions(&self) -> Vec<SubscriptionHandle> {
        self.subscriptions.lock().await.values().cloned().collect()
    }

    /// Backlog eviction: every subscription acknowledges everything through `through` —
    /// loaded ones in their task, idle cursors in the managed ledger.
    pub async fn skip_backlog_through(&self, through: Position) {
        let loaded = self.subscriptions.lock().await.clone();
        for name in self.ml.cursor_names() {
            if crate::dedup::is_system_cursor(&name) {
                continue; // replication keeps its backlog; dedup's cursor is its snapshot
            }
            match loaded.get(&name).filter(|s| !s.is_closed()) {
                Some(subscription) => subscription.skip_through(through),
                None => {
                    self.ml.skip_idle_cursor(&name, through);
                }
            }
        }
    }

    /// Forgets a subscription (after unsubscribe).
    pub async fn remove_subscription(&self, name: &str) -> Result<(), BrokerError> {
        self.subscriptions.lock().await.remove(name);
        match self.ml.delete_cursor(name).await {
            Ok(()) => Ok(()),
            Err(e) => Err(ml_error(e)),
        }
    }

    /// Unloads the topic from this broker: producers get CLOSE_PRODUCER and consumers
    /// CLOSE_CONSUMER (clients look the topic up again and reconnect wherever it goes next),
    /// then cursors are flushed and the ledger sealed.
    pub async fn unload(&self) {
        self.unloading.store(true, Ordering::Release);
        self.disconnect_producers();
        let subscriptions: Vec<SubscriptionHandle> =
            self.subscriptions.lock().await.values().cloned().collect();
        for subscription in &subscriptions {
            subscription.disconnect_consumers();
        }
        self.close().await;
    }

    /// Flushes cursors and seals the current ledger.
    pub async fn close(&self) {
        self.unloading.store(true, Ordering::Release);
        let subscriptions: Vec<SubscriptionHandle> =
            self.subscriptions.lock().await.values().cloned().collect();
        for subscription in subscriptions {
            subscription.close().await;
        }
        let replicators: Vec<ReplicatorHandle> = self
            .replicators
            .lock()
            .await
            .drain()
            .map(|(_, h)| h)
            .collect();
        for replicator in replicators {
            replicator.stop().await;
        }
        self.dedup.close(&self.ml).await;
        if let Err(e) = self.ml.close().await {
            tracing::warn!(topic = %self.name, error = %e, "closing the managed ledger failed");
        }
    }
}
