//! One TCP connection to a broker: the CONNECT handshake, a writer task that coalesces queued
//! frames into few writes, and a reader task that answers PINGs, completes requests by request
//! id, and routes receipts and messages to their producer or consumer by id.
//!
//! Producers and consumers register a [`Route`] under their id; when the broker closes one of
//! them (seek, topic unload) or the connection drops, the route gets [`Event::Closed`] and the
//! owner reconnects through a fresh lookup.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use magnetar_protocol::pulsar::base_command::Type;
use magnetar_protocol::pulsar::{
    AuthData, BaseCommand, CommandAuthResponse, CommandConnect, CommandMessage, CommandPing,
    CommandPong, CommandProducer, CommandProducerSuccess, CommandSendError, CommandSendReceipt,
    FeatureFlags,
};
use magnetar_protocol::{Frame, Payload, PulsarCodec};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::rustls;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::error::{ClientError, Result};

pub(crate) const CLIENT_VERSION: &str = concat!("magnetar-rs-", env!("CARGO_PKG_VERSION"));
const PROTOCOL_VERSION: i32 = 20;
const KEEPALIVE: Duration = Duration::from_secs(30);
/// Frames written per flush at most, so one busy producer cannot starve the flush.
const WRITE_COALESCE: usize = 512;

/// What the reader task hands to a producer or consumer.
#[derive(Debug)]
pub(crate) enum Event {
    Receipt(CommandSendReceipt),
    SendError(CommandSendError),
    Message {
        partition: usize,
        command: CommandMessage,
        payload: Option<Payload>,
    },
    /// The broker closed this producer or consumer, or the connection was lost.
    Closed {
        partition: usize,
    },
}

/// Where a producer's or consumer's events go; `partition` tells the parts of a partitioned
/// consumer apart on their shared channel.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub tx: mpsc::UnboundedSender<Event>,
    pub partition: usize,
}

type Reader = Box<dyn AsyncRead + Send + Unpin>;
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// How to authenticate, how to check the broker's certificate, and how long to wait.
#[derive(Debug, Clone)]
pub(crate) struct ConnectParams {
    pub auth_token: Option<String>,
    /// For `pulsar+ssl://` URLs.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub connection_timeout: Duration,
    pub operation_timeout: Duration,
}

#[derive(Debug, Clone)]
pub(crate) struct Connection {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    url: String,
    outbound: mpsc::UnboundedSender<Frame>,
    shared: Mutex<Shared>,
    next_request_id: AtomicU64,
    /// Mirrors `Shared::closed`, for the send path to check without a lock.
    closed: AtomicBool,
    max_message_size: usize,
    operation_timeout: Duration,
    auth_token: Option<String>,
    stop: CancellationToken,
}

type Pending = oneshot::Sender<Result<BaseCommand>>;

#[derive(Debug, Default)]
struct Shared {
    closed: bool,
    pending: HashMap<u64, Pending>,
    producers: HashMap<u64, Route>,
    consumers: HashMap<u64, Route>,
}

impl Connection {
    /// Connects to `addr` (host:port; over TLS when `url` is `pulsar+ssl://`), sends CONNECT and
    /// waits for CONNECTED.
    pub(crate) async fn open(
        url: &str,
        addr: &str,
        params: &ConnectParams,
        tasks: &TaskTracker,
        stop: CancellationToken,
    ) -> Result<Connection> {
        let connect_error = |source| ClientError::Connect {
            addr: addr.to_string(),
            source,
        };
        let timed_out = ClientError::Timeout {
            operation: "connect",
            timeout: params.connection_timeout,
        };
        let stream = tokio::time::timeout(params.connection_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| timed_out)?
            .map_err(connect_error)?;
        stream.set_nodelay(true).map_err(connect_error)?;
        let (read, write): (Reader, Writer) = if url.starts_with("pulsar+ssl://") {
            let config = params.tls.clone().ok_or_else(|| ClientError::InvalidUrl {
                url: url.to_string(),
                reason: "pulsar+ssl:// needs a TLS configuration (ClientOptions::tls)",
            })?;
            let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|_| {
                ClientError::InvalidUrl {
                    url: url.to_string(),
                    reason: "not a valid TLS server name",
                }
            })?;
            let tls = tokio_rustls::TlsConnector::from(config).connect(name, stream);
            let stream = tokio::time::timeout(params.connection_timeout, tls)
                .await
                .map_err(|_| ClientError::Timeout {
                    operation: "TLS handshake",
                    timeout: params.connection_timeout,
                })?
                .map_err(connect_error)?;
            let (read, write) = tokio::io::split(stream);
            (Box::new(read), Box::new(write))
        } else {
            let (read, write) = stream.into_split();
            (Box::new(read), Box::new(write))
        };
        let mut reader = FramedRead::new(read, PulsarCodec::default());
        let mut writer = FramedWrite::new(write, PulsarCodec::default());
        let frame_error = |source| ClientError::Frame {
            url: url.to_string(),
            source,
        };
        let connect = CommandConnect {
            client_version: CLIENT_VERSION.into(),
            protocol_version: Some(PROTOCOL_VERSION),
            auth_method_name: Some(
                if params.auth_token.is_some() {
                    "token"
                } else {
                    "none"
                }
                .into(),
            ),
            auth_data: params.auth_token.clone().map(String::into_bytes),
            feature_flags: Some(FeatureFlags {
                supports_auth_refresh: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        writer
            .send(Frame::from(connect))
            .await
            .map_err(frame_error)?;
        let handshake = async {
            loop {
                let frame = reader
                    .next()
                    .await
                    .ok_or(ClientError::Disconnected)?
                    .map_err(frame_error)?;
                match frame.command.kind() {
                    Some(Type::Connected) => {
                        return Ok(frame.command.connected.unwrap_or_default());
                    }
                    Some(Type::Ping) => {
                        writer
                            .send(Frame::from(CommandPong {}))
                            .await
                            .map_err(frame_error)?;
                    }
                    Some(Type::Error) => {
                        let e = frame.command.error.unwrap_or_default();
                        return Err(ClientError::server(e.error, e.message));
                    }
                    _ => return Err(ClientError::Unexpected(frame.command.kind_name())),
                }
            }
        };
        let connected = tokio::time::timeout(params.connection_timeout, handshake)
            .await
            .map_err(|_| ClientError::Timeout {
                operation: "connect",
                timeout: params.connection_timeout,
            })??;
        let max_message_size = connected
            .max_message_size
            .and_then(|m| usize::try_from(m).ok())
            .unwrap_or(
                magnetar_protocol::DEFAULT_MAX_MESSAGE_SIZE - magnetar_protocol::FRAME_PADDING,
            );
        let (outbound, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            url: url.to_string(),
            outbound,
            shared: Mutex::new(Shared::default()),
            next_request_id: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            max_message_size,
            operation_timeout: params.operation_timeout,
            auth_token: params.auth_token.clone(),
            stop,
        });
        tasks.spawn(write_loop(writer, rx, inner.stop.clone()));
        tasks.spawn(read_loop(reader, inner.clone()));
        Ok(Connection { inner })
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Relaxed)
    }

    /// Largest message the broker accepts.
    pub(crate) fn max_message_size(&self) -> usize {
        self.inner.max_message_size
    }

    /// Queues a frame for the writer.
    pub(crate) fn send(&self, frame: impl Into<Frame>) -> Result<()> {
        self.inner
            .outbound
            .send(frame.into())
            .map_err(|_| ClientError::Disconnected)
    }

    /// Sends a request built around a fresh request id and waits for its reply. An `ERROR`
    /// reply becomes [`ClientError::Server`].
    /// Sends PRODUCER (its request id filled in) for a producer registered on this connection
    /// and waits for PRODUCER_SUCCESS; on failure the producer's route is removed again.
    pub(crate) async fn create_producer(
        &self,
        command: CommandProducer,
    ) -> Result<CommandProducerSuccess> {
        let producer_id = command.producer_id;
        let reply = self
            .request("create producer", |request_id| {
                CommandProducer {
                    request_id,
                    ..command
                }
                .into()
            })
            .await;
        match reply.map(|r| r.producer_success) {
            Ok(Some(success)) => Ok(success),
            Ok(None) => {
                self.unregister_producer(producer_id);
                Err(ClientError::Unexpected("reply to PRODUCER".into()))
            }
            Err(e) => {
                self.unregister_producer(producer_id);
                Err(e)
            }
        }
    }

    pub(crate) async fn request(
        &self,
        operation: &'static str,
        build: impl FnOnce(u64) -> BaseCommand,
    ) -> Result<BaseCommand> {
        let request_id = self.inner.next_request_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut shared = self.inner.lock();
            if shared.closed {
                return Err(ClientError::Disconnected);
            }
            shared.pending.insert(request_id, tx);
        }
        self.send(build(request_id))?;
        let timeout = self.inner.operation_timeout;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(ClientError::Disconnected),
            Err(_) => {
                self.inner.lock().pending.remove(&request_id);
                Err(ClientError::Timeout { operation, timeout })
            }
        }
    }

    pub(crate) fn register_producer(&self, id: u64, route: Route) -> Result<()> {
        let mut shared = self.inner.lock();
        if shared.closed {
            return Err(ClientError::Disconnected);
        }
        shared.producers.insert(id, route);
        Ok(())
    }

    pub(crate) fn register_consumer(&self, id: u64, route: Route) -> Result<()> {
        let mut shared = self.inner.lock();
        if shared.closed {
            return Err(ClientError::Disconnected);
        }
        shared.consumers.insert(id, route);
        Ok(())
    }

    pub(crate) fn unregister_producer(&self, id: u64) {
        self.inner.lock().producers.remove(&id);
    }

    pub(crate) fn unregister_consumer(&self, id: u64) {
        self.inner.lock().consumers.remove(&id);
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn handle(&self, frame: Frame) {
        let command = frame.command;
        let route = |routes: &HashMap<u64, Route>, id: u64| routes.get(&id).cloned();
        match command.kind() {
            Some(Type::Ping) => {
                let _ = self.outbound.send(Frame::from(CommandPong {}));
            }
            Some(Type::Pong) => {}
            Some(Type::SendReceipt) => {
                let receipt = command.send_receipt.unwrap_or_default();
                if let Some(r) = route(&self.lock().producers, receipt.producer_id) {
                    let _ = r.tx.send(Event::Receipt(receipt));
                }
            }
            Some(Type::SendError) => {
                let error = command.send_error.unwrap_or_default();
                if let Some(r) = route(&self.lock().producers, error.producer_id) {
                    let _ = r.tx.send(Event::SendError(error));
                }
            }
            Some(Type::Message) => {
                let message = command.message.unwrap_or_default();
                if let Some(r) = route(&self.lock().consumers, message.consumer_id) {
                    let _ = r.tx.send(Event::Message {
                        partition: r.partition,
                        command: message,
                        payload: frame.payload,
                    });
                }
            }
            Some(Type::CloseProducer) => {
                let id = command.close_producer.unwrap_or_default().producer_id;
                if let Some(r) = self.lock().producers.remove(&id) {
                    let _ = r.tx.send(Event::Closed {
                        partition: r.partition,
                    });
                }
            }
            Some(Type::CloseConsumer) => {
                let id = command.close_consumer.unwrap_or_default().consumer_id;
                if let Some(r) = self.lock().consumers.remove(&id) {
                    let _ = r.tx.send(Event::Closed {
                        partition: r.partition,
                    });
                }
            }
            Some(Type::AuthChallenge) => {
                let response = CommandAuthResponse {
                    client_version: Some(CLIENT_VERSION.into()),
                    response: Some(AuthData {
                        auth_method_name: Some("token".into()),
                        auth_data: self.auth_token.clone().map(String::into_bytes),
                    }),
                    protocol_version: Some(PROTOCOL_VERSION),
                };
                let _ = self.outbound.send(Frame::from(response));
            }
            Some(Type::ActiveConsumerChange | Type::ReachedEndOfTopic) => {
                tracing::debug!(url = %self.url, command = %command.kind_name(), "ignored");
            }
            _ => self.complete(command),
        }
    }

    /// Hands a reply to whoever waits for its request id.
    fn complete(&self, command: BaseCommand) {
        let Some((request_id, reply)) = reply_of(command) else {
            return;
        };
        if let Some(tx) = self.lock().pending.remove(&request_id) {
            let _ = tx.send(reply);
        }
    }

    /// The connection is gone: fail every request, tell every producer and consumer.
    fn close(&self) {
        let shared = {
            let mut shared = self.lock();
            let taken = std::mem::take(&mut *shared);
            shared.closed = true;
            self.closed.store(true, Ordering::Relaxed);
            taken
        };
        for (_, tx) in shared.pending {
            let _ = tx.send(Err(ClientError::Disconnected));
        }
        for r in shared
            .producers
            .into_values()
            .chain(shared.consumers.into_values())
        {
            let _ = r.tx.send(Event::Closed {
                partition: r.partition,
            });
        }
        self.stop.cancel();
    }
}

/// The request id a reply answers, and the reply as a result. `None` for commands that answer
/// nothing we asked.
fn reply_of(command: BaseCommand) -> Option<(u64, Result<BaseCommand>)> {
    let request_id = match command.kind()? {
        Type::Error => {
            let e = command.error?;
            return Some((e.request_id, Err(ClientError::server(e.error, e.message))));
        }
        Type::ProducerSuccess => {
            let success = command.producer_success.as_ref()?;
            if success.producer_ready == Some(false) {
                return None; // queued for exclusive access; the ready one follows
            }
            success.request_id
        }
        Type::Success => command.success.as_ref()?.request_id,
        Type::LookupResponse => command.lookup_topic_response.as_ref()?.request_id,
        Type::PartitionedMetadataResponse => {
            command.partition_metadata_response.as_ref()?.request_id
        }
        Type::GetLastMessageIdResponse => command.get_last_message_id_response.as_ref()?.request_id,
        Type::AckResponse => command.ack_response.as_ref()?.request_id?,
        Type::GetSchemaResponse => command.get_schema_response.as_ref()?.request_id,
        Type::GetTopicsOfNamespaceResponse => {
            command
                .get_topics_of_namespace_response
                .as_ref()?
                .request_id
        }
        Type::ConsumerStatsResponse => command.consumer_stats_response.as_ref()?.request_id,
        _ => {
            tracing::debug!(command = %command.kind_name(), "unexpected command ignored");
            return None;
        }
    };
    Some((request_id, Ok(command)))
}

async fn write_loop(
    mut writer: FramedWrite<Writer, PulsarCodec>,
    mut rx: mpsc::UnboundedReceiver<Frame>,
    stop: CancellationToken,
) {
    loop {
        let frame = tokio::select! {
            frame = rx.recv() => frame,
            _ = stop.cancelled() => None,
        };
        let Some(frame) = frame else { break };
        let mut result = writer.feed(frame).await;
        for _ in 0..WRITE_COALESCE {
            let Ok(frame) = rx.try_recv() else { break };
            if result.is_err() {
                break;
            }
            result = writer.feed(frame).await;
        }
        if let Err(e) = result.and(SinkExt::<Frame>::flush(&mut writer).await) {
            tracing::debug!(error = %e, "write failed; closing the connection");
            break;
        }
    }
    stop.cancel();
}

async fn read_loop(mut reader: FramedRead<Reader, PulsarCodec>, inner: Arc<Inner>) {
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.tick().await;
    let mut heard_since_ping = true;
    loop {
        tokio::select! {
            frame = reader.next() => match frame {
                Some(Ok(frame)) => {
                    heard_since_ping = true;
                    inner.handle(frame);
                }
                Some(Err(e)) => {
                    tracing::warn!(url = %inner.url, error = %e, "bad frame from the broker");
                    break;
                }
                None => break,
            },
            _ = keepalive.tick() => {
                if !heard_since_ping {
                    tracing::warn!(url = %inner.url, "broker silent for a keep-alive interval");
                    break;
                }
                heard_since_ping = false;
                let _ = inner.outbound.send(Frame::from(CommandPing {}));
            }
            _ = inner.stop.cancelled() => break,
        }
    }
    tracing::debug!(url = %inner.url, "connection closed");
    inner.close();
}
