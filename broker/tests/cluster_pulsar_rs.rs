//! The Rust `pulsar` crate (pulsar-rs 6.x) against a two-broker cluster of the in-process
//! harness, given only the first broker's URL: its lookups must follow redirects to topics the
//! second broker owns, and a partitioned topic spread over both brokers must work end to end.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::TryStreamExt;
use magnetar_broker::cluster::BundleName;
use magnetar_protocol::TopicName;
use magnetar_testkit::cluster::Cluster;
use pulsar::consumer::InitialPosition;
use pulsar::{
    Consumer, ConsumerOptions, OperationRetryOptions, Pulsar, SubType, TokioExecutor, producer,
};

const WAIT: Duration = Duration::from_secs(30);

/// pulsar-rs with ServiceNotReady retried 200 ms apart (its default is 5 s).
async fn client(url: &str) -> Pulsar<TokioExecutor> {
    let retry = OperationRetryOptions {
        retry_delay: Duration::from_millis(200),
        max_retries: Some(50),
        ..Default::default()
    };
    Pulsar::builder(url, TokioExecutor)
        .with_operation_retry_options(retry)
        .build()
        .await
        .expect("pulsar-rs connects")
}

fn message(text: String, key: Option<String>) -> producer::Message {
    producer::Message {
        payload: text.into_bytes(),
        partition_key: key,
        ..Default::default()
    }
}

async fn consumer(client: &Pulsar<TokioExecutor>, topic: &str) -> Consumer<Vec<u8>, TokioExecutor> {
    client
        .consumer()
        .with_topic(topic)
        .with_subscription("rs")
        .with_subscription_type(SubType::Shared)
        .with_options(ConsumerOptions::default().with_initial_position(InitialPosition::Earliest))
        .build()
        .await
        .expect("consumer")
}

/// Receives until `expected` payloads have arrived (acking each), failing after `WAIT`.
async fn receive_all(
    consumer: &mut Consumer<Vec<u8>, TokioExecutor>,
    expected: usize,
) -> BTreeSet<String> {
    let mut got = BTreeSet::new();
    while got.len() < expected {
        let m = tokio::time::timeout(WAIT, consumer.try_next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {expected} messages arrived", got.len()))
            .expect("receive")
            .expect("the stream ended");
        got.insert(String::from_utf8_lossy(&m.payload.data).into_owned());
        consumer.ack(&m).await.expect("ack");
    }
    got
}

/// Four topics in four bundles, produced and consumed through broker 0's URL only: lookups
/// spread the bundles over both brokers, so pulsar-rs reaches broker 1's topics by following
/// Redirect; every message arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulsar_rs_follows_redirects_to_the_owning_broker() {
    let cluster = Cluster::builder().bookies(2).brokers(2).build().await;
    cluster.wait_all_registered().await;
    let topics = cluster.topics_in_distinct_bundles("rs-redirect", 4).await;
    let client = client(&cluster.broker(0).service_url()).await;
    for (topic, _) in &topics {
        let mut producer = client
            .producer()
            .with_topic(topic)
            .build()
            .await
            .expect("producer");
        for i in 0..10 {
            producer
                .send_non_blocking(message(format!("{topic} {i}"), None))
                .await
                .expect("send")
                .await
                .expect("receipt");
        }
        let mut consumer = consumer(&client, topic).await;
        let got = receive_all(&mut consumer, 10).await;
        let want: BTreeSet<String> = (0..10).map(|i| format!("{topic} {i}")).collect();
        assert_eq!(got, want);
    }
    let on_second: Vec<&BundleName> = {
        let owned = cluster
            .broker(1)
            .get()
            .service()
            .ctx()
            .namespaces
            .owned_bundles();
        topics
            .iter()
            .map(|(_, b)| b)
            .filter(|b| owned.contains(b))
            .collect()
    };
    assert!(
        !on_second.is_empty() && on_second.len() < topics.len(),
        "the bundles did not spread over both brokers: broker 1 holds {on_second:?}"
    );
    drop(client);
    cluster.shutdown().await;
}

/// An eight-partition topic through broker 0's URL: PARTITIONED_METADATA answered there, each
/// partition produced to and consumed from its owner, partitions on both brokers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulsar_rs_uses_a_partitioned_topic_spread_over_both_brokers() {
    let cluster = Cluster::builder()
        .bookies(2)
        .brokers(2)
        .bundles(16)
        .build()
        .await;
    cluster.wait_all_registered().await;
    let response = reqwest::Client::new()
        .put(format!(
            "{}/admin/v2/persistent/public/default/rs-spread/partitions",
            cluster.broker(0).web_url()
        ))
        .json(&8)
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), reqwest::StatusCode::NO_CONTENT);
    let topic = "persistent://public/default/rs-spread";
    let client = client(&cluster.broker(0).service_url()).await;
    let mut consumer = consumer(&client, topic).await;
    let mut producer = client
        .producer()
        .with_topic(topic)
        .build()
        .await
        .expect("producer");
    let count = 80;
    for i in 0..count {
        producer
            .send_non_blocking(message(format!("m{i}"), Some(format!("key-{i}"))))
            .await
            .expect("send")
            .await
            .expect("receipt");
    }
    let got = receive_all(&mut consumer, count).await;
    assert_eq!(got, (0..count).map(|i| format!("m{i}")).collect());
    let mut owners = BTreeSet::new();
    for p in 0..8 {
        let partition =
            TopicName::parse(&format!("{topic}-partition-{p}")).expect("partition name");
        let bundle = cluster
            .broker(0)
            .get()
            .service()
            .ctx()
            .namespaces
            .bundle_of(&partition)
            .await
            .expect("bundle");
        for (i, broker) in cluster.brokers.iter().enumerate() {
            if broker
                .get()
                .service()
                .ctx()
                .namespaces
                .owned_bundles()
                .contains(&bundle)
            {
                owners.insert(i);
            }
        }
    }
    assert_eq!(owners.len(), 2, "all partitions on one broker");
    drop(client);
    cluster.shutdown().await;
}
