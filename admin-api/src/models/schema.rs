//! Schemas: the compatibility strategies a namespace may choose, the schema types by Pulsar's
//! names, and the bodies of `/admin/v2/schemas/{tenant}/{namespace}/{topic}/…`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How a new schema version must relate to the ones before it (Pulsar's set). `UNDEFINED`
/// means "the broker's default", which is `FULL`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SchemaCompatibilityStrategy {
    #[default]
    Undefined,
    /// No new version once the topic has a schema.
    AlwaysIncompatible,
    /// Any new version.
    AlwaysCompatible,
    /// The new schema reads data written with the latest one.
    Backward,
    /// The latest schema reads data written with the new one.
    Forward,
    /// Both directions, against the latest version.
    Full,
    /// The new schema reads data written with every earlier version.
    BackwardTransitive,
    /// Every earlier version reads data written with the new one.
    ForwardTransitive,
    /// Both directions, against every earlier version.
    FullTransitive,
}

impl SchemaCompatibilityStrategy {
    /// The strategy in force: `UNDEFINED` becomes `FULL`, Pulsar's broker default.
    pub fn effective(self) -> SchemaCompatibilityStrategy {
        match self {
            SchemaCompatibilityStrategy::Undefined => SchemaCompatibilityStrategy::Full,
            other => other,
        }
    }

    /// Whether every earlier version is checked, not only the latest.
    pub fn is_transitive(self) -> bool {
        matches!(
            self,
            SchemaCompatibilityStrategy::BackwardTransitive
                | SchemaCompatibilityStrategy::ForwardTransitive
                | SchemaCompatibilityStrategy::FullTransitive
        )
    }
}

/// Pulsar's `SchemaType` names with the wire's numbers (`Schema.Type` of the protocol).
pub const SCHEMA_TYPES: &[(&str, i32)] = &[
    ("NONE", 0),
    ("STRING", 1),
    ("JSON", 2),
    ("PROTOBUF", 3),
    ("AVRO", 4),
    ("BOOLEAN", 5),
    ("INT8", 6),
    ("INT16", 7),
    ("INT32", 8),
    ("INT64", 9),
    ("FLOAT", 10),
    ("DOUBLE", 11),
    ("DATE", 12),
    ("TIME", 13),
    ("TIMESTAMP", 14),
    ("KEY_VALUE", 15),
    ("INSTANT", 16),
    ("LOCAL_DATE", 17),
    ("LOCAL_TIME", 18),
    ("LOCAL_DATE_TIME", 19),
    ("PROTOBUF_NATIVE", 20),
    ("AUTO_CONSUME", 21),
    ("BYTES", -1),
];

/// The wire number of a type named as Pulsar names it (case-insensitive).
pub fn schema_type_number(name: &str) -> Option<i32> {
    SCHEMA_TYPES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

/// Pulsar's name of a wire type number.
pub fn schema_type_name(number: i32) -> &'static str {
    SCHEMA_TYPES
        .iter()
        .find(|(_, v)| *v == number)
        .map_or("UNKNOWN", |(n, _)| n)
}

/// A schema as `POST …/schema`, `…/compatibility` and `…/version` take it: the definition as
/// UTF-8 text (blank for primitive types).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct PostSchemaPayload {
    #[serde(rename = "type")]
    pub kind: String,
    pub schema: String,
    pub properties: BTreeMap<String, String>,
}

/// One stored version as `GET …/schema` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GetSchemaResponse {
    pub version: u64,
    #[serde(rename = "type")]
    pub kind: String,
    /// Milliseconds since the epoch when the version was added.
    pub timestamp: u64,
    pub data: String,
    pub properties: BTreeMap<String, String>,
}

/// `GET …/schemas`: every live version, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GetAllVersionsSchemaResponse {
    pub get_schema_responses: Vec<GetSchemaResponse>,
}

/// A version number as Pulsar's `LongSchemaVersion` writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LongSchemaVersion {
    pub version: u64,
}

/// `POST …/schema`: the version the schema has (new or existing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PostSchemaResponse {
    pub version: LongSchemaVersion,
}

/// `DELETE …/schema`: the version that marks the deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeleteSchemaResponse {
    pub version: u64,
}

/// `POST …/compatibility`: whether the schema could be added, under which strategy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IsCompatibilityResponse {
    pub compatibility: bool,
    pub schema_compatibility_strategy: SchemaCompatibilityStrategy,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_and_types_use_pulsar_names() {
        let json =
            serde_json::to_string(&SchemaCompatibilityStrategy::BackwardTransitive).expect("json");
        assert_eq!(json, "\"BACKWARD_TRANSITIVE\"");
        assert_eq!(
            SchemaCompatibilityStrategy::Undefined.effective(),
            SchemaCompatibilityStrategy::Full
        );
        assert_eq!(schema_type_number("avro"), Some(4));
        assert_eq!(schema_type_name(20), "PROTOBUF_NATIVE");
        assert_eq!(schema_type_name(99), "UNKNOWN");
    }
}
