//! The per-topic schema registry, in the metadata service: `/schemas/{tenant}/{ns}/{topic}`
//! holds every version of a topic's schema (partitions share their topic's). Versions count from
//! 0 and travel as 8-byte big-endian numbers, as Java's longs. A schema equal to a stored version
//! (type, data, properties) gets that version back; any other is added as the next version.
//! Pulsar's compatibility strategies are not enforced (every change is accepted, as
//! `ALWAYS_COMPATIBLE`). Clients that send no schema (raw bytes) never touch the registry.
//!
//! The history is one JSON value, schema data in base64 (older values with the data as an array
//! of numbers still read). A schema larger than `limits.max_schema_size_bytes`, a version past
//! `limits.max_schema_versions`, or a history that would not fit one metadata value is refused
//! with a message saying which.

use magnetar_metadata::{Expected, MetadataClient, MetadataError};
use magnetar_protocol::TopicName;
use magnetar_protocol::pulsar::{KeyValue, Schema, schema};
use serde::{Deserialize, Serialize};

use crate::error::BrokerError;
use crate::limits::Limits;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StoredSchema {
    name: String,
    kind: i32,
    #[serde(with = "base64_data")]
    data: Vec<u8>,
    properties: Vec<(String, String)>,
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

fn key(topic: &TopicName) -> String {
    magnetar_admin_api::keys::schema(topic)
}

/// A version as the wire carries it.
pub fn version_bytes(version: u64) -> Vec<u8> {
    version.to_be_bytes().to_vec()
}

fn version_from_bytes(bytes: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(bytes).ok().map(u64::from_be_bytes)
}

/// Whether a client's schema is the "no schema" of raw-bytes clients.
pub fn is_none(schema: &Schema) -> bool {
    schema.r#type == schema::Type::None as i32 && schema.schema_data.is_empty()
}

fn stored(schema: &Schema) -> StoredSchema {
    let mut properties: Vec<(String, String)> = schema
        .properties
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect();
    properties.sort();
    StoredSchema {
        name: schema.name.clone(),
        kind: schema.r#type,
        data: schema.schema_data.clone(),
        properties,
    }
}

async fn read(metadata: &MetadataClient, key: &str) -> Result<(History, Expected), BrokerError> {
    match metadata.get(key).await? {
        None => Ok((History::default(), Expected::Absent)),
        Some(record) => {
            let history = serde_json::from_slice(&record.value).map_err(|e| {
                BrokerError::Metadata(format!("unreadable schema history {key}: {e}"))
            })?;
            Ok((history, Expected::Version(record.version)))
        }
    }
}

/// The version of `schema` for `topic`, adding it if it is new (within `limits`).
pub async fn get_or_create(
    metadata: &MetadataClient,
    topic: &TopicName,
    schema: &Schema,
    limits: &Limits,
) -> Result<u64, BrokerError> {
    let key = key(topic);
    let wanted = stored(schema);
    let size = wanted.data.len()
        + wanted.name.len()
        + wanted
            .properties
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>();
    if size > limits.max_schema_size_bytes {
        return Err(BrokerError::NotAllowed(format!(
            "schema of {size} bytes exceeds limits.max_schema_size_bytes ({})",
            limits.max_schema_size_bytes
        )));
    }
    loop {
        let (mut history, expected) = read(metadata, &key).await?;
        if let Some(version) = history.versions.iter().position(|s| *s == wanted) {
            return Ok(version as u64);
        }
        if history.versions.len() >= limits.max_schema_versions {
            return Err(BrokerError::NotAllowed(format!(
                "topic {topic} has {} schema versions, limits.max_schema_versions",
                history.versions.len()
            )));
        }
        history.versions.push(wanted.clone());
        let value =
            serde_json::to_vec(&history).map_err(|e| BrokerError::Unknown(e.to_string()))?;
        if value.len() > magnetar_metadata::keys::MAX_VALUE_SIZE - 4096 {
            return Err(BrokerError::NotAllowed(format!(
                "the schema history of {topic} would take {} bytes, more than one metadata value holds",
                value.len()
            )));
        }
        match metadata.put(&key, value, expected).await {
            Ok(_) => return Ok(history.versions.len() as u64 - 1),
            Err(MetadataError::BadVersion { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// A stored schema: the requested version, or the latest.
pub async fn get(
    metadata: &MetadataClient,
    topic: &TopicName,
    version: Option<&[u8]>,
) -> Result<Option<(Schema, u64)>, BrokerError> {
    let (history, _) = read(metadata, &key(topic)).await?;
    let index = match version {
        Some(bytes) => match version_from_bytes(bytes) {
            Some(v) => v as usize,
            None => {
                return Err(BrokerError::NotAllowed(
                    "a schema version is 8 bytes".into(),
                ));
            }
        },
        None => match history.versions.len().checked_sub(1) {
            Some(last) => last,
            None => return Ok(None),
        },
    };
    Ok(history.versions.get(index).map(|s| {
        let schema = Schema {
            name: s.name.clone(),
            schema_data: s.data.clone(),
            r#type: s.kind,
            properties: s
                .properties
                .iter()
                .map(|(k, v)| KeyValue {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
        };
        (schema, index as u64)
    }))
}
