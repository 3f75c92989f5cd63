//! Schema validation and compatibility, without I/O: whether a definition is well formed for its
//! type, and whether a new version may follow the live ones under a strategy.
//!
//! - AVRO, JSON and PROTOBUF definitions are Avro schemas (as every Pulsar client sends them);
//!   they are checked with Avro's reader/writer rules. BACKWARD: the new schema reads data
//!   written with the old; FORWARD: the old reads the new; FULL: both. A JSON or PROTOBUF
//!   definition that is not Avro (an old-style JSON Schema) can only be compared for equality,
//!   so any change to one is accepted unless the strategy is `ALWAYS_INCOMPATIBLE`.
//! - PROTOBUF_NATIVE: the root message type must stay the same (Pulsar's default check).
//! - KEY_VALUE: key and value are checked separately, each by its own type.
//! - Other (primitive) types: a version of the same type is compatible.
//! - A version of another type than the one it follows is incompatible.

use std::collections::BTreeMap;

use apache_avro::Schema as AvroSchema;
use apache_avro::schema_compatibility::SchemaCompatibility;

use crate::models::{SchemaCompatibilityStrategy, schema_type_name};

const JSON: i32 = 2;
const PROTOBUF: i32 = 3;
const AVRO: i32 = 4;
const KEY_VALUE: i32 = 15;
const PROTOBUF_NATIVE: i32 = 20;
const BYTES: i32 = -1;

/// A schema as the checks see it.
#[derive(Debug, Clone, Copy)]
pub struct SchemaView<'a> {
    pub kind: i32,
    pub data: &'a [u8],
    pub properties: &'a BTreeMap<String, String>,
}

/// Why a schema was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// The definition is not valid for its type (REST 422).
    #[error("invalid schema definition: {0}")]
    Invalid(String),
    /// The definition is valid but may not follow the existing versions (REST 409).
    #[error("incompatible schema: {0}")]
    Incompatible(String),
}

/// Checks that `schema`'s definition is well formed for its type.
pub fn validate(schema: SchemaView<'_>) -> Result<(), SchemaError> {
    match schema.kind {
        AVRO => avro(schema.data).map(|_| ()),
        JSON | PROTOBUF => serde_json::from_slice::<serde_json::Value>(schema.data)
            .map(|_| ())
            .map_err(|e| SchemaError::Invalid(format!("not JSON: {e}"))),
        PROTOBUF_NATIVE => root_message(schema.data).map(|_| ()),
        KEY_VALUE => {
            let (key, value) = split_key_value(schema.data)?;
            let empty = BTreeMap::new();
            validate(SchemaView {
                kind: part_type(schema.properties, "key"),
                data: key,
                properties: &empty,
            })?;
            validate(SchemaView {
                kind: part_type(schema.properties, "value"),
                data: value,
                properties: &empty,
            })
        }
        _ => Ok(()),
    }
}

/// Whether `new` may be added after `live` (the versions since the last deletion, oldest
/// first) under `strategy` (`UNDEFINED` counts as `FULL`).
pub fn check(
    strategy: SchemaCompatibilityStrategy,
    live: &[SchemaView<'_>],
    new: SchemaView<'_>,
) -> Result<(), SchemaError> {
    let strategy = strategy.effective();
    let Some(latest) = live.last() else {
        return Ok(());
    };
    match strategy {
        SchemaCompatibilityStrategy::AlwaysCompatible => return Ok(()),
        SchemaCompatibilityStrategy::AlwaysIncompatible => {
            return Err(SchemaError::Incompatible(
                "the compatibility strategy is ALWAYS_INCOMPATIBLE".into(),
            ));
        }
        _ => {}
    }
    let against: &[SchemaView<'_>] = if strategy.is_transitive() {
        live
    } else {
        std::slice::from_ref(latest)
    };
    for old in against.iter().rev() {
        pair(strategy, *old, new)?;
    }
    Ok(())
}

/// The direction a strategy checks in: (new reads old, old reads new).
fn directions(strategy: SchemaCompatibilityStrategy) -> (bool, bool) {
    use SchemaCompatibilityStrategy::*;
    match strategy {
        Backward | BackwardTransitive => (true, false),
        Forward | ForwardTransitive => (false, true),
        _ => (true, true),
    }
}

fn pair(
    strategy: SchemaCompatibilityStrategy,
    old: SchemaView<'_>,
    new: SchemaView<'_>,
) -> Result<(), SchemaError> {
    if old.kind != new.kind {
        return Err(SchemaError::Incompatible(format!(
            "the topic's schema type is {}, the new one is {}",
            schema_type_name(old.kind),
            schema_type_name(new.kind)
        )));
    }
    if old.data == new.data {
        return Ok(());
    }
    match new.kind {
        AVRO | JSON | PROTOBUF => {
            let (Ok(old_schema), Ok(new_schema)) = (avro(old.data), avro(new.data)) else {
                if new.kind == AVRO {
                    // validate() already refused a bad new one; the old one was stored valid.
                    return Err(SchemaError::Invalid("not an Avro schema".into()));
                }
                return Ok(());
            };
            let (new_reads_old, old_reads_new) = directions(strategy);
            if new_reads_old {
                SchemaCompatibility::can_read(&old_schema, &new_schema).map_err(|e| {
                    SchemaError::Incompatible(format!(
                        "the new schema cannot read data written with an existing one ({}): {e}",
                        strategy_name(strategy)
                    ))
                })?;
            }
            if old_reads_new {
                SchemaCompatibility::can_read(&new_schema, &old_schema).map_err(|e| {
                    SchemaError::Incompatible(format!(
                        "an existing schema cannot read data written with the new one ({}): {e}",
                        strategy_name(strategy)
                    ))
                })?;
            }
            Ok(())
        }
        PROTOBUF_NATIVE => {
            let (old_root, new_root) = (root_message(old.data)?, root_message(new.data)?);
            if old_root == new_root {
                Ok(())
            } else {
                Err(SchemaError::Incompatible(format!(
                    "the root message type changed from {old_root} to {new_root}"
                )))
            }
        }
        KEY_VALUE => {
            let (old_key, old_value) = split_key_value(old.data)?;
            let (new_key, new_value) = split_key_value(new.data)?;
            let empty = BTreeMap::new();
            for (part, old_data, new_data) in
                [("key", old_key, new_key), ("value", old_value, new_value)]
            {
                let view = |properties: &BTreeMap<String, String>, data| SchemaView {
                    kind: part_type(properties, part),
                    data,
                    properties: &empty,
                };
                pair(
                    strategy,
                    view(old.properties, old_data),
                    view(new.properties, new_data),
                )
                .map_err(|e| match e {
                    SchemaError::Incompatible(m) => {
                        SchemaError::Incompatible(format!("{part} schema: {m}"))
                    }
                    other => other,
                })?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn strategy_name(strategy: SchemaCompatibilityStrategy) -> String {
    serde_json::to_value(strategy)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn avro(data: &[u8]) -> Result<AvroSchema, SchemaError> {
    let text = std::str::from_utf8(data)
        .map_err(|_| SchemaError::Invalid("an Avro schema is UTF-8 JSON text".into()))?;
    AvroSchema::parse_str(text)
        .map_err(|e| SchemaError::Invalid(format!("not an Avro schema: {e}")))
}

/// The root message type of a PROTOBUF_NATIVE definition (`{"fileDescriptorSet": …,
/// "rootMessageTypeName": …}`).
fn root_message(data: &[u8]) -> Result<String, SchemaError> {
    let value: serde_json::Value = serde_json::from_slice(data)
        .map_err(|e| SchemaError::Invalid(format!("a PROTOBUF_NATIVE schema is JSON: {e}")))?;
    value
        .get("rootMessageTypeName")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or_else(|| {
            SchemaError::Invalid("a PROTOBUF_NATIVE schema names its rootMessageTypeName".into())
        })
}

/// The type of a KEY_VALUE schema's `part` ("key" or "value"), from its properties.
fn part_type(properties: &BTreeMap<String, String>, part: &str) -> i32 {
    properties
        .get(&format!("{part}.schema.type"))
        .and_then(|name| crate::models::schema_type_number(name))
        .unwrap_or(BYTES)
}

/// A KEY_VALUE definition: `[i32 key length][key][i32 value length][value]`, big-endian; a
/// negative length is an empty part.
fn split_key_value(data: &[u8]) -> Result<(&[u8], &[u8]), SchemaError> {
    if data.is_empty() {
        return Ok((&[], &[]));
    }
    let bad = || SchemaError::Invalid("a KEY_VALUE schema is two length-prefixed parts".into());
    let take = |rest: &[u8]| -> Option<(usize, usize)> {
        let len = i32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
        let len = usize::try_from(len).unwrap_or(0);
        (rest.len() >= 4 + len).then_some((4, 4 + len))
    };
    let (start, end) = take(data).ok_or_else(bad)?;
    let key = &data[start..end];
    let rest = &data[end..];
    let (start, end) = take(rest).ok_or_else(bad)?;
    if end != rest.len() {
        return Err(bad());
    }
    Ok((key, &rest[start..end]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use SchemaCompatibilityStrategy::*;

    fn view<'a>(kind: i32, data: &'a str, props: &'a BTreeMap<String, String>) -> SchemaView<'a> {
        SchemaView {
            kind,
            data: data.as_bytes(),
            properties: props,
        }
    }

    const V1: &str =
        r#"{"type":"record","name":"User","fields":[{"name":"name","type":"string"}]}"#;
    // Adds a field with a default: readable both ways.
    const V2: &str = r#"{"type":"record","name":"User","fields":[{"name":"name","type":"string"},{"name":"age","type":["null","int"],"default":null}]}"#;
    // Adds a field without a default: the new schema cannot read old data.
    const V3: &str = r#"{"type":"record","name":"User","fields":[{"name":"name","type":"string"},{"name":"email","type":"string"}]}"#;
    // Changes a field's type.
    const V4: &str = r#"{"type":"record","name":"User","fields":[{"name":"name","type":"int"}]}"#;

    #[test]
    fn avro_rules_follow_the_strategy() {
        let p = BTreeMap::new();
        let live = [view(AVRO, V1, &p)];
        assert_eq!(check(Full, &live, view(AVRO, V2, &p)), Ok(()));
        assert_eq!(check(Undefined, &live, view(AVRO, V2, &p)), Ok(()));
        // V3 adds a required field: old data lacks it (BACKWARD fails) but V1 reads V3 data.
        assert!(matches!(
            check(Backward, &live, view(AVRO, V3, &p)),
            Err(SchemaError::Incompatible(_))
        ));
        assert_eq!(check(Forward, &live, view(AVRO, V3, &p)), Ok(()));
        assert!(check(Full, &live, view(AVRO, V3, &p)).is_err());
        assert!(check(Full, &live, view(AVRO, V4, &p)).is_err());
        assert_eq!(check(AlwaysCompatible, &live, view(AVRO, V4, &p)), Ok(()));
        assert!(check(AlwaysIncompatible, &live, view(AVRO, V2, &p)).is_err());
        assert_eq!(check(AlwaysIncompatible, &[], view(AVRO, V2, &p)), Ok(()));
    }

    #[test]
    fn transitive_strategies_check_every_live_version() {
        let p = BTreeMap::new();
        // V1 → V3 is FORWARD-compatible; V4 → V3 is not (name changes type).
        let live = [view(AVRO, V4, &p), view(AVRO, V1, &p)];
        assert_eq!(check(Forward, &live, view(AVRO, V3, &p)), Ok(()));
        assert!(check(ForwardTransitive, &live, view(AVRO, V3, &p)).is_err());
    }

    #[test]
    fn types_must_not_change_and_definitions_must_parse() {
        let p = BTreeMap::new();
        let live = [view(AVRO, V1, &p)];
        let err = check(Full, &live, view(JSON, V1, &p)).expect_err("incompatible");
        assert!(err.to_string().contains("AVRO"), "{err}");
        assert!(validate(view(AVRO, "{not avro", &p)).is_err());
        assert!(validate(view(AVRO, r#"{"type":"nothing"}"#, &p)).is_err());
        assert_eq!(validate(view(AVRO, V1, &p)), Ok(()));
        assert_eq!(validate(view(1, "", &p)), Ok(()));
        // Primitive types of the same kind are compatible.
        assert_eq!(check(Full, &[view(1, "", &p)], view(1, "", &p)), Ok(()));
    }

    #[test]
    fn protobuf_native_keeps_its_root_message() {
        let p = BTreeMap::new();
        let a = r#"{"fileDescriptorSet":"","rootMessageTypeName":"acme.Order"}"#;
        let b = r#"{"fileDescriptorSet":"AA==","rootMessageTypeName":"acme.Order"}"#;
        let c = r#"{"fileDescriptorSet":"","rootMessageTypeName":"acme.Invoice"}"#;
        let live = [view(PROTOBUF_NATIVE, a, &p)];
        assert_eq!(check(Full, &live, view(PROTOBUF_NATIVE, b, &p)), Ok(()));
        assert!(check(Full, &live, view(PROTOBUF_NATIVE, c, &p)).is_err());
        assert!(validate(view(PROTOBUF_NATIVE, "{}", &p)).is_err());
    }

    fn key_value(key: &str, value: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for part in [key, value] {
            out.extend_from_slice(&(part.len() as i32).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }

    #[test]
    fn key_value_parts_are_checked_by_their_types() {
        let props: BTreeMap<String, String> = [
            ("key.schema.type".to_string(), "STRING".to_string()),
            ("value.schema.type".to_string(), "AVRO".to_string()),
        ]
        .into();
        let old = key_value("", V1);
        let good = key_value("", V2);
        let bad = key_value("", V4);
        let kv = |data: &'static [u8]| SchemaView {
            kind: KEY_VALUE,
            data,
            properties: &props,
        };
        let (old, good, bad): (&'static [u8], &'static [u8], &'static [u8]) =
            (old.leak(), good.leak(), bad.leak());
        assert_eq!(validate(kv(old)), Ok(()));
        assert_eq!(check(Full, &[kv(old)], kv(good)), Ok(()));
        let err = check(Full, &[kv(old)], kv(bad)).expect_err("incompatible");
        assert!(err.to_string().contains("value schema"), "{err}");
        assert!(validate(kv(&[0, 0, 0, 9, 1])).is_err());
    }
}
