//! The admin API's operations on non-persistent topics: listed from the cluster's registry,
//! served by the owner (others redirect), with Pulsar's `NonPersistentTopicStats`.

use magnetar_admin_api::{ApiError, NamespaceName};
use magnetar_protocol::TopicName;
use serde_json::{Value, json};
use std::sync::Arc;

use super::{BrokerAdmin, api_error};
use crate::error::BrokerError;
use crate::non_persistent::{self, NpTopic};

impl BrokerAdmin {
    /// The topic on its owner (307 from other brokers); 404 when it is not loaded there
    /// (looking never loads it).
    async fn np_existing(&self, topic: &TopicName) -> Result<Arc<NpTopic>, ApiError> {
        self.service
            .ctx()
            .namespaces
            .ensure_owned(topic)
            .await
            .map_err(api_error)?;
        self.service
            .loaded_np_topic(topic)
            .filter(|t| !t.is_unloading())
            .ok_or_else(|| api_error(BrokerError::TopicNotFound(topic.to_string())))
    }

    pub(super) async fn np_list(&self, namespace: &NamespaceName) -> Result<Vec<String>, ApiError> {
        let mut topics = self
            .service
            .np_topics_of_namespace(&namespace.to_string())
            .await
            .map_err(api_error)?;
        topics.sort();
        Ok(topics)
    }

    pub(super) async fn np_create(&self, topic: &TopicName) -> Result<(), ApiError> {
        let namespace = topic.namespace();
        let known = self
            .service
            .np_topics_of_namespace(&namespace)
            .await
            .map_err(api_error)?;
        if known.contains(&topic.to_string()) {
            return Err(ApiError::conflict(format!("Topic {topic} already exists")));
        }
        self.service
            .create_np_topic(topic)
            .await
            .map_err(api_error)?;
        Ok(())
    }

    /// Unloads the topic (its clients are closed); 412 while it has producers or
    /// subscriptions, unless `force`.
    pub(super) async fn np_delete(&self, topic: &TopicName, force: bool) -> Result<(), ApiError> {
        let loaded = self.np_existing(topic).await?;
        let subscriptions = loaded.subscriptions().len();
        if !force && (loaded.producer_count() > 0 || subscriptions > 0) {
            return Err(ApiError::precondition_failed(format!(
                "Topic {topic} has {} producers and {subscriptions} subscriptions",
                loaded.producer_count(),
            )));
        }
        self.service.unload_np_topic(topic).await;
        tracing::info!(%topic, force, "non-persistent topic deleted");
        Ok(())
    }

    pub(super) async fn np_stats(&self, topic: &TopicName) -> Result<Value, ApiError> {
        let loaded = match self.np_existing(topic).await {
            // A partition nobody uses now is not loaded: its figures are all zero.
            Err(e)
                if e.status == axum::http::StatusCode::NOT_FOUND && topic.partition().is_some() =>
            {
                let parent = topic.partitioned_topic();
                if self.service.partitions(&parent).await.map_err(api_error)? == 0 {
                    return Err(e);
                }
                let context = self.service.ctx().topic_context();
                Arc::new(NpTopic::new(topic.clone(), context.limits, context.guards))
            }
            other => other?,
        };
        Ok(non_persistent::stats_json(
            &loaded,
            &self.service.ctx().metrics.rates,
        ))
    }

    /// Pulsar's internal stats of a non-persistent topic: no ledgers, no cursors.
    pub(super) async fn np_internal_stats(&self, topic: &TopicName) -> Result<Value, ApiError> {
        let loaded = self.np_existing(topic).await?;
        let added = loaded
            .counters
            .msg_in
            .load(std::sync::atomic::Ordering::Relaxed);
        Ok(json!({
            "entriesAddedCounter": added,
            "numberOfEntries": 0,
            "totalSize": 0,
            "currentLedgerEntries": 0,
            "currentLedgerSize": 0,
            "ledgers": [],
            "cursors": {},
        }))
    }

    pub(super) async fn np_subscriptions(
        &self,
        topic: &TopicName,
    ) -> Result<Vec<String>, ApiError> {
        let loaded = self.np_existing(topic).await?;
        Ok(loaded
            .subscriptions()
            .iter()
            .map(|s| s.name().to_string())
            .collect())
    }

    pub(super) async fn np_delete_subscription(
        &self,
        topic: &TopicName,
        subscription: &str,
        force: bool,
    ) -> Result<(), ApiError> {
        let loaded = self.np_existing(topic).await?;
        let Some(found) = loaded.subscription(subscription) else {
            return Err(ApiError::not_found(format!(
                "Subscription {subscription} not found on {topic}"
            )));
        };
        if !found.is_empty() && !force {
            return Err(ApiError::precondition_failed(format!(
                "Subscription {subscription} has active consumers"
            )));
        }
        loaded.delete_subscription(subscription);
        Ok(())
    }

    pub(super) async fn np_unload(&self, topic: &TopicName) -> Result<(), ApiError> {
        self.np_existing(topic).await?;
        self.service.unload_np_topic(topic).await;
        Ok(())
    }
}
