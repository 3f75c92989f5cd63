//! `/metrics` is Prometheus text and its figures follow the traffic. Steps: start a standalone;
//! scrape and parse (every sample belongs to a declared family, every value is a number);
//! produce 5 messages and consume them; scrape again: the topic's and namespace's in/out
//! counters, the publish latency histogram and the bookie journal counters moved, and the gauges
//! show the producer, the consumer and the subscription.

use std::collections::BTreeMap;

use magnetar_broker::standalone::{Standalone, StandaloneConfig};
use magnetar_testkit::raw::RawClient;

/// Samples by `name{labels}`, checked against the `# TYPE` lines of the exposition format.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut families: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            families.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with('#') {
            assert!(line.starts_with("# HELP "), "{line}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("series value");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("number in {line}"));
        let name = series.split('{').next().expect("name");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| families.contains_key(*f)))
            .unwrap_or(name);
        assert!(families.contains_key(family), "no TYPE for {line}");
        if let Some(labels) = series.strip_prefix(name)
            && !labels.is_empty()
        {
            assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
        }
        samples.insert(series.to_string(), value);
    }
    samples
}

/// The value of the one sample of `name` whose labels contain `label` (e.g. `topic="…"`).
fn value(samples: &BTreeMap<String, f64>, name: &str, label: &str) -> f64 {
    let found: Vec<f64> = samples
        .iter()
        .filter(|(series, _)| series.starts_with(&format!("{name}{{")) && series.contains(label))
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(found.len(), 1, "{name} with {label}: {found:?}");
    found[0]
}

async fn scrape(url: &str) -> BTreeMap<String, f64> {
    let resp = reqwest::get(url).await.expect("scrape");
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    parse(&resp.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_with_traffic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let standalone = Standalone::start(StandaloneConfig::ephemeral(dir.path()))
        .await
        .expect("standalone");
    let url = format!(
        "http://{}/metrics",
        standalone.broker.addrs().http.expect("http")
    );
    let before = scrape(&url).await;
    let adds_before = value(
        &before,
        "bookie_journal_adds_total",
        "cluster=\"standalone\"",
    );

    let topic = "persistent://public/default/metered";
    let addr = standalone.broker.addr();
    let mut consumer = RawClient::connect(addr, None).await.expect_connected();
    consumer
        .subscribe(topic, "watch", 1, 100)
        .await
        .expect("subscribe");
    let mut client = RawClient::connect(addr, None).await.expect_connected();
    let producer = client.producer(topic, 1).await.expect("producer");
    for i in 0..5 {
        client
            .publish(1, &producer, format!("m{i}").as_bytes())
            .await;
    }
    for _ in 0..5 {
        consumer.receive().await;
    }

    let after = scrape(&url).await;
    let t = format!("topic=\"{topic}\"");
    assert_eq!(value(&after, "pulsar_in_messages_total", &t), 5.0);
    assert_eq!(value(&after, "pulsar_out_messages_total", &t), 5.0);
    assert!(value(&after, "pulsar_in_bytes_total", &t) > 0.0);
    assert!(value(&after, "pulsar_out_bytes_total", &t) > 0.0);
    assert!(value(&after, "pulsar_storage_size", &t) > 0.0);
    assert_eq!(value(&after, "pulsar_producers_count", &t), 1.0);
    assert_eq!(value(&after, "pulsar_consumers_count", &t), 1.0);
    assert_eq!(value(&after, "pulsar_subscriptions_count", &t), 1.0);
    // Delivered but not acknowledged: still backlog.
    assert_eq!(value(&after, "pulsar_msg_backlog", &t), 5.0);
    let ns = "namespace=\"public/default\"";
    assert_eq!(value(&after, "pulsar_namespace_in_messages_total", ns), 5.0);
    assert_eq!(value(&after, "pulsar_topics_count", ns), 1.0);
    assert!(
        value(
            &after,
            "pulsar_broker_publish_latency_seconds_count",
            "cluster"
        ) >= 5.0
    );
    let adds = value(
        &after,
        "bookie_journal_adds_total",
        "cluster=\"standalone\"",
    );
    assert!(adds >= adds_before + 5.0, "{adds_before} -> {adds}");
    assert!(value(&after, "bookie_journal_fsyncs_total", "cluster") > 0.0);
    assert!(value(&after, "metadata_raft_last_log_index", "cluster") > 0.0);
    assert_eq!(value(&after, "metadata_raft_is_leader", "cluster"), 1.0);

    standalone.shutdown().await;
}
