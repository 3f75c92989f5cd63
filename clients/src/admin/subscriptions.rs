//! `magnetar admin topics …` verbs about a topic's subscriptions, compaction and owner, with
//! pulsar-admin's names and flags: `subscriptions`, `create-subscription`, `unsubscribe`, `skip`,
//! `clear-backlog`, `reset-cursor`, `compact`, `compaction-status`, `lookup`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use serde_json::{Value, json};

use super::topics::{done, path, print_names, required};
use crate::admin_client::{AdminClient, seg};
use crate::output;
use crate::units::parse_duration_secs;

#[derive(Debug, Args)]
pub struct SubscriptionArg {
    pub topic: String,
    /// The subscription.
    #[arg(short = 's', long = "subscription")]
    pub subscription: String,
}

#[derive(Debug, Args)]
pub struct CreateSubscription {
    #[command(flatten)]
    pub target: SubscriptionArg,
    /// Where the cursor starts: `latest` (default), `earliest`, or LEDGER:ENTRY.
    #[arg(short = 'm', long = "messageId", default_value = "latest")]
    pub message_id: String,
}

#[derive(Debug, Args)]
pub struct ResetCursor {
    #[command(flatten)]
    pub target: SubscriptionArg,
    /// Back to messages published this long ago (`30s`, `10m`, `2h`, `1d`).
    #[arg(short = 't', long, conflicts_with_all = ["timestamp", "message_id"])]
    pub time: Option<String>,
    /// Back to messages published at or after this Unix time in milliseconds.
    #[arg(long, conflicts_with = "message_id")]
    pub timestamp: Option<u64>,
    /// To this message: LEDGER:ENTRY.
    #[arg(short = 'm', long = "messageId")]
    pub message_id: Option<String>,
}

fn sub_path(target: &SubscriptionArg) -> anyhow::Result<String> {
    Ok(format!(
        "{}/subscription/{}",
        path(&target.topic)?,
        seg(&target.subscription)
    ))
}

/// `LEDGER:ENTRY` as the admin API's MessageIdBody.
fn message_id(text: &str) -> anyhow::Result<Value> {
    let (ledger, entry) = text
        .split_once(':')
        .ok_or_else(|| anyhow::anyhow!("{text}: expected LEDGER:ENTRY"))?;
    let ledger: i64 = ledger
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("{text}: the ledger id is not a number"))?;
    let entry: i64 = entry
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("{text}: the entry id is not a number"))?;
    Ok(json!({"ledgerId": ledger, "entryId": entry}))
}

/// A time ago such as `10m` (see [`crate::units`]).
fn ago(text: &str) -> anyhow::Result<Duration> {
    let secs = parse_duration_secs(text).map_err(anyhow::Error::msg)?;
    u64::try_from(secs)
        .map(Duration::from_secs)
        .map_err(|_| anyhow::anyhow!("{text}: give a time ago such as 10m"))
}

pub(super) async fn subscriptions(
    client: &AdminClient,
    topic: &str,
    json: bool,
) -> anyhow::Result<()> {
    let names: Vec<String> = serde_json::from_value(
        client
            .get_json(&format!("{}/subscriptions", path(topic)?))
            .await?
            .unwrap_or(Value::Array(Vec::new())),
    )?;
    print_names(&names, json)
}

pub(super) async fn create(
    client: &AdminClient,
    args: CreateSubscription,
    json: bool,
) -> anyhow::Result<()> {
    let body = match args.message_id.as_str() {
        "latest" => None,
        "earliest" => Some(json!({"ledgerId": -1, "entryId": -1})),
        other => Some(message_id(other)?),
    };
    client
        .put_json(&sub_path(&args.target)?, body.as_ref())
        .await?;
    done(
        json,
        &format!(
            "created subscription {} on {} at {}",
            args.target.subscription, args.target.topic, args.message_id
        ),
    )
}

pub(super) async fn unsubscribe(
    client: &AdminClient,
    target: SubscriptionArg,
    force: bool,
    json: bool,
) -> anyhow::Result<()> {
    client
        .delete_path(&format!("{}?force={force}", sub_path(&target)?))
        .await?;
    done(
        json,
        &format!(
            "deleted subscription {} of {}",
            target.subscription, target.topic
        ),
    )
}

pub(super) async fn skip(
    client: &AdminClient,
    target: SubscriptionArg,
    count: u64,
    json: bool,
) -> anyhow::Result<()> {
    client
        .post_json(&format!("{}/skip/{count}", sub_path(&target)?), None)
        .await?;
    done(
        json,
        &format!(
            "skipped {count} messages of {} on {}",
            target.subscription, target.topic
        ),
    )
}

pub(super) async fn expire(
    client: &AdminClient,
    target: SubscriptionArg,
    seconds: u64,
    json: bool,
) -> anyhow::Result<()> {
    client
        .post_json(
            &format!("{}/expireMessages/{seconds}", sub_path(&target)?),
            None,
        )
        .await?;
    done(
        json,
        &format!(
            "expired messages older than {seconds} s of {} on {}",
            target.subscription, target.topic
        ),
    )
}

pub(super) async fn clear_backlog(
    client: &AdminClient,
    target: SubscriptionArg,
    json: bool,
) -> anyhow::Result<()> {
    client
        .post_json(&format!("{}/skip_all", sub_path(&target)?), None)
        .await?;
    done(
        json,
        &format!(
            "cleared the backlog of {} on {}",
            target.subscription, target.topic
        ),
    )
}

pub(super) async fn reset_cursor(
    client: &AdminClient,
    args: ResetCursor,
    json: bool,
) -> anyhow::Result<()> {
    let base = sub_path(&args.target)?;
    let what = match (&args.time, args.timestamp, &args.message_id) {
        (Some(text), _, _) => {
            let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
            let at = now.saturating_sub(ago(text)?).as_millis();
            client
                .post_json(&format!("{base}/resetcursor/{at}"), None)
                .await?;
            format!("to {text} ago ({at} ms)")
        }
        (None, Some(at), _) => {
            client
                .post_json(&format!("{base}/resetcursor/{at}"), None)
                .await?;
            format!("to {at} ms")
        }
        (None, None, Some(id)) => {
            client
                .post_json(&format!("{base}/resetcursor"), Some(&message_id(id)?))
                .await?;
            format!("to {id}")
        }
        (None, None, None) => anyhow::bail!("give --time, --timestamp or --messageId"),
    };
    done(
        json,
        &format!(
            "reset {} on {} {what}",
            args.target.subscription, args.target.topic
        ),
    )
}

pub(super) async fn compact(client: &AdminClient, topic: &str, json: bool) -> anyhow::Result<()> {
    client
        .put_json(&format!("{}/compaction", path(topic)?), None)
        .await?;
    done(
        json,
        &format!("compaction of {topic} started (see compaction-status)"),
    )
}

/// The status of a long-running topic operation (`route`: `compaction` or `offload`): NOT_RUN,
/// RUNNING, SUCCESS or ERROR (exits non-zero); with `wait`, once it is no longer running.
pub(super) async fn process_status(
    client: &AdminClient,
    topic: &str,
    route: &str,
    wait: bool,
    json: bool,
) -> anyhow::Result<()> {
    let status_path = format!("{}/{route}", path(topic)?);
    loop {
        let status = required(client, &status_path).await?;
        let state = status["status"].as_str().unwrap_or("").to_string();
        if !wait || state != "RUNNING" {
            if json {
                return output::json(&status);
            }
            match status["lastError"].as_str().filter(|e| !e.is_empty()) {
                Some(error) => println!("{state}: {error}"),
                None => println!("{state}"),
            }
            let first = &status["firstUnoffloadedMessage"];
            if let (Some(ledger), Some(entry)) =
                (first["ledgerId"].as_i64(), first["entryId"].as_i64())
            {
                println!("first message not offloaded: {ledger}:{entry}");
            }
            return if state == "ERROR" {
                Err(anyhow::anyhow!("the {route} of {topic} failed"))
            } else {
                Ok(())
            };
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub(super) async fn lookup(client: &AdminClient, topic: &str, json: bool) -> anyhow::Result<()> {
    let rest = path(topic)?;
    let name = rest.trim_start_matches("/admin/v2/");
    let value = required(client, &format!("/lookup/v2/topic/{name}")).await?;
    if json {
        return output::json(&value);
    }
    output::fields(&value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_message_ids_parse() {
        assert_eq!(ago("90").expect("seconds"), Duration::from_secs(90));
        assert_eq!(ago("10m").expect("minutes"), Duration::from_secs(600));
        assert!(ago("10 parsecs").is_err());
        assert!(ago("-1").is_err());
        assert_eq!(
            message_id("12:3").expect("id"),
            json!({"ledgerId": 12, "entryId": 3})
        );
        assert!(message_id("12").is_err());
    }
}
