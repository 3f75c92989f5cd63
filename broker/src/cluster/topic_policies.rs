//! Topic-level policies as brokers see them: the followed copy of
//! `/admin/topic-policies/…`, and what governs a topic once its own overrides are applied to
//! its namespace's policies.

use magnetar_admin_api::models::{Policies, TopicPolicies};
use magnetar_protocol::TopicName;

use super::NamespaceService;
use crate::error::BrokerError;

impl NamespaceService {
    /// What governs `topic`: its namespace's policies with the topic's own overrides applied
    /// (defaults when the namespace has none). Topic overrides come from the followed copy, so
    /// a change applies within a watch delay.
    pub async fn applied_policies(&self, topic: &TopicName) -> Result<Policies, BrokerError> {
        let namespace = self.policies(&topic.namespace()).await?.unwrap_or_default();
        Ok(self.topic_policies(topic)?.applied_to(&namespace))
    }

    /// The topic's own policies (a partition's are its partitioned topic's).
    pub fn topic_policies(&self, topic: &TopicName) -> Result<TopicPolicies, BrokerError> {
        Ok(self.own_topic_policies(topic)?.unwrap_or_default())
    }

    /// The topic's own policies, if it has any.
    pub fn own_topic_policies(
        &self,
        topic: &TopicName,
    ) -> Result<Option<TopicPolicies>, BrokerError> {
        let key = magnetar_admin_api::keys::topic_policies(topic);
        self.topic_policies
            .get(&key)
            .map(|record| {
                serde_json::from_slice(&record.value).map_err(|e| {
                    BrokerError::Metadata(format!("unreadable policies of topic {topic}: {e}"))
                })
            })
            .transpose()
    }

    /// Namespaces (`tenant/ns`) holding a topic whose own replication clusters name a cluster
    /// other than `local`.
    pub fn namespaces_with_replicating_topics(&self, local: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .topic_policies
            .records()
            .into_iter()
            .filter_map(|record| {
                let policies: TopicPolicies = serde_json::from_slice(&record.value).ok()?;
                let elsewhere = policies.replication_clusters?.iter().any(|c| c != local);
                let rest = record
                    .key
                    .strip_prefix(magnetar_admin_api::keys::TOPIC_POLICIES_PREFIX)?;
                let mut parts = rest.splitn(3, '/');
                let (tenant, namespace) = (parts.next()?, parts.next()?);
                elsewhere.then(|| format!("{tenant}/{namespace}"))
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }
}
