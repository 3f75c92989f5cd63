//! Tiered storage verbs: `magnetar admin topics offload|offload-status` and the namespace
//! offload policies (`namespaces set-offload-threshold`, `set-offload-deletion-lag`, …), with
//! pulsar-admin's names and flags.

use clap::Subcommand;
use serde_json::{Value, json};

use super::topics::{done, path, required};
use crate::admin_client::AdminClient;
use crate::output;
use crate::units::{parse_duration_secs, parse_size_bytes};

#[derive(Debug, Subcommand)]
pub enum TopicOffloadCommand {
    /// Offload the oldest closed ledgers to tiered storage, keeping about --size-threshold
    /// bytes on the bookies.
    Offload {
        topic: String,
        /// Bytes to keep on the bookies: `10M`, `1G`, bytes.
        #[arg(short = 's', long = "size-threshold")]
        size_threshold: String,
    },
    /// The last offload's status: NOT_RUN, RUNNING, SUCCESS or ERROR (exits non-zero).
    OffloadStatus {
        topic: String,
        /// Wait until it is no longer running.
        #[arg(short = 'w', long)]
        wait: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum NamespaceOffloadCommand {
    /// Offload topics' closed ledgers once they keep more than --size on the bookies, or once
    /// a ledger closed longer ago than --time (-1: never, 0: at once).
    SetOffloadThreshold {
        namespace: String,
        /// `10M`, `1G`, bytes, -1.
        #[arg(short = 's', long, allow_hyphen_values = true)]
        size: Option<String>,
        /// `30m`, `12h`, `7d`, seconds, -1.
        #[arg(short = 't', long, allow_hyphen_values = true)]
        time: Option<String>,
    },
    /// The offload thresholds (unset: the broker's default).
    GetOffloadThreshold {
        namespace: String,
    },
    /// Back to the broker's default thresholds.
    RemoveOffloadThreshold {
        namespace: String,
    },
    /// How long offloaded ledgers also stay on the bookies.
    SetOffloadDeletionLag {
        namespace: String,
        /// `10m`, `4h`, `1d`, seconds.
        #[arg(short = 'l', long)]
        lag: String,
    },
    GetOffloadDeletionLag {
        namespace: String,
    },
    /// Back to the broker's default deletion lag.
    ClearOffloadDeletionLag {
        namespace: String,
    },
}

fn namespace_path(namespace: &str, policy: &str) -> anyhow::Result<String> {
    if namespace.split('/').count() != 2 {
        anyhow::bail!("{namespace}: expected TENANT/NAMESPACE");
    }
    Ok(format!("/admin/v2/namespaces/{namespace}/{policy}"))
}

/// Pulsar-admin's rule: from the newest ledger back, the first ledger whose suffix holds more
/// than `threshold` bytes; everything before the ledger after it is offloaded.
fn offload_point(internal_stats: &Value, threshold: i64) -> Option<(i64, i64)> {
    let ledgers = internal_stats["ledgers"].as_array()?;
    let mut newer = ledgers.last()?["ledgerId"].as_i64()?;
    let mut suffix = 0i64;
    for ledger in ledgers.iter().rev() {
        suffix += ledger["size"].as_i64().unwrap_or(0);
        if suffix > threshold {
            return Some((newer, 0));
        }
        newer = ledger["ledgerId"].as_i64()?;
    }
    None
}

pub(super) async fn run_topic(
    client: &AdminClient,
    command: TopicOffloadCommand,
    json: bool,
) -> anyhow::Result<()> {
    match command {
        TopicOffloadCommand::Offload {
            topic,
            size_threshold,
        } => {
            let threshold = parse_size_bytes(&size_threshold).map_err(anyhow::Error::msg)?;
            let stats = required(client, &format!("{}/internalStats", path(&topic)?)).await?;
            let Some((ledger, entry)) = offload_point(&stats, threshold) else {
                return done(
                    json,
                    &format!("nothing to offload: {topic} keeps under {threshold} bytes"),
                );
            };
            let body = json!({"ledgerId": ledger, "entryId": entry, "partitionIndex": -1});
            client
                .put_json(&format!("{}/offload", path(&topic)?), Some(&body))
                .await?;
            if json {
                return output::json(&json!({"topic": topic, "before": body}));
            }
            println!("offload of {topic} started: the ledgers before {ledger}:{entry}");
            Ok(())
        }
        TopicOffloadCommand::OffloadStatus { topic, wait } => {
            super::subscriptions::process_status(client, &topic, "offload", wait, json).await
        }
    }
}

fn print_number(value: Option<Value>, json: bool, what: &str) -> anyhow::Result<()> {
    match value {
        Some(v) if json => output::json(&v),
        Some(v) => {
            println!("{what}: {v}");
            Ok(())
        }
        None if json => output::json(&Value::Null),
        None => {
            println!("{what}: not set (the broker's default)");
            Ok(())
        }
    }
}

pub(super) async fn run_namespace(
    client: &AdminClient,
    command: NamespaceOffloadCommand,
    json: bool,
) -> anyhow::Result<()> {
    use NamespaceOffloadCommand as C;
    match command {
        C::SetOffloadThreshold {
            namespace,
            size,
            time,
        } => {
            if size.is_none() && time.is_none() {
                anyhow::bail!("give --size, --time or both");
            }
            let mut set = Vec::new();
            if let Some(size) = size {
                let bytes = parse_size_bytes(&size).map_err(anyhow::Error::msg)?;
                let path = namespace_path(&namespace, "offloadThreshold")?;
                client.put_json(&path, Some(&json!(bytes))).await?;
                set.push(format!("{bytes} bytes"));
            }
            if let Some(time) = time {
                let secs = parse_duration_secs(&time).map_err(anyhow::Error::msg)?;
                let path = namespace_path(&namespace, "offloadThresholdInSeconds")?;
                client.put_json(&path, Some(&json!(secs))).await?;
                set.push(format!("{secs} s"));
            }
            done(
                json,
                &format!("{namespace}: offload threshold {}", set.join(", ")),
            )
        }
        C::GetOffloadThreshold { namespace } => {
            let bytes = client
                .get_json(&namespace_path(&namespace, "offloadThreshold")?)
                .await?;
            let secs = client
                .get_json(&namespace_path(&namespace, "offloadThresholdInSeconds")?)
                .await?;
            if json {
                return output::json(&json!({"offloadThreshold": bytes,
                    "offloadThresholdInSeconds": secs}));
            }
            print_number(bytes, false, "size threshold (bytes)")?;
            print_number(secs, false, "time threshold (seconds)")
        }
        C::RemoveOffloadThreshold { namespace } => {
            for policy in ["offloadThreshold", "offloadThresholdInSeconds"] {
                client
                    .delete_path(&namespace_path(&namespace, policy)?)
                    .await?;
            }
            done(json, &format!("{namespace}: offload thresholds removed"))
        }
        C::SetOffloadDeletionLag { namespace, lag } => {
            let secs = parse_duration_secs(&lag).map_err(anyhow::Error::msg)?;
            if secs < 0 {
                anyhow::bail!("--lag must be 0 or more");
            }
            let path = namespace_path(&namespace, "offloadDeletionLagMs")?;
            client.put_json(&path, Some(&json!(secs * 1000))).await?;
            done(json, &format!("{namespace}: offload deletion lag {secs} s"))
        }
        C::GetOffloadDeletionLag { namespace } => {
            let path = namespace_path(&namespace, "offloadDeletionLagMs")?;
            print_number(client.get_json(&path).await?, json, "deletion lag (ms)")
        }
        C::ClearOffloadDeletionLag { namespace } => {
            client
                .delete_path(&namespace_path(&namespace, "offloadDeletionLagMs")?)
                .await?;
            done(json, &format!("{namespace}: offload deletion lag removed"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offload_point_keeps_the_newest_bytes() {
        let stats = json!({"ledgers": [
            {"ledgerId": 1, "size": 100}, {"ledgerId": 2, "size": 100},
            {"ledgerId": 3, "size": 100}, {"ledgerId": 4, "size": 0}]});
        assert_eq!(offload_point(&stats, 0), Some((4, 0)));
        assert_eq!(offload_point(&stats, 150), Some((3, 0)));
        assert_eq!(offload_point(&stats, 250), Some((2, 0)));
        assert_eq!(offload_point(&stats, 300), None);
        assert_eq!(offload_point(&json!({"ledgers": []}), 0), None);
    }
}
