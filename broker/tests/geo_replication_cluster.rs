//! Geo-replication from a standalone (cluster `eu`) into a two-broker cluster of the in-process
//! harness whose cluster record names only broker 0's replication endpoint: streams for topics
//! that broker 1 owns are redirected to broker 1, and every message arrives, in order.

use std::time::Duration;

use futures::TryStreamExt;
use magnetar_admin_api::models::{ClusterData, TenantInfo};
use magnetar_admin_api::{NamespaceName, Resources};
use magnetar_broker::standalone::{Standalone, StandaloneConfig};
use magnetar_testkit::cluster::{CLUSTER, Cluster};
use pulsar::consumer::InitialPosition;
use pulsar::{Consumer, ConsumerOptions, OperationRetryOptions, Pulsar, TokioExecutor, producer};

const WAIT: Duration = Duration::from_secs(60);

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

async fn subscribe(
    client: &Pulsar<TokioExecutor>,
    topic: &str,
) -> Consumer<Vec<u8>, TokioExecutor> {
    client
        .consumer()
        .with_topic(topic)
        .with_subscription("geo")
        .with_options(ConsumerOptions::default().with_initial_position(InitialPosition::Earliest))
        .build()
        .await
        .expect("consumer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_follow_the_remote_clusters_topic_owners() {
    let us = Cluster::builder()
        .bookies(2)
        .brokers(2)
        .replication()
        .build()
        .await;
    us.wait_all_registered().await;

    // Four topics in four bundles; consumers looked up through broker 0 spread the bundles
    // over both brokers.
    let topics = us.topics_in_distinct_bundles("geo", 4).await;
    let us_client = client(&us.broker(0).service_url()).await;
    let mut consumers = Vec::new();
    for (topic, _) in &topics {
        consumers.push(subscribe(&us_client, topic).await);
    }
    let owned = us
        .broker(1)
        .get()
        .service()
        .ctx()
        .namespaces
        .owned_bundles();
    let on_second = topics.iter().filter(|(_, b)| owned.contains(b)).count();
    assert!(
        on_second > 0 && on_second < topics.len(),
        "the bundles did not spread over both brokers ({on_second} of 4 on broker 1)"
    );

    // eu replicates public/default to the cluster, knowing only broker 0's endpoint.
    let dir = tempfile::tempdir().expect("tempdir");
    let eu = Standalone::start(StandaloneConfig {
        cluster: "eu".into(),
        ..StandaloneConfig::ephemeral(dir.path())
    })
    .await
    .expect("standalone");
    let resources = Resources::new(eu.metadata.clone());
    let record = ClusterData {
        replication_url: us.broker(0).get().replication_url().map(str::to_string),
        broker_client_trust_certs_file_path: us.replication_cert().map(|p| p.display().to_string()),
        ..ClusterData::default()
    };
    resources
        .clusters
        .create(CLUSTER, &record)
        .await
        .expect("cluster record");
    let tenant = TenantInfo {
        admin_roles: Default::default(),
        allowed_clusters: ["eu".to_string(), CLUSTER.to_string()].into(),
    };
    resources
        .tenants
        .update("public", &tenant, &resources.namespaces)
        .await
        .expect("tenant");
    let ns = NamespaceName::new("public", "default").expect("name");
    resources
        .namespaces
        .update(&ns, |p| {
            p.replication_clusters = ["eu".to_string(), CLUSTER.to_string()].into();
            Ok(())
        })
        .await
        .expect("replication clusters");
    let eu_namespaces = eu.broker.service().ctx().namespaces.clone();
    magnetar_testkit::wait_until("eu sees the replication clusters", WAIT, || {
        let eu_namespaces = eu_namespaces.clone();
        async move {
            eu_namespaces
                .policies("public/default")
                .await
                .ok()
                .flatten()
                .is_some_and(|p| p.replication_clusters.contains(CLUSTER))
        }
    })
    .await;

    let eu_client = client(eu.broker.service_url()).await;
    for (topic, _) in &topics {
        let mut producer = eu_client
            .producer()
            .with_topic(topic)
            .build()
            .await
            .expect("producer");
        for i in 0..20 {
            producer
                .send_non_blocking(producer::Message {
                    payload: format!("{topic} {i}").into_bytes(),
                    ..Default::default()
                })
                .await
                .expect("send")
                .await
                .expect("receipt");
        }
    }
    for ((topic, _), consumer) in topics.iter().zip(consumers.iter_mut()) {
        let mut got = Vec::new();
        while got.len() < 20 {
            let m = tokio::time::timeout(WAIT, consumer.try_next())
                .await
                .unwrap_or_else(|_| panic!("{topic}: {} of 20 messages arrived", got.len()))
                .expect("receive")
                .expect("the stream ended");
            got.push(String::from_utf8_lossy(&m.payload.data).into_owned());
            consumer.ack(&m).await.expect("ack");
        }
        let want: Vec<String> = (0..20).map(|i| format!("{topic} {i}")).collect();
        assert_eq!(got, want);
    }
    // Broker 1 received its topics' streams itself (redirected), not through broker 0.
    let mut received_by_second = 0;
    for topic in us.broker(1).get().service().loaded_topics().await {
        if !topic.inbound_stats().is_empty() {
            received_by_second += 1;
        }
    }
    assert_eq!(received_by_second, on_second);
    drop(eu_client);
    drop(us_client);
    eu.shutdown().await;
    us.shutdown().await;
}
