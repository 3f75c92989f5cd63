//! The broker's guards against careless and hostile clients, each against an in-process
//! standalone with small limits:
//! - a consumer that stops reading (zero TCP window) stalls neither its subscription's other
//!   consumer nor `/metrics`, and is disconnected by the write timeout;
//! - a SEND too large to deliver is refused with Pulsar's error, and the topic keeps flowing;
//! - a producer id reused while its first creation is pending gets both requests answered;
//! - CONNECT must come first, and within the connect timeout;
//! - connections, producers, consumers and subscriptions are bounded, refused with Pulsar's
//!   codes and counted in the metrics;
//! - a cluster-qualified name cannot reach, and so cannot fence, a live topic;
//! - an idle topic is unloaded and loads again on next use;
//! - HTTP: headers that never finish are cut off, an oversized body is 413.

use std::collections::HashSet;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use magnetar_broker::limits::Limits;
use magnetar_broker::standalone::{Standalone, StandaloneConfig};
use magnetar_protocol::pulsar::base_command::Type;
use magnetar_protocol::pulsar::*;
use magnetar_protocol::{Frame, Payload, PulsarCodec};
use magnetar_testkit::raw::{Hello, RawClient};
use magnetar_testkit::{wait_for, wait_until};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

const WAIT: Duration = Duration::from_secs(60);

async fn start(limits: Limits) -> (Standalone, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StandaloneConfig {
        limits,
        ..StandaloneConfig::ephemeral(dir.path())
    };
    (Standalone::start(config).await.expect("standalone"), dir)
}

/// A standalone that applies namespace policies and checks backlog quotas every 50 ms.
async fn start_checking_policies_often() -> (Standalone, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StandaloneConfig {
        policy_check_interval_ms: 50,
        backlog_quota_check_interval_ms: 50,
        ..StandaloneConfig::ephemeral(dir.path())
    };
    (Standalone::start(config).await.expect("standalone"), dir)
}

async fn connect(standalone: &Standalone) -> RawClient {
    RawClient::connect(standalone.broker.addr(), None)
        .await
        .expect_connected()
}

fn metrics_url(standalone: &Standalone) -> String {
    let http = standalone.broker.addrs().http.expect("http");
    format!("http://{http}/metrics")
}

/// The sum of the samples of metric `name` whose labels include `label` (e.g. `limit="x"`).
async fn metric(standalone: &Standalone, name: &str, label: &str) -> f64 {
    let text = reqwest::get(metrics_url(standalone))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn subscribe(topic: &str, sub: &str, consumer_id: u64, request_id: u64) -> CommandSubscribe {
    CommandSubscribe {
        topic: topic.into(),
        subscription: sub.into(),
        sub_type: command_subscribe::SubType::Shared as i32,
        consumer_id,
        request_id,
        initial_position: Some(command_subscribe::InitialPosition::Earliest as i32),
        ..Default::default()
    }
}

/// 1. Consumer A joins a Shared subscription on its own connection, grants 10⁶ permits, and
///    never reads again; consumer B joins and keeps reading.
/// 2. 20,000 entries of 2 KiB are published (far more than A's connection and socket buffers
///    hold).
/// 3. While A is stalled, `/metrics` answers; B receives every entry (those stuck on A's
///    connection once the write timeout closed it), and the broker counts the stalled
///    connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_stops_reading_stalls_nobody_else() {
    let (standalone, _dir) = start(Limits {
        write_timeout_ms: 2_000,
        ..Limits::default()
    })
    .await;
    let topic = "persistent://public/default/stalled";
    let total = 20_000u64;

    let mut stalled = connect(&standalone).await;
    stalled.send(subscribe(topic, "shared", 1, 1)).await;
    assert_eq!(stalled.next().await.command.kind(), Some(Type::Success));
    stalled
        .send(CommandFlow {
            consumer_id: 1,
            message_permits: 1_000_000,
        })
        .await;

    let mut healthy = connect(&standalone).await;
    healthy.send(subscribe(topic, "shared", 1, 1)).await;
    assert_eq!(healthy.next().await.command.kind(), Some(Type::Success));
    healthy
        .send(CommandFlow {
            consumer_id: 1,
            message_permits: 1_000_000,
        })
        .await;
    let received = tokio::spawn(async move {
        let mut seen = HashSet::new();
        while (seen.len() as u64) < total {
            let frame = healthy.next().await;
            if let Some(message) = frame.command.message {
                seen.insert((message.message_id.ledger_id, message.message_id.entry_id));
            }
        }
        seen.len()
    });

    let mut producer = connect(&standalone).await;
    let name = producer.producer(topic, 1).await.expect("producer");
    let body = vec![7u8; 2048];
    for _ in 0..total {
        producer.publish(1, &name, &body).await;
    }

    // The stalled consumer holds nothing up: metrics answer at once.
    let answered = tokio::time::timeout(
        Duration::from_secs(10),
        reqwest::get(metrics_url(&standalone)),
    )
    .await
    .expect("/metrics answers while a consumer is stalled")
    .expect("metrics");
    assert!(answered.status().is_success());

    let count = tokio::time::timeout(WAIT, received)
        .await
        .expect("B received every entry")
        .expect("join");
    assert_eq!(count as u64, total);
    wait_until("the stalled connection is counted", WAIT, || async {
        metric(&standalone, "magnetar_broker_stalled_connections_total", "").await >= 1.0
    })
    .await;
    drop(stalled);
    standalone.shutdown().await;
}

/// A payload without a checksum, as some clients send it: `[metadata size][metadata][body]`.
fn checksumless(metadata: &MessageMetadata, body: &[u8]) -> Payload {
    let mut buf = BytesMut::new();
    buf.put_u32(metadata.encoded_len() as u32);
    buf.put_slice(&metadata.encode_to_vec());
    buf.put_slice(body);
    Payload::parse(buf.freeze()).expect("payload")
}

/// 1. A checksum-less SEND whose frame is exactly as large as the frame limit allows: the
///    stored entry (which gains a checksum) would be too large to deliver, so it is refused
///    with SEND_ERROR(NotAllowed) and the connection stays.
/// 2. The next SEND is stored, and a consumer receives it: nothing undeliverable blocks the
///    topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_too_large_to_deliver_is_refused_and_the_topic_flows() {
    let (standalone, _dir) = start(Limits::default()).await;
    let topic = "persistent://public/default/oversized";
    let mut client = connect(&standalone).await;
    let name = client.producer(topic, 1).await.expect("producer");
    let metadata = MessageMetadata {
        producer_name: name.clone(),
        sequence_id: 0,
        publish_time: 1,
        ..Default::default()
    };
    let send = CommandSend {
        producer_id: 1,
        sequence_id: 0,
        num_messages: Some(1),
        ..Default::default()
    };
    let max_frame = magnetar_protocol::DEFAULT_MAX_MESSAGE_SIZE + magnetar_protocol::FRAME_PADDING;
    let empty = Frame::with_payload(send.clone(), checksumless(&metadata, b""));
    let body = vec![1u8; max_frame - empty.encoded_len()];
    let frame = Frame::with_payload(send, checksumless(&metadata, &body));
    assert_eq!(frame.encoded_len(), max_frame);
    client.send(frame).await;
    let error = client.next().await.command.send_error.expect("SEND_ERROR");
    assert_eq!(
        error.error,
        ServerError::NotAllowedError as i32,
        "{error:?}"
    );
    assert!(error.message.contains("max_message_size"), "{error:?}");

    client.publish(1, &name, b"small").await;
    let mut consumer = connect(&standalone).await;
    consumer
        .subscribe(topic, "sub", 1, 10)
        .await
        .expect("subscribe");
    assert_eq!(consumer.receive().await, b"small");
    standalone.shutdown().await;
}

/// PRODUCER for id 1, CLOSE_PRODUCER 1 and PRODUCER for id 1 again, in one write (the first
/// creation is still loading the topic when the second arrives): both PRODUCER requests are
/// answered, the second with success, and the producer works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_id_reused_while_being_created_is_answered() {
    let (standalone, _dir) = start(Limits::default()).await;
    let topic = "persistent://public/default/reused-id";
    let producer = |request_id| CommandProducer {
        topic: topic.into(),
        producer_id: 1,
        request_id,
        ..Default::default()
    };
    let mut burst = BytesMut::new();
    let mut codec = PulsarCodec::default();
    for frame in [
        Frame::from(producer(100)),
        Frame::from(CommandCloseProducer {
            producer_id: 1,
            request_id: 101,
            ..Default::default()
        }),
        Frame::from(producer(102)),
    ] {
        tokio_util::codec::Encoder::encode(&mut codec, frame, &mut burst).expect("encode");
    }
    let mut raw = TcpStream::connect(standalone.broker.addr())
        .await
        .expect("connect");
    // The burst goes on its own connection, after CONNECT.
    let mut framed = Framed::new(&mut raw, PulsarCodec::default());
    framed
        .send(Frame::from(CommandConnect {
            client_version: "test".into(),
            protocol_version: Some(20),
            ..Default::default()
        }))
        .await
        .expect("connect");
    let connected = framed.next().await.expect("open").expect("frame");
    assert_eq!(connected.command.kind(), Some(Type::Connected));
    drop(framed);
    raw.write_all(&burst).await.expect("burst");
    let mut framed = Framed::new(raw, PulsarCodec::default());
    let mut answered = HashSet::new();
    let mut created = None;
    while answered.len() < 3 {
        let frame = tokio::time::timeout(WAIT, framed.next())
            .await
            .expect("answers in time")
            .expect("open")
            .expect("frame");
        let command = frame.command;
        if let Some(ok) = command.producer_success {
            answered.insert(ok.request_id);
            if ok.request_id == 102 {
                created = Some(ok.producer_name);
            }
        } else if let Some(error) = command.error {
            answered.insert(error.request_id);
        } else if let Some(success) = command.success {
            answered.insert(success.request_id);
        }
    }
    assert_eq!(answered, HashSet::from([100, 101, 102]));
    let name = created.expect("the second creation succeeded");
    let metadata = MessageMetadata {
        producer_name: name,
        sequence_id: 0,
        publish_time: 1,
        ..Default::default()
    };
    let send = CommandSend {
        producer_id: 1,
        sequence_id: 0,
        num_messages: Some(1),
        ..Default::default()
    };
    framed
        .send(Frame::with_payload(send, Payload::new(&metadata, b"x")))
        .await
        .expect("send");
    loop {
        let frame = tokio::time::timeout(WAIT, framed.next())
            .await
            .expect("receipt in time")
            .expect("open")
            .expect("frame");
        if frame.command.send_receipt.is_some() {
            break;
        }
    }
    standalone.shutdown().await;
}

/// 1. A connection that sends nothing is closed once the connect timeout passes.
/// 2. A PING before CONNECT closes the connection (it must not keep an unauthenticated socket
///    alive).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_must_come_first_and_in_time() {
    let (standalone, _dir) = start(Limits {
        connect_timeout_ms: 300,
        ..Limits::default()
    })
    .await;
    let mut idle = TcpStream::connect(standalone.broker.addr())
        .await
        .expect("connect");
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(WAIT, idle.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0, "a silent connection is closed");

    let stream = TcpStream::connect(standalone.broker.addr())
        .await
        .expect("connect");
    let mut early = Framed::new(stream, PulsarCodec::default());
    early.send(Frame::from(CommandPing {})).await.expect("ping");
    let next = tokio::time::timeout(WAIT, early.next())
        .await
        .expect("closed in time");
    assert!(
        !matches!(next, Some(Ok(ref f)) if f.command.kind() == Some(Type::Pong)),
        "no PONG before CONNECT: {next:?}"
    );
    connect(&standalone).await; // a well-behaved client still gets in
    standalone.shutdown().await;
}

/// Each limit refuses the one past it with Pulsar's error and counts it:
/// connections (closed at accept), producers per connection (NotAllowed) and per topic
/// (ProducerBusy), subscriptions per topic (NotAllowed), consumers per subscription
/// (ConsumerBusy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_refuse_with_pulsar_errors() {
    let (standalone, _dir) = start(Limits {
        max_connections: 3,
        max_producers_per_connection: 2,
        max_producers_per_topic: 2,
        max_subscriptions_per_topic: 1,
        max_consumers_per_subscription: 1,
        ..Limits::default()
    })
    .await;
    let topic = "persistent://public/default/limited";
    let mut a = connect(&standalone).await;
    let mut b = connect(&standalone).await;
    let mut c = connect(&standalone).await;
    match RawClient::connect(standalone.broker.addr(), None).await {
        Hello::Refused(None) => {}
        other => panic!("a fourth connection must be closed at once: {other:?}"),
    }

    a.producer(topic, 1).await.expect("1st producer");
    a.producer(topic, 2).await.expect("2nd producer");
    let error = a
        .producer("other-topic", 3)
        .await
        .expect_err("per connection");
    assert_eq!(
        error.error,
        ServerError::NotAllowedError as i32,
        "{error:?}"
    );
    let error = b.producer(topic, 1).await.expect_err("per topic");
    assert_eq!(error.error, ServerError::ProducerBusy as i32, "{error:?}");

    b.send(subscribe(topic, "first", 10, 20)).await;
    assert_eq!(b.next().await.command.kind(), Some(Type::Success));
    c.send(subscribe(topic, "second", 10, 21)).await;
    let error = c.next().await.command.error.expect("ERROR");
    assert_eq!(
        error.error,
        ServerError::NotAllowedError as i32,
        "{error:?}"
    );
    c.send(subscribe(topic, "first", 11, 22)).await;
    let error = c.next().await.command.error.expect("ERROR");
    assert_eq!(error.error, ServerError::ConsumerBusy as i32, "{error:?}");

    for limit in [
        "max_connections",
        "max_producers_per_connection",
        "max_producers_per_topic",
        "max_subscriptions_per_topic",
        "max_consumers_per_subscription",
    ] {
        let label = format!("limit=\"{limit}\"");
        let counted = metric(&standalone, "magnetar_broker_limit_refusals_total", &label).await;
        assert!(counted >= 1.0, "{limit} counted");
    }
    standalone.shutdown().await;
}

/// 1. A producer publishes to `x`.
/// 2. SUBSCRIBE and PRODUCER on `persistent://public/c/default/x` (a cluster-qualified name
///    that used to open `x`'s storage and fence it) are refused as invalid topic names.
/// 3. The first producer's next SEND still succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_qualified_name_cannot_fence_a_live_topic() {
    let (standalone, _dir) = start(Limits::default()).await;
    let mut owner = connect(&standalone).await;
    let name = owner
        .producer("persistent://public/default/x", 1)
        .await
        .expect("producer");
    owner.publish(1, &name, b"first").await;

    let mut other = connect(&standalone).await;
    let alias = "persistent://public/c/default/x";
    let error = other.producer(alias, 1).await.expect_err("alias refused");
    assert_eq!(error.error, ServerError::InvalidTopicName as i32);
    let error = other
        .subscribe(alias, "sub", 2, 10)
        .await
        .expect_err("alias refused");
    assert_eq!(error.error, ServerError::InvalidTopicName as i32);

    owner.publish(1, &name, b"second").await;
    standalone.shutdown().await;
}

/// A topic whose producer left is unloaded after the idle time; the next producer loads it
/// again and sees its earlier entries kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_topic_is_unloaded_and_comes_back() {
    let (standalone, _dir) = start(Limits {
        topic_idle_unload_ms: 300,
        ..Limits::default()
    })
    .await;
    let topic = "persistent://public/default/idle";
    let mut client = connect(&standalone).await;
    let name = client.producer(topic, 1).await.expect("producer");
    client.publish(1, &name, b"kept").await;
    client.close_producer(1).await;
    let service = standalone.broker.service().clone();
    wait_until("the idle topic is unloaded", WAIT, || {
        let service = service.clone();
        async move {
            !service
                .loaded_topics()
                .await
                .iter()
                .any(|t| t.name().to_string() == topic)
        }
    })
    .await;
    let mut consumer = connect(&standalone).await;
    consumer
        .subscribe(topic, "sub", 1, 10)
        .await
        .expect("subscribe loads it again");
    assert_eq!(consumer.receive().await, b"kept");
    standalone.shutdown().await;
}

/// HTTP: a client that never finishes its headers is disconnected after the header timeout; a
/// body larger than the limit gets 413; normal requests are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_clients_cannot_hold_the_service() {
    let (standalone, _dir) = start(Limits {
        http_header_read_timeout_ms: 300,
        http_max_request_bytes: 64 * 1024,
        ..Limits::default()
    })
    .await;
    let http = standalone.broker.addrs().http.expect("http");
    let mut slow = TcpStream::connect(http).await.expect("connect");
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("partial headers");
    let mut buf = vec![0u8; 4096];
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // a 408 may come first
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "headers that never finish are cut off");

    let client = reqwest::Client::new();
    let big = Bytes::from(vec![b'x'; 128 * 1024]);
    let status = client
        .put(format!("http://{http}/admin/v2/tenants/big"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .expect("request")
        .status();
    assert_eq!(status.as_u16(), 413);
    let ok = wait_for("metrics served", WAIT, || async {
        reqwest::get(metrics_url(&standalone))
            .await
            .ok()
            .filter(|r| r.status().is_success())
    })
    .await;
    assert!(ok.status().is_success());
    standalone.shutdown().await;
}

async fn set_backlog_quota(standalone: &Standalone, quota: serde_json::Value) {
    let http = standalone.broker.addrs().http.expect("http");
    let response = reqwest::Client::new()
        .post(format!(
            "http://{http}/admin/v2/namespaces/public/default/backlogQuota"
        ))
        .json(&quota)
        .send()
        .await
        .expect("request");
    assert!(response.status().is_success(), "{response:?}");
}

/// 1. A subscription holds 20 entries of 1 KiB; the namespace's quota is 4 KiB with
///    `producer_exception`.
/// 2. The broker's quota check closes the producer, and a new one is refused with
///    ProducerBlockedQuotaExceededException.
/// 3. The consumer acknowledges everything: once its position is persisted, producers are
///    allowed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_over_its_quota_refuses_producers_until_consumed() {
    let (standalone, _dir) = start_checking_policies_often().await;
    let topic = "persistent://public/default/quota";
    let mut consumer = connect(&standalone).await;
    consumer
        .subscribe(topic, "sub", 1, 1000)
        .await
        .expect("subscribe");
    let mut producer = connect(&standalone).await;
    let name = producer.producer(topic, 1).await.expect("producer");
    let mut last = (0, 0);
    for _ in 0..20 {
        last = producer.publish(1, &name, &[0u8; 1024]).await;
    }
    set_backlog_quota(
        &standalone,
        serde_json::json!({"limitSize": 4096, "policy": "producer_exception"}),
    )
    .await;
    // CLOSE_PRODUCER arrives, then a new producer is refused.
    loop {
        let frame = producer.next().await;
        if frame.command.kind() == Some(Type::CloseProducer) {
            break;
        }
    }
    let error = wait_for("producers refused", WAIT, || {
        let addr = standalone.broker.addr();
        async move {
            let mut client = RawClient::connect(addr, None).await.expect_connected();
            client.producer(topic, 2).await.err()
        }
    })
    .await;
    assert_eq!(
        error.error,
        ServerError::ProducerBlockedQuotaExceededException as i32,
        "{error:?}"
    );

    consumer
        .send(CommandAck {
            consumer_id: 1,
            ack_type: command_ack::AckType::Cumulative as i32,
            message_id: vec![MessageIdData {
                ledger_id: last.0,
                entry_id: last.1,
                ..Default::default()
            }],
            ..Default::default()
        })
        .await;
    wait_until("producers allowed again", WAIT, || {
        let addr = standalone.broker.addr();
        async move {
            let mut client = RawClient::connect(addr, None).await.expect_connected();
            client.producer(topic, 3).await.is_ok()
        }
    })
    .await;
    standalone.shutdown().await;
}

/// With `consumer_backlog_eviction` and a 4 KiB quota, a subscription 20 KiB behind is moved
/// forward by the broker until at most about 4 KiB remain; producers are never refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_eviction_moves_the_slowest_subscription() {
    let (standalone, _dir) = start_checking_policies_often().await;
    let topic = "persistent://public/default/evicted";
    let mut consumer = connect(&standalone).await;
    consumer
        .subscribe(topic, "sub", 1, 0)
        .await
        .expect("subscribe");
    let mut producer = connect(&standalone).await;
    let name = producer.producer(topic, 1).await.expect("producer");
    for _ in 0..20 {
        producer.publish(1, &name, &[0u8; 1024]).await;
    }
    set_backlog_quota(
        &standalone,
        serde_json::json!({"limitSize": 4096, "policy": "consumer_backlog_eviction"}),
    )
    .await;
    let http = standalone.broker.addrs().http.expect("http");
    wait_until("the backlog is evicted", WAIT, || async {
        let stats: serde_json::Value = reqwest::get(format!(
            "http://{http}/admin/v2/persistent/public/default/evicted/stats"
        ))
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
        stats["subscriptions"]["sub"]["msgBacklog"]
            .as_u64()
            // Evicted down to the quota (4 KiB of 1 KiB messages), not beyond it.
            .is_some_and(|backlog| (1..=5).contains(&backlog))
    })
    .await;
    producer.publish(1, &name, b"still allowed").await;
    standalone.shutdown().await;
}
