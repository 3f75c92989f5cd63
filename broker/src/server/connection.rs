//! One client connection: the handshake, keep-alive, and every command, answered with Pulsar's
//! replies and error codes. Commands are handled in arrival order; work that waits on storage
//! (loading a topic, creating a producer or consumer, seeking, unsubscribing, reading the last
//! message id) runs in its own task and reports back, so a slow topic never stalls the
//! connection's other producers and consumers.
//!
//! Guards: CONNECT must come first and within `connect_timeout`; SENDs waiting for storage are
//! bounded per connection and broker-wide (the connection is not read while it is over either
//! bound, so a fast publisher is slowed to what the bookies take); a write that makes no progress
//! for `write_timeout` (a client that stopped reading) closes the connection; a frame too large
//! to send is dropped, never the connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use futures::{FutureExt, SinkExt, StreamExt};
use magnetar_auth::TopicOperation;
use magnetar_protocol::commands;
use magnetar_protocol::pulsar::base_command::Type;
use magnetar_protocol::pulsar::command_lookup_topic_response::LookupType;
use magnetar_protocol::pulsar::command_partitioned_topic_metadata_response::LookupType as MetadataResult;
use magnetar_protocol::pulsar::*;
use magnetar_protocol::{Frame, FrameError, MessageId, PulsarCodec, TopicName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

use super::auth::{self, ConnectionAuth, Refresh};
use super::producer::{Producer, PublishPermits, Receipt};
use crate::dedup::{self, Verdict};
use crate::dispatch::SubType;
use crate::error::BrokerError;
use crate::position::Position;
use crate::schema;
use crate::service::BrokerService;
use crate::subscription_actor::{
    ConsumerLink, InitialPosition, SeekTarget, SubscriptionHandle, SubscriptionOptions,
};
use crate::topic::{ProducerOwner, Topic};
use crate::topic_context::Outbound;

mod consume;
mod lookup;
mod produce;
mod slots;
mod topic_list;

use slots::{ConsumerSlot, ProducerSlot, TopicRef};

const SERVER_VERSION: &str = concat!("Magnetar-", env!("CARGO_PKG_VERSION"));
/// Outbound frames queued per connection before senders wait.
const OUTBOUND_QUEUE: usize = 8192;
/// Frames written to the socket in one go at most, when more are queued.
const MAX_WRITE_BATCH: usize = 256;
/// How long a closing connection may take to write what is queued (an ERROR, say).
const FLUSH_ON_CLOSE: std::time::Duration = std::time::Duration::from_millis(500);

/// The producer as created.
struct ProducerCreated {
    topic: TopicRef,
    name: String,
    /// The schema version, if it sent a schema.
    schema_version: Option<Vec<u8>>,
    /// The topic epoch of an exclusive producer.
    topic_epoch: Option<u64>,
}

/// Results of work done outside the command loop.
enum Completion {
    Producer {
        producer_id: u64,
        request_id: u64,
        result: Result<ProducerCreated, BrokerError>,
    },
    Consumer {
        consumer_id: u64,
        request_id: u64,
        result: Result<ConsumerSlot, BrokerError>,
    },
    /// A reply prepared off the command loop; `forget` is the consumer `(client id, broker
    /// id)` it ended (UNSUBSCRIBE), forgotten before the reply goes out so that the client may
    /// reuse the id as soon as it reads it.
    Reply {
        frame: Box<Frame>,
        forget: Option<(u64, u64)>,
    },
}

struct Connection {
    id: u64,
    peer: SocketAddr,
    service: Arc<BrokerService>,
    out: Outbound,
    protocol_version: i32,
    connected: bool,
    producers: HashMap<u64, ProducerSlot>,
    consumers: HashMap<u64, ConsumerSlot>,
    completions: mpsc::UnboundedSender<Completion>,
    evictions: mpsc::UnboundedSender<(u64, u64)>,
    /// Producer ids the broker closed (topic unloaded): told by the topic.
    producer_evictions: mpsc::UnboundedSender<u64>,
    /// Producers the broker closed; a SEND for one closes the connection, which moves clients
    /// that ignore CLOSE_PRODUCER (pulsar-rs) to look the topic up again.
    closed_by_broker: std::collections::HashSet<u64>,
    auth: ConnectionAuth,
    /// The connection's own token: cancelled when it closes.
    cancel: CancellationToken,
    /// SENDs of this connection waiting for storage
    /// (`limits.max_pending_publish_requests_per_connection`).
    pending_publish: Arc<Semaphore>,
    /// Requests of this connection answered by a task of their own (SEEK, UNSUBSCRIBE,
    /// GET_LAST_MESSAGE_ID, GET_OR_CREATE_SCHEMA): while all are taken the connection is not
    /// read, so a pipelining client cannot pile up tasks.
    background: Arc<Semaphore>,
    /// Topic-list watchers by watcher id; cancelling one stops it.
    watchers: HashMap<u64, CancellationToken>,
}

/// How many requests of one connection may be in their own tasks at once.
const MAX_BACKGROUND_REQUESTS: usize = 64;

pub(super) async fn run<R, W>(
    id: u64,
    read: R,
    write: W,
    peer: SocketAddr,
    service: Arc<BrokerService>,
    cancel: CancellationToken,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let ctx = service.ctx().clone();
    let codec = PulsarCodec::new(ctx.config.max_frame_size());
    let mut frames = FramedRead::new(read, codec.clone());
    let mut sink = FramedWrite::new(write, codec);
    let (out, mut outbound) = mpsc::channel::<Box<Frame>>(OUTBOUND_QUEUE);
    let writer_cancel = cancel.clone();
    let write_timeout = ctx.config.limits.write_timeout();
    let stalled = ctx.metrics.guards.stalled_connections.clone();
    let mut writer = tokio::spawn(async move {
        loop {
            let first = tokio::select! {
                _ = writer_cancel.cancelled() => break,
                frame = outbound.recv() => match frame { Some(f) => f, None => break },
            };
            // Whatever else is queued goes out in the same write: one syscall for a burst of
            // receipts or responses rather than one each (the codec still flushes whenever its
            // buffer passes its boundary). Each frame and the flush get the whole timeout, as a
            // frame alone did: it catches a write that makes no progress, not a long burst.
            let mut next = Some(first);
            let mut fed = 0;
            let outcome = loop {
                let Some(frame) = next.take() else {
                    let flush = SinkExt::<Frame>::flush(&mut sink);
                    break tokio::time::timeout(write_timeout, flush).await;
                };
                match tokio::time::timeout(write_timeout, sink.feed(*frame)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(FrameError::TooLarge { size, max })) => {
                        // Nothing stored is larger than a SEND may be, so this is a bug; losing
                        // the connection (and every consumer on it) would make it worse.
                        tracing::error!(%peer, size, max, "a frame for the client exceeds the frame limit; dropped");
                    }
                    failed => break failed,
                }
                fed += 1;
                if fed < MAX_WRITE_BATCH {
                    next = outbound.try_recv().ok();
                }
            };
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "write failed");
                    break;
                }
                Err(_) => {
                    stalled.inc();
                    tracing::info!(%peer, timeout = ?write_timeout, "closing connection: the client stopped reading");
                    break;
                }
            }
        }
        writer_cancel.cancel();
    });
    let (completions, mut completed) = mpsc::unbounded_channel();
    let (evictions, mut evicted) = mpsc::unbounded_channel::<(u64, u64)>();
    let (producer_evictions, mut evicted_producers) = mpsc::unbounded_channel::<u64>();
    let keep_alive = ctx.config.keep_alive();
    let refresh = ctx.config.auth_refresh_check();
    let connect_deadline = tokio::time::sleep(ctx.config.limits.connect_timeout());
    tokio::pin!(connect_deadline);
    let pending_publish = Arc::new(Semaphore::new(
        ctx.config
            .limits
            .max_pending_publish_requests_per_connection,
    ));
    let mut auth_check = tokio::time::interval_at(tokio::time::Instant::now() + refresh, refresh);
    let mut conn = Connection {
        id,
        peer,
        service,
        out,
        protocol_version: 0,
        connected: false,
        producers: HashMap::new(),
        consumers: HashMap::new(),
        completions,
        evictions,
        producer_evictions,
        closed_by_broker: Default::default(),
        auth: ConnectionAuth::default(),
        cancel: cancel.clone(),
        pending_publish,
        background: Arc::new(Semaphore::new(MAX_BACKGROUND_REQUESTS)),
        watchers: HashMap::new(),
    };
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + keep_alive, keep_alive);
    let mut heard_since_tick = true;
    loop {
        tokio::select! {
            // Evictions first: a consumer the broker closed must be forgotten before the
            // client's re-SUBSCRIBE with the same id is read.
            biased;
            _ = cancel.cancelled() => break,
            _ = &mut connect_deadline, if !conn.connected => {
                tracing::info!(%peer, "closing connection: no CONNECT in time");
                break;
            }
            Some((client_id, broker_id)) = evicted.recv() => {
                if conn.consumers.get(&client_id).and_then(ConsumerSlot::broker_id) == Some(broker_id) {
                    conn.consumers.remove(&client_id);
                }
            }
            Some(producer_id) = evicted_producers.recv() => {
                if matches!(conn.producers.get(&producer_id), Some(ProducerSlot::Ready(_) | ProducerSlot::NonPersistent { .. })) {
                    conn.producers.remove(&producer_id);
                    conn.closed_by_broker.insert(producer_id);
                }
            }
            Some(done) = completed.recv() => conn.complete(done).await,
            frame = frames.next() => {
                heard_since_tick = true;
                match frame {
                    None => break,
                    Some(Ok(frame)) => {
                        if conn.handle(frame).await.is_err() {
                            break;
                        }
                    }
                    Some(Err(FrameError::TooLarge { size, max })) => {
                        tracing::info!(%peer, size, max, "closing connection: frame too large");
                        break;
                    }
                    Some(Err(e)) => {
                        tracing::info!(%peer, error = %e, "closing connection: unreadable frame");
                        break;
                    }
                }
            }
            _ = ticker.tick() => {
                if !heard_since_tick {
                    tracing::info!(%peer, "closing connection: no traffic and no PONG within the keep-alive interval");
                    break;
                }
                heard_since_tick = false;
                // A full queue means the writer is behind; the write timeout judges that.
                if conn.connected && conn.try_send(CommandPing {}.into()).is_err() {
                    break;
                }
            }
            _ = auth_check.tick() => {
                if conn.check_auth().await.is_err() {
                    break;
                }
            }
        }
    }
    conn.close_all().await;
    // Producers and consumers created after the loop ended hold their topics: release them.
    completed.close();
    while let Ok(done) = completed.try_recv() {
        done.release(conn.id).await;
    }
    // The writer ends once every sender is gone and what is queued is written.
    drop(conn);
    let flushed = tokio::time::timeout(FLUSH_ON_CLOSE, &mut writer)
        .await
        .is_ok();
    cancel.cancel();
    if !flushed {
        let _ = writer.await;
    }
}

/// The connection cannot go on (its writer is gone).
struct Closed;

impl Completion {
    /// Lets go of what a completion created, for connection `connection`, which is gone.
    async fn release(self, connection: u64) {
        match self {
            Completion::Producer {
                producer_id,
                result: Ok(created),
                ..
            } => {
                let owner = ProducerOwner {
                    connection,
                    producer_id,
                };
                created.topic.remove_producer(&created.name, owner);
            }
            Completion::Consumer {
                result: Ok(slot), ..
            } => slot.close().await,
            _ => {}
        }
    }
}

impl Connection {
    /// A slot for a request answered by a task of its own; waits (not reading the connection)
    /// while the connection has [`MAX_BACKGROUND_REQUESTS`] of them.
    async fn background_slot(&self) -> OwnedSemaphorePermit {
        self.background
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    async fn send(&self, frame: Frame) -> Result<(), Closed> {
        self.out.send(Box::new(frame)).await.map_err(|_| Closed)
    }

    /// Queues `frame` unless the queue is full (then it is dropped); `Closed` if the writer is
    /// gone.
    fn try_send(&self, frame: Frame) -> Result<(), Closed> {
        match self.out.try_send(Box::new(frame)) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Closed),
        }
    }

    async fn send_error(&self, request_id: u64, error: &BrokerError) -> Result<(), Closed> {
        self.send(commands::error(request_id, error.code(), error.to_string()).into())
            .await
    }

    async fn handle(&mut self, frame: Frame) -> Result<(), Closed> {
        let command = frame.command;
        let Some(kind) = command.kind() else {
            tracing::debug!(peer = %self.peer, kind = command.r#type, "ignoring unknown command");
            return Ok(());
        };
        if !self.connected && kind != Type::Connect {
            tracing::info!(peer = %self.peer, ?kind, "closing connection: command before CONNECT");
            return Err(Closed);
        }
        match kind {
            Type::Connect => self.connect(command.connect.unwrap_or_default()).await,
            Type::Ping => self.send(CommandPong {}.into()).await,
            Type::Pong => Ok(()),
            Type::PartitionedMetadata => {
                self.partitioned_metadata(command.partition_metadata.unwrap_or_default())
                    .await
            }
            Type::Lookup => self.lookup(command.lookup_topic.unwrap_or_default()).await,
            Type::Producer => self.producer(command.producer.unwrap_or_default()).await,
            Type::Send => {
                self.publish(command.send.unwrap_or_default(), frame.payload)
                    .await
            }
            Type::CloseProducer => {
                let close = command.close_producer.unwrap_or_default();
                self.closed_by_broker.remove(&close.producer_id);
                if let Some(slot) = self.producers.remove(&close.producer_id) {
                    slot.close();
                }
                self.send(commands::success(close.request_id).into()).await
            }
            Type::Subscribe => self.subscribe(command.subscribe.unwrap_or_default()).await,
            Type::Flow => {
                let flow = command.flow.unwrap_or_default();
                match self.consumers.get(&flow.consumer_id) {
                    Some(ConsumerSlot::Ready {
                        subscription, id, ..
                    }) => subscription.flow(*id, flow.message_permits),
                    Some(ConsumerSlot::NonPersistent {
                        subscription, id, ..
                    }) => subscription.flow(*id, flow.message_permits),
                    _ => {}
                }
                Ok(())
            }
            Type::Ack => self.ack(command.ack.unwrap_or_default()).await,
            Type::RedeliverUnacknowledgedMessages => {
                let redeliver = command
                    .redeliver_unacknowledged_messages
                    .unwrap_or_default();
                // Non-persistent messages are gone once sent: nothing to redeliver.
                if let Some(ConsumerSlot::Ready {
                    subscription, id, ..
                }) = self.consumers.get(&redeliver.consumer_id)
                {
                    let positions: Vec<Position> = redeliver
                        .message_ids
                        .iter()
                        .map(|m| Position::new(m.ledger_id as i64, m.entry_id as i64))
                        .collect();
                    subscription.redeliver(*id, (!positions.is_empty()).then_some(positions));
                }
                Ok(())
            }
            Type::CloseConsumer => {
                let close = command.close_consumer.unwrap_or_default();
                let success: Frame = commands::success(close.request_id).into();
                match self.consumers.remove(&close.consumer_id) {
                    Some(slot @ ConsumerSlot::Ready { .. }) => {
                        // SUCCESS once the subscription let the consumer go (its unacked
                        // messages are on their way to others), without waiting here.
                        let out = self.out.clone();
                        tokio::spawn(async move {
                            slot.close().await;
                            let _ = out.send(Box::new(success)).await;
                        });
                        Ok(())
                    }
                    Some(slot) => {
                        slot.close().await;
                        self.send(success).await
                    }
                    None => self.send(success).await,
                }
            }
            Type::Unsubscribe => {
                self.unsubscribe(command.unsubscribe.unwrap_or_default())
                    .await
            }
            Type::Seek => self.seek(command.seek.unwrap_or_default()).await,
            Type::GetLastMessageId => {
                self.last_message_id(command.get_last_message_id.unwrap_or_default())
                    .await
            }
            Type::GetTopicsOfNamespace => {
                self.topics_of_namespace(command.get_topics_of_namespace.unwrap_or_default())
                    .await
            }
            Type::WatchTopicList => {
                self.watch_topic_list(command.watch_topic_list.unwrap_or_default())
                    .await
            }
            Type::WatchTopicListClose => {
                self.close_topic_list_watcher(command.watch_topic_list_close.unwrap_or_default())
                    .await
            }
            Type::GetSchema => {
                self.get_schema(command.get_schema.unwrap_or_default())
                    .await
            }
            Type::GetOrCreateSchema => {
                self.get_or_create_schema(command.get_or_create_schema.unwrap_or_default())
                    .await
            }
            Type::ConsumerStats => {
                let stats = command.consumer_stats.unwrap_or_default();
                let response = CommandConsumerStatsResponse {
                    request_id: stats.request_id,
                    error_code: Some(ServerError::NotAllowedError as i32),
                    error_message: Some("consumer stats over the binary protocol are not supported; use the admin API".into()),
                    ..Default::default()
                };
                self.send(response.into()).await
            }
            Type::AuthResponse => {
                self.auth_response(command.auth_response.unwrap_or_default())
                    .await
            }
            other => {
                tracing::debug!(peer = %self.peer, ?other, "unsupported command");
                Ok(())
            }
        }
    }

    async fn connect(&mut self, connect: CommandConnect) -> Result<(), Closed> {
        if self.connected {
            return Err(Closed);
        }
        match ConnectionAuth::connect(self.service.ctx().admin.authenticator(), &connect) {
            Ok(auth) => self.auth = auth,
            Err(e) => {
                // Java's answer; clients see it as a failed connection (nothing but CONNECTED
                // may come before CONNECTED).
                tracing::info!(peer = %self.peer, error = %e, "closing connection: authentication failed");
                let _ = self
                    .send(
                        commands::error(u64::MAX, ServerError::AuthenticationError, e.to_string())
                            .into(),
                    )
                    .await;
                return Err(Closed);
            }
        }
        self.protocol_version = connect
            .protocol_version()
            .clamp(6, magnetar_protocol::MAX_PROTOCOL_VERSION);
        self.connected = true;
        tracing::debug!(peer = %self.peer, client = connect.client_version, version = self.protocol_version, "connected");
        let connected = CommandConnected {
            server_version: SERVER_VERSION.into(),
            protocol_version: Some(self.protocol_version),
            max_message_size: Some(self.service.ctx().config.max_message_size as i32),
            feature_flags: Some(FeatureFlags {
                supports_auth_refresh: Some(true),
                supports_topic_watchers: Some(true),
                ..Default::default()
            }),
        };
        self.send(connected.into()).await
    }

    async fn authorize(
        &self,
        topic: &TopicName,
        operation: TopicOperation<'_>,
    ) -> Result<(), BrokerError> {
        auth::authorize(
            &self.service.ctx().admin,
            self.auth.role.as_deref(),
            topic,
            operation,
        )
        .await
    }

    /// The periodic token check: challenge an expired token, close after an unanswered one.
    async fn check_auth(&mut self) -> Result<(), Closed> {
        if !self.connected || !self.service.ctx().admin.authenticator().is_enabled() {
            return Ok(());
        }
        match self.auth.check_now() {
            Refresh::Nothing => Ok(()),
            Refresh::Challenge => {
                tracing::debug!(peer = %self.peer, "token expired: AUTH_CHALLENGE");
                let challenge = auth::challenge(SERVER_VERSION, self.protocol_version);
                self.send(challenge.into()).await
            }
            Refresh::Close => {
                tracing::info!(peer = %self.peer, role = ?self.auth.role, "closing connection: the token expired and was not refreshed");
                Err(Closed)
            }
        }
    }

    async fn auth_response(&mut self, response: CommandAuthResponse) -> Result<(), Closed> {
        match self
            .auth
            .respond(self.service.ctx().admin.authenticator(), &response)
        {
            Ok(()) => Ok(()),
            Err(reason) => {
                tracing::info!(peer = %self.peer, %reason, "closing connection: refreshed credentials refused");
                Err(Closed)
            }
        }
    }

    async fn complete(&mut self, done: Completion) {
        match done {
            Completion::Producer {
                producer_id,
                request_id,
                result,
            } => {
                let waiting = matches!(
                    self.producers.get(&producer_id),
                    Some(ProducerSlot::Creating { request_id: r, .. }) if *r == request_id
                );
                let frame = match result {
                    Ok(ProducerCreated { topic, name, .. }) if !waiting => {
                        // Closed while being created (its id perhaps reused since).
                        let owner = ProducerOwner {
                            connection: self.id,
                            producer_id,
                        };
                        topic.remove_producer(&name, owner);
                        let error = BrokerError::ServiceNotReady(format!(
                            "producer {producer_id} was closed while being created"
                        ));
                        commands::error(request_id, error.code(), error.to_string()).into()
                    }
                    Ok(ProducerCreated {
                        topic,
                        name,
                        schema_version,
                        topic_epoch,
                    }) => {
                        let owner = ProducerOwner {
                            connection: self.id,
                            producer_id,
                        };
                        let (slot, last_sequence_id) = match topic {
                            TopicRef::Persistent(topic) => {
                                let last = topic.dedup().last_sequence_id(&name);
                                let producer =
                                    Producer::new(topic, name.clone(), owner, self.out.clone());
                                (ProducerSlot::Ready(producer), last)
                            }
                            TopicRef::NonPersistent(topic) => {
                                let name = name.clone();
                                (ProducerSlot::NonPersistent { topic, name, owner }, -1)
                            }
                        };
                        self.producers.insert(producer_id, slot);
                        CommandProducerSuccess {
                            request_id,
                            producer_name: name,
                            last_sequence_id: Some(last_sequence_id),
                            producer_ready: Some(true),
                            schema_version,
                            topic_epoch,
                        }
                        .into()
                    }
                    Err(e) => {
                        if waiting {
                            self.producers.remove(&producer_id);
                        }
                        commands::error(request_id, e.code(), e.to_string()).into()
                    }
                };
                let _ = self.send(frame).await;
            }
            Completion::Consumer {
                consumer_id,
                request_id,
                result,
            } => {
                let waiting = matches!(
                    self.consumers.get(&consumer_id),
                    Some(ConsumerSlot::Creating { request_id: r }) if *r == request_id
                );
                let frame = match result {
                    Ok(slot) if !waiting => {
                        let out = self.out.clone();
                        let error = BrokerError::ServiceNotReady(format!(
                            "consumer {consumer_id} was closed while being created"
                        ));
                        let frame: Frame =
                            commands::error(request_id, error.code(), error.to_string()).into();
                        tokio::spawn(async move {
                            slot.close().await;
                            let _ = out.send(Box::new(frame)).await;
                        });
                        return;
                    }
                    Ok(slot) => {
                        self.consumers.insert(consumer_id, slot);
                        commands::success(request_id).into()
                    }
                    Err(e) => {
                        if waiting {
                            self.consumers.remove(&consumer_id);
                        }
                        commands::error(request_id, e.code(), e.to_string()).into()
                    }
                };
                let _ = self.send(frame).await;
            }
            Completion::Reply { frame, forget } => {
                if let Some((client_id, broker_id)) = forget
                    && self
                        .consumers
                        .get(&client_id)
                        .and_then(ConsumerSlot::broker_id)
                        == Some(broker_id)
                {
                    self.consumers.remove(&client_id);
                }
                let _ = self.send(*frame).await;
            }
        }
    }

    /// The connection is gone: its producers and consumers leave their topics, and the
    /// consumers' unacknowledged messages go to others.
    async fn close_all(&mut self) {
        for (_, slot) in self.producers.drain() {
            slot.close();
        }
        for (_, slot) in self.consumers.drain() {
            slot.close().await;
        }
    }
}
