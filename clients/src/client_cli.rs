//! `magnetar client produce|consume`: publish and read messages from the command line, like
//! Pulsar's `pulsar-client`.

use anyhow::Context;
use base64::Engine;
use clap::{Args, Subcommand, ValueEnum};

use crate::pulsar::{
    Batching, Client, ClientOptions, CompressionType, InitialPosition, Message, ProducerMessage,
    SubType,
};

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The broker's Pulsar protocol URL.
    #[arg(
        long,
        env = "MAGNETAR_SERVICE_URL",
        default_value = "pulsar://127.0.0.1:6650",
        global = true
    )]
    pub service_url: String,
    /// A JWT token, sent with auth method `token`.
    #[arg(long, env = "MAGNETAR_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    #[command(subcommand)]
    pub command: ClientCommand,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Publish messages to a topic.
    Produce(ProduceArgs),
    /// Receive (and acknowledge) messages of a subscription.
    Consume(ConsumeArgs),
}

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic: `name`, `tenant/namespace/name` or a full `persistent://…` name.
    pub topic: String,
    /// A message to send; repeat for several.
    #[arg(short = 'm', long = "messages", required = true)]
    pub messages: Vec<String>,
    /// How many times to send the messages.
    #[arg(short = 'n', long = "num-produce", default_value_t = 1)]
    pub num_produce: u64,
    /// Partition key of every message.
    #[arg(short = 'k', long)]
    pub key: Option<String>,
    /// Properties of every message: `k=v,k2=v2`.
    #[arg(short = 'p', long)]
    pub properties: Option<String>,
    /// Batch messages into entries.
    #[arg(long)]
    pub batching: bool,
    #[arg(long, value_enum)]
    pub compression: Option<Codec>,
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    pub topic: String,
    #[arg(short = 's', long = "subscription-name")]
    pub subscription: String,
    /// Messages to receive; 0 = until interrupted.
    #[arg(short = 'n', long = "num-messages", default_value_t = 1)]
    pub num_messages: u64,
    #[arg(short = 't', long, value_enum, default_value = "exclusive")]
    pub subscription_type: SubscriptionType,
    /// Where a new subscription starts.
    #[arg(
        short = 'p',
        long,
        alias = "subscription-position",
        value_enum,
        default_value = "latest"
    )]
    pub initial_position: Position,
    /// One JSON object per message instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Codec {
    Lz4,
    Zlib,
    Zstd,
    Snappy,
}

impl From<Codec> for CompressionType {
    fn from(codec: Codec) -> CompressionType {
        match codec {
            Codec::Lz4 => CompressionType::Lz4,
            Codec::Zlib => CompressionType::Zlib,
            Codec::Zstd => CompressionType::Zstd,
            Codec::Snappy => CompressionType::Snappy,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SubscriptionType {
    Exclusive,
    Shared,
    Failover,
    #[value(name = "key_shared", alias = "key-shared")]
    KeyShared,
}

impl From<SubscriptionType> for SubType {
    fn from(t: SubscriptionType) -> SubType {
        match t {
            SubscriptionType::Exclusive => SubType::Exclusive,
            SubscriptionType::Shared => SubType::Shared,
            SubscriptionType::Failover => SubType::Failover,
            SubscriptionType::KeyShared => SubType::KeyShared,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Position {
    Earliest,
    Latest,
}

impl From<Position> for InitialPosition {
    fn from(p: Position) -> InitialPosition {
        match p {
            Position::Earliest => InitialPosition::Earliest,
            Position::Latest => InitialPosition::Latest,
        }
    }
}

pub async fn run(args: ClientArgs) -> anyhow::Result<()> {
    let options = ClientOptions {
        auth_token: args.token,
        ..ClientOptions::default()
    };
    let client = Client::connect_with(&args.service_url, options)
        .await
        .with_context(|| format!("connecting to {}", args.service_url))?;
    let result = match args.command {
        ClientCommand::Produce(args) => produce(&client, args).await,
        ClientCommand::Consume(args) => consume(&client, args).await,
    };
    client.close().await;
    result
}

async fn produce(client: &Client, args: ProduceArgs) -> anyhow::Result<()> {
    let properties = parse_properties(args.properties.as_deref().unwrap_or(""))?;
    let mut builder = client.producer(&args.topic);
    if args.batching {
        builder = builder.batching(Batching::default());
    }
    if let Some(codec) = args.compression {
        builder = builder.compression(codec.into());
    }
    let producer = builder.create().await.context("creating the producer")?;
    let mut receipts = Vec::new();
    for _ in 0..args.num_produce {
        for text in &args.messages {
            let mut message = ProducerMessage::new(text.clone().into_bytes());
            message.key = args.key.clone();
            message.properties = properties.clone();
            receipts.push(producer.send_async(message).await?);
        }
    }
    producer.flush().await?;
    let mut sent = 0;
    for receipt in receipts {
        receipt.await.context("publishing")?;
        sent += 1;
    }
    producer.close().await?;
    println!("{sent} messages successfully produced");
    Ok(())
}

async fn consume(client: &Client, args: ConsumeArgs) -> anyhow::Result<()> {
    let mut consumer = client
        .consumer(&args.topic, &args.subscription)
        .sub_type(args.subscription_type.into())
        .initial_position(args.initial_position.into())
        .subscribe()
        .await
        .context("subscribing")?;
    let mut received = 0u64;
    while args.num_messages == 0 || received < args.num_messages {
        let message = tokio::select! {
            message = consumer.receive() => message?,
            _ = tokio::signal::ctrl_c() => break,
        };
        if args.json {
            println!("{}", to_json(&message));
        } else {
            print_text(&message);
        }
        consumer.ack(&message)?;
        received += 1;
    }
    // Acks went out on the connection ahead of the close.
    consumer.close().await?;
    if !args.json {
        println!("{received} messages successfully consumed");
    }
    Ok(())
}

/// `k=v,k2=v2` → pairs.
pub(crate) fn parse_properties(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (k, v) = pair
                .split_once('=')
                .with_context(|| format!("property {pair:?} is not key=value"))?;
            Ok((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

fn print_text(message: &Message) {
    let properties: Vec<String> = message
        .properties
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!("----- got message -----");
    println!(
        "key:[{}], properties:[{}], content:{}",
        message.key.as_deref().unwrap_or("null"),
        properties.join(", "),
        String::from_utf8_lossy(&message.payload)
    );
}

fn to_json(message: &Message) -> serde_json::Value {
    let properties: serde_json::Map<String, serde_json::Value> = message
        .properties
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let mut value = serde_json::json!({
        "message_id": message.id.to_string(),
        "topic": &*message.topic,
        "key": message.key,
        "properties": properties,
        "publish_time": message.publish_time,
        "event_time": message.event_time,
        "producer_name": &*message.producer_name,
        "sequence_id": message.sequence_id,
        "redelivery_count": message.redelivery_count,
    });
    match std::str::from_utf8(&message.payload) {
        Ok(text) => value["payload"] = text.into(),
        Err(_) => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(&message.payload);
            value["payload_base64"] = encoded.into();
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_parse() {
        let parsed = parse_properties("a=1, b = two,,").expect("valid");
        assert_eq!(
            parsed,
            vec![("a".into(), "1".into()), ("b".into(), "two".into())]
        );
        assert!(parse_properties("novalue").is_err());
    }
}
