//! Cluster mode on the in-process harness: brokers register, lookups spread bundles and
//! redirect authoritatively, non-owners refuse with ServiceNotReady, admin REST redirects to
//! the owner, unload and graceful shutdown hand bundles over, and a killed owner's topics move
//! to the survivor with every acknowledged message still there.

use std::collections::BTreeSet;
use std::time::Duration;

use magnetar_protocol::pulsar::ServerError;
use magnetar_protocol::pulsar::base_command::Type;
use magnetar_protocol::pulsar::command_lookup_topic_response::LookupType;
use magnetar_testkit::cluster::{Cluster, SESSION_TTL_MS};
use magnetar_testkit::raw::RawClient;
use magnetar_testkit::{wait_for, wait_until};

const WAIT: Duration = Duration::from_secs(30);

fn addr_of(url: &str) -> std::net::SocketAddr {
    url.trim_start_matches("pulsar://")
        .parse()
        .unwrap_or_else(|e| panic!("{url}: {e}"))
}

/// Looks `topic` up as a client does: at `start`, following redirects (echoing
/// `authoritative`), and starting over after a ServiceNotReady (a bundle being unloaded or
/// claimed) as the Pulsar clients do; gives the service URL of the broker to connect to.
async fn look_up(start: &str, topic: &str) -> String {
    wait_for(&format!("a lookup of {topic} to succeed"), WAIT, || async {
        match try_look_up(start, topic).await {
            Ok(url) => Some(url),
            Err(answer) => {
                assert_eq!(answer.error(), ServerError::ServiceNotReady, "{answer:?}");
                None
            }
        }
    })
    .await
}

/// One lookup round of [`look_up`]: Ok with the URL, or Err with a Failed answer.
async fn try_look_up(
    start: &str,
    topic: &str,
) -> Result<String, magnetar_protocol::pulsar::CommandLookupTopicResponse> {
    let mut at = start.to_string();
    let mut authoritative = false;
    for _ in 0..5 {
        let mut client = RawClient::connect(addr_of(&at), None)
            .await
            .expect_connected();
        let answer = client.lookup_as(topic, authoritative).await;
        match answer.response() {
            LookupType::Connect => {
                assert_eq!(answer.authoritative, Some(true));
                return Ok(answer.broker_service_url.expect("a URL with Connect"));
            }
            LookupType::Redirect => {
                assert!(
                    !authoritative,
                    "an authoritative lookup was redirected again"
                );
                authoritative = answer.authoritative.unwrap_or(false);
                at = answer.broker_service_url.expect("a URL with Redirect");
            }
            LookupType::Failed => return Err(answer),
        }
    }
    panic!("lookup of {topic} redirected too often")
}

fn other(cluster: &Cluster, url: &str) -> usize {
    cluster
        .brokers
        .iter()
        .position(|b| b.service_url() != url)
        .expect("another broker")
}

fn index_by_url(cluster: &Cluster, url: &str) -> usize {
    cluster
        .brokers
        .iter()
        .position(|b| b.service_url() == url)
        .unwrap_or_else(|| panic!("no broker at {url}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_spread_bundles_over_brokers_and_agree() {
    let cluster = Cluster::builder().bookies(2).brokers(2).build().await;
    cluster.wait_all_registered().await;
    let first = cluster.broker(0).service_url();
    let mut owners = BTreeSet::new();
    let mut placed = Vec::new();
    for i in 0..16 {
        let topic = format!("persistent://public/default/spread-{i}");
        let owner = look_up(&first, &topic).await;
        owners.insert(owner.clone());
        placed.push((topic, owner));
    }
    assert_eq!(
        owners.len(),
        2,
        "bundles went to one broker only: {placed:?}"
    );
    // Every broker answers Connect to the same owner (once its copy of the owners caught up).
    let second = cluster.broker(1).service_url();
    for (topic, owner) in &placed {
        let mut client = RawClient::connect(addr_of(&second), None)
            .await
            .expect_connected();
        let mut answer = client.lookup(topic).await;
        for _ in 0..100 {
            if answer.response() == LookupType::Connect {
                break;
            }
            answer = client.lookup(topic).await;
        }
        assert_eq!(answer.response(), LookupType::Connect, "{topic}");
        assert_eq!(
            answer.broker_service_url.as_deref(),
            Some(owner.as_str()),
            "{topic}"
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_owner_refuses_producers_and_consumers_with_service_not_ready() {
    let cluster = Cluster::builder().bookies(2).brokers(2).build().await;
    cluster.wait_all_registered().await;
    let topic = "persistent://public/default/owned-elsewhere";
    let owner = look_up(&cluster.broker(0).service_url(), topic).await;
    let stranger = cluster.broker(other(&cluster, &owner)).pulsar;

    let mut client = RawClient::connect(stranger, None).await.expect_connected();
    let refused = client
        .producer(topic, 1)
        .await
        .expect_err("a non-owner refuses");
    assert_eq!(refused.error(), ServerError::ServiceNotReady);
    assert!(
        refused.message.contains("not served by this instance"),
        "{refused:?}"
    );
    let refused = client
        .subscribe(topic, "sub", 1, 10)
        .await
        .expect_err("a non-owner refuses");
    assert_eq!(refused.error(), ServerError::ServiceNotReady);

    let mut producer = RawClient::connect(addr_of(&owner), None)
        .await
        .expect_connected();
    let name = producer.producer(topic, 1).await.expect("the owner serves");
    producer.publish(1, &name, b"hello").await;
    // The non-owner never opened the topic.
    let stranger_service = cluster.brokers[other(&cluster, &owner)].get().service();
    assert!(stranger_service.loaded_topics().await.is_empty());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_rest_on_a_non_owner_redirects_to_the_owner() {
    let cluster = Cluster::builder().bookies(2).brokers(2).build().await;
    cluster.wait_all_registered().await;
    let topic = "persistent://public/default/rest-redirect";
    let owner = look_up(&cluster.broker(0).service_url(), topic).await;
    let mut producer = RawClient::connect(addr_of(&owner), None)
        .await
        .expect_connected();
    producer.producer(topic, 1).await.expect("producer");
    let owner_web = cluster.brokers[index_by_url(&cluster, &owner)].web_url();
    let stranger_web = cluster.brokers[other(&cluster, &owner)].web_url();

    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let path = "/admin/v2/persistent/public/default/rest-redirect/stats";
    let response = no_follow
        .get(format!("{stranger_web}{path}"))
        .send()
        .await
        .expect("stats");
    assert_eq!(response.status(), reqwest::StatusCode::TEMPORARY_REDIRECT);
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .expect("a Location")
        .to_string();
    assert_eq!(location, format!("{owner_web}{path}?authoritative=true"));

    let stats: serde_json::Value = reqwest::get(format!("{stranger_web}{path}"))
        .await
        .expect("followed")
        .json()
        .await
        .expect("json");
    assert!(
        stats["publishers"].as_array().is_some_and(|p| p.len() == 1),
        "{stats}"
    );

    // The HTTP lookup answers the owner from either broker.
    let lookup: serde_json::Value = reqwest::get(format!(
        "{stranger_web}/lookup/v2/topic/persistent/public/default/rest-redirect"
    ))
    .await
    .expect("lookup")
    .json()
    .await
    .expect("json");
    assert_eq!(lookup["brokerUrl"], owner.as_str());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unloading_a_bundle_closes_producers_and_releases_ownership() {
    let cluster = Cluster::builder().bookies(2).brokers(2).build().await;
    cluster.wait_all_registered().await;
    let topic = "persistent://public/default/to-unload";
    let owner = look_up(&cluster.broker(0).service_url(), topic).await;
    let mut producer = RawClient::connect(addr_of(&owner), None)
        .await
        .expect_connected();
    let name = producer.producer(topic, 7).await.expect("producer");
    producer.publish(7, &name, b"before").await;

    let service = cluster.brokers[index_by_url(&cluster, &owner)]
        .get()
        .service()
        .clone();
    let bundle = service
        .ctx()
        .namespaces
        .bundle_of(&magnetar_protocol::TopicName::parse(topic).expect("name"))
        .await
        .expect("bundle");
    let bundles: serde_json::Value = reqwest::get(format!(
        "{}/admin/v2/namespaces/public/default/bundles",
        cluster.broker(0).web_url()
    ))
    .await
    .expect("bundles")
    .json()
    .await
    .expect("json");
    assert_eq!(bundles["numBundles"], 4);
    // Asked at whichever broker: a non-owner redirects (307) and the client follows.
    let response = reqwest::Client::new()
        .put(format!(
            "{}/admin/v2/namespaces/public/default/{}/unload",
            cluster.brokers[other(&cluster, &owner)].web_url(),
            bundle.range
        ))
        .send()
        .await
        .expect("unload");
    assert_eq!(response.status(), reqwest::StatusCode::NO_CONTENT);

    let close = producer.next().await;
    assert_eq!(close.command.kind(), Some(Type::CloseProducer));
    assert_eq!(close.command.close_producer.expect("close").producer_id, 7);
    let key = format!("/namespace/{}", bundle.name());
    assert!(
        cluster.metadata.get(&key).await.expect("get").is_none(),
        "ownership released"
    );
    assert!(service.loaded_topics().await.is_empty());

    // The topic comes back wherever the next lookup puts it, with its data.
    let next_owner = look_up(&cluster.broker(0).service_url(), topic).await;
    let mut consumer = RawClient::connect(addr_of(&next_owner), None)
        .await
        .expect_connected();
    consumer
        .subscribe(topic, "after-unload", 1, 10)
        .await
        .expect("subscribe");
    assert_eq!(consumer.receive().await, b"before");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_owners_topics_move_with_every_acknowledged_message() {
    let mut cluster = Cluster::builder().bookies(2).brokers(2).build().await;
    cluster.wait_all_registered().await;
    let topic = "persistent://public/default/failover";
    let owner = look_up(&cluster.broker(0).service_url(), topic).await;
    let owner_index = index_by_url(&cluster, &owner);
    let survivor = other(&cluster, &owner);
    let mut producer = RawClient::connect(addr_of(&owner), None)
        .await
        .expect_connected();
    let name = producer.producer(topic, 1).await.expect("producer");
    for i in 0..50 {
        producer
            .publish(1, &name, format!("m-{i}").as_bytes())
            .await;
    }

    cluster.kill_broker(owner_index);
    let survivor_url = cluster.broker(survivor).service_url();
    // The bundle stays owned by the dead broker until its session expires; then the survivor
    // takes it.
    let survivor_namespaces = cluster
        .broker(survivor)
        .get()
        .service()
        .ctx()
        .namespaces
        .clone();
    let parsed = magnetar_protocol::TopicName::parse(topic).expect("name");
    wait_until(
        "the survivor to own the killed broker's bundle",
        Duration::from_millis(SESSION_TTL_MS * 20),
        || {
            let namespaces = survivor_namespaces.clone();
            let parsed = parsed.clone();
            async move {
                matches!(
                    namespaces.lookup(&parsed, false).await,
                    Ok(magnetar_broker::cluster::LookupAnswer::Connect(owner)) if owner.broker_id == namespaces.broker_id()
                )
            }
        },
    )
    .await;
    assert_eq!(look_up(&survivor_url, topic).await, survivor_url);

    let mut consumer = RawClient::connect(addr_of(&survivor_url), None)
        .await
        .expect_connected();
    consumer
        .subscribe(topic, "after-failover", 1, 100)
        .await
        .expect("subscribe");
    for i in 0..50 {
        assert_eq!(consumer.receive().await, format!("m-{i}").as_bytes());
    }
    let mut producer = RawClient::connect(addr_of(&survivor_url), None)
        .await
        .expect_connected();
    let name = producer
        .producer(topic, 1)
        .await
        .expect("producer on the survivor");
    producer.publish(1, &name, b"after").await;
    assert_eq!(consumer.receive().await, b"after");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_releases_bundles_at_once() {
    let mut cluster = Cluster::builder().bookies(2).brokers(2).build().await;
    cluster.wait_all_registered().await;
    let topic = "persistent://public/default/graceful";
    let owner = look_up(&cluster.broker(0).service_url(), topic).await;
    let owner_index = index_by_url(&cluster, &owner);
    let mut producer = RawClient::connect(addr_of(&owner), None)
        .await
        .expect_connected();
    let name = producer.producer(topic, 1).await.expect("producer");
    producer.publish(1, &name, b"kept").await;
    let bundle = cluster
        .broker(owner_index)
        .get()
        .service()
        .ctx()
        .namespaces
        .bundle_of(&magnetar_protocol::TopicName::parse(topic).expect("name"))
        .await
        .expect("bundle");

    cluster.stop_broker(owner_index).await;
    let key = format!("/namespace/{}", bundle.name());
    assert!(
        cluster.metadata.get(&key).await.expect("get").is_none(),
        "released on shutdown"
    );
    let registered = format!("/loadbalance/brokers/{}", cluster.broker(owner_index).id());
    assert!(
        cluster
            .metadata
            .get(&registered)
            .await
            .expect("get")
            .is_none(),
        "deregistered"
    );

    let survivor = cluster.broker(other(&cluster, &owner)).service_url();
    assert_eq!(look_up(&survivor, topic).await, survivor);
    let mut consumer = RawClient::connect(addr_of(&survivor), None)
        .await
        .expect_connected();
    consumer
        .subscribe(topic, "s", 1, 10)
        .await
        .expect("subscribe");
    assert_eq!(consumer.receive().await, b"kept");

    // It comes back and takes new bundles again.
    cluster.restart_broker(owner_index).await;
    cluster.wait_all_registered().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eight_partition_topic_spreads_over_both_brokers() {
    let cluster = Cluster::builder()
        .bookies(2)
        .brokers(2)
        .bundles(16)
        .build()
        .await;
    cluster.wait_all_registered().await;
    let web = cluster.broker(0).web_url();
    let response = reqwest::Client::new()
        .put(format!(
            "{web}/admin/v2/persistent/public/default/spread/partitions"
        ))
        .json(&8)
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), reqwest::StatusCode::NO_CONTENT);
    let first = cluster.broker(0).service_url();
    let mut owners = BTreeSet::new();
    for p in 0..8 {
        let partition = format!("persistent://public/default/spread-partition-{p}");
        let owner = look_up(&first, &partition).await;
        let mut producer = RawClient::connect(addr_of(&owner), None)
            .await
            .expect_connected();
        let name = producer.producer(&partition, 1).await.expect("producer");
        producer.publish(1, &name, b"x").await;
        owners.insert(owner);
    }
    assert_eq!(owners.len(), 2, "all partitions on one broker");
    // PARTITIONED_METADATA from the broker that owns none of them, too.
    let mut client = RawClient::connect(cluster.broker(1).pulsar, None)
        .await
        .expect_connected();
    client
        .send(magnetar_protocol::pulsar::CommandPartitionedTopicMetadata {
            topic: "persistent://public/default/spread".into(),
            request_id: 99,
            ..Default::default()
        })
        .await;
    let answer = client
        .next()
        .await
        .command
        .partition_metadata_response
        .expect("answer");
    assert_eq!(answer.partitions, Some(8));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_persistence_policies_are_validated_and_applied_to_new_ledgers() {
    let cluster = Cluster::builder().bookies(2).brokers(1).build().await;
    let web = cluster.broker(0).web_url();
    let url = format!("{web}/admin/v2/namespaces/public/default/persistence");
    let http = reqwest::Client::new();
    let unset = http.get(&url).send().await.expect("get");
    assert_eq!(unset.status(), reqwest::StatusCode::NO_CONTENT);
    let bad = http
        .post(&url)
        .json(&serde_json::json!({"bookkeeperEnsemble": 1, "bookkeeperWriteQuorum": 2, "bookkeeperAckQuorum": 1}))
        .send()
        .await
        .expect("post");
    assert_eq!(bad.status(), reqwest::StatusCode::PRECONDITION_FAILED);
    let ok = http
        .post(&url)
        .json(&serde_json::json!({"bookkeeperEnsemble": 1, "bookkeeperWriteQuorum": 1, "bookkeeperAckQuorum": 1, "managedLedgerMaxMarkDeleteRate": 2.0}))
        .send()
        .await
        .expect("post");
    assert_eq!(ok.status(), reqwest::StatusCode::NO_CONTENT);
    let got: serde_json::Value = http
        .get(&url)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(got["bookkeeperEnsemble"], 1);

    let service = cluster.broker(0).get().service().clone();
    let topic =
        magnetar_protocol::TopicName::parse("persistent://public/default/one-copy").expect("name");
    let config = service.ml_config_for(&topic).await.expect("config");
    assert_eq!(
        (config.ensemble, config.write_quorum, config.ack_quorum),
        (1, 1, 1)
    );
    assert_eq!(config.cursor_persist_interval, Duration::from_millis(500));
    // A topic created now lives on one bookie per ledger and serves as usual.
    let owner = look_up(&cluster.broker(0).service_url(), &topic.to_string()).await;
    let mut producer = RawClient::connect(addr_of(&owner), None)
        .await
        .expect_connected();
    let name = producer
        .producer(&topic.to_string(), 1)
        .await
        .expect("producer");
    producer.publish(1, &name, b"one copy").await;
    cluster.shutdown().await;
}

/// Automatic load shedding: broker 1 is stopped while broker 0 takes all eight bundles; once
/// broker 1 is back, broker 0 sheds bundles and the lookups that follow (as reconnecting clients
/// make) place them on broker 1, until each broker holds at least three; every message
/// published before is still there on the bundle's new owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_broker_sheds_bundles_to_an_idle_one() {
    let mut cluster = Cluster::builder()
        .bookies(2)
        .brokers(2)
        .bundles(8)
        .shedding(200, 1000)
        .build()
        .await;
    cluster.stop_broker(1).await;
    let first = cluster.broker(0).service_url();
    let namespaces = cluster.broker(0).get().service().ctx().namespaces.clone();
    wait_until("broker 1 to have left", WAIT, || {
        let n = namespaces.live_brokers().len();
        async move { n == 1 }
    })
    .await;
    // One topic in each of the eight bundles, all owned by broker 0, one message each.
    let mut topics: Vec<(String, magnetar_broker::cluster::BundleName)> = Vec::new();
    for i in 0.. {
        let topic = format!("persistent://public/default/shed-{i}");
        let parsed = magnetar_protocol::TopicName::parse(&topic).expect("name");
        let bundle = namespaces.bundle_of(&parsed).await.expect("bundle");
        if topics.iter().all(|(_, b)| *b != bundle) {
            topics.push((topic, bundle));
        }
        if topics.len() == 8 {
            break;
        }
    }
    for (topic, _) in &topics {
        assert_eq!(look_up(&first, topic).await, first);
        let mut producer = RawClient::connect(addr_of(&first), None)
            .await
            .expect_connected();
        let name = producer.producer(topic, 1).await.expect("producer");
        producer.publish(1, &name, topic.as_bytes()).await;
    }
    assert_eq!(namespaces.owned_bundles().len(), 8);

    cluster.restart_broker(1).await;
    let second = cluster.broker(1).service_url();
    let cluster_ref = &cluster;
    let topics_ref = &topics;
    let (first_ref, second_ref) = (&first, &second);
    wait_until(
        "both brokers to hold at least three bundles",
        WAIT * 2,
        || async move {
            let (first, second) = (first_ref, second_ref);
            // Reconnecting clients look their topics up again.
            let mut owners = Vec::new();
            for (topic, _) in topics_ref {
                owners.push(look_up(first, topic).await);
            }
            let on_first = owners.iter().filter(|o| *o == first).count();
            let on_second = owners.iter().filter(|o| *o == second).count();
            let held = cluster_ref
                .broker(1)
                .get()
                .service()
                .ctx()
                .namespaces
                .owned_bundles()
                .len();
            on_first >= 3 && on_second >= 3 && held == on_second
        },
    )
    .await;
    for (topic, _) in &topics {
        let owner = look_up(&first, topic).await;
        let mut consumer = RawClient::connect(addr_of(&owner), None)
            .await
            .expect_connected();
        consumer
            .subscribe(topic, "after-shedding", 1, 10)
            .await
            .expect("subscribe on the new owner");
        assert_eq!(consumer.receive().await, topic.as_bytes());
    }
    cluster.shutdown().await;
}
