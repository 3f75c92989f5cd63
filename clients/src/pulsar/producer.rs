//! [`Producer`]: publishes to a topic, or to the partitions of a partitioned topic (by key hash
//! when a message has a key, round-robin otherwise).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use magnetar_protocol::pulsar::CompressionType;
use magnetar_protocol::{MessageId, TopicName};
use tokio::sync::oneshot;

use super::client::Client;
use super::error::{ClientError, Result};
use super::message::ProducerMessage;
use super::partition_producer::{Batching, Options, Outcome, PartitionProducer};

/// Builds a [`Producer`].
#[derive(Debug)]
pub struct ProducerBuilder {
    client: Client,
    topic: String,
    options: Options,
}

impl ProducerBuilder {
    pub(crate) fn new(client: Client, topic: &str) -> ProducerBuilder {
        ProducerBuilder {
            client,
            topic: topic.to_string(),
            options: Options {
                name: None,
                batching: None,
                compression: CompressionType::None,
                max_pending_messages: 10_000,
            },
        }
    }

    /// A fixed producer name (by default the broker assigns one).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.options.name = Some(name.into());
        self
    }

    /// Batches messages into entries (off by default).
    pub fn batching(mut self, batching: Batching) -> Self {
        self.options.batching = Some(batching);
        self
    }

    pub fn compression(mut self, compression: CompressionType) -> Self {
        self.options.compression = compression;
        self
    }

    /// Messages (per partition) that may wait for their receipt before `send` waits.
    pub fn max_pending_messages(mut self, n: usize) -> Self {
        self.options.max_pending_messages = n;
        self
    }

    pub async fn create(self) -> Result<Producer> {
        let topic = TopicName::parse(&self.topic)?;
        let partitions = self.client.partitions(&topic.to_string()).await?;
        let mut parts = Vec::new();
        if partitions == 0 {
            let part = PartitionProducer::create(&self.client, topic.to_string(), -1, self.options)
                .await?;
            parts.push(part);
        } else {
            for i in 0..partitions {
                let name = topic.with_partition(i).to_string();
                let part =
                    PartitionProducer::create(&self.client, name, i as i32, self.options.clone())
                        .await?;
                parts.push(part);
            }
        }
        Ok(Producer {
            topic: topic.to_string(),
            parts,
            next: AtomicUsize::new(0),
        })
    }
}

/// Publishes messages. `send` waits for the broker's receipt; `send_async` returns as soon as
/// the message is queued, with a [`Receipt`] to await, so that many sends are in flight.
#[derive(Debug)]
pub struct Producer {
    topic: String,
    parts: Vec<PartitionProducer>,
    next: AtomicUsize,
}

impl Producer {
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The producer's name (the broker's choice unless one was given).
    pub fn name(&self) -> String {
        self.parts.first().map(|p| p.name()).unwrap_or_default()
    }

    pub fn partitions(&self) -> usize {
        self.parts.len()
    }

    /// Publishes and waits until the broker stored the message.
    pub async fn send(&self, message: impl Into<ProducerMessage>) -> Result<MessageId> {
        self.send_async(message).await?.await
    }

    /// Queues a message for publishing; waits only while too many messages lack receipts.
    pub async fn send_async(&self, message: impl Into<ProducerMessage>) -> Result<Receipt> {
        let message = message.into();
        let part = self.route(&message);
        Ok(Receipt(self.parts[part].send(message).await?))
    }

    /// Sends open batches and waits for every outstanding receipt.
    pub async fn flush(&self) -> Result<()> {
        for part in &self.parts {
            part.flush().await?;
        }
        Ok(())
    }

    /// Flushes and closes the producer on the broker.
    pub async fn close(self) -> Result<()> {
        let mut result = Ok(());
        for part in &self.parts {
            if let Err(e) = part.close().await {
                result = Err(e);
            }
        }
        result
    }

    fn route(&self, message: &ProducerMessage) -> usize {
        let n = self.parts.len();
        if n == 1 {
            return 0;
        }
        match &message.key {
            Some(key) => key_hash(key.as_bytes()) as usize % n,
            None => self.next.fetch_add(1, Ordering::Relaxed) % n,
        }
    }

    /// The (partition) topic names this producer writes to.
    pub fn topics(&self) -> Vec<String> {
        self.parts.iter().map(|p| p.topic().to_string()).collect()
    }
}

/// Java's `Murmur3_32Hash` of a key, made non-negative, as Pulsar routes keys to partitions.
pub(crate) fn key_hash(key: &[u8]) -> u32 {
    murmur3::murmur3_32(&mut std::io::Cursor::new(key), 0).unwrap_or(0) & i32::MAX as u32
}

/// The outcome of one `send_async`: the message id once the broker stored it.
#[derive(Debug)]
pub struct Receipt(oneshot::Receiver<Outcome>);

impl Receipt {
    /// The outcome with the instant the broker's receipt (or the failure) arrived, which may
    /// be well before this future is awaited.
    pub async fn timed(self) -> (Result<MessageId>, Instant) {
        self.0
            .await
            .unwrap_or_else(|_| (Err(ClientError::Disconnected), Instant::now()))
    }
}

impl Future for Receipt {
    type Output = Result<MessageId>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<MessageId>> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.map_or(Err(ClientError::Disconnected), |(result, _)| result))
    }
}
