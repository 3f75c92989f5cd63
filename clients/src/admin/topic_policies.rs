//! `magnetar admin topics set-retention|get-retention|…`: a topic's own policies, each
//! overriding its namespace's (pulsar-admin's `topics` policy verbs). `get-*` shows the topic's
//! own setting; `--applied` shows what governs it.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::namespaces::{print_optional, print_quotas, quota_from, retention_from};
use super::split_list;
use super::topics::{done, path};
use crate::admin_client::AdminClient;
use crate::output;
use crate::units::parse_duration_secs;

/// The topic and whether to show the applied value.
#[derive(Debug, Args)]
pub struct GetPolicy {
    topic: String,
    /// What governs the topic: its own setting, else its namespace's.
    #[arg(short = 'a', long)]
    applied: bool,
}

#[derive(Debug, Subcommand)]
pub enum TopicPolicyCommand {
    /// Keep the topic's acknowledged messages for --time and up to --size (-1: unlimited).
    SetRetention {
        topic: String,
        /// e.g. 60m, 12h, 7d, -1.
        #[arg(short, long, allow_hyphen_values = true)]
        time: String,
        /// e.g. 500M, 1G, -1.
        #[arg(short, long, allow_hyphen_values = true)]
        size: String,
    },
    GetRetention(GetPolicy),
    RemoveRetention {
        topic: String,
    },
    /// Acknowledge the topic's messages older than --ttl on every subscription.
    SetMessageTtl {
        topic: String,
        /// Seconds, or a duration like 1h.
        #[arg(short, long)]
        ttl: String,
    },
    GetMessageTtl(GetPolicy),
    RemoveMessageTtl {
        topic: String,
    },
    /// Limit the topic's backlog (as `namespaces set-backlog-quota`).
    SetBacklogQuota {
        topic: String,
        #[command(flatten)]
        quota: super::QuotaArgs,
    },
    GetBacklogQuotas(GetPolicy),
    RemoveBacklogQuota {
        topic: String,
        #[arg(long = "type", default_value = "destination_storage")]
        kind: String,
    },
    /// Turn deduplication on (--enable) or off (--disable) for the topic.
    SetDeduplication {
        topic: String,
        #[command(flatten)]
        switch: super::Switch,
    },
    GetDeduplication(GetPolicy),
    RemoveDeduplication {
        topic: String,
    },
    /// Accept at most N producers on the topic at once (0: no limit but the broker's).
    SetMaxProducers {
        topic: String,
        #[arg(short = 'm', long = "max-producers")]
        max: i32,
    },
    GetMaxProducers(GetPolicy),
    RemoveMaxProducers {
        topic: String,
    },
    /// Accept at most N consumers on the topic at once (0: no limit but the broker's).
    SetMaxConsumers {
        topic: String,
        #[arg(short = 'm', long = "max-consumers")]
        max: i32,
    },
    GetMaxConsumers(GetPolicy),
    RemoveMaxConsumers {
        topic: String,
    },
    /// Replicate the topic to these clusters instead of its namespace's.
    SetReplicationClusters {
        topic: String,
        #[arg(short, long)]
        clusters: String,
    },
    GetReplicationClusters(GetPolicy),
    RemoveReplicationClusters {
        topic: String,
    },
}

fn policy_path(topic: &str, policy: &str) -> anyhow::Result<String> {
    Ok(format!("{}/{policy}", path(topic)?))
}

async fn get(client: &AdminClient, get: &GetPolicy, policy: &str) -> anyhow::Result<Option<Value>> {
    let mut p = policy_path(&get.topic, policy)?;
    if get.applied {
        p.push_str("?applied=true");
    }
    Ok(client.get_json(&p).await?)
}

async fn set(client: &AdminClient, topic: &str, policy: &str, body: Value) -> anyhow::Result<()> {
    client
        .post_json(&policy_path(topic, policy)?, Some(&body))
        .await?;
    Ok(())
}

async fn remove(client: &AdminClient, topic: &str, policy: &str) -> anyhow::Result<()> {
    client.delete_path(&policy_path(topic, policy)?).await?;
    Ok(())
}

/// A single value (a number, a flag): itself, or a line saying it is not set.
fn print_value(value: Option<Value>, json: bool, what: &str) -> anyhow::Result<()> {
    match value {
        Some(v) if json => output::json(&v),
        Some(Value::Array(names)) => {
            let names: Vec<String> = names
                .iter()
                .map(|n| n.as_str().unwrap_or_default().to_string())
                .collect();
            output::names(&names);
            Ok(())
        }
        Some(v) => {
            println!("{v}");
            Ok(())
        }
        None if json => output::json(&Value::Null),
        None => {
            println!("{what} is not set on the topic (its namespace's applies)");
            Ok(())
        }
    }
}

pub(super) async fn run(
    client: &AdminClient,
    command: TopicPolicyCommand,
    json: bool,
) -> anyhow::Result<()> {
    use TopicPolicyCommand as C;
    let (topic, message) = match command {
        C::SetRetention { topic, time, size } => {
            let retention = serde_json::to_value(retention_from(&time, &size)?)?;
            set(client, &topic, "retention", retention).await?;
            (topic, "retention set")
        }
        C::GetRetention(g) => {
            let value = get(client, &g, "retention").await?;
            return print_optional(value, json, "retention");
        }
        C::RemoveRetention { topic } => {
            remove(client, &topic, "retention").await?;
            (topic, "retention removed")
        }
        C::SetMessageTtl { topic, ttl } => {
            let secs = parse_duration_secs(&ttl).map_err(anyhow::Error::msg)?;
            let p = format!("{}?messageTTL={secs}", policy_path(&topic, "messageTTL")?);
            client.post_json(&p, None).await?;
            (topic, "message TTL set")
        }
        C::GetMessageTtl(g) => {
            let value = get(client, &g, "messageTTL").await?;
            return print_value(value, json, "message TTL");
        }
        C::RemoveMessageTtl { topic } => {
            remove(client, &topic, "messageTTL").await?;
            (topic, "message TTL removed")
        }
        C::SetBacklogQuota { topic, quota } => {
            let (kind, quota) = quota_from(&quota)?;
            let p = format!(
                "{}?backlogQuotaType={}",
                policy_path(&topic, "backlogQuota")?,
                kind.as_str()
            );
            client
                .post_json(&p, Some(&serde_json::to_value(quota)?))
                .await?;
            (topic, "backlog quota set")
        }
        C::GetBacklogQuotas(g) => {
            let value = get(client, &g, "backlogQuotaMap")
                .await?
                .unwrap_or_else(|| json!({}));
            return print_quotas(&serde_json::from_value(value)?, json);
        }
        C::RemoveBacklogQuota { topic, kind } => {
            let p = format!(
                "{}?backlogQuotaType={kind}",
                policy_path(&topic, "backlogQuota")?
            );
            client.delete_path(&p).await?;
            (topic, "backlog quota removed")
        }
        C::SetDeduplication { topic, switch } => {
            set(client, &topic, "deduplicationEnabled", json!(switch.enable)).await?;
            (topic, "deduplication set")
        }
        C::GetDeduplication(g) => {
            let value = get(client, &g, "deduplicationEnabled").await?;
            return print_value(value, json, "deduplication");
        }
        C::RemoveDeduplication { topic } => {
            remove(client, &topic, "deduplicationEnabled").await?;
            (topic, "deduplication setting removed")
        }
        C::SetMaxProducers { topic, max } => {
            set(client, &topic, "maxProducers", json!(max)).await?;
            (topic, "producer limit set")
        }
        C::GetMaxProducers(g) => {
            let value = get(client, &g, "maxProducers").await?;
            return print_value(value, json, "the producer limit");
        }
        C::RemoveMaxProducers { topic } => {
            remove(client, &topic, "maxProducers").await?;
            (topic, "producer limit removed")
        }
        C::SetMaxConsumers { topic, max } => {
            set(client, &topic, "maxConsumers", json!(max)).await?;
            (topic, "consumer limit set")
        }
        C::GetMaxConsumers(g) => {
            let value = get(client, &g, "maxConsumers").await?;
            return print_value(value, json, "the consumer limit");
        }
        C::RemoveMaxConsumers { topic } => {
            remove(client, &topic, "maxConsumers").await?;
            (topic, "consumer limit removed")
        }
        C::SetReplicationClusters { topic, clusters } => {
            set(client, &topic, "replication", json!(split_list(&clusters))).await?;
            (topic, "replication clusters set")
        }
        C::GetReplicationClusters(g) => {
            let value = get(client, &g, "replication").await?;
            return print_value(value, json, "replication clusters");
        }
        C::RemoveReplicationClusters { topic } => {
            remove(client, &topic, "replication").await?;
            (topic, "replication clusters removed")
        }
    };
    done(json, &format!("{topic}: {message}"))
}
