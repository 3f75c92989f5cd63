//! The admin REST API of a running standalone, end to end with a real HTTP client, for the
//! routes the broker serves: topics (partitioned and not), stats and internal stats after
//! producing, subscriptions (create at a position, skip, reset by time and by message id,
//! delete), deletes refused while in use, the HTTP lookup, brokers and the health check.

use magnetar_testkit::raw::RawClient;
use reqwest::Method;
use serde_json::Value;

use magnetar_broker::standalone::{Standalone, StandaloneConfig};

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(standalone: &Standalone) -> Api {
        let addr = standalone.broker.addrs().http.expect("HTTP listener");
        Api {
            http: reqwest::Client::new(),
            base: format!("http://{addr}"),
        }
    }

    /// Status and JSON body (Null when the body is not JSON).
    async fn call(&self, method: Method, path: &str, body: Option<&str>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, None).await
    }
    async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(Method::DELETE, path, None).await
    }
    async fn expect(&self, method: Method, path: &str, body: Option<&str>, status: u16) -> Value {
        let (got, json) = self.call(method.clone(), path, body).await;
        assert_eq!(got, status, "{method} {path}: {json}");
        if status >= 400 {
            assert!(
                json["reason"].is_string(),
                "{method} {path}: no reason in {json}"
            );
        }
        json
    }
    async fn backlog(&self, topic: &str, sub: &str) -> u64 {
        let (_, stats) = self.get(&format!("{T}/{topic}/stats")).await;
        stats["subscriptions"][sub]["msgBacklog"]
            .as_u64()
            .unwrap_or_else(|| panic!("no backlog for {sub} in {stats}"))
    }
}

const T: &str = "/admin/v2/persistent/public/default";

async fn start() -> (Standalone, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let standalone = Standalone::start(StandaloneConfig::ephemeral(dir.path()))
        .await
        .expect("standalone");
    (standalone, dir)
}

/// Steps: create a partitioned and a plain topic (and their conflicts and bad inputs); list;
/// produce 10 messages; check stats and internal stats; move a subscription's cursor every way;
/// refuse deletes in use; HTTP lookup; brokers; delete everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_and_subscription_routes() {
    let (standalone, _dir) = start().await;
    let api = Api::new(&standalone);
    use Method as M;

    // Partitioned topic.
    api.expect(M::PUT, &format!("{T}/orders/partitions"), Some("3"), 204)
        .await;
    api.expect(M::PUT, &format!("{T}/orders/partitions"), Some("3"), 409)
        .await;
    api.expect(M::PUT, &format!("{T}/bad/partitions"), Some("0"), 412)
        .await;
    api.expect(M::PUT, &format!("{T}/bad/partitions"), Some("x"), 400)
        .await;
    let parts = api
        .expect(M::GET, &format!("{T}/orders/partitions"), None, 200)
        .await;
    assert_eq!(parts["partitions"], 3);
    let none = api
        .expect(M::GET, &format!("{T}/nothing/partitions"), None, 200)
        .await;
    assert_eq!(none["partitions"], 0);

    // Non-partitioned topic.
    api.expect(M::PUT, &format!("{T}/events"), None, 204).await;
    api.expect(M::PUT, &format!("{T}/events"), None, 409).await;
    api.expect(M::PUT, &format!("{T}/orders"), None, 409).await;
    api.expect(M::PUT, &format!("{T}/events/partitions"), Some("2"), 409)
        .await;
    api.expect(M::PUT, "/admin/v2/persistent/public/nope/x", None, 404)
        .await;

    let listed = api.expect(M::GET, T, None, 200).await;
    let expected = [
        "persistent://public/default/events",
        "persistent://public/default/orders-partition-0",
        "persistent://public/default/orders-partition-1",
        "persistent://public/default/orders-partition-2",
    ];
    assert_eq!(listed, serde_json::json!(expected));
    let ns_topics = api
        .expect(
            M::GET,
            "/admin/v2/namespaces/public/default/topics",
            None,
            200,
        )
        .await;
    assert_eq!(ns_topics, listed);
    api.expect(M::DELETE, "/admin/v2/namespaces/public/default", None, 409)
        .await;
    let partitioned = api
        .expect(M::GET, &format!("{T}/partitioned"), None, 200)
        .await;
    assert_eq!(
        partitioned,
        serde_json::json!(["persistent://public/default/orders"])
    );

    // A subscription from the earliest message, then 10 messages.
    api.expect(
        M::PUT,
        &format!("{T}/events/subscription/audit"),
        Some(r#"{"ledgerId":-1,"entryId":-1}"#),
        204,
    )
    .await;
    api.expect(M::PUT, &format!("{T}/events/subscription/audit"), None, 409)
        .await;
    let topic = "persistent://public/default/events";
    let mut client = RawClient::connect(standalone.broker.addr(), None)
        .await
        .expect_connected();
    let producer = client.producer(topic, 1).await.expect("producer");
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(
            client
                .publish(1, &producer, format!("message-{i}").as_bytes())
                .await,
        );
    }

    let stats = api
        .expect(M::GET, &format!("{T}/events/stats"), None, 200)
        .await;
    assert_eq!(stats["msgInCounter"], 10, "{stats}");
    assert!(stats["bytesInCounter"].as_u64() > Some(0));
    assert!(stats["storageSize"].as_u64() > Some(0));
    assert_eq!(stats["backlogSize"], 10);
    assert_eq!(stats["publishers"][0]["producerName"], producer.as_str());
    assert_eq!(stats["subscriptions"]["audit"]["msgBacklog"], 10);
    for key in [
        "msgRateIn",
        "msgRateOut",
        "msgOutCounter",
        "bytesOutCounter",
    ] {
        assert!(stats[key].is_number(), "{key} in {stats}");
    }
    let internal = api
        .expect(M::GET, &format!("{T}/events/internalStats"), None, 200)
        .await;
    let entries: u64 = internal["ledgers"]
        .as_array()
        .expect("ledgers")
        .iter()
        .map(|l| l["entries"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(entries, 10, "{internal}");
    assert!(internal["cursors"]["audit"]["markDeletePosition"].is_string());
    api.expect(M::GET, &format!("{T}/missing/stats"), None, 404)
        .await;

    // Cursor moves.
    let sub = format!("{T}/events/subscription/audit");
    api.expect(M::POST, &format!("{sub}/skip/3"), None, 204)
        .await;
    assert_eq!(api.backlog("events", "audit").await, 7);
    api.expect(M::POST, &format!("{sub}/skip_all"), None, 204)
        .await;
    assert_eq!(api.backlog("events", "audit").await, 0);
    api.expect(M::POST, &format!("{sub}/resetcursor/0"), None, 204)
        .await;
    assert_eq!(api.backlog("events", "audit").await, 10);
    api.expect(
        M::POST,
        &format!("{sub}/resetcursor/{}", u64::MAX / 2),
        None,
        204,
    )
    .await;
    assert_eq!(api.backlog("events", "audit").await, 0);
    let (ledger, entry) = ids[5];
    let at = format!(r#"{{"ledgerId":{ledger},"entryId":{entry}}}"#);
    api.expect(M::POST, &format!("{sub}/resetcursor"), Some(&at), 204)
        .await;
    assert_eq!(api.backlog("events", "audit").await, 5);
    let after = format!(r#"{{"ledgerId":{ledger},"entryId":{entry},"isExcluded":true}}"#);
    api.expect(M::POST, &format!("{sub}/resetcursor"), Some(&after), 204)
        .await;
    assert_eq!(api.backlog("events", "audit").await, 4);
    api.expect(M::POST, &format!("{sub}/resetcursor"), None, 400)
        .await;
    api.expect(
        M::POST,
        &format!("{T}/events/subscription/none/skip/1"),
        None,
        404,
    )
    .await;
    api.expect(
        M::POST,
        &format!("{T}/orders/subscription/any/skip/1"),
        None,
        405,
    )
    .await;

    // A subscription at a message id, and one with a consumer.
    let (l2, e2) = ids[2];
    let at2 = format!(r#"{{"ledgerId":{l2},"entryId":{e2}}}"#);
    api.expect(
        M::PUT,
        &format!("{T}/events/subscription/replay"),
        Some(&at2),
        204,
    )
    .await;
    assert_eq!(api.backlog("events", "replay").await, 8);
    client
        .subscribe(topic, "live", 7, 100)
        .await
        .expect("subscribe");
    assert_eq!(client.receive().await, b"message-0");
    let subs = api
        .expect(M::GET, &format!("{T}/events/subscriptions"), None, 200)
        .await;
    assert_eq!(subs, serde_json::json!(["audit", "live", "replay"]));

    // Deletes refused while in use, then forced.
    api.expect(
        M::DELETE,
        &format!("{T}/events/subscription/live"),
        None,
        412,
    )
    .await;
    api.expect(
        M::DELETE,
        &format!("{T}/events/subscription/replay"),
        None,
        204,
    )
    .await;
    api.expect(
        M::DELETE,
        &format!("{T}/events/subscription/replay"),
        None,
        404,
    )
    .await;
    api.expect(M::DELETE, &format!("{T}/events"), None, 412)
        .await;
    api.expect(M::DELETE, &format!("{T}/orders"), None, 409)
        .await;

    // Lookup and brokers.
    let lookup = api
        .expect(
            M::GET,
            "/lookup/v2/topic/persistent/public/default/events",
            None,
            200,
        )
        .await;
    assert_eq!(lookup["brokerUrl"], standalone.broker.service_url());
    let http = standalone.broker.addrs().http.expect("http");
    assert_eq!(
        lookup["httpUrl"],
        format!("http://127.0.0.1:{}", http.port())
    );
    api.expect(
        M::GET,
        "/lookup/v2/topic/persistent/public/nope/events",
        None,
        404,
    )
    .await;
    let brokers = api
        .expect(M::GET, "/admin/v2/brokers/standalone", None, 200)
        .await;
    assert_eq!(
        brokers,
        serde_json::json!([format!("127.0.0.1:{}", http.port())])
    );
    api.expect(M::GET, "/admin/v2/brokers/nowhere", None, 404)
        .await;
    let (status, _) = api.get("/admin/v2/brokers/health").await;
    assert_eq!(status, 200);

    api.expect(M::DELETE, &format!("{T}/events?force=true"), None, 204)
        .await;
    api.expect(M::GET, &format!("{T}/events/stats"), None, 404)
        .await;
    api.expect(M::DELETE, &format!("{T}/events"), None, 404)
        .await;
    api.expect(M::DELETE, &format!("{T}/orders/partitions"), None, 204)
        .await;
    api.expect(M::DELETE, &format!("{T}/orders/partitions"), None, 404)
        .await;
    let (_, left) = api.get(T).await;
    assert_eq!(left, serde_json::json!([]));
    // The namespace is empty again: it can be deleted.
    let (status, body) = api.delete("/admin/v2/namespaces/public/default").await;
    assert_eq!(status, 204, "{body}");

    standalone.shutdown().await;
}

/// A lookup of a topic that does not exist yet (a stats call, say) racing with the producer or
/// replication stream that creates it must not drop the registry entry the creator is loading
/// into: the topic would stay loaded outside the registry, be loaded a second time by the next
/// call, and the two instances would fence each other (seen as a flaky replicated-subscription
/// test). Each round races the two and checks there is one instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_racing_the_creation_of_a_topic_leaves_one_instance() {
    let (standalone, _dir) = start().await;
    let service = standalone.broker.service().clone();
    for round in 0..20 {
        let name = magnetar_protocol::TopicName::parse(&format!("race-{round}")).expect("name");
        let creator = {
            let (service, name) = (service.clone(), name.clone());
            tokio::spawn(async move { service.create_topic(&name).await })
        };
        let looker = {
            let (service, name) = (service.clone(), name.clone());
            tokio::spawn(async move {
                loop {
                    if let Ok(topic) = service.topic(&name, false).await {
                        return topic;
                    }
                    tokio::task::yield_now().await;
                }
            })
        };
        let created = creator.await.expect("task").expect("created");
        let seen = looker.await.expect("task");
        let now = service.topic(&name, false).await.expect("loaded");
        assert!(
            std::sync::Arc::ptr_eq(&created, &seen) && std::sync::Arc::ptr_eq(&created, &now),
            "round {round}: the topic was loaded twice"
        );
        assert!(!created.managed_ledger().is_fenced(), "round {round}");
    }
    standalone.shutdown().await;
}
