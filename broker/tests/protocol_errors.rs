//! Bad input on the Pulsar protocol gets Pulsar's error codes, never a panic, and never disturbs
//! other connections. Steps: start an in-process standalone; on raw connections send invalid
//! topic names, a payload with a bad checksum, commands for unknown producer and consumer ids,
//! an oversized frame, garbage, and a command before CONNECT; check each reply; check that a
//! separate connection keeps working throughout.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use magnetar_broker::standalone::{Standalone, StandaloneConfig};
use magnetar_protocol::pulsar::base_command::Type;
use magnetar_protocol::pulsar::*;
use magnetar_protocol::{Frame, Payload, PulsarCodec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

type Conn = Framed<TcpStream, PulsarCodec>;

const WAIT: Duration = Duration::from_secs(15);

async fn start() -> (Standalone, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let any = "127.0.0.1:0".parse().expect("addr");
    let config = StandaloneConfig {
        data_dir: dir.path().to_path_buf(),
        broker_addr: any,
        metadata_addr: any,
        bookie_addr: any,
        advertised_address: "127.0.0.1".into(),
        ..StandaloneConfig::ephemeral(dir.path())
    };
    (Standalone::start(config).await.expect("standalone"), dir)
}

async fn next(conn: &mut Conn) -> Frame {
    tokio::time::timeout(WAIT, conn.next())
        .await
        .expect("reply in time")
        .expect("open")
        .expect("decodable")
}

/// The next frame that is not a PING from the broker.
async fn reply(conn: &mut Conn) -> Frame {
    loop {
        let frame = next(conn).await;
        if frame.command.kind() != Some(Type::Ping) {
            return frame;
        }
    }
}

/// A connection after CONNECT, and the broker's CONNECTED.
async fn handshake(standalone: &Standalone) -> (Conn, CommandConnected) {
    let stream = TcpStream::connect(standalone.broker.addr())
        .await
        .expect("connect");
    let mut conn = Framed::new(stream, PulsarCodec::default());
    let hello = CommandConnect {
        client_version: "test".into(),
        protocol_version: Some(20),
        ..Default::default()
    };
    conn.send(Frame::from(hello)).await.expect("send");
    let connected = reply(&mut conn).await.command.connected.expect("CONNECTED");
    assert!(connected.protocol_version() >= 6);
    assert_eq!(connected.max_message_size, Some(5 * 1024 * 1024));
    (conn, connected)
}

async fn connect(standalone: &Standalone) -> Conn {
    handshake(standalone).await.0
}

async fn still_serving(conn: &mut Conn) {
    conn.send(Frame::from(CommandPing {}))
        .await
        .expect("send ping");
    assert_eq!(reply(conn).await.command.kind(), Some(Type::Pong));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_pulsar_errors_and_others_keep_working() {
    let (standalone, _dir) = start().await;
    let mut bystander = connect(&standalone).await;
    let mut conn = connect(&standalone).await;

    // Invalid topic names: ERROR for PRODUCER, a Failed response for lookups.
    let producer = CommandProducer {
        topic: "persistent://public/default".into(),
        producer_id: 1,
        request_id: 1,
        ..Default::default()
    };
    conn.send(Frame::from(producer)).await.expect("send");
    let error = reply(&mut conn).await.command.error.expect("ERROR");
    assert_eq!(error.error, ServerError::InvalidTopicName as i32);
    // A name with a character that breaks URLs and patterns is refused the same way.
    conn.send(Frame::from(CommandProducer {
        topic: "persistent://public/default/a*".into(),
        producer_id: 1,
        request_id: 1,
        ..Default::default()
    }))
    .await
    .expect("send");
    let error = reply(&mut conn).await.command.error.expect("ERROR");
    assert_eq!(error.error, ServerError::InvalidTopicName as i32);
    conn.send(Frame::from(CommandPartitionedTopicMetadata {
        topic: "a/b".into(),
        request_id: 2,
        ..Default::default()
    }))
    .await
    .expect("send");
    let response = reply(&mut conn)
        .await
        .command
        .partition_metadata_response
        .expect("response");
    assert_eq!(response.response, Some(1), "Failed");
    assert_eq!(response.error, Some(ServerError::InvalidTopicName as i32));
    conn.send(Frame::from(CommandLookupTopic {
        topic: "http://x/y/z".into(),
        request_id: 3,
        ..Default::default()
    }))
    .await
    .expect("send");
    let lookup = reply(&mut conn)
        .await
        .command
        .lookup_topic_response
        .expect("response");
    assert_eq!(lookup.response, Some(2), "Failed");

    // A producer, then a payload whose checksum is wrong: SEND_ERROR(ChecksumError), not a
    // dropped connection; the next good SEND is stored.
    let producer = CommandProducer {
        topic: "bad-input".into(),
        producer_id: 7,
        request_id: 4,
        ..Default::default()
    };
    conn.send(Frame::from(producer)).await.expect("send");
    let created = reply(&mut conn)
        .await
        .command
        .producer_success
        .expect("PRODUCER_SUCCESS");
    assert_eq!(created.last_sequence_id, Some(-1));
    let metadata = MessageMetadata {
        producer_name: created.producer_name.clone(),
        sequence_id: 0,
        publish_time: 1,
        ..Default::default()
    };
    let good = Payload::new(&metadata, b"payload");
    let mut corrupted = good.as_bytes().to_vec();
    let last = corrupted.len() - 1;
    corrupted[last] ^= 0xff;
    let corrupted = Payload::parse(corrupted.into()).expect("parses");
    let send = CommandSend {
        producer_id: 7,
        sequence_id: 0,
        ..Default::default()
    };
    conn.send(Frame::with_payload(send.clone(), corrupted))
        .await
        .expect("send");
    let send_error = reply(&mut conn)
        .await
        .command
        .send_error
        .expect("SEND_ERROR");
    assert_eq!(send_error.error, ServerError::ChecksumError as i32);
    conn.send(Frame::with_payload(send, good))
        .await
        .expect("send");
    let receipt = reply(&mut conn)
        .await
        .command
        .send_receipt
        .expect("SEND_RECEIPT");
    assert_eq!(receipt.sequence_id, 0);

    // Unknown ids: SENDs ignored, CLOSE_PRODUCER answered, an ACK asking for a receipt told.
    let metadata = MessageMetadata {
        producer_name: "ghost".into(),
        sequence_id: 5,
        publish_time: 1,
        ..Default::default()
    };
    let ghost = CommandSend {
        producer_id: 99,
        sequence_id: 5,
        ..Default::default()
    };
    conn.send(Frame::with_payload(ghost, Payload::new(&metadata, b"x")))
        .await
        .expect("send");
    conn.send(Frame::from(CommandFlow {
        consumer_id: 42,
        message_permits: 10,
    }))
    .await
    .expect("send");
    conn.send(Frame::from(CommandCloseProducer {
        producer_id: 99,
        request_id: 9,
        ..Default::default()
    }))
    .await
    .expect("send");
    assert_eq!(
        reply(&mut conn)
            .await
            .command
            .success
            .expect("SUCCESS")
            .request_id,
        9
    );
    let ack = CommandAck {
        consumer_id: 42,
        ack_type: 0,
        request_id: Some(10),
        message_id: vec![],
        ..Default::default()
    };
    conn.send(Frame::from(ack)).await.expect("send");
    let ack_response = reply(&mut conn)
        .await
        .command
        .ack_response
        .expect("ACK_RESPONSE");
    assert!(ack_response.error.is_some());
    still_serving(&mut conn).await;

    // An oversized frame closes that connection only.
    let mut raw = TcpStream::connect(standalone.broker.addr())
        .await
        .expect("connect");
    raw.write_all(&(64u32 * 1024 * 1024).to_be_bytes())
        .await
        .expect("write");
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(WAIT, raw.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0, "oversized frame closes the connection");

    // Garbage in a well-sized frame, and a command before CONNECT, close their connections.
    let mut raw = TcpStream::connect(standalone.broker.addr())
        .await
        .expect("connect");
    raw.write_all(&[0, 0, 0, 8, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff])
        .await
        .expect("write");
    let n = tokio::time::timeout(WAIT, raw.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0, "undecodable command closes the connection");
    let stream = TcpStream::connect(standalone.broker.addr())
        .await
        .expect("connect");
    let mut early = Framed::new(stream, PulsarCodec::default());
    early
        .send(Frame::from(CommandFlow {
            consumer_id: 1,
            message_permits: 1,
        }))
        .await
        .expect("send");
    assert!(
        tokio::time::timeout(WAIT, early.next())
            .await
            .expect("closed in time")
            .is_none()
    );

    still_serving(&mut bystander).await;
    standalone.shutdown().await;
}

/// Creates a topic with a PRODUCER (request and producer ids are `id`) and closes it again.
async fn create_topic(conn: &mut Conn, topic: &str, id: u64) {
    conn.send(Frame::from(CommandProducer {
        topic: topic.into(),
        producer_id: id,
        request_id: id,
        ..Default::default()
    }))
    .await
    .expect("send");
    let created = reply(conn).await.command;
    assert!(created.producer_success.is_some(), "{created:?}");
    conn.send(Frame::from(CommandCloseProducer {
        producer_id: id,
        request_id: id,
        ..Default::default()
    }))
    .await
    .expect("send");
    assert!(reply(conn).await.command.success.is_some());
}

/// The next WATCH_TOPIC_UPDATE (other frames are replies this test does not wait for).
async fn topic_update(conn: &mut Conn) -> CommandWatchTopicUpdate {
    loop {
        if let Some(update) = reply(conn).await.command.watch_topic_update {
            return update;
        }
    }
}

/// Topic-list watchers (PIP-145), as the Java client uses them for pattern consumers: the
/// broker says it supports them, answers with the matching topics and their hash, then sends
/// each matching topic created or deleted; GET_TOPICS_OF_NAMESPACE with a pattern is filtered
/// by the broker and answers "unchanged" to a client whose hash is current.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_list_watchers_hear_matching_topics_come_and_go() {
    use magnetar_admin_api::TopicAdmin;
    let (standalone, _dir) = start().await;
    let (mut conn, connected) = handshake(&standalone).await;
    let flags = connected.feature_flags.expect("feature flags");
    assert_eq!(flags.supports_topic_watchers, Some(true));

    // Topics are created on another connection, so that this one sees only the watcher's frames
    // and its own replies.
    let mut maker = connect(&standalone).await;
    let ns = "persistent://public/default";
    create_topic(&mut maker, &format!("{ns}/watched-a"), 1).await;
    create_topic(&mut maker, &format!("{ns}/unrelated"), 2).await;
    conn.send(Frame::from(CommandWatchTopicList {
        request_id: 3,
        watcher_id: 7,
        namespace: "public/default".into(),
        topics_pattern: format!("{ns}/watched-.*"),
        topics_hash: None,
    }))
    .await
    .expect("send");
    let success = reply(&mut conn)
        .await
        .command
        .watch_topic_list_success
        .expect("WATCH_TOPIC_LIST_SUCCESS");
    assert_eq!((success.request_id, success.watcher_id), (3, 7));
    assert_eq!(success.topic, vec![format!("{ns}/watched-a")]);
    assert_eq!(
        success.topics_hash,
        magnetar_broker::topic_list::topics_hash(&success.topic)
    );

    // A topic outside the pattern is not announced; the next matching one is.
    create_topic(&mut maker, &format!("{ns}/unrelated-2"), 4).await;
    create_topic(&mut maker, &format!("{ns}/watched-b"), 5).await;
    let update = topic_update(&mut conn).await;
    assert_eq!(update.watcher_id, 7);
    assert_eq!(update.new_topics, vec![format!("{ns}/watched-b")]);
    assert!(update.deleted_topics.is_empty());
    let both = vec![format!("{ns}/watched-a"), format!("{ns}/watched-b")];
    assert_eq!(
        update.topics_hash,
        magnetar_broker::topic_list::topics_hash(&both)
    );

    // Polling with the pattern: filtered by the broker, and "unchanged" for the current hash.
    conn.send(Frame::from(CommandGetTopicsOfNamespace {
        request_id: 6,
        namespace: "public/default".into(),
        topics_pattern: Some(format!("{ns}/watched-.*")),
        topics_hash: Some(update.topics_hash.clone()),
        ..Default::default()
    }))
    .await
    .expect("send");
    let polled = reply(&mut conn)
        .await
        .command
        .get_topics_of_namespace_response
        .expect("GET_TOPICS_OF_NAMESPACE_RESPONSE");
    assert_eq!((polled.filtered, polled.changed), (Some(true), Some(false)));
    assert!(polled.topics.is_empty());

    // A deleted topic is announced.
    let admin = magnetar_broker::admin::BrokerAdmin::new(standalone.broker.service().clone());
    let deleted = magnetar_protocol::TopicName::parse(&format!("{ns}/watched-a")).expect("name");
    admin.delete_topic(&deleted, false).await.expect("delete");
    let update = topic_update(&mut conn).await;
    assert_eq!(update.deleted_topics, vec![format!("{ns}/watched-a")]);
    assert!(update.new_topics.is_empty());

    // A bad pattern is refused; closing the watcher is acknowledged.
    conn.send(Frame::from(CommandWatchTopicList {
        request_id: 8,
        watcher_id: 9,
        namespace: "public/default".into(),
        topics_pattern: format!("{ns}/(unclosed"),
        topics_hash: None,
    }))
    .await
    .expect("send");
    let error = reply(&mut conn).await.command.error.expect("ERROR");
    assert_eq!(error.request_id, 8);
    conn.send(Frame::from(CommandWatchTopicListClose {
        request_id: 10,
        watcher_id: 7,
    }))
    .await
    .expect("send");
    assert_eq!(
        reply(&mut conn).await.command.success.map(|s| s.request_id),
        Some(10)
    );
    standalone.shutdown().await;
}
