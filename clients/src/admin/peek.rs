//! `magnetar admin topics peek-messages` and `examine-message`: stored messages shown without
//! consuming them. Each position is one stored entry; a batch is split into its messages here,
//! as pulsar-admin does. Payloads print as text when they are UTF-8, else as hex; `--json` gives
//! text or base64.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use magnetar_protocol::batch::decode_batch;
use reqwest::header::HeaderMap;
use serde_json::{Map, Value, json};

use super::topics::path;
use crate::admin_client::{AdminClient, AdminClientError, seg};
use crate::output;

/// One message as shown.
#[derive(Debug, Clone, PartialEq)]
struct Shown {
    id: String,
    publish_time: Option<u64>,
    key: Option<String>,
    properties: Map<String, Value>,
    payload: Vec<u8>,
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The messages of one peeked entry: itself, or the messages of its batch.
fn messages(headers: &HeaderMap, body: Vec<u8>) -> anyhow::Result<Vec<Shown>> {
    let id = header(headers, "X-Pulsar-Message-ID").unwrap_or_default();
    let publish_time = header(headers, "X-Pulsar-publish-time").and_then(|t| t.parse().ok());
    let mut properties = Map::new();
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix("x-pulsar-property-") {
            properties.insert(key.to_string(), json!(value.to_str().unwrap_or("")));
        }
    }
    let Some(count) = header(headers, "X-Pulsar-num-batch-message").and_then(|n| n.parse().ok())
    else {
        return Ok(vec![Shown {
            id,
            publish_time,
            key: header(headers, "X-Pulsar-partition-key"),
            properties,
            payload: body,
        }]);
    };
    let batch = decode_batch(&Bytes::from(body), count)
        .map_err(|e| anyhow::anyhow!("message {id}: unreadable batch: {e}"))?;
    Ok(batch
        .into_iter()
        .enumerate()
        .map(|(i, m)| Shown {
            id: format!("{id}:{i}"),
            publish_time,
            key: m.metadata.partition_key.clone(),
            properties: m
                .metadata
                .properties
                .iter()
                .map(|kv| (kv.key.clone(), json!(kv.value)))
                .collect(),
            payload: m.payload.to_vec(),
        })
        .collect())
}

fn hex_dump(data: &[u8]) -> String {
    let mut out = String::new();
    for (row, chunk) in data.chunks(16).enumerate() {
        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        let text: String = chunk
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        out.push_str(&format!(
            "{:08x}  {:<48}  {text}\n",
            row * 16,
            hex.join(" ")
        ));
    }
    out
}

fn print(shown: &[Shown], json: bool) -> anyhow::Result<()> {
    if json {
        let values: Vec<Value> = shown
            .iter()
            .map(|m| {
                let payload = match std::str::from_utf8(&m.payload) {
                    Ok(text) => json!({"text": text}),
                    Err(_) => json!({"base64": STANDARD.encode(&m.payload)}),
                };
                json!({
                    "messageId": m.id,
                    "publishTime": m.publish_time,
                    "key": m.key,
                    "properties": m.properties,
                    "payload": payload,
                })
            })
            .collect();
        return output::json(&values);
    }
    for m in shown {
        println!("Message ID: {}", m.id);
        if let Some(t) = m.publish_time {
            println!("Publish time: {t}");
        }
        if let Some(key) = &m.key {
            println!("Key: {key}");
        }
        if !m.properties.is_empty() {
            println!("Properties: {}", Value::Object(m.properties.clone()));
        }
        match std::str::from_utf8(&m.payload) {
            Ok(text) => println!("{text}"),
            Err(_) => print!("{}", hex_dump(&m.payload)),
        }
        println!("----");
    }
    Ok(())
}

fn is_not_found(e: &AdminClientError) -> bool {
    e.status() == Some(reqwest::StatusCode::NOT_FOUND)
}

/// Up to `count` entries after the subscription's position (fewer if the backlog is shorter).
pub(super) async fn peek(
    client: &AdminClient,
    topic: &str,
    subscription: &str,
    count: u64,
    json: bool,
) -> anyhow::Result<()> {
    let base = format!(
        "{}/subscription/{}/position",
        path(topic)?,
        seg(subscription)
    );
    let mut shown = Vec::new();
    for n in 1..=count.max(1) {
        match client.get_raw(&format!("{base}/{n}")).await {
            Ok((headers, body)) => shown.extend(messages(&headers, body.unwrap_or_default())?),
            // Past the end of the backlog, unless the very first is missing (then say why).
            Err(e) if is_not_found(&e) && n > 1 => break,
            Err(e) => return Err(e.into()),
        }
    }
    print(&shown, json)
}

/// One entry counted from the first (`earliest`) or back from the last (`latest`).
pub(super) async fn examine(
    client: &AdminClient,
    topic: &str,
    initial_position: &str,
    position: u64,
    json: bool,
) -> anyhow::Result<()> {
    let url = format!(
        "{}/examinemessage?initialPosition={}&messagePosition={position}",
        path(topic)?,
        seg(initial_position)
    );
    let (headers, body) = client.get_raw(&url).await?;
    print(&messages(&headers, body.unwrap_or_default())?, json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_payloads_print_as_hex() {
        let dump = hex_dump(b"ab\x00\x01");
        assert!(dump.starts_with("00000000  61 62 00 01"), "{dump}");
        assert!(dump.trim_end().ends_with("ab.."), "{dump}");
    }

    #[test]
    fn a_single_message_keeps_its_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("X-Pulsar-Message-ID", "7:3".parse().expect("header"));
        headers.insert(
            "X-Pulsar-publish-time",
            "1700000000000".parse().expect("header"),
        );
        headers.insert("X-Pulsar-PROPERTY-color", "blue".parse().expect("header"));
        let shown = messages(&headers, b"hello".to_vec()).expect("one message");
        assert_eq!(shown.len(), 1);
        assert_eq!(shown[0].id, "7:3");
        assert_eq!(shown[0].publish_time, Some(1_700_000_000_000));
        assert_eq!(shown[0].properties["color"], json!("blue"));
    }
}
