//! The producer of one topic or partition: sequence ids, optional batching, compression, sends
//! pipelined on the connection and receipts matched in send order.
//!
//! The send path runs on the caller's task under a short lock; a background task per producer
//! takes receipts from the connection and flushes a batch whose delay has passed. A bounded
//! number of messages may wait for receipts; past that, `send` waits.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use magnetar_protocol::batch::encode_batch;
use magnetar_protocol::compression::compress;
use magnetar_protocol::pulsar::{
    CommandCloseProducer, CommandProducer, CommandSend, CommandSendReceipt, CompressionType,
    MessageMetadata, ServerError, SingleMessageMetadata,
};
use magnetar_protocol::{Frame, MessageId, Payload};
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::Client;
use super::connection::{Connection, Event, Route};
use super::error::{ClientError, Result};
use super::message::ProducerMessage;

/// When a batch is sent: whichever limit is reached first.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    pub max_messages: usize,
    pub max_bytes: usize,
    pub max_delay: Duration,
}

impl Default for Batching {
    /// Pulsar's defaults: 1000 messages, 128 KiB, 10 ms.
    fn default() -> Batching {
        Batching {
            max_messages: 1000,
            max_bytes: 128 * 1024,
            max_delay: Duration::from_millis(10),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub name: Option<String>,
    pub batching: Option<Batching>,
    pub compression: CompressionType,
    pub max_pending_messages: usize,
}

/// A message's outcome and when it was known (for latency measurements that do not depend on
/// when the sender gets round to looking).
pub(crate) type Outcome = (Result<MessageId>, std::time::Instant);
type Completion = oneshot::Sender<Outcome>;

/// An entry sent and waiting for its receipt.
#[derive(Debug)]
struct InFlight {
    sequence_id: u64,
    highest_sequence_id: u64,
    batched: bool,
    completions: Vec<Completion>,
}

#[derive(Debug, Default)]
struct Batch {
    messages: Vec<(SingleMessageMetadata, Bytes)>,
    completions: Vec<Completion>,
    bytes: usize,
    first_sequence_id: u64,
    publish_time: u64,
    started: Option<Instant>,
}

#[derive(Debug)]
struct State {
    conn: Option<Connection>,
    name: String,
    next_sequence_id: u64,
    batch: Batch,
    in_flight: VecDeque<InFlight>,
    closed: bool,
}

#[derive(Debug)]
pub(crate) struct PartitionProducer {
    shared: Arc<Shared>,
    stop: CancellationToken,
}

#[derive(Debug)]
struct Shared {
    client: Client,
    topic: String,
    partition: i32,
    producer_id: u64,
    options: Options,
    route: Route,
    state: Mutex<State>,
    permits: Semaphore,
    batch_started: Notify,
    reconnecting: tokio::sync::Mutex<()>,
}

impl PartitionProducer {
    /// Registers the producer with the broker owning `topic`.
    pub(crate) async fn create(
        client: &Client,
        topic: String,
        partition: i32,
        options: Options,
    ) -> Result<PartitionProducer> {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            client: client.clone(),
            topic,
            partition,
            producer_id: client.next_id(),
            route: Route { tx, partition: 0 },
            state: Mutex::new(State {
                conn: None,
                name: options.name.clone().unwrap_or_default(),
                next_sequence_id: 0,
                batch: Batch::default(),
                in_flight: VecDeque::new(),
                closed: false,
            }),
            permits: Semaphore::new(options.max_pending_messages.max(1)),
            batch_started: Notify::new(),
            reconnecting: tokio::sync::Mutex::new(()),
            options,
        });
        shared.connect().await?;
        let stop = client.stop_token();
        client.tasks().spawn(run(shared.clone(), rx, stop.clone()));
        Ok(PartitionProducer { shared, stop })
    }

    pub(crate) fn name(&self) -> String {
        self.shared.lock().name.clone()
    }

    pub(crate) fn topic(&self) -> &str {
        &self.shared.topic
    }

    /// Queues a message; the receiver completes with its id once the broker stored it.
    pub(crate) async fn send(
        &self,
        message: ProducerMessage,
    ) -> Result<oneshot::Receiver<Outcome>> {
        let shared = &self.shared;
        let permit = shared
            .permits
            .acquire()
            .await
            .map_err(|_| ClientError::Closed)?;
        if shared
            .lock()
            .conn
            .as_ref()
            .is_none_or(Connection::is_closed)
        {
            shared.connect().await?;
        }
        let (tx, rx) = oneshot::channel();
        let mut state = shared.lock();
        if state.closed {
            return Err(ClientError::Closed);
        }
        let Some(conn) = state.conn.clone() else {
            return Err(ClientError::Disconnected);
        };
        let size = message.payload.len();
        if size > conn.max_message_size() {
            return Err(ClientError::MessageTooBig {
                size,
                max: conn.max_message_size(),
            });
        }
        permit.forget();
        let sequence_id = state.next_sequence_id;
        state.next_sequence_id += 1;
        let Some(batching) = shared.options.batching else {
            let metadata = MessageMetadata {
                producer_name: state.name.clone(),
                sequence_id,
                publish_time: now_millis(),
                properties: message.properties_kv(),
                partition_key: message.key.clone(),
                event_time: message.event_time,
                ..Default::default()
            };
            shared.send_entry(&mut state, metadata, &message.payload, None, vec![tx]);
            return Ok(rx);
        };
        let batch = &state.batch;
        // One key per batch: the broker routes a batch by its first key (Key_Shared).
        let other_key = batch.messages.first().map(|(m, _)| &m.partition_key) != Some(&message.key);
        if !batch.messages.is_empty() && (other_key || batch.bytes + size > batching.max_bytes) {
            shared.flush_batch(&mut state);
        }
        let batch = &mut state.batch;
        if batch.messages.is_empty() {
            batch.first_sequence_id = sequence_id;
            batch.publish_time = now_millis();
            batch.started = Some(Instant::now());
            shared.batch_started.notify_one();
        }
        let single = SingleMessageMetadata {
            properties: message.properties_kv(),
            partition_key: message.key,
            event_time: message.event_time,
            sequence_id: Some(sequence_id),
            ..Default::default()
        };
        batch.bytes += size;
        batch.messages.push((single, message.payload));
        batch.completions.push(tx);
        if batch.messages.len() >= batching.max_messages || batch.bytes >= batching.max_bytes {
            shared.flush_batch(&mut state);
        }
        Ok(rx)
    }

    /// Sends the open batch now and waits until every message sent so far has its receipt.
    pub(crate) async fn flush(&self) -> Result<()> {
        let shared = &self.shared;
        shared.flush_batch(&mut shared.lock());
        let all = shared.options.max_pending_messages.max(1) as u32;
        let permits = shared.permits.acquire_many(all).await;
        permits.map(drop).map_err(|_| ClientError::Closed)
    }

    /// Flushes, then closes the producer on the broker.
    pub(crate) async fn close(&self) -> Result<()> {
        let flushed = self.flush().await;
        let conn = {
            let mut state = self.shared.lock();
            state.closed = true;
            state.conn.take()
        };
        self.stop.cancel();
        if let Some(conn) = conn {
            conn.unregister_producer(self.shared.producer_id);
            let producer_id = self.shared.producer_id;
            conn.request("close producer", |request_id| {
                CommandCloseProducer {
                    producer_id,
                    request_id,
                    ..Default::default()
                }
                .into()
            })
            .await?;
        }
        flushed
    }
}

impl Drop for PartitionProducer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Looks the topic up and (re-)creates the producer on its broker, keeping the name.
    async fn connect(&self) -> Result<()> {
        let _one_at_a_time = self.reconnecting.lock().await;
        if self.lock().conn.as_ref().is_some_and(|c| !c.is_closed()) {
            return Ok(());
        }
        let conn = self.client.lookup(&self.topic).await?;
        conn.register_producer(self.producer_id, self.route.clone())?;
        let name = self.lock().name.clone();
        let user_named = self.options.name.is_some();
        let success = conn
            .create_producer(CommandProducer {
                topic: self.topic.clone(),
                producer_id: self.producer_id,
                producer_name: (!name.is_empty()).then_some(name),
                user_provided_producer_name: Some(user_named),
                ..Default::default()
            })
            .await?;
        let mut state = self.lock();
        if state.next_sequence_id == 0 && success.last_sequence_id() >= 0 {
            state.next_sequence_id = success.last_sequence_id() as u64 + 1;
        }
        state.name = success.producer_name;
        state.conn = Some(conn);
        Ok(())
    }

    fn flush_batch(&self, state: &mut State) {
        let batch = std::mem::take(&mut state.batch);
        if batch.messages.is_empty() {
            return;
        }
        let count = batch.messages.len();
        let last = batch.messages.last().and_then(|(m, _)| m.sequence_id);
        let body = encode_batch(batch.messages.iter().map(|(m, p)| (m.clone(), &p[..])));
        let metadata = MessageMetadata {
            producer_name: state.name.clone(),
            sequence_id: batch.first_sequence_id,
            publish_time: batch.publish_time,
            partition_key: batch.messages[0].0.partition_key.clone(),
            num_messages_in_batch: Some(count as i32),
            highest_sequence_id: last,
            ..Default::default()
        };
        self.send_entry(state, metadata, &body, last, batch.completions);
    }

    /// Compresses, frames and queues one entry; its completions wait for the receipt.
    fn send_entry(
        &self,
        state: &mut State,
        mut metadata: MessageMetadata,
        body: &[u8],
        highest: Option<u64>,
        completions: Vec<Completion>,
    ) {
        let compression = self.options.compression;
        let compressed;
        let body = if compression == CompressionType::None {
            body
        } else {
            metadata.compression = Some(compression as i32);
            metadata.uncompressed_size = Some(body.len() as u32);
            compressed = compress(compression, body);
            &compressed[..]
        };
        let sequence_id = metadata.sequence_id;
        let batched = metadata.num_messages_in_batch.is_some();
        let send = CommandSend {
            producer_id: self.producer_id,
            sequence_id,
            num_messages: metadata.num_messages_in_batch,
            highest_sequence_id: highest,
            ..Default::default()
        };
        let frame = Frame::with_payload(send, Payload::new(&metadata, body));
        let sent = state.conn.as_ref().map(|c| c.send(frame));
        if !matches!(sent, Some(Ok(()))) {
            self.fail(completions, || ClientError::Disconnected);
            return;
        }
        state.in_flight.push_back(InFlight {
            sequence_id,
            highest_sequence_id: highest.unwrap_or(sequence_id),
            batched,
            completions,
        });
    }

    fn fail(&self, completions: Vec<Completion>, error: impl Fn() -> ClientError) {
        self.permits.add_permits(completions.len());
        let now = std::time::Instant::now();
        for tx in completions {
            let _ = tx.send((Err(error()), now));
        }
    }

    fn on_receipt(&self, receipt: CommandSendReceipt) {
        let mut done = Vec::new();
        {
            let mut state = self.lock();
            while let Some(front) = state.in_flight.front() {
                let seq = receipt.sequence_id;
                if seq == front.sequence_id || seq == front.highest_sequence_id {
                    done.extend(state.in_flight.pop_front().map(|f| (f, true)));
                    break;
                } else if front.highest_sequence_id < seq {
                    // A receipt ahead of its queue: the entries before it are lost.
                    done.extend(state.in_flight.pop_front().map(|f| (f, false)));
                } else {
                    break; // a duplicate receipt
                }
            }
        }
        let entry = receipt.message_id.as_ref().map(MessageId::from);
        let now = std::time::Instant::now();
        for (in_flight, ok) in done {
            let (Some(entry), true) = (entry, ok) else {
                let lost = || ClientError::Unexpected("receipt out of order".into());
                self.fail(in_flight.completions, lost);
                continue;
            };
            self.permits.add_permits(in_flight.completions.len());
            for (i, tx) in in_flight.completions.into_iter().enumerate() {
                let id = MessageId {
                    partition: self.partition,
                    batch_index: if in_flight.batched { i as i32 } else { -1 },
                    ..entry.entry()
                };
                let _ = tx.send((Ok(id), now));
            }
        }
    }

    /// Fails what is in flight; the next send reconnects.
    fn on_closed(&self, error: impl Fn() -> ClientError) {
        let (in_flight, batch) = {
            let mut state = self.lock();
            state.conn = None;
            (
                std::mem::take(&mut state.in_flight),
                std::mem::take(&mut state.batch),
            )
        };
        for f in in_flight {
            self.fail(f.completions, &error);
        }
        self.fail(batch.completions, &error);
    }
}

/// Receipts and batch delays of one producer.
async fn run(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Event>, stop: CancellationToken) {
    let delay = shared.options.batching.map(|b| b.max_delay);
    loop {
        let due = delay.and_then(|d| Some(shared.lock().batch.started? + d));
        tokio::select! {
            event = rx.recv() => match event {
                Some(Event::Receipt(receipt)) => shared.on_receipt(receipt),
                Some(Event::SendError(e)) => {
                    let code = ServerError::try_from(e.error).unwrap_or(ServerError::UnknownError);
                    tracing::warn!(topic = %shared.topic, ?code, message = %e.message, "send failed");
                    let front = shared.lock().in_flight.pop_front();
                    if let Some(f) = front {
                        shared.fail(f.completions, || ClientError::server(e.error, e.message.clone()));
                    }
                }
                Some(Event::Closed { .. }) => shared.on_closed(|| ClientError::Disconnected),
                Some(Event::Message { .. }) => {}
                None => break,
            },
            _ = shared.batch_started.notified() => {}
            _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                let mut state = shared.lock();
                if state.batch.started.is_some_and(|s| s.elapsed() >= delay.unwrap_or_default()) {
                    shared.flush_batch(&mut state);
                }
            }
            _ = stop.cancelled() => break,
        }
    }
    let conn = shared.lock().conn.take();
    if let Some(conn) = conn {
        conn.unregister_producer(shared.producer_id);
        let _ = conn.send(CommandCloseProducer {
            producer_id: shared.producer_id,
            request_id: u64::MAX,
            ..Default::default()
        });
    }
    shared.on_closed(|| ClientError::Closed);
}

pub(crate) fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
