//! A bare Pulsar protocol client for tests: CONNECT (optionally with a token), PRODUCER + SEND,
//! SUBSCRIBE + FLOW, LOOKUP, over TCP or any TLS stream. It answers the broker's PINGs and
//! keeps nothing else, so tests see exactly what the broker sends.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use magnetar_protocol::pulsar::base_command::Type;
use magnetar_protocol::pulsar::*;
use magnetar_protocol::{Frame, Payload, PulsarCodec};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

pub const WAIT: Duration = Duration::from_secs(15);

/// A boxed stream so TCP and TLS connections share one type.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub struct RawClient {
    conn: Framed<Box<dyn Io>, PulsarCodec>,
    next_request: u64,
    next_sequence: u64,
}

/// What CONNECT got back.
#[derive(Debug)]
pub enum Hello {
    Connected(RawClient),
    /// The frame the broker sent instead of CONNECTED (None: it closed at once).
    Refused(Option<Box<Frame>>),
}

impl Hello {
    pub fn expect_connected(self) -> RawClient {
        match self {
            Hello::Connected(client) => client,
            Hello::Refused(frame) => panic!("CONNECT refused: {frame:?}"),
        }
    }
}

impl std::fmt::Debug for RawClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawClient")
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl RawClient {
    pub async fn connect(addr: std::net::SocketAddr, token: Option<&str>) -> Hello {
        let stream = TcpStream::connect(addr).await.expect("tcp connect");
        RawClient::handshake(Box::new(stream), token, false).await
    }

    /// CONNECT on `io`; `refresh` sets `supports_auth_refresh`.
    pub async fn handshake(io: Box<dyn Io>, token: Option<&str>, refresh: bool) -> Hello {
        let mut client = RawClient {
            conn: Framed::new(io, PulsarCodec::default()),
            next_request: 1,
            next_sequence: 0,
        };
        let hello = CommandConnect {
            client_version: "raw-test".into(),
            protocol_version: Some(20),
            auth_method_name: Some(if token.is_some() { "token" } else { "none" }.into()),
            auth_data: token.map(|t| t.as_bytes().to_vec()),
            feature_flags: Some(FeatureFlags {
                supports_auth_refresh: Some(refresh),
                ..Default::default()
            }),
            ..Default::default()
        };
        client.send(hello).await;
        match client.try_next().await {
            Some(frame) if frame.command.kind() == Some(Type::Connected) => {
                Hello::Connected(client)
            }
            other => Hello::Refused(other.map(Box::new)),
        }
    }

    pub async fn send(&mut self, frame: impl Into<Frame>) {
        self.conn.send(frame.into()).await.expect("send frame");
    }

    /// The next frame other than PING (answered), or None once the broker closed.
    pub async fn try_next(&mut self) -> Option<Frame> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.conn.next())
                .await
                .expect("a frame in time")?
                .ok()?;
            if frame.command.kind() == Some(Type::Ping) {
                self.send(CommandPong {}).await;
                continue;
            }
            return Some(frame);
        }
    }

    pub async fn next(&mut self) -> Frame {
        self.try_next().await.expect("connection open")
    }

    /// Whether the broker closes the connection within `within` (frames before it are dropped).
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        tokio::time::timeout(within, async {
            while let Some(Ok(frame)) = self.conn.next().await {
                if frame.command.kind() == Some(Type::Ping) {
                    let _ = self.conn.send(Frame::from(CommandPong {})).await;
                }
            }
        })
        .await
        .is_ok()
    }

    /// A request id not used on this connection yet.
    pub fn request_id(&mut self) -> u64 {
        self.next_request += 1;
        self.next_request
    }

    pub async fn lookup(&mut self, topic: &str) -> CommandLookupTopicResponse {
        self.lookup_as(topic, false).await
    }

    /// LOOKUP with the `authoritative` flag a redirect told the client to echo.
    pub async fn lookup_as(
        &mut self,
        topic: &str,
        authoritative: bool,
    ) -> CommandLookupTopicResponse {
        let request_id = self.request_id();
        self.send(CommandLookupTopic {
            topic: topic.into(),
            request_id,
            authoritative: Some(authoritative),
            ..Default::default()
        })
        .await;
        self.next()
            .await
            .command
            .lookup_topic_response
            .expect("LOOKUP_RESPONSE")
    }

    /// PRODUCER; Ok(producer name) or Err(the ERROR).
    pub async fn producer(
        &mut self,
        topic: &str,
        producer_id: u64,
    ) -> Result<String, CommandError> {
        let request_id = self.request_id();
        self.send(CommandProducer {
            topic: topic.into(),
            producer_id,
            request_id,
            ..Default::default()
        })
        .await;
        let frame = self.next().await;
        let kind = frame.command.kind();
        match (frame.command.producer_success, frame.command.error) {
            (Some(ok), _) => Ok(ok.producer_name),
            (_, Some(error)) => Err(error),
            _ => panic!("unexpected reply to PRODUCER: {kind:?}"),
        }
    }

    /// SEND one message and wait for its receipt; gives (ledger id, entry id).
    pub async fn publish(&mut self, producer_id: u64, producer: &str, body: &[u8]) -> (u64, u64) {
        let sequence_id = self.next_sequence;
        self.next_sequence += 1;
        let metadata = MessageMetadata {
            producer_name: producer.into(),
            sequence_id,
            publish_time: now_millis(),
            ..Default::default()
        };
        let send = CommandSend {
            producer_id,
            sequence_id,
            num_messages: Some(1),
            ..Default::default()
        };
        self.send(Frame::with_payload(send, Payload::new(&metadata, body)))
            .await;
        let frame = self.next().await;
        let kind = frame.command.kind();
        let receipt = frame
            .command
            .send_receipt
            .unwrap_or_else(|| panic!("SEND_RECEIPT, got {kind:?}"));
        let id = receipt.message_id.expect("message id");
        (id.ledger_id, id.entry_id)
    }

    pub async fn close_producer(&mut self, producer_id: u64) {
        let request_id = self.request_id();
        self.send(CommandCloseProducer {
            producer_id,
            request_id,
            ..Default::default()
        })
        .await;
        let _ = self.next().await;
    }

    /// SUBSCRIBE (Exclusive, from the earliest message) and FLOW `permits`; Ok or Err(ERROR).
    pub async fn subscribe(
        &mut self,
        topic: &str,
        subscription: &str,
        consumer_id: u64,
        permits: u32,
    ) -> Result<(), CommandError> {
        let request_id = self.request_id();
        self.send(CommandSubscribe {
            topic: topic.into(),
            subscription: subscription.into(),
            sub_type: 0,
            consumer_id,
            request_id,
            initial_position: Some(1),
            ..Default::default()
        })
        .await;
        let frame = self.next().await;
        if let Some(error) = frame.command.error {
            return Err(error);
        }
        assert_eq!(frame.command.kind(), Some(Type::Success));
        self.send(CommandFlow {
            consumer_id,
            message_permits: permits,
        })
        .await;
        Ok(())
    }

    /// The next MESSAGE: its body.
    pub async fn receive(&mut self) -> Vec<u8> {
        loop {
            let frame = self.next().await;
            if frame.command.kind() == Some(Type::Message) {
                return frame.payload.expect("payload").body().to_vec();
            }
        }
    }
}
