//! [`Reader`]: reads a topic from a message id on a non-durable subscription, which the broker
//! forgets when the reader goes away. Nothing is acknowledged.

use std::time::Duration;

use magnetar_protocol::MessageId;

use super::client::Client;
use super::consumer::{Consumer, ConsumerBuilder, InitialPosition, SubType};
use super::error::Result;
use super::message::Message;

/// Builds a [`Reader`].
#[derive(Debug)]
pub struct ReaderBuilder {
    builder: ConsumerBuilder,
}

impl ReaderBuilder {
    pub(crate) fn new(client: Client, topic: &str) -> ReaderBuilder {
        let subscription = format!("reader-{:010x}", rand::random::<u64>() & 0xff_ffff_ffff);
        let mut builder = ConsumerBuilder::new(client, topic, &subscription)
            .sub_type(SubType::Exclusive)
            .initial_position(InitialPosition::Earliest);
        builder.options.durable = false;
        builder.options.start = Some(MessageId::EARLIEST);
        ReaderBuilder { builder }
    }

    /// Reads the messages after `id`; `MessageId::EARLIEST` (the default) reads everything,
    /// `MessageId::LATEST` only what is published from now on.
    pub fn start_message_id(mut self, id: MessageId) -> Self {
        self.builder.options.start = Some(id);
        self
    }

    pub fn receiver_queue_size(mut self, size: u32) -> Self {
        self.builder = self.builder.receiver_queue_size(size);
        self
    }

    pub async fn create(self) -> Result<Reader> {
        Ok(Reader {
            consumer: self.builder.subscribe().await?,
        })
    }
}

#[derive(Debug)]
pub struct Reader {
    consumer: Consumer,
}

impl Reader {
    pub async fn next(&mut self) -> Result<Message> {
        self.consumer.receive().await
    }

    pub async fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Message>> {
        self.consumer.receive_timeout(timeout).await
    }

    /// Continues after `id` (or from the start with `MessageId::EARLIEST`).
    pub async fn seek(&mut self, id: MessageId) -> Result<()> {
        self.consumer.seek(id).await
    }

    /// The last message id of the topic (ledger −1 if it is empty).
    pub async fn last_message_id(&mut self) -> Result<MessageId> {
        self.consumer.last_message_id().await
    }

    pub async fn close(self) -> Result<()> {
        self.consumer.close().await
    }
}
