//! One client connection: the handshake, keep-alive, and every command, answered with Pulsar's
//! replies and error codes. Commands are handled in arrival order; work that waits on storage
//! (loading a topic, creating a producer or consumer) runs in its own task and reports back, so
//! a slow topic never stalls the connection's other producers and consumers.

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
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

use super::auth::{self, ConnectionAuth, Refresh};
use super::producer::{Producer, Receipt};
use crate::dispatch::SubType;
use crate::error::BrokerError;
use crate::position::Position;
use crate::schema;
use crate::service::BrokerService;
use crate::subscription_actor::{
    ConsumerLink, InitialPosition, SeekTarget, SubscriptionHandle, SubscriptionOptions,
};
use crate::topic::{ProducerOwner, Topic};

const SERVER_VERSION: &str = concat!("Magnetar-", env!("CARGO_PKG_VERSION"));
/// Outbound frames queued per connection before senders wait.
const OUTBOUND_QUEUE: usize = 8192;
/// How long a closing connection may take to write what is queued (an ERROR, say).
const FLUSH_ON_CLOSE: std::time::Duration = std::time::Duration::from_millis(500);

enum ProducerSlot {
    Creating,
    Ready(Producer),
}

enum ConsumerSlot {
    Creating,
    Ready {
        topic: Arc<Topic>,
        subscription: SubscriptionHandle,
        id: u64,
    },
}

/// The topic, the producer's name, and the schema version if it sent a schema.
type ProducerCreated = (Arc<Topic>, String, Option<Vec<u8>>);

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
        result: Result<(Arc<Topic>, SubscriptionHandle, u64), BrokerError>,
    },
}

struct Connection {
    id: u64,
    peer: SocketAddr,
    service: Arc<BrokerService>,
    out: mpsc::Sender<Frame>,
    protocol_version: i32,
    connected: bool,
    producers: HashMap<u64, ProducerSlot>,
    consumers: HashMap<u64, ConsumerSlot>,
    completions: mpsc::UnboundedSender<Completion>,
    evictions: mpsc::UnboundedSender<(u64, u64)>,
    auth: ConnectionAuth,
}

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
    let codec = PulsarCodec::new(service.config.max_frame_size());
    let mut frames = FramedRead::new(read, codec.clone());
    let mut sink = FramedWrite::new(write, codec);
    let (out, mut outbound) = mpsc::channel::<Frame>(OUTBOUND_QUEUE);
    let writer_cancel = cancel.clone();
    let mut writer = tokio::spawn(async move {
        loop {
            let frame = tokio::select! {
                _ = writer_cancel.cancelled() => break,
                frame = outbound.recv() => match frame { Some(f) => f, None => break },
            };
            if let Err(e) = sink.send(frame).await {
                tracing::debug!(error = %e, "write failed");
                break;
            }
        }
        writer_cancel.cancel();
    });
    let (completions, mut completed) = mpsc::unbounded_channel();
    let (evictions, mut evicted) = mpsc::unbounded_channel::<(u64, u64)>();
    let keep_alive = service.config.keep_alive();
    let refresh = service.config.auth_refresh_check();
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
        auth: ConnectionAuth::default(),
    };
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + keep_alive, keep_alive);
    let mut heard_since_tick = true;
    loop {
        tokio::select! {
            // Evictions first: a consumer the broker closed must be forgotten before the
            // client's re-SUBSCRIBE with the same id is read.
            biased;
            _ = cancel.cancelled() => break,
            Some((client_id, broker_id)) = evicted.recv() => {
                if matches!(conn.consumers.get(&client_id), Some(ConsumerSlot::Ready { id, .. }) if *id == broker_id) {
                    conn.consumers.remove(&client_id);
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
                if conn.send(CommandPing {}.into()).await.is_err() {
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

impl Connection {
    async fn send(&self, frame: Frame) -> Result<(), Closed> {
        self.out.send(frame).await.map_err(|_| Closed)
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
        if !self.connected && !matches!(kind, Type::Connect | Type::Ping | Type::Pong) {
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
                if let Some(ProducerSlot::Ready(producer)) =
                    self.producers.remove(&close.producer_id)
                {
                    producer.close();
                }
                self.send(commands::success(close.request_id).into()).await
            }
            Type::Subscribe => self.subscribe(command.subscribe.unwrap_or_default()).await,
            Type::Flow => {
                let flow = command.flow.unwrap_or_default();
                if let Some(ConsumerSlot::Ready {
                    subscription, id, ..
                }) = self.consumers.get(&flow.consumer_id)
                {
                    subscription.flow(*id, flow.message_permits);
                }
                Ok(())
            }
            Type::Ack => self.ack(command.ack.unwrap_or_default()).await,
            Type::RedeliverUnacknowledgedMessages => {
                let redeliver = command
                    .redeliver_unacknowledged_messages
                    .unwrap_or_default();
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
                if let Some(ConsumerSlot::Ready {
                    subscription, id, ..
                }) = self.consumers.remove(&close.consumer_id)
                {
                    subscription.remove_consumer(id).await;
                }
                self.send(commands::success(close.request_id).into()).await
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
        match ConnectionAuth::connect(self.service.admin.authenticator(), &connect) {
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
            max_message_size: Some(self.service.config.max_message_size as i32),
            feature_flags: Some(FeatureFlags {
                supports_auth_refresh: Some(true),
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
            &self.service.admin,
            self.auth.role.as_deref(),
            topic,
            operation,
        )
        .await
    }

    /// The periodic token check: challenge an expired token, close after an unanswered one.
    async fn check_auth(&mut self) -> Result<(), Closed> {
        if !self.connected || !self.service.admin.authenticator().is_enabled() {
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
            .respond(self.service.admin.authenticator(), &response)
        {
            Ok(()) => Ok(()),
            Err(reason) => {
                tracing::info!(peer = %self.peer, %reason, "closing connection: refreshed credentials refused");
                Err(Closed)
            }
        }
    }

    async fn partitioned_metadata(
        &mut self,
        request: CommandPartitionedTopicMetadata,
    ) -> Result<(), Closed> {
        let request_id = request.request_id;
        let result = match TopicName::parse(&request.topic) {
            Err(e) => Err(BrokerError::InvalidTopicName(e.to_string())),
            Ok(topic) => match self.authorize(&topic, TopicOperation::Lookup).await {
                Ok(()) => self.service.partitions(&topic).await,
                Err(e) => Err(e),
            },
        };
        let response = match result {
            Ok(partitions) => CommandPartitionedTopicMetadataResponse {
                partitions: Some(partitions),
                request_id,
                response: Some(MetadataResult::Success as i32),
                ..Default::default()
            },
            Err(e) => CommandPartitionedTopicMetadataResponse {
                partitions: Some(0),
                request_id,
                response: Some(MetadataResult::Failed as i32),
                error: Some(e.code() as i32),
                message: Some(e.to_string()),
            },
        };
        self.send(response.into()).await
    }

    async fn lookup(&mut self, request: CommandLookupTopic) -> Result<(), Closed> {
        let allowed = match TopicName::parse(&request.topic) {
            Ok(topic) => self
                .authorize(&topic, TopicOperation::Lookup)
                .await
                .map_err(|e| (e.code(), e.to_string())),
            Err(e) => Err((ServerError::InvalidTopicName, e.to_string())),
        };
        let response = match allowed {
            Ok(()) => CommandLookupTopicResponse {
                broker_service_url: Some(self.service.service_url.clone()),
                broker_service_url_tls: self.service.urls.service_url_tls.clone(),
                response: Some(LookupType::Connect as i32),
                request_id: request.request_id,
                authoritative: Some(true),
                ..Default::default()
            },
            Err((code, message)) => CommandLookupTopicResponse {
                response: Some(LookupType::Failed as i32),
                request_id: request.request_id,
                error: Some(code as i32),
                message: Some(message),
                ..Default::default()
            },
        };
        self.send(response.into()).await
    }

    async fn producer(&mut self, request: CommandProducer) -> Result<(), Closed> {
        let producer_id = request.producer_id;
        let request_id = request.request_id;
        if self.producers.contains_key(&producer_id) {
            let error = BrokerError::ProducerBusy(format!(
                "producer id {producer_id} is already in use on this connection"
            ));
            return self.send_error(request_id, &error).await;
        }
        let topic = match TopicName::parse(&request.topic) {
            Ok(topic) => topic,
            Err(e) => {
                return self
                    .send_error(request_id, &BrokerError::InvalidTopicName(e.to_string()))
                    .await;
            }
        };
        if request
            .producer_access_mode
            .is_some_and(|m| m > ProducerAccessMode::Exclusive as i32)
        {
            let error = BrokerError::NotAllowed(
                "only Shared and Exclusive producer access modes are supported".into(),
            );
            return self.send_error(request_id, &error).await;
        }
        self.producers.insert(producer_id, ProducerSlot::Creating);
        let service = self.service.clone();
        let completions = self.completions.clone();
        let owner = ProducerOwner {
            connection: self.id,
            producer_id,
        };
        let exclusive = request.producer_access_mode == Some(ProducerAccessMode::Exclusive as i32);
        let role = self.auth.role.clone();
        tokio::spawn(async move {
            let result = async {
                auth::authorize(
                    &service.admin,
                    role.as_deref(),
                    &topic,
                    TopicOperation::Produce,
                )
                .await?;
                let topic = service.topic(&topic, true).await?;
                let schema_version = match request.schema.as_ref().filter(|s| !schema::is_none(s)) {
                    Some(s) => Some(schema::version_bytes(
                        schema::get_or_create(&service.metadata, topic.name(), s).await?,
                    )),
                    None => None,
                };
                let name = match request.producer_name.filter(|n| !n.is_empty()) {
                    Some(name) => name,
                    None => format!(
                        "{}-{}-{}",
                        service.config.cluster,
                        service.next_id(),
                        owner.connection
                    ),
                };
                if exclusive && topic.producer_count() > 0 {
                    return Err(BrokerError::ProducerBusy(format!(
                        "topic {} already has a producer",
                        topic.name()
                    )));
                }
                topic.add_producer(&name, owner)?;
                Ok((topic, name, schema_version))
            }
            .await;
            let _ = completions.send(Completion::Producer {
                producer_id,
                request_id,
                result,
            });
        });
        Ok(())
    }

    async fn publish(
        &mut self,
        send: CommandSend,
        payload: Option<magnetar_protocol::Payload>,
    ) -> Result<(), Closed> {
        let Some(ProducerSlot::Ready(producer)) = self.producers.get(&send.producer_id) else {
            // A SEND racing with CLOSE_PRODUCER: Java ignores it too.
            tracing::debug!(peer = %self.peer, producer_id = send.producer_id, "SEND for an unknown producer ignored");
            return Ok(());
        };
        let error = |code: ServerError, message: String| -> Frame {
            CommandSendError {
                producer_id: send.producer_id,
                sequence_id: send.sequence_id,
                error: code as i32,
                message,
            }
            .into()
        };
        let Some(payload) = payload else {
            return self
                .send(error(
                    ServerError::UnknownError,
                    "SEND without a payload".into(),
                ))
                .await;
        };
        if let Err(mismatch) = payload.verify_checksum() {
            tracing::info!(peer = %self.peer, %mismatch, "SEND with a bad checksum");
            return self
                .send(error(ServerError::ChecksumError, mismatch.to_string()))
                .await;
        }
        let metadata = match payload.metadata() {
            Ok(metadata) => metadata,
            Err(e) => {
                return self
                    .send(error(
                        ServerError::UnknownError,
                        format!("unreadable message metadata: {e}"),
                    ))
                    .await;
            }
        };
        let num_messages = send
            .num_messages
            .unwrap_or(1)
            .max(metadata.num_messages_in_batch.unwrap_or(1))
            .max(1) as u32;
        let append = producer.topic.publish(payload.to_entry(), num_messages);
        producer.enqueue(Receipt {
            sequence_id: send.sequence_id,
            highest_sequence_id: send.highest_sequence_id,
            append: append.boxed(),
        });
        Ok(())
    }

    async fn subscribe(&mut self, request: CommandSubscribe) -> Result<(), Closed> {
        let consumer_id = request.consumer_id;
        let request_id = request.request_id;
        if self.consumers.contains_key(&consumer_id) {
            let error = BrokerError::ConsumerBusy(format!(
                "consumer id {consumer_id} is already in use on this connection"
            ));
            return self.send_error(request_id, &error).await;
        }
        let topic = match TopicName::parse(&request.topic) {
            Ok(topic) => topic,
            Err(e) => {
                return self
                    .send_error(request_id, &BrokerError::InvalidTopicName(e.to_string()))
                    .await;
            }
        };
        let Some(sub_type) = SubType::from_wire(request.sub_type) else {
            return self
                .send_error(
                    request_id,
                    &BrokerError::NotAllowed("unknown subscription type".into()),
                )
                .await;
        };
        if request.subscription.is_empty() {
            return self
                .send_error(
                    request_id,
                    &BrokerError::NotAllowed("empty subscription name".into()),
                )
                .await;
        }
        let options = SubscriptionOptions {
            sub_type,
            durable: request.durable(),
            initial_position: if request.initial_position()
                == command_subscribe::InitialPosition::Earliest
            {
                InitialPosition::Earliest
            } else {
                InitialPosition::Latest
            },
            start_message_id: request.start_message_id.as_ref().map(MessageId::from),
            key_shared_allow_out_of_order: request
                .key_shared_meta
                .as_ref()
                .is_some_and(|m| m.allow_out_of_order_delivery()),
            partition_index: topic.partition(),
        };
        self.consumers.insert(consumer_id, ConsumerSlot::Creating);
        let service = self.service.clone();
        let completions = self.completions.clone();
        let out = self.out.clone();
        let evicted = self.evictions.clone();
        let protocol_version = self.protocol_version;
        let partition = topic.partition().map_or(-1, |p| p as i32);
        let role = self.auth.role.clone();
        tokio::spawn(async move {
            let result = async {
                let consume = TopicOperation::Consume {
                    subscription: &request.subscription,
                };
                auth::authorize(&service.admin, role.as_deref(), &topic, consume).await?;
                let topic = service
                    .topic(&topic, request.force_topic_creation())
                    .await?;
                let subscription = topic
                    .subscription(&request.subscription, options, &service)
                    .await?;
                let id = service.next_id();
                let link = ConsumerLink {
                    id,
                    client_consumer_id: consumer_id,
                    name: request.consumer_name.clone().unwrap_or_default(),
                    priority_level: request.priority_level.unwrap_or(0),
                    out,
                    protocol_version,
                    partition,
                    evicted,
                };
                subscription.add_consumer(link).await?;
                Ok((topic, subscription, id))
            }
            .await;
            let _ = completions.send(Completion::Consumer {
                consumer_id,
                request_id,
                result,
            });
        });
        Ok(())
    }

    async fn complete(&mut self, done: Completion) {
        match done {
            Completion::Producer {
                producer_id,
                request_id,
                result,
            } => {
                let frame = match result {
                    Ok((topic, name, schema_version)) => {
                        if !matches!(
                            self.producers.get(&producer_id),
                            Some(ProducerSlot::Creating)
                        ) {
                            // Closed while being created.
                            topic.remove_producer(
                                &name,
                                ProducerOwner {
                                    connection: self.id,
                                    producer_id,
                                },
                            );
                            return;
                        }
                        let owner = ProducerOwner {
                            connection: self.id,
                            producer_id,
                        };
                        let producer = Producer::new(topic, name.clone(), owner, self.out.clone());
                        self.producers
                            .insert(producer_id, ProducerSlot::Ready(producer));
                        CommandProducerSuccess {
                            request_id,
                            producer_name: name,
                            last_sequence_id: Some(-1),
                            producer_ready: Some(true),
                            schema_version,
                            ..Default::default()
                        }
                        .into()
                    }
                    Err(e) => {
                        self.producers.remove(&producer_id);
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
                let frame = match result {
                    Ok((topic, subscription, id)) => {
                        if !matches!(
                            self.consumers.get(&consumer_id),
                            Some(ConsumerSlot::Creating)
                        ) {
                            subscription.remove_consumer(id).await;
                            return;
                        }
                        self.consumers.insert(
                            consumer_id,
                            ConsumerSlot::Ready {
                                topic,
                                subscription,
                                id,
                            },
                        );
                        commands::success(request_id).into()
                    }
                    Err(e) => {
                        self.consumers.remove(&consumer_id);
                        commands::error(request_id, e.code(), e.to_string()).into()
                    }
                };
                let _ = self.send(frame).await;
            }
        }
    }

    async fn ack(&mut self, ack: CommandAck) -> Result<(), Closed> {
        let request_id = ack.request_id;
        let consumer_id = ack.consumer_id;
        let result = match self.consumers.get(&consumer_id) {
            Some(ConsumerSlot::Ready { subscription, .. }) => {
                subscription.ack(ack);
                Ok(())
            }
            _ => Err(BrokerError::NotAllowed(format!(
                "consumer {consumer_id} is not ready"
            ))),
        };
        // Only an ACK with a request id asks for a receipt.
        if let Some(request_id) = request_id {
            let response = CommandAckResponse {
                consumer_id,
                request_id: Some(request_id),
                error: result.as_ref().err().map(|e| e.code() as i32),
                message: result.err().map(|e| e.to_string()),
                ..Default::default()
            };
            return self.send(response.into()).await;
        }
        Ok(())
    }

    async fn unsubscribe(&mut self, request: CommandUnsubscribe) -> Result<(), Closed> {
        let Some(ConsumerSlot::Ready {
            subscription,
            id,
            topic,
        }) = self.consumers.get(&request.consumer_id)
        else {
            let error =
                BrokerError::NotAllowed(format!("consumer {} is not ready", request.consumer_id));
            return self.send_error(request.request_id, &error).await;
        };
        let (subscription, id, topic) = (subscription.clone(), *id, topic.clone());
        match subscription.unsubscribe(id, request.force()).await {
            Ok(()) => {
                self.consumers.remove(&request.consumer_id);
                if let Err(e) = topic.remove_subscription(subscription.name()).await {
                    return self.send_error(request.request_id, &e).await;
                }
                self.send(commands::success(request.request_id).into())
                    .await
            }
            Err(e) => self.send_error(request.request_id, &e).await,
        }
    }

    async fn seek(&mut self, request: CommandSeek) -> Result<(), Closed> {
        let Some(ConsumerSlot::Ready { subscription, .. }) =
            self.consumers.get(&request.consumer_id)
        else {
            let error =
                BrokerError::NotAllowed(format!("consumer {} is not ready", request.consumer_id));
            return self.send_error(request.request_id, &error).await;
        };
        let target = match (&request.message_id, request.message_publish_time) {
            (Some(id), _) => SeekTarget::MessageId(MessageId::from(id)),
            (None, Some(time)) => SeekTarget::PublishTime(time),
            (None, None) => {
                let error =
                    BrokerError::NotAllowed("SEEK needs a message id or a publish time".into());
                return self.send_error(request.request_id, &error).await;
            }
        };
        let subscription = subscription.clone();
        match subscription.seek(target).await {
            // SUCCESS first; the subscription then closes its consumers so they re-subscribe
            // with fresh permits, as Java does.
            Ok(()) => {
                self.send(commands::success(request.request_id).into())
                    .await?;
                subscription.disconnect_consumers();
                Ok(())
            }
            Err(e) => self.send_error(request.request_id, &e).await,
        }
    }

    async fn last_message_id(&mut self, request: CommandGetLastMessageId) -> Result<(), Closed> {
        let Some(ConsumerSlot::Ready {
            topic,
            subscription,
            ..
        }) = self.consumers.get(&request.consumer_id)
        else {
            let error =
                BrokerError::NotAllowed(format!("consumer {} is not ready", request.consumer_id));
            return self.send_error(request.request_id, &error).await;
        };
        let partition = topic.name().partition().map(|p| p as i32);
        let last = match topic.last_entry().await {
            Ok(last) => last,
            Err(e) => return self.send_error(request.request_id, &e).await,
        };
        let last_message_id = match last {
            Some((position, messages)) => MessageIdData {
                ledger_id: position.ledger_id as u64,
                entry_id: position.entry_id as u64,
                partition,
                batch_index: (messages > 1).then(|| messages as i32 - 1),
                ..Default::default()
            },
            None => MessageIdData {
                ledger_id: u64::MAX,
                entry_id: u64::MAX,
                partition,
                ..Default::default()
            },
        };
        let mark_delete = subscription.mark_delete().await;
        let response = CommandGetLastMessageIdResponse {
            last_message_id,
            request_id: request.request_id,
            consumer_mark_delete_position: mark_delete.map(|p| MessageIdData {
                ledger_id: p.ledger_id as u64,
                entry_id: p.entry_id as u64,
                ..Default::default()
            }),
        };
        self.send(response.into()).await
    }

    async fn get_schema(&mut self, request: CommandGetSchema) -> Result<(), Closed> {
        let mut response = CommandGetSchemaResponse {
            request_id: request.request_id,
            ..Default::default()
        };
        let found = match TopicName::parse(&request.topic) {
            Ok(topic) => {
                schema::get(
                    &self.service.metadata,
                    &topic,
                    request.schema_version.as_deref(),
                )
                .await
            }
            Err(e) => Err(BrokerError::InvalidTopicName(e.to_string())),
        };
        match found {
            Ok(Some((stored, version))) => {
                response.schema = Some(stored);
                response.schema_version = Some(schema::version_bytes(version));
            }
            // C++ treats TopicNotFound here as "no schema", quietly.
            Ok(None) => {
                response.error_code = Some(ServerError::TopicNotFound as i32);
                response.error_message = Some("the topic has no schema".into());
            }
            Err(e) => {
                response.error_code = Some(e.code() as i32);
                response.error_message = Some(e.to_string());
            }
        }
        self.send(response.into()).await
    }

    async fn get_or_create_schema(
        &mut self,
        request: CommandGetOrCreateSchema,
    ) -> Result<(), Closed> {
        let mut response = CommandGetOrCreateSchemaResponse {
            request_id: request.request_id,
            ..Default::default()
        };
        let result = match TopicName::parse(&request.topic) {
            Ok(topic) => {
                schema::get_or_create(&self.service.metadata, &topic, &request.schema).await
            }
            Err(e) => Err(BrokerError::InvalidTopicName(e.to_string())),
        };
        match result {
            Ok(version) => response.schema_version = Some(schema::version_bytes(version)),
            Err(e) => {
                response.error_code = Some(e.code() as i32);
                response.error_message = Some(e.to_string());
            }
        }
        self.send(response.into()).await
    }

    async fn topics_of_namespace(
        &mut self,
        request: CommandGetTopicsOfNamespace,
    ) -> Result<(), Closed> {
        match self.service.topics_of_namespace(&request.namespace).await {
            Ok(topics) => {
                let response = CommandGetTopicsOfNamespaceResponse {
                    request_id: request.request_id,
                    topics,
                    filtered: Some(false),
                    topics_hash: None,
                    changed: Some(true),
                };
                self.send(response.into()).await
            }
            Err(e) => self.send_error(request.request_id, &e).await,
        }
    }

    /// The connection is gone: its producers and consumers leave their topics, and the
    /// consumers' unacknowledged messages go to others.
    async fn close_all(&mut self) {
        for (_, slot) in self.producers.drain() {
            if let ProducerSlot::Ready(producer) = slot {
                producer.close();
            }
        }
        for (_, slot) in self.consumers.drain() {
            if let ConsumerSlot::Ready {
                subscription, id, ..
            } = slot
            {
                subscription.remove_consumer(id).await;
            }
        }
    }
}
