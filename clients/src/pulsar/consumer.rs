//! [`Consumer`]: a subscription on a topic (or on every partition of a partitioned topic, merged
//! into one stream). Permits are granted per message: the receiver queue size on subscribe,
//! then refilled each time half of it has been handed to the application.
//!
//! When the broker closes the consumer (seek, topic unload) or the connection drops, the next
//! `receive` subscribes again, like Pulsar's clients; messages queued but not yet received are
//! dropped and come back from the broker.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use magnetar_protocol::pulsar::command_ack::AckType;
pub use magnetar_protocol::pulsar::command_subscribe::{InitialPosition, SubType};
use magnetar_protocol::pulsar::{
    CommandAck, CommandCloseConsumer, CommandFlow, CommandGetLastMessageId,
    CommandRedeliverUnacknowledgedMessages, CommandSeek, CommandSubscribe, CommandUnsubscribe,
    KeySharedMeta, KeySharedMode, MessageIdData,
};
use magnetar_protocol::{MessageId, TopicName};
use rustc_hash::FxHashMap;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::client::Client;
use super::connection::{Connection, Event};
use super::error::{ClientError, Result};
use super::message::{Message, decode_entry};

#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub sub_type: SubType,
    pub initial_position: InitialPosition,
    pub name: Option<String>,
    pub receiver_queue_size: u32,
    pub nack_delay: Duration,
    pub priority_level: Option<i32>,
    pub durable: bool,
    /// Where a non-durable subscription starts (exclusive).
    pub start: Option<MessageId>,
}

/// Builds a [`Consumer`].
#[derive(Debug)]
pub struct ConsumerBuilder {
    client: Client,
    topic: String,
    subscription: String,
    pub(crate) options: Options,
}

impl ConsumerBuilder {
    pub(crate) fn new(client: Client, topic: &str, subscription: &str) -> ConsumerBuilder {
        ConsumerBuilder {
            client,
            topic: topic.to_string(),
            subscription: subscription.to_string(),
            options: Options {
                sub_type: SubType::Exclusive,
                initial_position: InitialPosition::Latest,
                name: None,
                receiver_queue_size: 1000,
                nack_delay: Duration::from_secs(60),
                priority_level: None,
                durable: true,
                start: None,
            },
        }
    }

    pub fn sub_type(mut self, sub_type: SubType) -> Self {
        self.options.sub_type = sub_type;
        self
    }

    /// Where a new subscription starts (Latest by default).
    pub fn initial_position(mut self, position: InitialPosition) -> Self {
        self.options.initial_position = position;
        self
    }

    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.options.name = Some(name.into());
        self
    }

    /// Messages the broker may push ahead of `receive` (1000 by default).
    pub fn receiver_queue_size(mut self, size: u32) -> Self {
        self.options.receiver_queue_size = size.max(1);
        self
    }

    /// How long after `nack` a message is redelivered (60 s by default, as in Pulsar).
    pub fn negative_ack_delay(mut self, delay: Duration) -> Self {
        self.options.nack_delay = delay;
        self
    }

    /// Failover and Shared: lower levels are preferred.
    pub fn priority_level(mut self, level: i32) -> Self {
        self.options.priority_level = Some(level);
        self
    }

    pub async fn subscribe(self) -> Result<Consumer> {
        let topic = TopicName::parse(&self.topic)?;
        let partitions = self.client.partitions(&topic.to_string()).await?;
        let topics: Vec<String> = match partitions {
            0 => vec![topic.to_string()],
            n => (0..n)
                .map(|i| topic.with_partition(i).to_string())
                .collect(),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let name = self
            .options
            .name
            .clone()
            .unwrap_or_else(|| format!("{:010x}", rand::random::<u64>() & 0xff_ffff_ffff));
        let parts = topics
            .into_iter()
            .map(|topic| Part {
                topic,
                consumer_id: self.client.next_id(),
                conn: None,
                consumed: 0,
                position: self.options.start,
                seeking: false,
            })
            .collect();
        let mut consumer = Consumer {
            client: self.client,
            topic: topic.to_string(),
            subscription: self.subscription,
            name,
            partitioned: partitions > 0,
            options: self.options,
            parts,
            tx,
            rx,
            queue: VecDeque::new(),
            nacks: Vec::new(),
            batches: FxHashMap::default(),
        };
        for i in 0..consumer.parts.len() {
            consumer.subscribe_part(i).await?;
        }
        Ok(consumer)
    }
}

/// One subscribed (partition) topic.
#[derive(Debug)]
struct Part {
    topic: String,
    consumer_id: u64,
    /// `None` when the broker closed us or the connection dropped.
    conn: Option<Connection>,
    /// Messages handed out since the last FLOW.
    consumed: u32,
    /// Deliveries at or before this id are skipped (a seek target; a reader's start, then its
    /// last message); a non-durable subscription restarts right after it.
    position: Option<MessageId>,
    /// A seek was done: drop deliveries until the broker closes the consumer.
    seeking: bool,
}

/// Receives messages of one subscription.
#[derive(Debug)]
pub struct Consumer {
    client: Client,
    topic: String,
    subscription: String,
    name: String,
    partitioned: bool,
    options: Options,
    parts: Vec<Part>,
    tx: mpsc::UnboundedSender<Event>,
    rx: mpsc::UnboundedReceiver<Event>,
    queue: VecDeque<Message>,
    nacks: Vec<(Instant, MessageId)>,
    /// Batched entries with messages not yet acked: (partition, ledger, entry) → unacked bits.
    /// Looked up once per acked message, so hashed with Fx rather than SipHash.
    batches: FxHashMap<(i32, i64, i64), Vec<u64>>,
}

impl Consumer {
    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn subscription(&self) -> &str {
        &self.subscription
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next message, waiting as long as it takes.
    pub async fn receive(&mut self) -> Result<Message> {
        loop {
            if self.parts.iter().any(|p| p.conn.is_none()) {
                // Boxed: inline, the subscribe future would make every `receive` future large
                // enough that moving it dominated the cost of a message.
                Box::pin(self.resubscribe_closed_parts()).await?;
            }
            if let Some(message) = self.queue.pop_front() {
                let i = self.part_of(message.id);
                if !self.options.durable {
                    self.parts[i].position = Some(message.id);
                }
                self.consumed(i, 1);
                return Ok(message);
            }
            let nack_due = self.nacks.iter().map(|(at, _)| *at).min();
            tokio::select! {
                event = self.rx.recv() => self.on_event(event.ok_or(ClientError::Closed)?),
                _ = tokio::time::sleep_until(nack_due.unwrap_or_else(Instant::now)),
                    if nack_due.is_some() => self.redeliver_nacked(),
            }
        }
    }

    /// The next message, or `None` if none came within `timeout`.
    pub async fn receive_timeout(&mut self, timeout: Duration) -> Result<Option<Message>> {
        match tokio::time::timeout(timeout, self.receive()).await {
            Ok(message) => message.map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Acknowledges one message. Inside a batch, the entry is acked once all its messages are.
    pub fn ack(&mut self, message: &Message) -> Result<()> {
        let id = message.id;
        if id.batch_index >= 0 && message.batch_size > 0 {
            let key = (id.partition, id.ledger_id, id.entry_id);
            let Some(bits) = self.batches.get_mut(&key) else {
                return Ok(()); // already acked
            };
            let (word, bit) = (id.batch_index as usize / 64, id.batch_index as usize % 64);
            if let Some(w) = bits.get_mut(word) {
                *w &= !(1u64 << bit);
            }
            if bits.iter().any(|w| *w != 0) {
                return Ok(());
            }
            self.batches.remove(&key);
        }
        self.send_ack(self.part_of(id), AckType::Individual, id.entry())
    }

    /// Acknowledges this message and everything before it (Exclusive and Failover only).
    pub fn ack_cumulative(&mut self, message: &Message) -> Result<()> {
        if matches!(self.options.sub_type, SubType::Shared | SubType::KeyShared) {
            return Err(ClientError::NotAllowed("cumulative ack"));
        }
        let id = message.id;
        let whole_entry = id.batch_index < 0 || id.batch_index as u32 + 1 >= message.batch_size;
        self.batches.retain(|(p, l, e), _| {
            *p != id.partition || (*l, *e) > (id.ledger_id, id.entry_id) || {
                (*l, *e) == (id.ledger_id, id.entry_id) && !whole_entry
            }
        });
        // Inside a batch, ack through the entry before it, as Pulsar's clients do.
        let through = match (whole_entry, id.entry_id) {
            (true, _) => id.entry(),
            (false, 0) => return Ok(()),
            (false, entry) => MessageId {
                entry_id: entry - 1,
                ..id.entry()
            },
        };
        self.send_ack(self.part_of(id), AckType::Cumulative, through)
    }

    /// Asks for this message again after the negative-ack delay (with a higher redelivery
    /// count). On Exclusive and Failover, Pulsar redelivers everything unacked.
    pub fn nack(&mut self, message: &Message) {
        self.nacks
            .push((Instant::now() + self.options.nack_delay, message.id));
    }

    /// Rewinds (or forwards) the subscription so that the next message is the one after `id`
    /// (`MessageId::EARLIEST`: the first one).
    pub async fn seek(&mut self, id: MessageId) -> Result<()> {
        let position = (id.ledger_id >= 0 && id.ledger_id != i64::MAX).then_some(id);
        let proto = MessageId {
            partition: -1,
            ..id
        }
        .to_proto();
        self.seek_with(
            |p| (p == id.partition || id.partition < 0).then_some(position),
            |c| c.message_id = Some(proto.clone()),
        )
        .await
    }

    /// Rewinds the subscription to the first message published at or after `millis`.
    pub async fn seek_time(&mut self, millis: u64) -> Result<()> {
        self.seek_with(|_| Some(None), |c| c.message_publish_time = Some(millis))
            .await
    }

    async fn seek_with(
        &mut self,
        target: impl Fn(i32) -> Option<Option<MessageId>>,
        fill: impl Fn(&mut CommandSeek),
    ) -> Result<()> {
        for i in 0..self.parts.len() {
            let partition = self.partition_number(i);
            let Some(position) = target(partition) else {
                continue;
            };
            let (conn, consumer_id) = self.ready(i)?;
            conn.request("seek", |request_id| {
                let mut seek = CommandSeek {
                    consumer_id,
                    request_id,
                    ..Default::default()
                };
                fill(&mut seek);
                seek.into()
            })
            .await?;
            // The broker closes the consumer next; we subscribe again from the new position.
            let part = &mut self.parts[i];
            part.seeking = true;
            part.position = position;
            self.drop_queued(i);
        }
        self.nacks.clear();
        Ok(())
    }

    /// The id of the last message in the topic (ledger −1 if it is empty). Non-partitioned
    /// topics only.
    pub async fn last_message_id(&mut self) -> Result<MessageId> {
        let (conn, consumer_id) = self.ready(0)?;
        let reply = conn
            .request("get last message id", |request_id| {
                CommandGetLastMessageId {
                    consumer_id,
                    request_id,
                }
                .into()
            })
            .await?;
        let kind = reply.kind_name();
        let response = reply
            .get_last_message_id_response
            .ok_or(ClientError::Unexpected(kind))?;
        Ok(MessageId::from(&response.last_message_id))
    }

    /// Closes the consumer; the subscription stays.
    pub async fn close(mut self) -> Result<()> {
        for i in 0..self.parts.len() {
            let part = &mut self.parts[i];
            let consumer_id = part.consumer_id;
            if let Some(conn) = part.conn.take() {
                conn.unregister_consumer(consumer_id);
                conn.request("close consumer", |request_id| {
                    CommandCloseConsumer {
                        consumer_id,
                        request_id,
                        ..Default::default()
                    }
                    .into()
                })
                .await?;
            }
        }
        Ok(())
    }

    /// Deletes the subscription (fails while other consumers are attached).
    pub async fn unsubscribe(mut self) -> Result<()> {
        for i in 0..self.parts.len() {
            let (conn, consumer_id) = self.ready(i)?;
            conn.request("unsubscribe", |request_id| {
                CommandUnsubscribe {
                    consumer_id,
                    request_id,
                    force: None,
                }
                .into()
            })
            .await?;
            conn.unregister_consumer(consumer_id);
            self.parts[i].conn = None;
        }
        Ok(())
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Message {
                partition: i,
                command,
                payload,
            } => {
                let partition = self.partition_number(i);
                let Some(part) = self.parts.get(i).filter(|p| !p.seeking) else {
                    return;
                };
                let Some(payload) = payload else { return };
                let max = magnetar_protocol::DEFAULT_MAX_MESSAGE_SIZE * 10;
                match decode_entry(&part.topic, partition, &command, &payload, max) {
                    Ok((messages, count)) => {
                        let skip = part
                            .position
                            .filter(|p| p.ledger_id >= 0 && p.ledger_id != i64::MAX);
                        let kept: Vec<Message> = messages
                            .into_iter()
                            .filter(|m| skip.is_none_or(|s| !at_or_before(m.id, s)))
                            .collect();
                        self.consumed(i, count.saturating_sub(kept.len() as u32));
                        if let Some(first) = kept.first().filter(|m| m.batch_size > 0) {
                            let mut bits = vec![0u64; (first.batch_size as usize).div_ceil(64)];
                            for m in &kept {
                                let b = m.id.batch_index as usize;
                                bits[b / 64] |= 1 << (b % 64);
                            }
                            let key = (partition, first.id.ledger_id, first.id.entry_id);
                            self.batches.insert(key, bits);
                        }
                        self.queue.extend(kept);
                    }
                    Err(e) => {
                        let id = MessageId::from(&command.message_id);
                        tracing::warn!(topic = %part.topic, %id, error = %e, "discarding a corrupt message");
                        if let Some(conn) = &part.conn {
                            let _ = conn.send(CommandAck {
                                consumer_id: part.consumer_id,
                                ack_type: AckType::Individual as i32,
                                message_id: vec![id.entry().to_proto()],
                                validation_error: Some(e.validation_error() as i32),
                                ..Default::default()
                            });
                        }
                        self.consumed(i, 1);
                    }
                }
            }
            Event::Closed { partition: i } => {
                if let Some(part) = self.parts.get_mut(i) {
                    part.conn = None;
                }
                self.drop_queued(i);
            }
            Event::Receipt(_) | Event::SendError(_) => {}
        }
    }

    /// Subscribes again every part the broker closed, retrying while errors are transient.
    async fn resubscribe_closed_parts(&mut self) -> Result<()> {
        for i in 0..self.parts.len() {
            if self.parts[i].conn.is_some() {
                continue;
            }
            let deadline = Instant::now() + self.client.operation_timeout();
            let mut pause = Duration::from_millis(50);
            loop {
                match self.subscribe_part(i).await {
                    Ok(()) => break,
                    // A consumer of ours the broker has not let go of yet.
                    Err(e)
                        if (e.is_retryable() || e.server_error().is_some())
                            && Instant::now() + pause < deadline =>
                    {
                        tracing::debug!(topic = %self.parts[i].topic, error = %e, "resubscribing");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(1));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    async fn subscribe_part(&mut self, i: usize) -> Result<()> {
        let (topic, consumer_id) = (self.parts[i].topic.clone(), self.parts[i].consumer_id);
        let conn = self.client.lookup(&topic).await?;
        let route = super::connection::Route {
            tx: self.tx.clone(),
            partition: i,
        };
        conn.register_consumer(consumer_id, route)?;
        let o = &self.options;
        let start = match (o.durable, self.parts[i].position) {
            (true, _) => None,
            (false, Some(position)) => Some(position),
            (false, None) if o.initial_position == InitialPosition::Earliest => {
                Some(MessageId::EARLIEST)
            }
            (false, None) => Some(MessageId::LATEST),
        };
        let subscribe = CommandSubscribe {
            topic,
            subscription: self.subscription.clone(),
            sub_type: o.sub_type as i32,
            consumer_id,
            request_id: 0,
            consumer_name: Some(self.name.clone()),
            priority_level: o.priority_level,
            durable: Some(o.durable),
            start_message_id: start.map(|s| MessageIdData {
                partition: None,
                ..s.to_proto()
            }),
            initial_position: Some(o.initial_position as i32),
            key_shared_meta: (o.sub_type == SubType::KeyShared).then(|| KeySharedMeta {
                key_shared_mode: KeySharedMode::AutoSplit as i32,
                ..Default::default()
            }),
            ..Default::default()
        };
        let reply = conn
            .request("subscribe", |request_id| {
                CommandSubscribe {
                    request_id,
                    ..subscribe
                }
                .into()
            })
            .await;
        if let Err(e) = reply {
            conn.unregister_consumer(consumer_id);
            return Err(e);
        }
        conn.send(CommandFlow {
            consumer_id,
            message_permits: self.options.receiver_queue_size,
        })?;
        let part = &mut self.parts[i];
        part.conn = Some(conn);
        part.consumed = 0;
        part.seeking = false;
        Ok(())
    }

    /// Counts messages the application has taken (or that were skipped); grants the broker
    /// that many permits again once they reach half the queue.
    fn consumed(&mut self, i: usize, n: u32) {
        let threshold = (self.options.receiver_queue_size / 2).max(1);
        let Some(part) = self.parts.get_mut(i) else {
            return;
        };
        part.consumed += n;
        if part.consumed >= threshold
            && let Some(conn) = &part.conn
        {
            let flow = CommandFlow {
                consumer_id: part.consumer_id,
                message_permits: part.consumed,
            };
            if conn.send(flow).is_ok() {
                part.consumed = 0;
            }
        }
    }

    fn redeliver_nacked(&mut self) {
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = self.nacks.drain(..).partition(|(at, _)| *at <= now);
        self.nacks = later;
        let shared = matches!(self.options.sub_type, SubType::Shared | SubType::KeyShared);
        let mut by_part: HashMap<usize, Vec<MessageIdData>> = HashMap::new();
        for (_, id) in due {
            let entry = id.entry();
            self.batches
                .remove(&(id.partition, entry.ledger_id, entry.entry_id));
            let ids = by_part.entry(self.part_of(id)).or_default();
            let proto = MessageId {
                partition: -1,
                ..entry
            }
            .to_proto();
            if !ids.contains(&proto) {
                ids.push(proto);
            }
        }
        for (i, ids) in by_part {
            let Some(part) = self.parts.get(i) else {
                continue;
            };
            let Some(conn) = &part.conn else { continue };
            let redeliver = CommandRedeliverUnacknowledgedMessages {
                consumer_id: part.consumer_id,
                message_ids: if shared { ids } else { Vec::new() },
                consumer_epoch: None,
            };
            let _ = conn.send(redeliver);
            if !shared {
                // Everything unacked comes again; what is queued here would be a duplicate.
                self.drop_queued(i);
            }
        }
    }

    /// Forgets queued messages and batch tracking of part `i`, returning their permits.
    fn drop_queued(&mut self, i: usize) {
        let partition = self.partition_number(i);
        let before = self.queue.len();
        self.queue.retain(|m| m.id.partition != partition);
        let dropped = (before - self.queue.len()) as u32;
        self.batches.retain(|(p, _, _), _| *p != partition);
        self.consumed(i, dropped);
    }

    fn send_ack(&self, i: usize, ack_type: AckType, id: MessageId) -> Result<()> {
        let (conn, consumer_id) = self.ready(i)?;
        conn.send(CommandAck {
            consumer_id,
            ack_type: ack_type as i32,
            message_id: vec![
                MessageId {
                    partition: -1,
                    ..id
                }
                .to_proto(),
            ],
            ..Default::default()
        })
    }

    fn ready(&self, i: usize) -> Result<(Connection, u64)> {
        let part = self.parts.get(i).ok_or(ClientError::Closed)?;
        let conn = part.conn.clone().ok_or(ClientError::Disconnected)?;
        Ok((conn, part.consumer_id))
    }

    fn part_of(&self, id: MessageId) -> usize {
        if self.partitioned {
            usize::try_from(id.partition).unwrap_or(0)
        } else {
            0
        }
    }

    fn partition_number(&self, i: usize) -> i32 {
        if self.partitioned { i as i32 } else { -1 }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        for part in &mut self.parts {
            if let Some(conn) = part.conn.take() {
                conn.unregister_consumer(part.consumer_id);
                let _ = conn.send(CommandCloseConsumer {
                    consumer_id: part.consumer_id,
                    request_id: u64::MAX,
                    ..Default::default()
                });
            }
        }
    }
}

/// Whether `m` was delivered before (or is) `seen`, inside a batch or not.
fn at_or_before(m: MessageId, seen: MessageId) -> bool {
    match (m.ledger_id, m.entry_id).cmp(&(seen.ledger_id, seen.entry_id)) {
        std::cmp::Ordering::Less => true,
        std::cmp::Ordering::Equal => seen.batch_index < 0 || m.batch_index <= seen.batch_index,
        std::cmp::Ordering::Greater => false,
    }
}
