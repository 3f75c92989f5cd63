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

async fn connect(standalone: &Standalone) -> Conn {
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
    conn
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
