//! The non-persistent topics loaded on this broker: opened through the same ownership gate as
//! persistent ones, registered in the metadata service under a key bound to the broker's
//! session (so any broker can list a namespace's non-persistent topics, and a dead broker's go
//! with it), unloaded with their bundle.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use magnetar_protocol::TopicName;

use super::BrokerService;
use crate::cluster::BundleName;
use crate::error::BrokerError;
use crate::non_persistent::NpTopic;
use crate::topic_list::NON_PERSISTENT_REGISTRY;

/// How long a non-persistent topic stays loaded with no producer and no subscription.
pub const NP_IDLE: Duration = Duration::from_secs(60);

fn registry_key(topic: &TopicName) -> String {
    format!(
        "{NON_PERSISTENT_REGISTRY}/{}/{}/{}",
        topic.tenant(),
        topic.namespace_local(),
        topic.local_name()
    )
}

impl BrokerService {
    pub(super) fn np_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<NpTopic>>> {
        self.np_topics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The loaded non-persistent topic, created when `create` (and auto-creation) allow, or
    /// when it is a partition of a partitioned topic.
    pub async fn np_topic(
        &self,
        name: &TopicName,
        create: bool,
    ) -> Result<Arc<NpTopic>, BrokerError> {
        let bundle = self.ctx.namespaces.ensure_owned(name).await?;
        let key = name.to_string();
        if let Some(topic) = self.np_map().get(&key)
            && !topic.is_unloading()
        {
            return Ok(topic.clone());
        }
        let partition_of_existing =
            name.partition().is_some() && self.partitions(&name.partitioned_topic()).await? > 0;
        if !create && !partition_of_existing {
            return Err(BrokerError::TopicNotFound(key));
        }
        self.check_np_topic_limit(name).await?;
        let context = self.ctx.topic_context();
        let fresh = Arc::new(NpTopic::new(name.clone(), context.limits, context.guards));
        self.apply_np_policies(&fresh)?;
        // Registered before it is used; a concurrent load of the same topic keeps the first.
        self.ctx
            .namespaces
            .put_ephemeral(&registry_key(name), Vec::new())
            .await?;
        let topic = self
            .np_map()
            .entry(key)
            .and_modify(|t| {
                if t.is_unloading() {
                    *t = fresh.clone();
                }
            })
            .or_insert_with(|| fresh.clone())
            .clone();
        // The bundle may have started moving while this load waited: a topic left here then
        // would serve producers the new owner's consumers never hear of.
        if !self.ctx.namespaces.still_serving(&bundle) {
            self.unload_np_topic(name).await;
            return Err(BrokerError::ServiceNotReady(format!(
                "Namespace bundle {} is being unloaded",
                bundle.name()
            )));
        }
        if Arc::ptr_eq(&topic, &fresh) {
            tracing::info!(topic = %name, "non-persistent topic loaded");
        }
        Ok(topic)
    }

    /// The topic policy's producer and consumer limits (checked as clients join).
    fn apply_np_policies(&self, topic: &NpTopic) -> Result<(), BrokerError> {
        let own = self.ctx.namespaces.topic_policies(topic.name())?;
        let limit = |n: Option<i32>| n.map_or(0, |n| n.max(0) as u64);
        let counters = &topic.counters;
        counters.policy_max_producers.store(
            limit(own.max_producer_per_topic),
            std::sync::atomic::Ordering::Relaxed,
        );
        counters.policy_max_consumers.store(
            limit(own.max_consumer_per_topic),
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(())
    }

    /// `limits.max_topics_per_namespace` counts non-persistent topics too (those loaded on any
    /// broker, and the persistent ones).
    async fn check_np_topic_limit(&self, name: &TopicName) -> Result<(), BrokerError> {
        let limit = self.ctx.config.limits.max_topics_per_namespace;
        if limit == 0 {
            return Ok(());
        }
        let namespace = name.namespace();
        let loaded = self.np_topics_of_namespace(&namespace).await?;
        if loaded.contains(&name.to_string()) {
            return Ok(());
        }
        let count = loaded.len() + self.topics_of_namespace(&namespace).await?.len();
        if crate::limits::reached(count, limit) {
            self.ctx.metrics.guards.refused("max_topics_per_namespace");
            return Err(BrokerError::NotAllowed(format!(
                "namespace {namespace} holds {count} topics, limits.max_topics_per_namespace"
            )));
        }
        Ok(())
    }

    /// Creates a non-persistent topic by the admin API (loaded here, or 307 to the owner).
    pub async fn create_np_topic(&self, name: &TopicName) -> Result<Arc<NpTopic>, BrokerError> {
        self.np_topic(name, true).await
    }

    /// The loaded non-persistent topic, without loading it.
    pub fn loaded_np_topic(&self, name: &TopicName) -> Option<Arc<NpTopic>> {
        self.np_map().get(&name.to_string()).cloned()
    }

    /// Unloads a non-persistent topic: its clients are closed (they look it up again) and its
    /// registration goes.
    pub async fn unload_np_topic(&self, name: &TopicName) -> bool {
        if self.loaded_np_topic(name).is_none() {
            return false;
        }
        // The registration goes first, while the clients are still here: once they are closed
        // they load the topic again (here or on the next owner), and that registration stays.
        if let Err(e) = self
            .ctx
            .metadata
            .delete(&registry_key(name), magnetar_metadata::Expected::Any)
            .await
        {
            tracing::warn!(topic = %name, error = %e, "removing the non-persistent topic's registration failed; it goes with the broker's session");
        }
        let Some(topic) = self.np_map().remove(&name.to_string()) else {
            return false;
        };
        topic.unload();
        self.ctx.metrics.rates.forget(&name.to_string());
        tracing::info!(topic = %name, "non-persistent topic unloaded");
        true
    }

    /// Stops every non-persistent topic without touching the metadata service (shutdown:
    /// their registrations go with the broker's session).
    pub(super) fn stop_np_topics(&self) {
        let topics: Vec<Arc<NpTopic>> = self.np_map().drain().map(|(_, t)| t).collect();
        for topic in topics {
            topic.unload();
        }
    }

    /// Unloads non-persistent topics idle (no producer, no subscription) since an earlier
    /// sweep at least [`NP_IDLE`] ago, as Pulsar deletes inactive ones: they hold nothing.
    pub(super) async fn sweep_idle_np_topics(&self, idle_since: &mut HashMap<String, Instant>) {
        let now = Instant::now();
        let mut seen = HashMap::new();
        for topic in self.loaded_np_topics() {
            // Topic policy changes reach loaded topics here, as the policy loop does for
            // persistent ones.
            if let Err(e) = self.apply_np_policies(&topic) {
                tracing::debug!(topic = %topic.name(), error = %e, "reading topic policies failed");
            }
            if !topic.is_idle() {
                continue;
            }
            let key = topic.name().to_string();
            let since = idle_since.get(&key).copied().unwrap_or(now);
            if now.duration_since(since) >= NP_IDLE {
                self.unload_np_topic(topic.name()).await;
            } else {
                seen.insert(key, since);
            }
        }
        *idle_since = seen;
    }

    pub fn loaded_np_topics(&self) -> Vec<Arc<NpTopic>> {
        self.np_map().values().cloned().collect()
    }

    /// Loaded non-persistent topics of a bundle.
    pub(super) async fn np_topics_of_bundle(&self, bundle: &BundleName) -> Vec<TopicName> {
        let mut names = Vec::new();
        for topic in self.loaded_np_topics() {
            if let Ok(of) = self.ctx.namespaces.bundle_of(topic.name()).await
                && of == *bundle
            {
                names.push(topic.name().clone());
            }
        }
        names
    }

    /// Non-persistent topics of a namespace loaded on any broker of the cluster.
    pub async fn np_topics_of_namespace(
        &self,
        namespace: &str,
    ) -> Result<Vec<String>, BrokerError> {
        let names = self
            .ctx
            .metadata
            .children(&format!("{NON_PERSISTENT_REGISTRY}/{namespace}"))
            .await?;
        Ok(names
            .into_iter()
            .map(|local| format!("non-persistent://{namespace}/{local}"))
            .collect())
    }
}
