//! `magnetar admin topics …`: persistent topics, with pulsar-admin's verb names.

use anyhow::Context;
use clap::Subcommand;
use serde_json::Value;

use super::subscriptions::{self, CreateSubscription, ResetCursor, SubscriptionArg};
use crate::admin_client::AdminClient;
use crate::output;

#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// Topics of a namespace (TENANT/NAMESPACE), partitions listed one by one.
    List { namespace: String },
    /// Partitioned topics of a namespace.
    ListPartitionedTopics { namespace: String },
    /// Create a non-partitioned topic.
    Create { topic: String },
    /// Create a partitioned topic.
    CreatePartitionedTopic {
        topic: String,
        #[arg(short = 'p', long)]
        partitions: u32,
    },
    /// Give a partitioned topic more partitions (their count can only grow).
    UpdatePartitionedTopic {
        topic: String,
        #[arg(short = 'p', long)]
        partitions: u32,
    },
    /// Delete a topic (a partitioned topic with `delete-partitioned-topic`).
    Delete {
        topic: String,
        /// Even with producers or consumers connected.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Delete a partitioned topic and its partitions.
    DeletePartitionedTopic {
        topic: String,
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// A partitioned topic's partition count (0: not partitioned).
    GetPartitionedTopicMetadata { topic: String },
    /// Rates, storage, producers, subscriptions and replication of a topic (or one partition).
    Stats { topic: String },
    /// The same, summed over a partitioned topic's partitions.
    PartitionedStats { topic: String },
    /// The managed ledger: ledgers, cursors and their positions.
    StatsInternal { topic: String },
    /// The topic's subscriptions (a partitioned topic's, over its partitions).
    Subscriptions { topic: String },
    /// Create a durable subscription.
    CreateSubscription(CreateSubscription),
    /// Delete a subscription.
    Unsubscribe {
        #[command(flatten)]
        target: SubscriptionArg,
        /// Even with consumers connected (they are disconnected).
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Skip N messages of a subscription's backlog.
    Skip {
        #[command(flatten)]
        target: SubscriptionArg,
        #[arg(short = 'n', long = "count")]
        count: u64,
    },
    /// Skip a subscription's whole backlog.
    ClearBacklog {
        #[command(flatten)]
        target: SubscriptionArg,
    },
    /// Move a subscription's cursor back or forth, by time or to a message.
    ResetCursor(ResetCursor),
    /// Start compacting the topic (latest value per key).
    Compact { topic: String },
    /// The last compaction's status: NOT_RUN, RUNNING, SUCCESS or ERROR (exits non-zero).
    CompactionStatus {
        topic: String,
        /// Wait until it is no longer running.
        #[arg(short = 'w', long)]
        wait: bool,
    },
    /// The broker serving the topic.
    Lookup { topic: String },
    /// Close the topic on its broker; clients reconnect and it loads again.
    Unload { topic: String },
    /// Acknowledge the messages of a subscription older than the given age.
    ExpireMessages {
        #[command(flatten)]
        target: SubscriptionArg,
        /// Age in seconds: older messages are expired.
        #[arg(short = 't', long = "expireTime")]
        expire_time: u64,
    },
    /// Acknowledge the messages older than the given age on every subscription.
    ExpireMessagesAllSubscriptions {
        topic: String,
        /// Age in seconds: older messages are expired.
        #[arg(short = 't', long = "expireTime")]
        expire_time: u64,
    },
    /// Show the next N messages of a subscription's backlog without consuming them.
    PeekMessages {
        #[command(flatten)]
        target: SubscriptionArg,
        #[arg(short = 'n', long = "count", default_value_t = 1)]
        count: u64,
    },
    /// Show one stored message, counted from the first or back from the last.
    ExamineMessage {
        topic: String,
        /// `earliest` or `latest`.
        #[arg(short = 'i', long = "initialPosition", default_value = "latest")]
        initial_position: String,
        /// 1 for the first (or last) message.
        #[arg(short = 'm', long = "messagePosition", default_value_t = 1)]
        message_position: u64,
    },
    #[command(flatten)]
    Policy(super::topic_policies::TopicPolicyCommand),
    #[command(flatten)]
    Offload(super::offload::TopicOffloadCommand),
}

/// `persistent://t/ns/x`, `t/ns/x` → the REST path `/admin/v2/persistent/t/ns/x`;
/// `non-persistent://t/ns/x` → `/admin/v2/non-persistent/t/ns/x`.
pub(super) fn path(topic: &str) -> anyhow::Result<String> {
    let (domain, name) = match topic.split_once("://") {
        Some((domain @ ("persistent" | "non-persistent"), name)) => (domain, name),
        Some(_) => ("", ""),
        None => ("persistent", topic),
    };
    if domain.is_empty() || name.split('/').count() != 3 {
        anyhow::bail!(
            "{topic}: expected [non-]persistent://TENANT/NAMESPACE/TOPIC or TENANT/NAMESPACE/TOPIC"
        );
    }
    Ok(format!("/admin/v2/{domain}/{name}"))
}

fn namespace_path(namespace: &str) -> anyhow::Result<String> {
    if namespace.split('/').count() != 2 {
        anyhow::bail!("{namespace}: expected TENANT/NAMESPACE");
    }
    Ok(format!("/admin/v2/persistent/{namespace}"))
}

pub(super) async fn run(
    client: &AdminClient,
    command: TopicsCommand,
    json: bool,
) -> anyhow::Result<()> {
    match command {
        TopicsCommand::List { namespace } => {
            // Both domains, as pulsar-admin lists them.
            let persistent = namespace_path(&namespace)?;
            let mut topics: Vec<String> = decode(client.get_json(&persistent).await?)?;
            let non_persistent = persistent.replacen("/persistent/", "/non-persistent/", 1);
            let more: Vec<String> = decode(client.get_json(&non_persistent).await?)?;
            topics.extend(more);
            print_names(&topics, json)
        }
        TopicsCommand::ListPartitionedTopics { namespace } => {
            let path = format!("{}/partitioned", namespace_path(&namespace)?);
            let topics: Vec<String> = decode(client.get_json(&path).await?)?;
            print_names(&topics, json)
        }
        TopicsCommand::Create { topic } => {
            client.put_json(&path(&topic)?, None).await?;
            done(json, &format!("created {topic}"))
        }
        TopicsCommand::CreatePartitionedTopic { topic, partitions } => {
            client.create_partitioned_topic(&topic, partitions).await?;
            done(
                json,
                &format!("created {topic} with {partitions} partitions"),
            )
        }
        TopicsCommand::UpdatePartitionedTopic { topic, partitions } => {
            client
                .post_json(
                    &format!("{}/partitions", path(&topic)?),
                    Some(&serde_json::json!(partitions)),
                )
                .await?;
            done(json, &format!("{topic} now has {partitions} partitions"))
        }
        TopicsCommand::Delete { topic, force } => {
            client
                .delete_path(&format!("{}?force={force}", path(&topic)?))
                .await?;
            done(json, &format!("deleted {topic}"))
        }
        TopicsCommand::DeletePartitionedTopic { topic, force } => {
            client
                .delete_path(&format!("{}/partitions?force={force}", path(&topic)?))
                .await?;
            done(json, &format!("deleted {topic} and its partitions"))
        }
        TopicsCommand::GetPartitionedTopicMetadata { topic } => {
            let value = required(client, &format!("{}/partitions", path(&topic)?)).await?;
            if json {
                output::json(&value)
            } else {
                output::fields(&value);
                Ok(())
            }
        }
        TopicsCommand::Stats { topic } => {
            let value = required(client, &format!("{}/stats", path(&topic)?)).await?;
            show_stats(&value, json)
        }
        TopicsCommand::PartitionedStats { topic } => {
            let value = required(client, &format!("{}/partitioned-stats", path(&topic)?)).await?;
            show_stats(&value, json)
        }
        TopicsCommand::StatsInternal { topic } => {
            // Nested ledgers and cursors: JSON is the readable form.
            output::json(&required(client, &format!("{}/internalStats", path(&topic)?)).await?)
        }
        TopicsCommand::Subscriptions { topic } => {
            subscriptions::subscriptions(client, &topic, json).await
        }
        TopicsCommand::CreateSubscription(args) => subscriptions::create(client, args, json).await,
        TopicsCommand::Unsubscribe { target, force } => {
            subscriptions::unsubscribe(client, target, force, json).await
        }
        TopicsCommand::Skip { target, count } => {
            subscriptions::skip(client, target, count, json).await
        }
        TopicsCommand::ClearBacklog { target } => {
            subscriptions::clear_backlog(client, target, json).await
        }
        TopicsCommand::ResetCursor(args) => subscriptions::reset_cursor(client, args, json).await,
        TopicsCommand::Compact { topic } => subscriptions::compact(client, &topic, json).await,
        TopicsCommand::CompactionStatus { topic, wait } => {
            subscriptions::process_status(client, &topic, "compaction", wait, json).await
        }
        TopicsCommand::Lookup { topic } => subscriptions::lookup(client, &topic, json).await,
        TopicsCommand::Unload { topic } => {
            client
                .put_json(&format!("{}/unload", path(&topic)?), None)
                .await?;
            done(json, &format!("unloaded {topic}"))
        }
        TopicsCommand::ExpireMessages {
            target,
            expire_time,
        } => subscriptions::expire(client, target, expire_time, json).await,
        TopicsCommand::ExpireMessagesAllSubscriptions { topic, expire_time } => {
            client
                .post_json(
                    &format!(
                        "{}/all_subscription/expireMessages/{expire_time}",
                        path(&topic)?
                    ),
                    None,
                )
                .await?;
            done(
                json,
                &format!(
                    "expired messages older than {expire_time} s on every subscription of {topic}"
                ),
            )
        }
        TopicsCommand::PeekMessages { target, count } => {
            super::peek::peek(client, &target.topic, &target.subscription, count, json).await
        }
        TopicsCommand::ExamineMessage {
            topic,
            initial_position,
            message_position,
        } => super::peek::examine(client, &topic, &initial_position, message_position, json).await,
        TopicsCommand::Policy(command) => super::topic_policies::run(client, command, json).await,
        TopicsCommand::Offload(command) => super::offload::run_topic(client, command, json).await,
    }
}

pub(super) async fn required(client: &AdminClient, path: &str) -> anyhow::Result<Value> {
    client
        .get_json(path)
        .await?
        .with_context(|| format!("no content at {path}"))
}

fn decode<T: serde::de::DeserializeOwned>(value: Option<Value>) -> anyhow::Result<T> {
    Ok(serde_json::from_value(
        value.unwrap_or(Value::Array(Vec::new())),
    )?)
}

pub(super) fn print_names(names: &[String], json: bool) -> anyhow::Result<()> {
    if json {
        output::json(&names)
    } else {
        output::names(names);
        Ok(())
    }
}

pub(super) fn done(json: bool, message: &str) -> anyhow::Result<()> {
    if json {
        output::json(&serde_json::json!({ "ok": true }))
    } else {
        println!("{message}");
        Ok(())
    }
}

/// A number as people read it: integers plain, rates with one decimal.
fn num(value: &Value, key: &str) -> String {
    match value.get(key) {
        Some(Value::Number(n)) if n.is_f64() => format!("{:.1}", n.as_f64().unwrap_or(0.0)),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => "-".into(),
    }
}

/// The topic's figures, then a table of its subscriptions and one of its replication links.
fn show_stats(stats: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        return output::json(stats);
    }
    let keys = [
        "msgRateIn",
        "msgThroughputIn",
        "msgRateOut",
        "msgThroughputOut",
        "msgInCounter",
        "bytesInCounter",
        "storageSize",
        "backlogSize",
        "deduplicationStatus",
    ];
    let mut rows: Vec<Vec<String>> = keys
        .iter()
        .filter(|k| stats.get(**k).is_some())
        .map(|k| vec![k.to_string(), num(stats, k)])
        .collect();
    let producers = stats["publishers"].as_array().map_or(0, Vec::len);
    rows.push(vec!["producers".into(), producers.to_string()]);
    output::table(&["FIELD", "VALUE"], &rows);

    if let Some(subscriptions) = stats["subscriptions"].as_object()
        && !subscriptions.is_empty()
    {
        println!();
        let rows: Vec<Vec<String>> = subscriptions
            .iter()
            .map(|(name, s)| {
                let consumers = s["consumers"].as_array().map_or(0, Vec::len);
                vec![
                    name.clone(),
                    num(s, "type"),
                    num(s, "msgBacklog"),
                    num(s, "msgRateOut"),
                    consumers.to_string(),
                ]
            })
            .collect();
        output::table(
            &["SUBSCRIPTION", "TYPE", "BACKLOG", "RATE OUT", "CONSUMERS"],
            &rows,
        );
    }

    if let Some(replication) = stats["replication"].as_object()
        && !replication.is_empty()
    {
        println!();
        let rows: Vec<Vec<String>> = replication
            .iter()
            .map(|(cluster, r)| {
                vec![
                    cluster.clone(),
                    num(r, "connected"),
                    num(r, "msgRateOut"),
                    num(r, "msgOutCounter"),
                    num(r, "replicationBacklog"),
                    num(r, "replicationDelayInSeconds"),
                    num(r, "msgRateIn"),
                    num(r, "msgInCounter"),
                    r["lastError"].as_str().unwrap_or("").to_string(),
                ]
            })
            .collect();
        output::table(
            &[
                "REMOTE",
                "CONNECTED",
                "RATE OUT",
                "OUT",
                "BACKLOG",
                "DELAY S",
                "RATE IN",
                "IN",
                "LAST ERROR",
            ],
            &rows,
        );
    }
    Ok(())
}
