//! Partitioned topic metadata: `/admin/partitioned-topics/{tenant}/{ns}/{domain}/{topic}`
//! holding `{"partitions": N}`. The broker reads it on lookup and `PARTITIONED_METADATA`; the
//! topic admin routes (broker side) create, update and delete it.

use magnetar_protocol::topic::TopicName;

use magnetar_metadata::Expected;

use crate::models::{PartitionedTopicMetadata, TopicPolicies};
use crate::names::NamespaceName;

use super::ResourceError;
use super::store::{Store, Versioned};

#[derive(Debug, Clone)]
pub struct TopicResources {
    store: Store,
}

use crate::keys::partitioned_topic as partitioned_topic_key;

impl TopicResources {
    pub(crate) fn new(store: Store) -> TopicResources {
        TopicResources { store }
    }

    /// The partition count of a partitioned topic, None if it is not one.
    pub async fn get_partitioned(
        &self,
        topic: &TopicName,
    ) -> Result<Option<PartitionedTopicMetadata>, ResourceError> {
        Ok(self
            .store
            .get::<PartitionedTopicMetadata>(&partitioned_topic_key(topic))
            .await?
            .map(|v| v.value))
    }

    pub async fn get_partitioned_versioned(
        &self,
        topic: &TopicName,
    ) -> Result<Option<Versioned<PartitionedTopicMetadata>>, ResourceError> {
        self.store.get(&partitioned_topic_key(topic)).await
    }

    /// Records a partitioned topic; `Conflict` if it exists.
    pub async fn create_partitioned(
        &self,
        topic: &TopicName,
        metadata: &PartitionedTopicMetadata,
    ) -> Result<(), ResourceError> {
        self.store
            .create(&partitioned_topic_key(topic), metadata, || {
                format!("Partitioned topic {topic} already exists")
            })
            .await
    }

    /// Changes a partitioned topic's metadata (e.g. more partitions) with compare-and-set.
    pub async fn update_partitioned<F>(
        &self,
        topic: &TopicName,
        change: F,
    ) -> Result<PartitionedTopicMetadata, ResourceError>
    where
        F: FnMut(&mut PartitionedTopicMetadata) -> Result<(), ResourceError>,
    {
        let missing = || format!("Partitioned topic {topic} does not exist");
        self.store
            .update(&partitioned_topic_key(topic), missing, change)
            .await
    }

    /// The topic's own policies (a partition's are its partitioned topic's); empty when none.
    pub async fn policies(&self, topic: &TopicName) -> Result<TopicPolicies, ResourceError> {
        Ok(self
            .store
            .get::<TopicPolicies>(&crate::keys::topic_policies(topic))
            .await?
            .map(|v| v.value)
            .unwrap_or_default())
    }

    /// Applies `change` to the topic's policies with compare-and-set, creating them when
    /// absent and removing the record when nothing is overridden any more.
    pub async fn update_policies<F>(
        &self,
        topic: &TopicName,
        change: F,
    ) -> Result<TopicPolicies, ResourceError>
    where
        F: Fn(&mut TopicPolicies) -> Result<(), ResourceError>,
    {
        let key = crate::keys::topic_policies(topic);
        let client = self.store.client().clone();
        self.store
            .retry(&key, || {
                let (key, client, change) = (key.clone(), client.clone(), &change);
                async move {
                    let current = self.store.get::<TopicPolicies>(&key).await?;
                    let (mut value, expected) = match current {
                        Some(v) => (v.value, Expected::Version(v.version)),
                        None => (TopicPolicies::default(), Expected::Absent),
                    };
                    change(&mut value)?;
                    match (value.is_empty(), expected) {
                        (true, Expected::Absent) => {}
                        (true, expected) => {
                            client.delete(&key, expected).await?;
                        }
                        (false, expected) => {
                            let bytes = serde_json::to_vec(&value).unwrap_or_default();
                            client.put(&key, bytes, expected).await?;
                        }
                    }
                    Ok(value)
                }
            })
            .await
    }

    /// Removes a partitioned topic's metadata; `NotFound` if it does not exist.
    pub async fn delete_partitioned(&self, topic: &TopicName) -> Result<(), ResourceError> {
        let key = partitioned_topic_key(topic);
        self.store
            .retry(&key, || async {
                let Some((_, version)) = self.store.get_raw(&key).await? else {
                    return Err(ResourceError::NotFound(format!(
                        "Partitioned topic {topic} does not exist"
                    )));
                };
                self.store.delete(&key, version).await
            })
            .await
    }

    /// Full names of the partitioned topics of a namespace in `domain` (`persistent`).
    pub async fn list_partitioned(
        &self,
        ns: &NamespaceName,
        domain: &str,
    ) -> Result<Vec<String>, ResourceError> {
        let path = crate::keys::partitioned_topics(&ns.tenant, &ns.namespace, domain);
        let names = self.store.children(&path).await?;
        Ok(names
            .into_iter()
            .map(|t| format!("{domain}://{ns}/{t}"))
            .collect())
    }

    /// The metadata client underneath, for what this layer does not cover yet.
    pub fn client(&self) -> &magnetar_metadata::MetadataClient {
        self.store.client()
    }
}
