//! A producer of already-encoded messages: the caller gives each entry's metadata, payload and
//! sequence id, and takes the receipts back in send order. This is what a geo-replicator needs
//! to forward a topic's stored entries to another cluster over the Pulsar protocol — no
//! batching, no re-sends and no reconnects of its own: on any failure the caller starts a new
//! producer and sends again from its own durable position (the receiving broker deduplicates).

use magnetar_protocol::pulsar::{
    CommandCloseProducer, CommandProducer, CommandSend, MessageMetadata, ServerError,
};
use magnetar_protocol::{Frame, MessageId, Payload, TopicName};
use tokio::sync::mpsc;

use super::client::Client;
use super::connection::{Connection, Event, Route};
use super::error::{ClientError, Result};

#[derive(Debug)]
pub struct RawProducer {
    conn: Connection,
    producer_id: u64,
    topic: String,
    name: String,
    last_sequence_id: i64,
    events: mpsc::UnboundedReceiver<Event>,
    /// A receipt failed: nothing more is sent.
    failed: bool,
    /// CLOSE_PRODUCER was sent.
    closed: bool,
}

impl RawProducer {
    /// Looks `topic` up and creates a producer named `name` on the broker that owns it.
    pub async fn create(client: &Client, topic: &str, name: &str) -> Result<RawProducer> {
        let topic = TopicName::parse(topic)?.to_string();
        let conn = client.lookup(&topic).await?;
        let producer_id = client.next_id();
        let (tx, events) = mpsc::unbounded_channel();
        conn.register_producer(producer_id, Route { tx, partition: 0 })?;
        let success = conn
            .create_producer(CommandProducer {
                topic: topic.clone(),
                producer_id,
                producer_name: Some(name.to_string()),
                user_provided_producer_name: Some(true),
                ..Default::default()
            })
            .await?;
        Ok(RawProducer {
            conn,
            producer_id,
            topic,
            last_sequence_id: success.last_sequence_id(),
            name: success.producer_name,
            events,
            failed: false,
            closed: false,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The broker's `last_sequence_id` for this producer name (-1 when it has none).
    pub fn last_sequence_id(&self) -> i64 {
        self.last_sequence_id
    }

    /// The largest message the broker accepts.
    pub fn max_message_size(&self) -> usize {
        self.conn.max_message_size()
    }

    /// Queues one entry (a single message or a batch, as `metadata` says) for sending.
    pub fn send(&self, sequence_id: u64, metadata: &MessageMetadata, body: &[u8]) -> Result<()> {
        if self.failed || self.conn.is_closed() {
            return Err(ClientError::Disconnected);
        }
        let send = CommandSend {
            producer_id: self.producer_id,
            sequence_id,
            num_messages: metadata.num_messages_in_batch,
            ..Default::default()
        };
        self.conn
            .send(Frame::with_payload(send, Payload::new(metadata, body)))
    }

    /// The next receipt, in send order: the sequence id and where the broker stored the entry
    /// (`-1:-1` for an entry it already had; none from a broker that does not say). An error
    /// ends the producer.
    pub async fn receipt(&mut self) -> Result<(u64, Option<MessageId>)> {
        if self.failed {
            return Err(ClientError::Disconnected);
        }
        let result = match self.events.recv().await {
            Some(Event::Receipt(receipt)) => {
                let id = receipt.message_id.as_ref().map(MessageId::from);
                Ok((receipt.sequence_id, id))
            }
            Some(Event::SendError(e)) => {
                let code = ServerError::try_from(e.error).unwrap_or(ServerError::UnknownError);
                Err(ClientError::Server {
                    code,
                    message: e.message,
                })
            }
            Some(Event::Message { .. }) => Err(ClientError::Unexpected("MESSAGE".into())),
            Some(Event::Closed { .. }) | None => Err(ClientError::Disconnected),
        };
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// Closes the producer on the broker and waits for the answer (best effort: the connection
    /// may be gone).
    pub async fn close(mut self) {
        self.conn.unregister_producer(self.producer_id);
        self.closed = true;
        if self.conn.is_closed() {
            return;
        }
        let producer_id = self.producer_id;
        let _ = self
            .conn
            .request("close producer", |request_id| {
                CommandCloseProducer {
                    producer_id,
                    request_id,
                    ..Default::default()
                }
                .into()
            })
            .await;
    }
}

impl Drop for RawProducer {
    /// Frees the name on the broker (a replicator's next producer reuses it).
    fn drop(&mut self) {
        self.conn.unregister_producer(self.producer_id);
        if !self.closed {
            let _ = self.conn.send(CommandCloseProducer {
                producer_id: self.producer_id,
                request_id: u64::MAX,
                ..Default::default()
            });
        }
    }
}
