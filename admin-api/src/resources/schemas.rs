//! The per-topic schema registry: `/schemas/{tenant}/{ns}/{topic}` holds every version of a
//! topic's schema (partitions share their topic's) as one JSON value, schema data in base64
//! (older values with the data as an array of numbers still read). Versions count from 0.
//!
//! Deleting a schema appends a deletion marker; the versions before it stay readable by number
//! (messages name them) but no longer take part in matching or compatibility checks, so the next
//! schema starts a new line. A schema equal to a live version (type and definition) gets that
//! version back without a check; any other is checked against the live versions under the
//! namespace's strategy ([`super::schema_compat`]) and appended.

use std::collections::BTreeMap;

use magnetar_metadata::{Expected, MetadataError};
use magnetar_protocol::TopicName;
use serde::{Deserialize, Serialize};

use super::ResourceError;
use super::schema_compat::{self, SchemaError, SchemaView};
use super::store::Store;
use crate::models::SchemaCompatibilityStrategy;

const KEY_VALUE: i32 = 15;

/// One stored version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSchema {
    pub name: String,
    pub kind: i32,
    #[serde(with = "base64_data")]
    pub data: Vec<u8>,
    /// Sorted by key.
    pub properties: Vec<(String, String)>,
    /// Milliseconds since the epoch when the version was added (0 in older records).
    #[serde(default)]
    pub timestamp: u64,
    /// A deletion marker, not a schema.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

impl StoredSchema {
    pub fn properties_map(&self) -> BTreeMap<String, String> {
        self.properties.iter().cloned().collect()
    }

    /// Whether two schemas are one version: same type and definition, as Pulsar matches them
    /// (properties count only for KEY_VALUE, where they carry the types of key and value).
    fn same_schema(&self, other: &StoredSchema) -> bool {
        self.kind == other.kind
            && self.data == other.data
            && (self.kind != KEY_VALUE || self.properties == other.properties)
    }
}

/// Schema data as a base64 string; an array of numbers (the first format) still reads.
mod base64_data {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(data))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Text(String),
            Numbers(Vec<u8>),
        }
        match Stored::deserialize(d)? {
            Stored::Text(text) => STANDARD.decode(text).map_err(D::Error::custom),
            Stored::Numbers(bytes) => Ok(bytes),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct History {
    versions: Vec<StoredSchema>,
}

impl History {
    /// Index of the first version after the last deletion marker.
    fn live_start(&self) -> usize {
        self.versions
            .iter()
            .rposition(|s| s.deleted)
            .map_or(0, |i| i + 1)
    }

    fn live(&self) -> &[StoredSchema] {
        &self.versions[self.live_start()..]
    }

    fn find(&self, wanted: &StoredSchema) -> Option<u64> {
        let start = self.live_start();
        self.versions[start..]
            .iter()
            .position(|s| s.same_schema(wanted))
            .map(|i| (start + i) as u64)
    }

    fn check(
        &self,
        strategy: SchemaCompatibilityStrategy,
        new: &StoredSchema,
    ) -> Result<(), SchemaError> {
        let new_props = new.properties_map();
        let new_view = SchemaView {
            kind: new.kind,
            data: &new.data,
            properties: &new_props,
        };
        schema_compat::validate(new_view)?;
        let props: Vec<BTreeMap<String, String>> = self
            .live()
            .iter()
            .map(StoredSchema::properties_map)
            .collect();
        let live: Vec<SchemaView<'_>> = self
            .live()
            .iter()
            .zip(&props)
            .map(|(s, properties)| SchemaView {
                kind: s.kind,
                data: &s.data,
                properties,
            })
            .collect();
        schema_compat::check(strategy, &live, new_view)
    }
}

/// Bounds on what one topic's registry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaLimits {
    /// Bytes of one schema (data, name and properties).
    pub max_size: usize,
    /// Versions one topic may have, deletion markers included.
    pub max_versions: usize,
}

impl Default for SchemaLimits {
    fn default() -> SchemaLimits {
        SchemaLimits {
            max_size: 256 * 1024,
            max_versions: 100,
        }
    }
}

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SchemaRegistryError {
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// Over a [`SchemaLimits`] bound, or a history too large for one metadata value.
    #[error("{0}")]
    TooLarge(String),
    #[error(transparent)]
    Resource(#[from] ResourceError),
}

impl From<MetadataError> for SchemaRegistryError {
    fn from(e: MetadataError) -> SchemaRegistryError {
        SchemaRegistryError::Resource(e.into())
    }
}

/// Typed access to the schema registry.
#[derive(Debug, Clone)]
pub struct SchemaResources {
    store: Store,
}

impl SchemaResources {
    pub(super) fn new(store: Store) -> SchemaResources {
        SchemaResources { store }
    }

    async fn read(&self, topic: &TopicName) -> Result<(History, Expected), ResourceError> {
        let key = crate::keys::schema(topic);
        match self.store.get::<History>(&key).await? {
            None => Ok((History::default(), Expected::Absent)),
            Some(v) => Ok((v.value, Expected::Version(v.version))),
        }
    }

    async fn write(
        &self,
        topic: &TopicName,
        history: &History,
        expected: Expected,
    ) -> Result<bool, SchemaRegistryError> {
        let value = super::store::encode(history);
        if value.len() > magnetar_metadata::keys::MAX_VALUE_SIZE - 4096 {
            return Err(SchemaRegistryError::TooLarge(format!(
                "the schema history of {topic} would take {} bytes, more than one metadata value holds",
                value.len()
            )));
        }
        let key = crate::keys::schema(topic);
        match self.store.client().put(&key, value, expected).await {
            Ok(_) => Ok(true),
            Err(MetadataError::BadVersion { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The latest live version, if the topic has a schema.
    pub async fn latest(
        &self,
        topic: &TopicName,
    ) -> Result<Option<(u64, StoredSchema)>, ResourceError> {
        let (history, _) = self.read(topic).await?;
        Ok(match history.versions.last() {
            Some(last) if !last.deleted => Some((history.versions.len() as u64 - 1, last.clone())),
            _ => None,
        })
    }

    /// Version `version`, unless it does not exist or is a deletion marker.
    pub async fn version(
        &self,
        topic: &TopicName,
        version: u64,
    ) -> Result<Option<StoredSchema>, ResourceError> {
        let (history, _) = self.read(topic).await?;
        Ok(usize::try_from(version)
            .ok()
            .and_then(|v| history.versions.get(v))
            .filter(|s| !s.deleted)
            .cloned())
    }

    /// The live versions with their numbers, oldest first.
    pub async fn live(&self, topic: &TopicName) -> Result<Vec<(u64, StoredSchema)>, ResourceError> {
        let (history, _) = self.read(topic).await?;
        let start = history.live_start();
        Ok(history.versions[start..]
            .iter()
            .enumerate()
            .map(|(i, s)| ((start + i) as u64, s.clone()))
            .collect())
    }

    /// The live version equal to `schema`, if any.
    pub async fn find(
        &self,
        topic: &TopicName,
        schema: &StoredSchema,
    ) -> Result<Option<u64>, ResourceError> {
        Ok(self.read(topic).await?.0.find(schema))
    }

    /// Whether `schema` could be added now (an equal live version counts as compatible).
    pub async fn check(
        &self,
        topic: &TopicName,
        schema: &StoredSchema,
        strategy: SchemaCompatibilityStrategy,
    ) -> Result<(), SchemaRegistryError> {
        let (history, _) = self.read(topic).await?;
        if history.find(schema).is_some() {
            return Ok(());
        }
        Ok(history.check(strategy, schema)?)
    }

    /// The version of `schema`: an equal live one, or a new one if it is compatible.
    pub async fn put_if_absent(
        &self,
        topic: &TopicName,
        schema: &StoredSchema,
        strategy: SchemaCompatibilityStrategy,
        limits: SchemaLimits,
    ) -> Result<u64, SchemaRegistryError> {
        let size = schema.data.len()
            + schema.name.len()
            + schema
                .properties
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
        if size > limits.max_size {
            return Err(SchemaRegistryError::TooLarge(format!(
                "schema of {size} bytes exceeds limits.max_schema_size_bytes ({})",
                limits.max_size
            )));
        }
        loop {
            let (mut history, expected) = self.read(topic).await?;
            if let Some(version) = history.find(schema) {
                return Ok(version);
            }
            history.check(strategy, schema)?;
            if history.versions.len() >= limits.max_versions {
                return Err(SchemaRegistryError::TooLarge(format!(
                    "topic {topic} has {} schema versions, limits.max_schema_versions",
                    history.versions.len()
                )));
            }
            let mut added = schema.clone();
            added.timestamp = now_millis();
            added.deleted = false;
            history.versions.push(added);
            if self.write(topic, &history, expected).await? {
                return Ok(history.versions.len() as u64 - 1);
            }
        }
    }

    /// Marks the topic's schema deleted; the number of the marker, or None if there was no
    /// live schema.
    pub async fn delete(&self, topic: &TopicName) -> Result<Option<u64>, SchemaRegistryError> {
        loop {
            let (mut history, expected) = self.read(topic).await?;
            if history.versions.last().is_none_or(|s| s.deleted) {
                return Ok(None);
            }
            history.versions.push(StoredSchema {
                timestamp: now_millis(),
                deleted: true,
                ..StoredSchema::default()
            });
            if self.write(topic, &history, expected).await? {
                return Ok(Some(history.versions.len() as u64 - 1));
            }
        }
    }
}

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_records_still_read() {
        let old = r#"{"versions":[{"name":"n","kind":1,"data":[104,105],"properties":[]}]}"#;
        let history: History = serde_json::from_str(old).expect("an old record");
        assert_eq!(history.versions[0].data, b"hi");
        assert!(!history.versions[0].deleted);
        assert_eq!(history.live().len(), 1);
    }

    #[test]
    fn a_deletion_starts_a_new_line() {
        let string = StoredSchema {
            kind: 1,
            ..StoredSchema::default()
        };
        let marker = StoredSchema {
            deleted: true,
            ..StoredSchema::default()
        };
        let avro = StoredSchema {
            kind: 4,
            data: br#"{"type":"record","name":"A","fields":[]}"#.to_vec(),
            ..StoredSchema::default()
        };
        let mut history = History {
            versions: vec![string.clone()],
        };
        assert_eq!(history.find(&string), Some(0));
        assert!(
            history
                .check(SchemaCompatibilityStrategy::Full, &avro)
                .is_err()
        );
        history.versions.push(marker);
        assert_eq!(history.find(&string), None);
        assert_eq!(
            history.check(SchemaCompatibilityStrategy::Full, &avro),
            Ok(())
        );
    }
}
