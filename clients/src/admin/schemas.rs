//! `magnetar admin schemas …` (a topic's schema registry) and the namespace verbs of schema
//! policies and compaction (`magnetar admin namespaces set-schema-compatibility-strategy …`),
//! with pulsar-admin's names and flags.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use serde_json::{Value, json};

use super::topics::{done, required};
use crate::admin_client::AdminClient;
use crate::output;
use crate::units::{parse_duration_secs, parse_size_bytes};

#[derive(Debug, Subcommand)]
pub enum SchemasCommand {
    /// The topic's latest schema, one version (--version) or every live one (--all-versions).
    Get {
        topic: String,
        #[arg(long, conflicts_with = "all_versions")]
        version: Option<u64>,
        #[arg(short = 'a', long = "all-versions")]
        all_versions: bool,
    },
    /// Register a schema from a file holding `{"type": "AVRO", "schema": "…", "properties": {}}`.
    Upload {
        topic: String,
        #[arg(short = 'f', long)]
        filename: PathBuf,
    },
    /// Delete the topic's schema (the next one starts a new line).
    Delete { topic: String },
    /// Whether the schema in the file could be registered under the namespace's strategy.
    Compatibility {
        topic: String,
        #[arg(short = 'f', long)]
        filename: PathBuf,
    },
}

/// Namespace verbs flattened into `magnetar admin namespaces`.
#[derive(Debug, Subcommand)]
pub enum NamespacePolicyCommand {
    /// The schema compatibility strategy (UNDEFINED: the default, FULL).
    GetSchemaCompatibilityStrategy { namespace: String },
    /// Set the schema compatibility strategy: ALWAYS_INCOMPATIBLE, ALWAYS_COMPATIBLE,
    /// BACKWARD, FORWARD, FULL, BACKWARD_TRANSITIVE, FORWARD_TRANSITIVE, FULL_TRANSITIVE.
    SetSchemaCompatibilityStrategy {
        namespace: String,
        #[arg(short = 'c', long)]
        compatibility: String,
    },
    /// Whether producers may add schema versions.
    GetIsAllowAutoUpdateSchema { namespace: String },
    /// Let producers add schema versions (--enable) or only use registered ones (--disable).
    SetIsAllowAutoUpdateSchema {
        namespace: String,
        #[command(flatten)]
        switch: super::Switch,
    },
    /// Whether producers without a schema are refused on topics that have one.
    GetSchemaValidationEnforce { namespace: String },
    /// Refuse (--enable) or accept (--disable) producers without a schema on topics with one.
    SetSchemaValidationEnforce {
        namespace: String,
        #[command(flatten)]
        switch: super::Switch,
    },
    /// Bytes not yet compacted above which topics compact themselves.
    GetCompactionThreshold { namespace: String },
    /// Set the compaction threshold (`100M`, `1G`, bytes; 0 turns it off).
    SetCompactionThreshold {
        namespace: String,
        #[arg(short = 't', long)]
        threshold: String,
    },
    /// Remove the compaction threshold (no automatic compaction).
    RemoveCompactionThreshold { namespace: String },
    /// Delayed delivery on Shared and Key_Shared subscriptions (on when unset).
    GetDelayedDelivery { namespace: String },
    /// Turn delayed delivery on (--enable) or off (--disable).
    SetDelayedDelivery {
        namespace: String,
        #[command(flatten)]
        switch: super::Switch,
        /// How often due messages are looked for: `1s`, `5s`.
        #[arg(short = 't', long, default_value = "1s")]
        time: String,
        /// The longest delay a message may ask for (`1h`, `7d`; none when absent).
        #[arg(long)]
        max_delay: Option<String>,
    },
    /// Back to the default (delayed delivery on).
    RemoveDelayedDelivery { namespace: String },
    /// Back to the broker's ensemble, quorums and cursor write rate for new ledgers.
    RemovePersistence { namespace: String },
}

fn schema_path(topic: &str) -> anyhow::Result<String> {
    let name = topic.strip_prefix("persistent://").unwrap_or(topic);
    if name.split('/').count() != 3 {
        anyhow::bail!(
            "{topic}: expected persistent://TENANT/NAMESPACE/TOPIC or TENANT/NAMESPACE/TOPIC"
        );
    }
    Ok(format!("/admin/v2/schemas/{name}"))
}

fn namespace_path(namespace: &str, policy: &str) -> anyhow::Result<String> {
    if namespace.split('/').count() != 2 {
        anyhow::bail!("{namespace}: expected TENANT/NAMESPACE");
    }
    Ok(format!("/admin/v2/namespaces/{namespace}/{policy}"))
}

fn payload(path: &PathBuf) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    if !value.get("type").is_some_and(Value::is_string) {
        anyhow::bail!(
            "{}: expected {{\"type\": \"AVRO\", \"schema\": \"…\", \"properties\": {{}}}}",
            path.display()
        );
    }
    Ok(value)
}

/// One schema version as people read it: version, type, time, properties, then the definition.
fn show_schema(value: &Value) {
    let rows = vec![
        vec!["version".into(), value["version"].to_string()],
        vec![
            "type".into(),
            value["type"].as_str().unwrap_or("").to_string(),
        ],
        vec!["timestamp".into(), value["timestamp"].to_string()],
        vec!["properties".into(), value["properties"].to_string()],
    ];
    output::table(&["FIELD", "VALUE"], &rows);
    let data = value["data"].as_str().unwrap_or("");
    // Avro and JSON definitions read better indented.
    match serde_json::from_str::<Value>(data) {
        Ok(definition) if !data.is_empty() => {
            println!(
                "{}",
                serde_json::to_string_pretty(&definition).unwrap_or_default()
            );
        }
        _ if !data.is_empty() => println!("{data}"),
        _ => {}
    }
}

pub(super) async fn run(
    client: &AdminClient,
    command: SchemasCommand,
    json: bool,
) -> anyhow::Result<()> {
    match command {
        SchemasCommand::Get {
            topic,
            version,
            all_versions,
        } => {
            let base = schema_path(&topic)?;
            let path = match (version, all_versions) {
                (_, true) => format!("{base}/schemas"),
                (Some(v), false) => format!("{base}/schema/{v}"),
                (None, false) => format!("{base}/schema"),
            };
            let value = required(client, &path).await?;
            if json {
                return output::json(&value);
            }
            match value["getSchemaResponses"].as_array() {
                Some(versions) => {
                    for (i, v) in versions.iter().enumerate() {
                        if i > 0 {
                            println!();
                        }
                        show_schema(v);
                    }
                    if versions.is_empty() {
                        println!("{topic} has no schema");
                    }
                }
                None => show_schema(&value),
            }
            Ok(())
        }
        SchemasCommand::Upload { topic, filename } => {
            let answer = client
                .post_json(
                    &format!("{}/schema", schema_path(&topic)?),
                    Some(&payload(&filename)?),
                )
                .await?
                .unwrap_or(Value::Null);
            if json {
                return output::json(&answer);
            }
            println!(
                "{topic}: schema version {}",
                answer["version"]["version"]
                    .as_u64()
                    .map_or("?".into(), |v| v.to_string())
            );
            Ok(())
        }
        SchemasCommand::Delete { topic } => {
            let answer = client
                .delete_json(&format!("{}/schema", schema_path(&topic)?))
                .await?
                .unwrap_or(Value::Null);
            if json {
                return output::json(&answer);
            }
            println!(
                "deleted the schema of {topic} (marker version {})",
                answer["version"]
            );
            Ok(())
        }
        SchemasCommand::Compatibility { topic, filename } => {
            let answer = client
                .post_json(
                    &format!("{}/compatibility", schema_path(&topic)?),
                    Some(&payload(&filename)?),
                )
                .await?
                .unwrap_or(Value::Null);
            if json {
                return output::json(&answer);
            }
            let strategy = answer["schemaCompatibilityStrategy"]
                .as_str()
                .unwrap_or("?");
            match answer["compatibility"].as_bool() {
                Some(true) => println!("compatible ({strategy})"),
                _ => println!("incompatible ({strategy})"),
            }
            Ok(())
        }
    }
}

fn print_value(value: Option<Value>, json: bool, unset: &str) -> anyhow::Result<()> {
    match value {
        Some(v) if json => output::json(&v),
        Some(Value::String(s)) => {
            println!("{s}");
            Ok(())
        }
        Some(v) => {
            println!("{v}");
            Ok(())
        }
        None if json => output::json(&Value::Null),
        None => {
            println!("{unset}");
            Ok(())
        }
    }
}

pub(super) async fn run_namespace(
    client: &AdminClient,
    command: NamespacePolicyCommand,
    json: bool,
) -> anyhow::Result<()> {
    use NamespacePolicyCommand as C;
    match command {
        C::GetSchemaCompatibilityStrategy { namespace } => {
            let path = namespace_path(&namespace, "schemaCompatibilityStrategy")?;
            print_value(client.get_json(&path).await?, json, "UNDEFINED")
        }
        C::SetSchemaCompatibilityStrategy {
            namespace,
            compatibility,
        } => {
            let path = namespace_path(&namespace, "schemaCompatibilityStrategy")?;
            let strategy = compatibility.to_ascii_uppercase();
            client.put_json(&path, Some(&json!(strategy))).await?;
            done(
                json,
                &format!("{namespace}: schema compatibility strategy {strategy}"),
            )
        }
        C::GetIsAllowAutoUpdateSchema { namespace } => {
            let path = namespace_path(&namespace, "isAllowAutoUpdateSchema")?;
            print_value(client.get_json(&path).await?, json, "true")
        }
        C::SetIsAllowAutoUpdateSchema { namespace, switch } => {
            let path = namespace_path(&namespace, "isAllowAutoUpdateSchema")?;
            client.post_json(&path, Some(&json!(switch.enable))).await?;
            done(
                json,
                &format!("{namespace}: producers may add schemas: {}", switch.enable),
            )
        }
        C::GetSchemaValidationEnforce { namespace } => {
            let path = namespace_path(&namespace, "schemaValidationEnforced")?;
            print_value(client.get_json(&path).await?, json, "false")
        }
        C::SetSchemaValidationEnforce { namespace, switch } => {
            let path = namespace_path(&namespace, "schemaValidationEnforced")?;
            client.post_json(&path, Some(&json!(switch.enable))).await?;
            done(
                json,
                &format!("{namespace}: schema validation enforced: {}", switch.enable),
            )
        }
        C::GetCompactionThreshold { namespace } => {
            let path = namespace_path(&namespace, "compactionThreshold")?;
            print_value(
                client.get_json(&path).await?,
                json,
                "not set (no automatic compaction)",
            )
        }
        C::SetCompactionThreshold {
            namespace,
            threshold,
        } => {
            let bytes = parse_size_bytes(&threshold).map_err(anyhow::Error::msg)?;
            let path = namespace_path(&namespace, "compactionThreshold")?;
            client.put_json(&path, Some(&json!(bytes))).await?;
            done(
                json,
                &format!("{namespace}: compaction threshold {bytes} bytes"),
            )
        }
        C::GetDelayedDelivery { namespace } => {
            let path = namespace_path(&namespace, "delayedDelivery")?;
            match client.get_json(&path).await? {
                Some(v) if json => output::json(&v),
                Some(v) => {
                    output::fields(&v);
                    Ok(())
                }
                None if json => output::json(&Value::Null),
                None => {
                    println!("not set (delayed delivery on)");
                    Ok(())
                }
            }
        }
        C::SetDelayedDelivery {
            namespace,
            switch,
            time,
            max_delay,
        } => {
            let tick_ms = parse_duration_secs(&time).map_err(anyhow::Error::msg)? * 1000;
            if tick_ms <= 0 {
                anyhow::bail!("--time must be at least 1s");
            }
            let max_ms = match max_delay {
                Some(d) => parse_duration_secs(&d).map_err(anyhow::Error::msg)? * 1000,
                None => 0,
            };
            let body = json!({"active": switch.enable, "tickTime": tick_ms,
                "maxDeliveryDelayInMillis": max_ms});
            client
                .post_json(&namespace_path(&namespace, "delayedDelivery")?, Some(&body))
                .await?;
            done(
                json,
                &format!(
                    "{namespace}: delayed delivery {}",
                    if switch.enable { "on" } else { "off" }
                ),
            )
        }
        C::RemoveDelayedDelivery { namespace } => {
            client
                .delete_path(&namespace_path(&namespace, "delayedDelivery")?)
                .await?;
            done(
                json,
                &format!("{namespace}: delayed delivery policy removed"),
            )
        }
        C::RemovePersistence { namespace } => {
            client
                .delete_path(&namespace_path(&namespace, "persistence")?)
                .await?;
            done(json, &format!("{namespace}: persistence policy removed"))
        }
        C::RemoveCompactionThreshold { namespace } => {
            client
                .delete_path(&namespace_path(&namespace, "compactionThreshold")?)
                .await?;
            done(json, &format!("{namespace}: compaction threshold removed"))
        }
    }
}
