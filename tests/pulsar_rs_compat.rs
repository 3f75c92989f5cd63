//! The Rust `pulsar` crate (pulsar-rs 6.x) as a judge: each test starts an in-process
//! standalone on ephemeral ports and a temp directory, and uses pulsar-rs unchanged against it.
//!
//! pulsar-rs sends topic names as given (`x`, `t/ns/x`; the broker normalizes them), acks
//! messages of a batch with `batch_index` and no `ack_set` (the broker takes that as an ack of
//! the whole entry), and sends REDELIVER with message ids on `nack`.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use anyhow::{Context, Result};
use futures::TryStreamExt;
use magnetar_broker::standalone::{Standalone, StandaloneConfig};
use magnetar_metadata::Expected;
use pulsar::compression::{
    Compression, CompressionLz4, CompressionSnappy, CompressionZlib, CompressionZstd,
};
use pulsar::consumer::InitialPosition;
use pulsar::{
    Consumer, ConsumerOptions, OperationRetryOptions, Producer, ProducerOptions, Pulsar, SubType,
    TokioExecutor, producer,
};

const WAIT: Duration = Duration::from_secs(20);

struct Harness {
    standalone: Standalone,
    client: Pulsar<TokioExecutor>,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start() -> Result<Harness> {
        let dir = tempfile::tempdir()?;
        let standalone =
            Standalone::start(StandaloneConfig::ephemeral(dir.path().join("data"))).await?;
        let client = client(standalone.broker.service_url(), 50).await?;
        Ok(Harness {
            standalone,
            client,
            _dir: dir,
        })
    }

    async fn producer(
        &self,
        topic: &str,
        options: ProducerOptions,
    ) -> Result<Producer<TokioExecutor>> {
        Ok(self
            .client
            .producer()
            .with_topic(topic)
            .with_options(options)
            .build()
            .await?)
    }

    async fn consumer(
        &self,
        topic: &str,
        sub: &str,
        sub_type: SubType,
    ) -> Result<Consumer<Vec<u8>, TokioExecutor>> {
        Ok(self
            .client
            .consumer()
            .with_topic(topic)
            .with_subscription(sub)
            .with_subscription_type(sub_type)
            .with_options(
                ConsumerOptions::default().with_initial_position(InitialPosition::Earliest),
            )
            .build()
            .await?)
    }

    async fn shutdown(self) {
        drop(self.client);
        self.standalone.shutdown().await;
    }
}

/// A client that retries ServiceNotReady and ConsumerBusy/ProducerBusy answers `retries` times,
/// 200 ms apart (pulsar-rs retries them forever, 5 s apart, by default).
async fn client(url: &str, retries: u32) -> Result<Pulsar<TokioExecutor>> {
    let retry = OperationRetryOptions {
        retry_delay: Duration::from_millis(200),
        max_retries: Some(retries),
        ..Default::default()
    };
    Ok(Pulsar::builder(url, TokioExecutor)
        .with_operation_retry_options(retry)
        .build()
        .await?)
}

fn message(text: &str) -> producer::Message {
    producer::Message {
        payload: text.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// The next message, failing the test after `WAIT`.
async fn next(
    consumer: &mut Consumer<Vec<u8>, TokioExecutor>,
) -> Result<pulsar::consumer::Message<Vec<u8>>> {
    tokio::time::timeout(WAIT, consumer.try_next())
        .await
        .context("no message in time")??
        .context("consumer stream ended")
}

fn text(m: &pulsar::consumer::Message<Vec<u8>>) -> String {
    String::from_utf8_lossy(&m.payload.data).into_owned()
}

/// Steps: publish 20 messages with key, properties and event time to a short topic name; an
/// exclusive consumer reads them in order with their metadata and acks them; a second
/// exclusive consumer is refused; after close, the next consumer sees only new messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_consume_exclusive() -> Result<()> {
    let h = Harness::start().await?;
    let mut producer = h
        .producer("rs-exclusive", ProducerOptions::default())
        .await?;
    for i in 0..20 {
        let mut m = message(&format!("m{i}"));
        m.partition_key = Some(format!("k{}", i % 3));
        m.properties = HashMap::from([("i".to_string(), i.to_string())]);
        m.event_time = Some(1_000 + i);
        producer.send_non_blocking(m).await?.await?;
    }
    let mut consumer = h
        .consumer("public/default/rs-exclusive", "sub", SubType::Exclusive)
        .await?;
    for i in 0..20 {
        let m = next(&mut consumer).await?;
        assert_eq!(text(&m), format!("m{i}"));
        assert_eq!(m.key().as_deref(), Some(format!("k{}", i % 3).as_str()));
        let metadata = m.metadata();
        assert_eq!(metadata.properties[0].value, i.to_string());
        assert_eq!(metadata.event_time, Some(1_000 + i));
        consumer.ack(&m).await?;
    }
    let busy = client(h.standalone.broker.service_url(), 0)
        .await?
        .consumer()
        .with_topic("persistent://public/default/rs-exclusive")
        .with_subscription("sub")
        .with_subscription_type(SubType::Exclusive)
        .build::<Vec<u8>>()
        .await;
    assert!(busy.is_err(), "a second exclusive consumer must be refused");
    consumer.close().await?;
    producer.send_non_blocking(message("after")).await?.await?;
    let mut again = h
        .consumer("rs-exclusive", "sub", SubType::Exclusive)
        .await?;
    assert_eq!(text(&next(&mut again).await?), "after");
    drop(again);
    h.shutdown().await;
    Ok(())
}

/// Steps: two shared consumers on one subscription; 100 messages; together they receive each
/// exactly once, and both get some.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_across_two_consumers() -> Result<()> {
    let h = Harness::start().await?;
    let mut a = h.consumer("rs-shared", "sub", SubType::Shared).await?;
    let mut b = h.consumer("rs-shared", "sub", SubType::Shared).await?;
    let mut producer = h.producer("rs-shared", ProducerOptions::default()).await?;
    for i in 0..100 {
        producer
            .send_non_blocking(message(&i.to_string()))
            .await?
            .await?;
    }
    let mut seen = BTreeSet::new();
    let (mut from_a, mut from_b) = (0, 0);
    while seen.len() < 100 {
        let m = tokio::select! {
            m = next(&mut a) => { from_a += 1; let m = m?; a.ack(&m).await?; m }
            m = next(&mut b) => { from_b += 1; let m = m?; b.ack(&m).await?; m }
        };
        assert!(seen.insert(text(&m)), "{} delivered twice", text(&m));
    }
    assert!(from_a > 0 && from_b > 0, "a got {from_a}, b got {from_b}");
    h.shutdown().await;
    Ok(())
}

/// Steps: for no compression and each codec, a batching producer (10 per batch) publishes 25
/// messages; a consumer reads them in order and acks each (batch-index acks); after a close,
/// a new consumer on the subscription sees only a later message, so the entries were acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batching_with_each_codec() -> Result<()> {
    let h = Harness::start().await?;
    let codecs = [
        ("none", Compression::None),
        ("lz4", Compression::Lz4(CompressionLz4::default())),
        ("zlib", Compression::Zlib(CompressionZlib::default())),
        ("zstd", Compression::Zstd(CompressionZstd::default())),
        ("snappy", Compression::Snappy(CompressionSnappy::default())),
    ];
    for (name, compression) in codecs {
        let topic = format!("rs-batch-{name}");
        let options = ProducerOptions {
            batch_size: Some(10),
            batch_timeout: Some(Duration::from_millis(20)),
            compression: Some(compression),
            ..Default::default()
        };
        let mut producer = h.producer(&topic, options).await?;
        let mut receipts = Vec::new();
        for i in 0..25 {
            receipts.push(
                producer
                    .send_non_blocking(message(&format!("{name}-{i}")))
                    .await?,
            );
        }
        producer.send_batch().await?;
        let mut entries = BTreeSet::new();
        for receipt in receipts {
            let id = receipt.await?.message_id.context("receipt without id")?;
            entries.insert((id.ledger_id, id.entry_id));
        }
        assert!(
            entries.len() <= 5,
            "{name}: 25 messages in {} entries",
            entries.len()
        );
        let mut consumer = h.consumer(&topic, "sub", SubType::Exclusive).await?;
        for i in 0..25 {
            let m = next(&mut consumer).await?;
            assert_eq!(text(&m), format!("{name}-{i}"));
            consumer.ack(&m).await?;
        }
        consumer.close().await?;
        drop(consumer);
        producer.send_non_blocking(message("later")).await?.await?;
        let mut again = h.consumer(&topic, "sub", SubType::Exclusive).await?;
        assert_eq!(
            text(&next(&mut again).await?),
            "later",
            "{name}: acked batch came back"
        );
        again.close().await?;
    }
    h.shutdown().await;
    Ok(())
}

/// Steps: a 3-partition topic created in metadata; pulsar-rs publishes 30 messages across the
/// partitions; a consumer of the partitioned topic receives all 30 from all 3 partitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_topic() -> Result<()> {
    let h = Harness::start().await?;
    h.standalone
        .metadata
        .put(
            "/admin/partitioned-topics/public/default/persistent/rs-parts",
            br#"{"partitions":3}"#.to_vec(),
            Expected::Absent,
        )
        .await?;
    let partitions = h.client.lookup_partitioned_topic_number("rs-parts").await?;
    assert_eq!(partitions, 3);
    let mut consumer = h.consumer("rs-parts", "sub", SubType::Shared).await?;
    let mut producer = h.producer("rs-parts", ProducerOptions::default()).await?;
    for i in 0..30 {
        producer
            .send_non_blocking(message(&i.to_string()))
            .await?
            .await?;
    }
    let mut seen = BTreeSet::new();
    let mut topics = BTreeSet::new();
    while seen.len() < 30 {
        let m = next(&mut consumer).await?;
        topics.insert(m.topic.clone());
        seen.insert(text(&m));
        consumer.ack(&m).await?;
    }
    assert_eq!(topics.len(), 3, "messages came from {topics:?}");
    assert!(topics.iter().all(|t| t.contains("rs-parts-partition-")));
    h.shutdown().await;
    Ok(())
}

/// Steps: a shared consumer gets 3 messages, acks two and nacks one; the nacked one comes back
/// and, once acked, nothing else does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_and_nack_redelivery() -> Result<()> {
    let h = Harness::start().await?;
    let mut producer = h.producer("rs-nack", ProducerOptions::default()).await?;
    for text in ["a", "b", "c"] {
        producer.send_non_blocking(message(text)).await?.await?;
    }
    let mut consumer = h.consumer("rs-nack", "sub", SubType::Shared).await?;
    for _ in 0..3 {
        let m = next(&mut consumer).await?;
        if text(&m) == "b" {
            consumer.nack(&m).await?;
        } else {
            consumer.ack(&m).await?;
        }
    }
    let again = next(&mut consumer).await?;
    assert_eq!(text(&again), "b");
    consumer.ack(&again).await?;
    producer.send_non_blocking(message("d")).await?.await?;
    assert_eq!(text(&next(&mut consumer).await?), "d");
    h.shutdown().await;
    Ok(())
}

/// Steps: 10 messages; a reader from the id of message 4 reads 5..9 (the start is exclusive);
/// get-last-message-id names message 9.
///
/// Consumer seek is not tested with pulsar-rs: its `seek` builds a new consumer while the old
/// one's engine answers the broker's CLOSE_CONSUMER by subscribing again, so on an Exclusive
/// subscription the two race and one gets ConsumerBusy (a pulsar-rs behaviour, whatever the
/// broker). Seek is covered by the Python suite and tests/client_seek.rs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_from_message_id() -> Result<()> {
    let h = Harness::start().await?;
    let mut producer = h.producer("rs-reader", ProducerOptions::default()).await?;
    let mut ids = Vec::new();
    for i in 0..10 {
        let receipt = producer
            .send_non_blocking(message(&i.to_string()))
            .await?
            .await?;
        ids.push(receipt.message_id.context("receipt without id")?);
    }
    let mut reader = h
        .client
        .reader()
        .with_topic("rs-reader")
        .with_subscription("reader-sub")
        .with_options(ConsumerOptions::default().starting_on_message(ids[4].clone()))
        .into_reader::<Vec<u8>>()
        .await?;
    for i in 5..10 {
        let m = tokio::time::timeout(WAIT, reader.try_next())
            .await
            .context("reader timed out")??
            .context("reader ended")?;
        assert_eq!(text(&m), i.to_string());
    }
    let last = reader.get_last_message_id().await?;
    assert_eq!(
        (last.ledger_id, last.entry_id),
        (ids[9].ledger_id, ids[9].entry_id)
    );
    h.shutdown().await;
    Ok(())
}
