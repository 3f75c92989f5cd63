//! Topic-level policies (stored at `/admin/topic-policies/{tenant}/{ns}/{domain}/{topic}`): the
//! policies a topic may set for itself, each overriding its namespace's when set. A partitioned
//! topic's policies apply to each of its partitions. Field names are Pulsar's `TopicPolicies`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{BacklogQuota, BacklogQuotaType, Policies, RetentionPolicies};

/// What a topic overrides. Every field unset (or empty) means "as the namespace says".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicPolicies {
    /// Backlog quota per type, each overriding the namespace's quota of that type.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub back_log_quota_map: BTreeMap<BacklogQuotaType, BacklogQuota>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_ttl_in_seconds: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_policies: Option<RetentionPolicies>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deduplication_enabled: Option<bool>,
    /// Producers the topic accepts at once (0: no limit but the broker's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_producer_per_topic: Option<i32>,
    /// Consumers the topic accepts at once over all its subscriptions (0: no limit but the
    /// broker's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_consumer_per_topic: Option<i32>,
    /// Clusters this topic replicates to, instead of the namespace's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_clusters: Option<BTreeSet<String>>,
}

impl TopicPolicies {
    /// Nothing overridden.
    pub fn is_empty(&self) -> bool {
        *self == TopicPolicies::default()
    }

    /// The namespace's policies with this topic's overrides applied: what governs the topic.
    pub fn applied_to(&self, namespace: &Policies) -> Policies {
        let mut out = namespace.clone();
        for (kind, quota) in &self.back_log_quota_map {
            out.backlog_quota_map.insert(*kind, *quota);
        }
        if self.message_ttl_in_seconds.is_some() {
            out.message_ttl_in_seconds = self.message_ttl_in_seconds;
        }
        if self.retention_policies.is_some() {
            out.retention_policies = self.retention_policies;
        }
        if self.deduplication_enabled.is_some() {
            out.deduplication_enabled = self.deduplication_enabled;
        }
        if let Some(clusters) = &self.replication_clusters {
            out.replication_clusters = clusters.clone();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::RetentionPolicy;

    #[test]
    fn topic_overrides_win_and_the_rest_is_the_namespaces() {
        let namespace = Policies {
            message_ttl_in_seconds: Some(60),
            deduplication_enabled: Some(false),
            replication_clusters: ["a".to_string(), "b".to_string()].into(),
            backlog_quota_map: [(
                BacklogQuotaType::MessageAge,
                BacklogQuota {
                    limit_size: -1,
                    limit_time: 600,
                    policy: RetentionPolicy::ProducerException,
                },
            )]
            .into(),
            ..Policies::default()
        };
        let topic = TopicPolicies {
            message_ttl_in_seconds: Some(5),
            replication_clusters: Some(["a".to_string()].into()),
            back_log_quota_map: [(
                BacklogQuotaType::DestinationStorage,
                BacklogQuota {
                    limit_size: 1024,
                    limit_time: -1,
                    policy: RetentionPolicy::ProducerRequestHold,
                },
            )]
            .into(),
            ..TopicPolicies::default()
        };
        let applied = topic.applied_to(&namespace);
        assert_eq!(applied.message_ttl_in_seconds, Some(5));
        assert_eq!(applied.deduplication_enabled, Some(false));
        assert_eq!(applied.replication_clusters, ["a".to_string()].into());
        assert_eq!(applied.backlog_quota_map.len(), 2);
        assert!(TopicPolicies::default().is_empty() && !topic.is_empty());
    }

    #[test]
    fn pulsar_field_names() {
        let topic = TopicPolicies {
            max_producer_per_topic: Some(3),
            retention_policies: Some(RetentionPolicies {
                retention_time_in_minutes: 10,
                retention_size_in_mb: 20,
            }),
            ..TopicPolicies::default()
        };
        let json = serde_json::to_value(&topic).expect("json");
        assert_eq!(json["maxProducerPerTopic"], 3);
        assert_eq!(json["retentionPolicies"]["retentionSizeInMB"], 20);
        assert_eq!(
            serde_json::from_value::<TopicPolicies>(json).expect("parses"),
            topic
        );
    }
}
