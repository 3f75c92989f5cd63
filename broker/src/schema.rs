//! Schemas on the binary protocol: producers, consumers, GET_SCHEMA and GET_OR_CREATE_SCHEMA go
//! through the registry in the metadata service
//! ([`SchemaResources`](magnetar_admin_api::resources::SchemaResources), shared with the REST
//! routes), under the namespace's policies:
//! - `schema_compatibility_strategy` (`UNDEFINED` is `FULL`) decides whether a new version may
//!   follow the live ones; a refused schema is `IncompatibleSchema` on the wire.
//! - `is_allow_auto_update_schema` false: producers may only use versions that exist (uploaded
//!   through the admin API).
//! - `schema_validation_enforced`: a producer without a schema is refused on a topic that has
//!   one.
//!
//! Versions travel as 8-byte big-endian numbers, as Java's longs. Clients that send no schema
//! (raw bytes) never touch the registry.

use magnetar_admin_api::models::{Policies, SchemaCompatibilityStrategy};
use magnetar_admin_api::resources::schema_compat::SchemaError;
use magnetar_admin_api::resources::{SchemaRegistryError, StoredSchema};
use magnetar_protocol::TopicName;
use magnetar_protocol::pulsar::{KeyValue, Schema, schema};

use crate::context::BrokerContext;
use crate::error::BrokerError;

impl From<SchemaRegistryError> for BrokerError {
    fn from(e: SchemaRegistryError) -> BrokerError {
        match e {
            SchemaRegistryError::Schema(e @ SchemaError::Incompatible(_))
            | SchemaRegistryError::Schema(e @ SchemaError::Invalid(_)) => {
                BrokerError::IncompatibleSchema(e.to_string())
            }
            SchemaRegistryError::TooLarge(m) => BrokerError::NotAllowed(m),
            SchemaRegistryError::Resource(e) => BrokerError::Metadata(e.to_string()),
        }
    }
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

/// Whether a consumer's schema is checked against the topic's: not for raw bytes, and not for
/// `AUTO_CONSUME`, which reads whatever version each message names (as Pulsar skips it).
fn consumer_schema_checked(schema: &Schema) -> bool {
    !is_none(schema) && schema.r#type != AUTO_CONSUME
}

/// `Schema.Type.AutoConsume` of newer protocol versions (Java and Go clients send it).
const AUTO_CONSUME: i32 = 21;

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
        ..StoredSchema::default()
    }
}

async fn policies(ctx: &BrokerContext, topic: &TopicName) -> Result<Policies, BrokerError> {
    Ok(ctx
        .namespaces
        .policies(&topic.namespace())
        .await?
        .unwrap_or_default())
}

fn strategy(policies: &Policies) -> SchemaCompatibilityStrategy {
    policies.schema_compatibility_strategy
}

/// The version a producer's schema has (None for a producer without one), adding it when it is
/// new, compatible and the namespace lets producers add versions.
pub async fn for_producer(
    ctx: &BrokerContext,
    topic: &TopicName,
    schema: Option<&Schema>,
) -> Result<Option<u64>, BrokerError> {
    let registry = &ctx.admin.resources().schemas;
    let policies = policies(ctx, topic).await?;
    let Some(schema) = schema.filter(|s| !is_none(s)) else {
        if policies.schema_validation_enforced && registry.latest(topic).await?.is_some() {
            return Err(BrokerError::IncompatibleSchema(format!(
                "topic {topic} has a schema and its namespace enforces schema validation: \
                 producers must send one"
            )));
        }
        return Ok(None);
    };
    let wanted = stored(schema);
    if !policies.is_allow_auto_update_schema.unwrap_or(true) {
        return match registry.find(topic, &wanted).await? {
            Some(version) => Ok(Some(version)),
            None => Err(BrokerError::IncompatibleSchema(format!(
                "schema not found on {topic} and its namespace does not let producers add \
                 schemas (isAllowAutoUpdateSchema is false): upload it through the admin API"
            ))),
        };
    }
    let limits = ctx.config.limits.schema_limits();
    Ok(Some(
        registry
            .put_if_absent(topic, &wanted, strategy(&policies), limits)
            .await?,
    ))
}

/// Checks a consumer's schema: an existing live version, or one compatible with the topic's
/// schema. A topic without a schema, no producers and nothing written takes the consumer's as
/// its first version (`idle`), as Pulsar does.
pub async fn for_consumer(
    ctx: &BrokerContext,
    topic: &TopicName,
    schema: Option<&Schema>,
    idle: bool,
) -> Result<(), BrokerError> {
    let Some(schema) = schema.filter(|s| consumer_schema_checked(s)) else {
        return Ok(());
    };
    let registry = &ctx.admin.resources().schemas;
    let wanted = stored(schema);
    if registry.latest(topic).await?.is_none() {
        if idle && policies(ctx, topic).await?.is_allow_auto_update_schema != Some(false) {
            let limits = ctx.config.limits.schema_limits();
            let strategy = SchemaCompatibilityStrategy::AlwaysCompatible;
            registry
                .put_if_absent(topic, &wanted, strategy, limits)
                .await?;
        }
        return Ok(());
    }
    let strategy = strategy(&policies(ctx, topic).await?).effective();
    // A consumer reads what producers wrote: with the non-transitive and forward strategies
    // it must read the latest version; with the transitive ones every live version.
    let consumer_strategy = match strategy {
        SchemaCompatibilityStrategy::Backward
        | SchemaCompatibilityStrategy::Forward
        | SchemaCompatibilityStrategy::ForwardTransitive
        | SchemaCompatibilityStrategy::Full => SchemaCompatibilityStrategy::Backward,
        other => other,
    };
    Ok(registry.check(topic, &wanted, consumer_strategy).await?)
}

/// The version of `schema` for `topic`, adding it if it is new (GET_OR_CREATE_SCHEMA, as a
/// producer would).
pub async fn get_or_create(
    ctx: &BrokerContext,
    topic: &TopicName,
    schema: &Schema,
) -> Result<u64, BrokerError> {
    for_producer(ctx, topic, Some(schema))
        .await?
        .ok_or_else(|| BrokerError::IncompatibleSchema("an empty schema has no version".into()))
}

/// A stored schema: the requested version, or the latest live one.
pub async fn get(
    ctx: &BrokerContext,
    topic: &TopicName,
    version: Option<&[u8]>,
) -> Result<Option<(Schema, u64)>, BrokerError> {
    let registry = &ctx.admin.resources().schemas;
    let found = match version {
        Some(bytes) => {
            let Some(v) = version_from_bytes(bytes) else {
                return Err(BrokerError::NotAllowed(
                    "a schema version is 8 bytes".into(),
                ));
            };
            registry.version(topic, v).await?.map(|s| (s, v))
        }
        None => registry.latest(topic).await?.map(|(v, s)| (s, v)),
    };
    Ok(found.map(|(s, version)| {
        let schema = Schema {
            name: s.name,
            schema_data: s.data,
            r#type: s.kind,
            properties: s
                .properties
                .into_iter()
                .map(|(key, value)| KeyValue { key, value })
                .collect(),
        };
        (schema, version)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_consume_and_bytes_consumers_are_not_checked() {
        let of = |kind: i32, data: &[u8]| Schema {
            r#type: kind,
            schema_data: data.to_vec(),
            ..Schema::default()
        };
        assert!(!consumer_schema_checked(&of(
            schema::Type::None as i32,
            b""
        )));
        assert!(!consumer_schema_checked(&of(AUTO_CONSUME, b"")));
        assert!(consumer_schema_checked(&of(
            schema::Type::String as i32,
            b""
        )));
        assert!(consumer_schema_checked(&of(
            schema::Type::Avro as i32,
            b"{}"
        )));
        assert_eq!(version_from_bytes(&version_bytes(7)), Some(7));
    }
}
