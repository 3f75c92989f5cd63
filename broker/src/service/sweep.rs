//! Topics of replicating namespaces are loaded with no client attached, so a replication
//! backlog left behind by a restart, a `kill -9` or a handover drains by itself.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use magnetar_protocol::TopicName;

use super::BrokerService;
use crate::cluster::{BundleName, LookupAnswer};
use crate::error::BrokerError;

/// How often topics of replicating namespaces are looked for (and loaded) with no client.
pub(super) const SWEEP_EVERY: Duration = Duration::from_secs(10);

impl BrokerService {
    /// Loads the topics of replicating namespaces that this broker serves (or is chosen to
    /// serve: their bundles are claimed as a lookup would), so their replicators send what was
    /// left behind by a `kill -9`, a restart or a handover without waiting for a client to
    /// touch the topic. Once per claim of a bundle: a topic that is not loaded gets no new
    /// entries, so a later sweep would find nothing new. Topics with nothing to replicate
    /// unload again when idle.
    pub(super) async fn sweep_replicated_topics(&self, swept: &mut HashSet<(String, Instant)>) {
        if self.replication.get().is_none() {
            return;
        }
        let namespaces = match self.replicating_namespaces().await {
            Ok(namespaces) => namespaces,
            Err(e) => {
                tracing::debug!(error = %e, "replication sweep: listing namespaces failed");
                return;
            }
        };
        let loaded: HashSet<String> = self
            .loaded_topics()
            .await
            .iter()
            .map(|t| t.name().to_string())
            .collect();
        let me = self.ctx.namespaces.broker_id().to_string();
        for namespace in namespaces {
            let Ok(names) = self.topics_of_namespace(&namespace).await else {
                continue;
            };
            for name in names {
                let Ok(topic) = TopicName::parse(&name) else {
                    continue;
                };
                if loaded.contains(&name) {
                    continue;
                }
                let Ok(bundle) = self.ctx.namespaces.bundle_of(&topic).await else {
                    continue;
                };
                let since = |held: Vec<(BundleName, Instant)>| {
                    held.into_iter().find(|(b, _)| *b == bundle).map(|(_, s)| s)
                };
                let since = match since(self.ctx.namespaces.held_since()) {
                    Some(since) => since,
                    // Unowned or someone else's: claimed here only if this broker is the one
                    // a lookup picks (every broker's sweep picks the same).
                    None => match self.ctx.namespaces.lookup(&topic, false).await {
                        Ok(LookupAnswer::Connect(owner)) if owner.broker_id == me => {
                            match since(self.ctx.namespaces.held_since()) {
                                Some(since) => since,
                                None => continue,
                            }
                        }
                        _ => continue,
                    },
                };
                if !swept.insert((name.clone(), since)) {
                    continue;
                }
                match self.topic(&topic, false).await {
                    Ok(_) => tracing::info!(topic = name, "loaded for replication"),
                    Err(e) => {
                        swept.remove(&(name.clone(), since));
                        tracing::debug!(topic = name, error = %e, "replication sweep: loading failed");
                    }
                }
            }
        }
        // Forget topics of bundles no longer held.
        let held = self.ctx.namespaces.held_since();
        swept.retain(|(_, since)| held.iter().any(|(_, s)| s == since));
    }

    /// Namespaces whose replication clusters name a cluster other than this one, or with a
    /// topic whose own replication clusters do.
    async fn replicating_namespaces(&self) -> Result<Vec<String>, BrokerError> {
        let resources = self.ctx.admin.resources();
        let local = &self.ctx.config.cluster;
        let mut out = Vec::new();
        let tenants = resources
            .tenants
            .list()
            .await
            .map_err(|e| BrokerError::Metadata(e.to_string()))?;
        for tenant in tenants {
            let namespaces = resources
                .namespaces
                .list(&tenant)
                .await
                .map_err(|e| BrokerError::Metadata(e.to_string()))?;
            for namespace in namespaces {
                let namespace = namespace.to_string();
                let policies = self.ctx.namespaces.policies(&namespace).await?;
                if policies.is_some_and(|p| p.replication_clusters.iter().any(|c| c != local)) {
                    out.push(namespace);
                }
            }
        }
        out.extend(
            self.ctx
                .namespaces
                .namespaces_with_replicating_topics(local),
        );
        out.sort();
        out.dedup();
        Ok(out)
    }
}
