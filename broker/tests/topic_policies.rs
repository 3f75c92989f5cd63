//! Topic-level policies against an in-process standalone that applies policies every 50 ms:
//! each overrides the namespace's for its topic only, is removed with the topic, and is
//! enforced as the namespace's are (producer and consumer limits, backlog quotas, TTL).

use std::time::Duration;

use magnetar_broker::standalone::{Standalone, StandaloneConfig};
use magnetar_protocol::pulsar::ServerError;
use magnetar_testkit::raw::RawClient;
use magnetar_testkit::{wait_for, wait_until};
use reqwest::StatusCode;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

async fn start() -> (Standalone, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StandaloneConfig {
        policy_check_interval_ms: 50,
        backlog_quota_check_interval_ms: 50,
        ..StandaloneConfig::ephemeral(dir.path())
    };
    (Standalone::start(config).await.expect("standalone"), dir)
}

struct Rest {
    base: String,
    http: reqwest::Client,
}

impl Rest {
    fn new(standalone: &Standalone) -> Rest {
        let addr = standalone.broker.addrs().http.expect("http");
        Rest {
            base: format!("http://{addr}/admin/v2"),
            http: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> StatusCode {
        self.call(reqwest::Method::POST, path, Some(body)).await.0
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn delete(&self, path: &str) -> StatusCode {
        self.call(reqwest::Method::DELETE, path, None).await.0
    }

    async fn put(&self, path: &str) -> StatusCode {
        self.call(reqwest::Method::PUT, path, None).await.0
    }
}

async fn connect(standalone: &Standalone) -> RawClient {
    RawClient::connect(standalone.broker.addr(), None)
        .await
        .expect_connected()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_policies_override_the_namespace_for_their_topic_only() {
    let (standalone, _dir) = start().await;
    let rest = Rest::new(&standalone);
    let t = "/persistent/public/default/limited";
    let other = "persistent://public/default/unlimited";

    // Unknown topic: 404; bad values: 412.
    assert_eq!(
        rest.post(&format!("{t}/maxProducers"), json!(1)).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(rest.put(t).await, StatusCode::NO_CONTENT);
    assert_eq!(
        rest.post(&format!("{t}/maxProducers"), json!(-2)).await,
        StatusCode::PRECONDITION_FAILED
    );
    assert_eq!(
        rest.post(
            &format!("{t}/retention"),
            json!({"retentionTimeInMinutes": 0, "retentionSizeInMB": 5})
        )
        .await,
        StatusCode::PRECONDITION_FAILED
    );
    assert_eq!(
        rest.post(&format!("{t}/replication"), json!(["nowhere"]))
            .await,
        StatusCode::PRECONDITION_FAILED
    );

    // Unset: 204; set: the value; applied: the namespace's when the topic has none.
    assert_eq!(
        rest.get(&format!("{t}/messageTTL")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        rest.post("/namespaces/public/default/messageTTL", json!(3600))
            .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        rest.get(&format!("{t}/messageTTL?applied=true")).await,
        (StatusCode::OK, json!(3600))
    );
    assert_eq!(
        rest.call(
            reqwest::Method::POST,
            &format!("{t}/messageTTL?messageTTL=1"),
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        rest.get(&format!("{t}/messageTTL")).await,
        (StatusCode::OK, json!(1))
    );
    assert_eq!(
        rest.get(&format!("{t}/messageTTL?applied=true")).await,
        (StatusCode::OK, json!(1))
    );

    // maxProducers = 1 on this topic: a second producer is refused; another topic is not
    // limited.
    assert_eq!(
        rest.post(&format!("{t}/maxProducers"), json!(1)).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        rest.get(&format!("{t}/maxProducers")).await,
        (StatusCode::OK, json!(1))
    );
    let topic = "persistent://public/default/limited";
    let mut first = connect(&standalone).await;
    let first_name = first.producer(topic, 1).await.expect("first producer");
    let refused = wait_for("a second producer refused", WAIT, || async {
        let mut client = connect(&standalone).await;
        client.producer(topic, 2).await.err()
    })
    .await;
    assert_eq!(
        refused.error,
        ServerError::ProducerBusy as i32,
        "{refused:?}"
    );
    assert!(
        refused.message.contains("maxProducers"),
        "{}",
        refused.message
    );
    let mut elsewhere = connect(&standalone).await;
    elsewhere
        .producer(other, 1)
        .await
        .expect("producer on another topic");
    elsewhere
        .producer(other, 2)
        .await
        .expect("second producer on another topic");

    // maxConsumers = 1: a consumer on a second subscription is refused.
    assert_eq!(
        rest.post(&format!("{t}/maxConsumers"), json!(1)).await,
        StatusCode::NO_CONTENT
    );
    let mut consumer = connect(&standalone).await;
    consumer
        .subscribe(topic, "a", 1, 0)
        .await
        .expect("first consumer");
    let refused = wait_for("a second consumer refused", WAIT, || async {
        let mut client = connect(&standalone).await;
        client.subscribe(topic, "b", 1, 0).await.err()
    })
    .await;
    assert_eq!(
        refused.error,
        ServerError::ConsumerBusy as i32,
        "{refused:?}"
    );

    // Removing the limit lets the second producer in.
    assert_eq!(
        rest.delete(&format!("{t}/maxProducers")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        rest.get(&format!("{t}/maxProducers")).await.0,
        StatusCode::NO_CONTENT
    );
    wait_until("a second producer allowed", WAIT, || async {
        let mut client = connect(&standalone).await;
        client.producer(topic, 3).await.is_ok()
    })
    .await;

    // TTL 1 s on the topic: subscription "a"'s backlog expires; the namespace's hour does not
    // apply to it.
    for _ in 0..5 {
        first.publish(1, &first_name, b"old").await;
    }
    wait_until("the topic's TTL expires its backlog", WAIT, || async {
        let (_, stats) = rest.get(&format!("{t}/stats")).await;
        stats["subscriptions"]["a"]["msgBacklog"] == json!(0)
    })
    .await;

    // Deleting the topic deletes its policies.
    drop((first, consumer, elsewhere));
    assert_eq!(
        rest.delete(&format!("{t}?force=true")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(rest.put(t).await, StatusCode::NO_CONTENT);
    assert_eq!(
        rest.get(&format!("{t}/maxConsumers")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        rest.get(&format!("{t}/messageTTL")).await.0,
        StatusCode::NO_CONTENT
    );
    standalone.shutdown().await;
}

/// A topic-level backlog quota with `producer_exception` refuses producers on that topic once
/// its backlog is over the limit, while the namespace has no quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_backlog_quota_applies_to_its_topic() {
    let (standalone, _dir) = start().await;
    let rest = Rest::new(&standalone);
    let topic = "persistent://public/default/quoted";
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
    let path =
        "/persistent/public/default/quoted/backlogQuota?backlogQuotaType=destination_storage";
    assert_eq!(
        rest.post(
            path,
            json!({"limitSize": 4096, "policy": "producer_exception"})
        )
        .await,
        StatusCode::NO_CONTENT
    );
    let (status, map) = rest
        .get("/persistent/public/default/quoted/backlogQuotaMap")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(map["destination_storage"]["limitSize"], json!(4096));
    let (_, namespace) = rest.get("/namespaces/public/default/backlogQuotaMap").await;
    assert_eq!(namespace, json!({}));
    let refused = wait_for("producers refused", WAIT, || async {
        let mut client = connect(&standalone).await;
        client.producer(topic, 2).await.err()
    })
    .await;
    assert_eq!(
        refused.error,
        ServerError::ProducerBlockedQuotaExceededException as i32,
        "{refused:?}"
    );
    // Another topic of the namespace takes producers.
    let mut other = connect(&standalone).await;
    other
        .producer("persistent://public/default/free", 1)
        .await
        .expect("producer on another topic");
    standalone.shutdown().await;
}
