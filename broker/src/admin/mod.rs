//! The broker behind the admin API's topic, subscription, lookup and broker routes: the
//! [`TopicAdmin`] implementation over the [`BrokerService`]. Topics are loaded on demand, as a
//! client's lookup would; errors carry Pulsar's REST status (404 missing, 409 exists, 412 in use).

use std::sync::Arc;

use async_trait::async_trait;
use magnetar_admin_api::models::{
    CompactionStatus, LeaderBroker, LookupData, MessageIdBody, OffloadProcessStatus,
};
use magnetar_admin_api::{
    ApiError, CursorPosition, NamespaceName, PeekFrom, PeekedEntry, TopicAdmin,
};
use magnetar_protocol::{MessageId, TopicName};
use serde_json::Value;

use crate::cluster::bundles::BundleRange;
use crate::cluster::{BundleName, LookupAnswer};
use crate::compaction;
use crate::dispatch::SubType;
use crate::error::BrokerError;
use crate::position::Position;
use crate::service::BrokerService;
use crate::stats;
use crate::subscription_actor::{
    InitialPosition, SeekTarget, SubscriptionHandle, SubscriptionOptions,
};
use crate::topic::Topic;

mod non_persistent;

/// The [`TopicAdmin`] of one broker.
#[derive(Debug, Clone)]
pub struct BrokerAdmin {
    service: Arc<BrokerService>,
}

impl BrokerAdmin {
    pub fn new(service: Arc<BrokerService>) -> BrokerAdmin {
        BrokerAdmin { service }
    }

    /// A bundle of the namespace by its range; 412 if the namespace has no such bundle.
    async fn bundle_name(
        &self,
        namespace: &NamespaceName,
        range: &str,
    ) -> Result<BundleName, ApiError> {
        let range =
            BundleRange::parse(range).map_err(|e| ApiError::precondition_failed(e.to_string()))?;
        let ns = namespace.to_string();
        let (bundles, _) = self
            .service
            .ctx()
            .namespaces
            .bundles(&ns)
            .await
            .map_err(api_error)?;
        if !bundles.contains(range) {
            return Err(ApiError::precondition_failed(format!(
                "{range} is not a bundle of {ns}"
            )));
        }
        Ok(BundleName {
            namespace: ns,
            range,
        })
    }

    /// The loaded topic; 404 if it does not exist.
    async fn existing(&self, topic: &TopicName) -> Result<Arc<Topic>, ApiError> {
        self.service.topic(topic, false).await.map_err(api_error)
    }

    /// The subscription, loaded (with its cursor) if it exists; 404 otherwise.
    async fn subscription(
        &self,
        topic: &Arc<Topic>,
        name: &str,
    ) -> Result<SubscriptionHandle, ApiError> {
        if let Some(handle) = topic.loaded_subscription(name).await {
            return Ok(handle);
        }
        if !topic.subscription_names().await.iter().any(|s| s == name) {
            return Err(ApiError::not_found(format!(
                "Subscription {name} not found on {}",
                topic.name()
            )));
        }
        self.open_subscription(topic, name, InitialPosition::Latest)
            .await
    }

    async fn open_subscription(
        &self,
        topic: &Arc<Topic>,
        name: &str,
        initial_position: InitialPosition,
    ) -> Result<SubscriptionHandle, ApiError> {
        let options = SubscriptionOptions {
            sub_type: SubType::Exclusive,
            read_compacted: false,
            durable: true,
            initial_position,
            start_message_id: None,
            key_shared_allow_out_of_order: false,
            key_shared_sticky: false,
            partition_index: topic.name().partition(),
        };
        topic.subscription(name, options).await.map_err(api_error)
    }

    /// Moves the cursor, then closes the consumers so they re-subscribe from there (as a seek
    /// from a client does).
    async fn seek(&self, handle: &SubscriptionHandle, target: SeekTarget) -> Result<(), ApiError> {
        handle.seek(target).await.map_err(api_error)?;
        handle.disconnect_consumers();
        Ok(())
    }

    /// Where the cursor goes for `at`.
    fn target(topic: &Topic, at: CursorPosition) -> SeekTarget {
        match at {
            CursorPosition::Earliest => SeekTarget::MessageId(MessageId::EARLIEST),
            CursorPosition::Latest => SeekTarget::MessageId(MessageId::LATEST),
            CursorPosition::PublishTime { millis } => SeekTarget::PublishTime(millis),
            CursorPosition::MessageId {
                ledger_id,
                entry_id,
                excluded,
                ..
            } => {
                let position = Position::new(ledger_id, entry_id);
                let position = if excluded {
                    topic.managed_ledger().layout().next(position)
                } else {
                    position
                };
                SeekTarget::MessageId(MessageId::new(position.ledger_id, position.entry_id))
            }
        }
    }
}

/// Pulsar's REST status for a broker error.
fn api_error(e: BrokerError) -> ApiError {
    match e {
        BrokerError::TopicNotFound(_) | BrokerError::SubscriptionNotFound(_) => {
            ApiError::not_found(e.to_string())
        }
        BrokerError::InvalidTopicName(_) => ApiError::precondition_failed(e.to_string()),
        BrokerError::ConsumerBusy(_)
        | BrokerError::ProducerBusy(_)
        | BrokerError::ProducerFenced(_)
        | BrokerError::ConsumerAssign(_)
        | BrokerError::ProducerBlockedQuotaExceeded { .. } => {
            ApiError::precondition_failed(e.to_string())
        }
        BrokerError::NotAllowed(_) => ApiError::not_allowed(e.to_string()),
        BrokerError::IncompatibleSchema(_) => ApiError::conflict(e.to_string()),
        BrokerError::AuthenticationError(_) => ApiError::unauthorized(e.to_string()),
        BrokerError::AuthorizationError(_) => ApiError::forbidden(e.to_string()),
        BrokerError::NotOwner { ref owner, .. } => {
            match owner.http_url.as_ref().or(owner.http_url_tls.as_ref()) {
                Some(base) => ApiError::redirect(base.clone(), e.to_string()),
                None => ApiError::unavailable(e.to_string()),
            }
        }
        BrokerError::ServiceNotReady(_) | BrokerError::Metadata(_) => {
            ApiError::unavailable(e.to_string())
        }
        BrokerError::Persistence(_) | BrokerError::Unknown(_) => ApiError::internal(e.to_string()),
    }
}

#[async_trait]
impl TopicAdmin for BrokerAdmin {
    async fn list_topics(&self, namespace: &NamespaceName) -> Result<Vec<String>, ApiError> {
        let mut topics = self
            .service
            .topics_of_namespace(&namespace.to_string())
            .await
            .map_err(api_error)?;
        topics.sort();
        Ok(topics)
    }

    async fn list_non_persistent_topics(
        &self,
        namespace: &NamespaceName,
    ) -> Result<Vec<String>, ApiError> {
        self.np_list(namespace).await
    }

    async fn create_topic(&self, topic: &TopicName) -> Result<(), ApiError> {
        if !topic.is_persistent() {
            return self.np_create(topic).await;
        }
        if self.service.topic_exists(topic).await.map_err(api_error)? {
            return Err(ApiError::conflict(format!("Topic {topic} already exists")));
        }
        self.service.create_topic(topic).await.map_err(api_error)?;
        Ok(())
    }

    async fn delete_topic(&self, topic: &TopicName, force: bool) -> Result<(), ApiError> {
        if !topic.is_persistent() {
            return self.np_delete(topic, force).await;
        }
        let loaded = self.existing(topic).await?;
        let mut subscriptions = loaded.subscription_names().await;
        // Compaction's own cursor is not a subscription anyone made.
        subscriptions.retain(|s| s != compaction::CURSOR);
        if !force && (loaded.producer_count() > 0 || !subscriptions.is_empty()) {
            return Err(ApiError::precondition_failed(format!(
                "Topic {topic} has {} producers and {} subscriptions",
                loaded.producer_count(),
                subscriptions.len()
            )));
        }
        for handle in loaded.loaded_subscriptions().await {
            handle.disconnect_consumers();
            handle.close().await;
        }
        let compacted_ledger = loaded
            .managed_ledger()
            .property(compaction::PROPERTY)
            .as_deref()
            .and_then(compaction::parse_property);
        self.service.forget_topic(topic).await;
        self.service.ctx().metrics.rates.forget(&topic.to_string());
        loaded
            .managed_ledger()
            .delete()
            .await
            .map_err(|e| ApiError::internal(format!("deleting {topic}: {e}")))?;
        if let Some((ledger, _)) = compacted_ledger
            && let Err(e) = loaded.managed_ledger().ledger_client().delete(ledger).await
        {
            tracing::warn!(%topic, ledger, error = %e, "deleting the compacted ledger failed; it stays as an orphan");
        }
        tracing::info!(%topic, force, "topic deleted");
        Ok(())
    }

    async fn topic_stats(&self, topic: &TopicName) -> Result<Value, ApiError> {
        if !topic.is_persistent() {
            return self.np_stats(topic).await;
        }
        let loaded = self.existing(topic).await?;
        Ok(stats::snapshot(&loaded, &self.service.ctx().metrics.rates)
            .await
            .to_json())
    }

    async fn internal_stats(&self, topic: &TopicName) -> Result<Value, ApiError> {
        if !topic.is_persistent() {
            return self.np_internal_stats(topic).await;
        }
        let loaded = self.existing(topic).await?;
        Ok(stats::internal_stats(&loaded).await)
    }

    async fn list_subscriptions(&self, topic: &TopicName) -> Result<Vec<String>, ApiError> {
        if !topic.is_persistent() {
            return self.np_subscriptions(topic).await;
        }
        Ok(self.existing(topic).await?.subscription_names().await)
    }

    async fn create_subscription(
        &self,
        topic: &TopicName,
        subscription: &str,
        at: CursorPosition,
    ) -> Result<(), ApiError> {
        let loaded = self.existing(topic).await?;
        if loaded
            .subscription_names()
            .await
            .iter()
            .any(|s| s == subscription)
        {
            return Err(ApiError::conflict(format!(
                "Subscription {subscription} already exists on {topic}"
            )));
        }
        let initial = match at {
            CursorPosition::Earliest => InitialPosition::Earliest,
            _ => InitialPosition::Latest,
        };
        let handle = self
            .open_subscription(&loaded, subscription, initial)
            .await?;
        if !matches!(at, CursorPosition::Earliest | CursorPosition::Latest) {
            self.seek(&handle, Self::target(&loaded, at)).await?;
        }
        Ok(())
    }

    async fn delete_subscription(
        &self,
        topic: &TopicName,
        subscription: &str,
        force: bool,
    ) -> Result<(), ApiError> {
        if !topic.is_persistent() {
            return self
                .np_delete_subscription(topic, subscription, force)
                .await;
        }
        let loaded = self.existing(topic).await?;
        let handle = self.subscription(&loaded, subscription).await?;
        if handle.has_consumers().await {
            if !force {
                return Err(ApiError::precondition_failed(format!(
                    "Subscription {subscription} has active consumers"
                )));
            }
            handle.disconnect_consumers();
        }
        handle.close().await;
        loaded
            .remove_subscription(subscription)
            .await
            .map_err(api_error)
    }

    async fn skip_messages(
        &self,
        topic: &TopicName,
        subscription: &str,
        count: Option<u64>,
    ) -> Result<(), ApiError> {
        let loaded = self.existing(topic).await?;
        let handle = self.subscription(&loaded, subscription).await?;
        let target = match count {
            None => MessageId::LATEST,
            Some(n) => {
                let layout = loaded.managed_ledger().layout();
                let end = layout.end_position();
                let mut next = layout.next(handle.mark_delete().await.unwrap_or(end));
                for _ in 0..n {
                    if next >= end {
                        break;
                    }
                    next = layout.next(next);
                }
                let next = next.min(end);
                MessageId::new(next.ledger_id, next.entry_id)
            }
        };
        self.seek(&handle, SeekTarget::MessageId(target)).await
    }

    async fn reset_cursor(
        &self,
        topic: &TopicName,
        subscription: &str,
        to: CursorPosition,
    ) -> Result<(), ApiError> {
        let loaded = self.existing(topic).await?;
        let handle = self.subscription(&loaded, subscription).await?;
        self.seek(&handle, Self::target(&loaded, to)).await
    }

    async fn expire_messages(
        &self,
        topic: &TopicName,
        subscription: &str,
        age_secs: u64,
    ) -> Result<(), ApiError> {
        let loaded = self.existing(topic).await?;
        let handle = self.subscription(&loaded, subscription).await?;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        handle.expire_before(now_ms.saturating_sub(age_secs.saturating_mul(1000)));
        // The subscription's task handles its messages in order: once it answers this, the
        // expiry above is done.
        handle.stats().await;
        Ok(())
    }

    async fn unload_topic(&self, topic: &TopicName) -> Result<(), ApiError> {
        if !topic.is_persistent() {
            return self.np_unload(topic).await;
        }
        // Redirects to the owner, or 404 for a topic that does not exist.
        self.existing(topic).await?;
        self.service.unload_topic(topic).await;
        Ok(())
    }

    async fn compact(&self, topic: &TopicName) -> Result<(), ApiError> {
        let loaded = self.existing(topic).await?;
        if loaded.start_compaction() {
            Ok(())
        } else {
            Err(ApiError::conflict(format!(
                "Compaction already in progress for {topic}"
            )))
        }
    }

    async fn compaction_status(&self, topic: &TopicName) -> Result<CompactionStatus, ApiError> {
        let loaded = self.existing(topic).await?;
        let status = loaded.compacted().status();
        let state = serde_json::to_value(status.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        Ok(CompactionStatus {
            status: state,
            last_error: status.last_error,
        })
    }

    async fn offload(&self, topic: &TopicName, until: &MessageIdBody) -> Result<(), ApiError> {
        let loaded = self.existing(topic).await?;
        let until = Position::new(until.ledger_id, until.entry_id);
        match loaded.managed_ledger().request_offload(until) {
            Ok(true) => Ok(()),
            Ok(false) => Err(ApiError::conflict(format!(
                "Offload already running for {topic}"
            ))),
            Err(e) => Err(ApiError::bad_request(e.to_string())),
        }
    }

    async fn offload_status(&self, topic: &TopicName) -> Result<OffloadProcessStatus, ApiError> {
        let loaded = self.existing(topic).await?;
        let status = loaded.managed_ledger().offload_status();
        let partition_index = topic.partition().map_or(-1, |p| p as i32);
        Ok(OffloadProcessStatus {
            status: status.progress.as_str().to_string(),
            last_error: status.last_error,
            first_unoffloaded_message: status.first_unoffloaded.map(|p| MessageIdBody {
                ledger_id: p.ledger_id,
                entry_id: p.entry_id,
                partition_index,
                ..MessageIdBody::default()
            }),
        })
    }

    async fn lookup(&self, topic: &TopicName, authoritative: bool) -> Result<LookupData, ApiError> {
        let answer = self
            .service
            .ctx()
            .namespaces
            .lookup(topic, authoritative)
            .await
            .map_err(api_error)?;
        match answer {
            LookupAnswer::Connect(owner) => Ok(LookupData {
                broker_url: owner.native_url,
                broker_url_tls: owner.native_url_tls,
                http_url: owner.http_url.unwrap_or_default(),
                http_url_tls: owner.http_url_tls,
            }),
            LookupAnswer::Redirect(target) => {
                match target.web_service_url.or(target.web_service_url_tls) {
                    Some(base) => Err(ApiError::redirect(
                        base,
                        format!("{} was chosen to serve {topic}", target.broker_id),
                    )),
                    None => Err(ApiError::unavailable(format!(
                        "{} was chosen to serve {topic} but has no HTTP service",
                        target.broker_id
                    ))),
                }
            }
        }
    }

    async fn active_brokers(&self, cluster: &str) -> Result<Vec<String>, ApiError> {
        if cluster != self.service.ctx().config.cluster {
            return Ok(Vec::new());
        }
        Ok(self
            .service
            .ctx()
            .namespaces
            .live_brokers()
            .into_iter()
            .filter(|b| b.cluster == cluster)
            .map(|b| b.broker_id)
            .collect())
    }

    async fn leader_broker(&self) -> Result<LeaderBroker, ApiError> {
        let ctx = self.service.ctx();
        let live: Vec<_> = ctx
            .namespaces
            .live_brokers()
            .into_iter()
            .filter(|b| b.cluster == ctx.config.cluster)
            .collect();
        let auditor = magnetar_bookie::autorecovery::auditor(&ctx.metadata)
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        let leader = match auditor {
            Some(elected) => live.iter().find(|b| b.broker_id == elected.owner),
            None if live.len() == 1 => live.first(),
            None => None,
        };
        let Some(leader) = leader else {
            return Err(ApiError::not_found(
                "no broker is elected: autorecovery (autorecovery_enabled), whose auditor leads, \
                 runs on no live broker",
            ));
        };
        Ok(LeaderBroker {
            broker_id: leader.broker_id.clone(),
            service_url: leader
                .web_service_url
                .clone()
                .unwrap_or_else(|| leader.pulsar_service_url.clone()),
        })
    }

    async fn unload_bundle(
        &self,
        namespace: &NamespaceName,
        bundle: Option<&str>,
    ) -> Result<(), ApiError> {
        let namespaces = &self.service.ctx().namespaces;
        let Some(range) = bundle else {
            let ns = namespace.to_string();
            for owned in namespaces.owned_bundles() {
                if owned.namespace == ns {
                    self.service.unload_bundle(&owned).await;
                }
            }
            return Ok(());
        };
        let bundle = self.bundle_name(namespace, range).await?;
        if self.service.unload_bundle(&bundle).await {
            return Ok(());
        }
        match namespaces.owner_of(&bundle) {
            Some(owner) if owner.broker_id != namespaces.broker_id() => {
                Err(api_error(BrokerError::NotOwner {
                    message: format!("bundle {} is owned by {}", bundle.name(), owner.broker_id),
                    owner: Box::new(owner),
                }))
            }
            // Unowned: nothing to unload.
            _ => Ok(()),
        }
    }

    async fn split_bundle(&self, namespace: &NamespaceName, range: &str) -> Result<(), ApiError> {
        let namespaces = &self.service.ctx().namespaces;
        let bundle = self.bundle_name(namespace, range).await?;
        if let Some(owner) = namespaces.owner_of(&bundle)
            && owner.broker_id != namespaces.broker_id()
        {
            return Err(api_error(BrokerError::NotOwner {
                message: format!("bundle {} is owned by {}", bundle.name(), owner.broker_id),
                owner: Box::new(owner),
            }));
        }
        // New boundaries first (claims of the old range fail from now on), then hand the old
        // range's topics over: they come back under the halves.
        namespaces.split(&bundle).await.map_err(api_error)?;
        self.service.unload_bundle(&bundle).await;
        tracing::info!(bundle = bundle.name(), "bundle split");
        Ok(())
    }

    async fn bundle_owners(
        &self,
        namespace: &NamespaceName,
    ) -> Result<std::collections::BTreeMap<String, String>, ApiError> {
        let ns = namespace.to_string();
        Ok(self
            .service
            .ctx()
            .namespaces
            .all_owners()
            .into_iter()
            .filter(|(bundle, _)| bundle.namespace == ns)
            .map(|(bundle, owner)| (bundle.range.to_string(), owner.broker_id))
            .collect())
    }

    async fn health_check(&self) -> Result<(), ApiError> {
        let key = magnetar_admin_api::keys::cluster(&self.service.ctx().config.cluster);
        self.service
            .ctx()
            .metadata
            .get(&key)
            .await
            .map_err(|e| ApiError::unavailable(format!("metadata service: {e}")))?;
        Ok(())
    }

    async fn peek_entry(
        &self,
        topic: &TopicName,
        from: PeekFrom,
        n: u64,
    ) -> Result<PeekedEntry, ApiError> {
        let loaded = self.existing(topic).await?;
        let ml = loaded.managed_ledger();
        let layout = ml.layout();
        let end = ml
            .last_confirmed()
            .map_or(layout.end_position(), |p| layout.next(p));
        let not_found = || ApiError::not_found(format!("No message at position {n} of {topic}"));
        let steps = n.saturating_sub(1);
        let at = match from {
            PeekFrom::Subscription(name) => {
                let handle = self.subscription(&loaded, &name).await?;
                let start = layout.next(handle.mark_delete().await.unwrap_or(end));
                forward(&layout, start, steps, end)
            }
            PeekFrom::Earliest => {
                let start = layout.first_position().ok_or_else(not_found)?;
                forward(&layout, start, steps, end)
            }
            PeekFrom::Latest => {
                let mut at = ml.last_confirmed().ok_or_else(not_found)?;
                for _ in 0..steps {
                    at = layout.prev(at);
                    if at.entry_id < 0 {
                        return Err(not_found());
                    }
                }
                at
            }
        };
        if at >= end {
            return Err(not_found());
        }
        let entries = ml
            .read_positions(&[at])
            .await
            .map_err(|e| ApiError::internal(format!("reading {at:?}: {e}")))?;
        let (position, bytes) = entries.into_iter().next().ok_or_else(not_found)?;
        let payload = magnetar_protocol::Payload::parse(bytes)
            .map_err(|e| ApiError::internal(format!("entry {position:?} is unreadable: {e}")))?;
        let metadata = payload
            .metadata()
            .map_err(|e| ApiError::internal(format!("entry {position:?} has bad metadata: {e}")))?;
        let body = payload.body();
        let limit = self.service.ctx().config.max_message_size.max(body.len()) * 16;
        let data = match metadata.compression.unwrap_or(0) {
            0 => body.to_vec(),
            codec => magnetar_protocol::compression::decompress(
                codec,
                &body,
                metadata.uncompressed_size.unwrap_or(0) as usize,
                limit,
            )
            .map_err(|e| ApiError::internal(format!("decompressing {position:?}: {e}")))?,
        };
        Ok(PeekedEntry {
            ledger_id: position.ledger_id as u64,
            entry_id: position.entry_id as u64,
            metadata,
            payload: data,
        })
    }
}

/// The entry `steps` entries after `start`, or `end` if the topic ends first.
fn forward(
    layout: &crate::position::LedgerLayout,
    start: Position,
    steps: u64,
    end: Position,
) -> Position {
    let mut at = start;
    for _ in 0..steps {
        if at >= end {
            break;
        }
        at = layout.next(at);
    }
    at.min(end)
}
