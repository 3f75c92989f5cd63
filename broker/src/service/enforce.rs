//! Namespace and topic policies applied to the loaded topics on a timer: retention, offload,
//! deduplication, delayed delivery, replication, message TTL, backlog quotas and the
//! compaction threshold.

use std::collections::HashMap;
use std::sync::Arc;

use magnetar_admin_api::models::{BacklogQuotaType, Policies, RetentionPolicy};
use tokio_util::sync::CancellationToken;

use super::storage_policies::{apply_offload, apply_retention};
use super::sweep::SWEEP_EVERY;
use super::{BrokerService, apply_delayed_delivery};
use crate::error::BrokerError;
use crate::managed_ledger::{OffloadPolicy, Retention};
use crate::publish_time;
use crate::topic::Topic;

/// A namespace's (or a topic's) policies as a round applies them: parsed once, with the
/// managed-ledger settings they give.
struct RoundPolicies {
    policies: Policies,
    retention: Retention,
    offload: OffloadPolicy,
}

impl BrokerService {
    /// Applies namespace policies to the loaded topics, every `every` until `cancel`: retention
    /// changes reach their managed ledgers, message TTL expires old messages, and every
    /// `quota_every` backlog quotas are checked — a topic over its quota refuses and disconnects
    /// producers (`producer_request_hold`, `producer_exception`) or drops its oldest backlog
    /// (`consumer_backlog_eviction`). Policies come from the watch-fed cache, not the leader.
    pub async fn enforce_policies(
        &self,
        every: std::time::Duration,
        quota_every: std::time::Duration,
        cancel: CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_quota_check = std::time::Instant::now();
        let mut swept = std::collections::HashSet::new();
        let mut last_sweep = None;
        let mut np_idle = HashMap::new();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = ticker.tick() => {}
            }
            if last_sweep.is_none_or(|at: std::time::Instant| at.elapsed() >= SWEEP_EVERY) {
                last_sweep = Some(std::time::Instant::now());
                self.sweep_replicated_topics(&mut swept).await;
            }
            self.sweep_idle_np_topics(&mut np_idle).await;
            let check_quotas = last_quota_check.elapsed() >= quota_every;
            if check_quotas {
                last_quota_check = std::time::Instant::now();
            }
            // Each namespace's policies are parsed once a round, not once per topic.
            let mut namespaces: HashMap<String, Arc<RoundPolicies>> = HashMap::new();
            for topic in self.loaded_topics().await {
                if cancel.is_cancelled() {
                    return;
                }
                let namespace = topic.name().namespace();
                let namespace_policies = match namespaces.get(&namespace) {
                    Some(policies) => Arc::clone(policies),
                    None => match self.ctx.namespaces.policies(&namespace).await {
                        Ok(policies) => {
                            let policies =
                                Arc::new(self.round_policies(policies.unwrap_or_default()));
                            namespaces.insert(namespace, Arc::clone(&policies));
                            policies
                        }
                        Err(e) => {
                            tracing::debug!(%namespace, error = %e, "reading namespace policies failed");
                            continue;
                        }
                    },
                };
                if let Err(e) = self
                    .apply_policies(&topic, &namespace_policies, check_quotas)
                    .await
                {
                    tracing::debug!(topic = %topic.name(), error = %e, "applying namespace policies failed");
                }
            }
        }
    }

    /// `policies` with the managed-ledger settings they give.
    fn round_policies(&self, policies: Policies) -> RoundPolicies {
        let mut config = self.ctx.ml_config.clone();
        apply_retention(&mut config, policies.retention_policies.as_ref());
        apply_offload(&mut config, &policies, &self.ctx.config.offload);
        RoundPolicies {
            retention: config.retention(),
            offload: config.offload,
            policies,
        }
    }

    async fn apply_policies(
        &self,
        topic: &Arc<Topic>,
        namespace: &RoundPolicies,
        check_quotas: bool,
    ) -> Result<(), BrokerError> {
        // Most topics have no policies of their own: they use their namespace's as they are.
        let own = self.ctx.namespaces.own_topic_policies(topic.name())?;
        let overridden = own
            .as_ref()
            .map(|own| self.round_policies(own.applied_to(&namespace.policies)));
        let round = overridden.as_ref().unwrap_or(namespace);
        let policies = &round.policies;
        topic.set_policy_limits(
            own.as_ref().and_then(|own| own.max_producer_per_topic),
            own.as_ref().and_then(|own| own.max_consumer_per_topic),
        );
        let ml = topic.managed_ledger();
        let dedup = policies
            .deduplication_enabled
            .unwrap_or(self.ctx.config.deduplication_enabled);
        topic
            .dedup()
            .set_enabled(ml, dedup)
            .await
            .map_err(|e| BrokerError::Persistence(e.to_string()))?;
        if let Err(e) = topic.dedup().maybe_snapshot(ml, false).await {
            tracing::debug!(topic = %topic.name(), error = %e, "deduplication snapshot failed");
        }
        apply_delayed_delivery(topic, policies);
        self.sync_replication(topic, policies).await?;
        if ml.set_retention(round.retention) {
            tracing::info!(topic = %topic.name(), retention = ?round.retention, "retention policy changed");
        }
        if ml.set_offload_policy(round.offload) {
            tracing::info!(topic = %topic.name(), offload = ?round.offload, "offload policy changed");
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        if let Some(ttl) = policies.message_ttl_in_seconds.filter(|s| *s > 0) {
            let cutoff = now_ms.saturating_sub(u64::from(ttl.unsigned_abs()) * 1000);
            for subscription in topic.loaded_subscriptions().await {
                subscription.expire_before(cutoff);
            }
        }
        if check_quotas {
            self.check_backlog_quota(topic, policies, now_ms).await;
        }
        if let Some(threshold) = policies.compaction_threshold.filter(|t| *t > 0)
            && topic.uncompacted_bytes() > threshold as u64
            && topic.start_compaction()
        {
            tracing::info!(topic = %topic.name(), threshold, "compaction threshold reached: compacting");
        }
        Ok(())
    }

    /// Compares the topic's backlog with its namespace's quotas and acts on the first exceeded.
    async fn check_backlog_quota(&self, topic: &Topic, policies: &Policies, now_ms: u64) {
        let ml = topic.managed_ledger();
        let Some(slowest) = ml.slowest_persisted() else {
            topic.set_quota_exceeded(None);
            return;
        };
        let size = policies
            .backlog_quota_map
            .get(&BacklogQuotaType::DestinationStorage)
            .filter(|q| q.limit_size >= 0);
        let age = policies
            .backlog_quota_map
            .get(&BacklogQuotaType::MessageAge)
            .filter(|q| q.limit_time >= 0);
        let backlog = ml.bytes_after(slowest);
        let size_exceeded = size.filter(|q| backlog > q.limit_size as u64);
        let oldest_ms = match age {
            Some(_) => {
                let first = ml.layout().next(slowest);
                publish_time::publish_time(ml, first).await.ok()
            }
            None => None,
        };
        let age_exceeded = age.filter(|q| {
            oldest_ms.is_some_and(|t| {
                t > 0 && now_ms.saturating_sub(t) > (q.limit_time as u64).saturating_mul(1000)
            })
        });
        let Some(quota) = size_exceeded.or(age_exceeded) else {
            if topic.set_quota_exceeded(None) {
                tracing::info!(topic = %topic.name(), "backlog back under its quota");
            }
            return;
        };
        match quota.policy {
            RetentionPolicy::ProducerRequestHold | RetentionPolicy::ProducerException => {
                if topic.set_quota_exceeded(Some(quota.policy)) {
                    tracing::warn!(topic = %topic.name(), backlog, policy = ?quota.policy, "backlog quota exceeded: producers refused");
                }
                topic.disconnect_producers();
            }
            RetentionPolicy::ConsumerBacklogEviction => {
                topic.set_quota_exceeded(None);
                if size_exceeded.is_some()
                    && let Some(through) = ml.position_keeping(quota.limit_size as u64)
                {
                    tracing::warn!(topic = %topic.name(), backlog, %through, "backlog quota exceeded: evicting the oldest backlog");
                    topic.skip_backlog_through(through).await;
                } else if age_exceeded.is_some() {
                    let cutoff = now_ms.saturating_sub((quota.limit_time as u64) * 1000);
                    for subscription in topic.loaded_subscriptions().await {
                        subscription.expire_before(cutoff);
                    }
                    if let Ok(first_live) =
                        publish_time::first_at_or_after(ml, &ml.layout(), cutoff).await
                    {
                        topic
                            .skip_backlog_through(ml.layout().prev(first_live))
                            .await;
                    }
                }
            }
        }
    }
}
