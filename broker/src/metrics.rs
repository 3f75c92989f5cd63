//! Prometheus metrics at `/metrics`, named like Pulsar's so existing dashboards map:
//!
//! - per topic (labels `cluster`, `namespace`, `topic`): `pulsar_in_messages_total`,
//!   `pulsar_out_messages_total`, `pulsar_in_bytes_total`, `pulsar_out_bytes_total`,
//!   `pulsar_rate_in`, `pulsar_rate_out`, `pulsar_throughput_in`, `pulsar_throughput_out`,
//!   `pulsar_msg_backlog`, `pulsar_storage_size`, `pulsar_producers_count`,
//!   `pulsar_consumers_count`, `pulsar_subscriptions_count`;
//! - per namespace (labels `cluster`, `namespace`): the same figures summed, named
//!   `pulsar_namespace_…`, plus `pulsar_topics_count`;
//! - per topic and remote cluster (labels `namespace`, `topic`, `remote_cluster`):
//!   `pulsar_replication_rate_in|rate_out|throughput_in|throughput_out`,
//!   `pulsar_replication_backlog`, `pulsar_replication_connected_count`,
//!   `pulsar_replication_delay_in_seconds`, `pulsar_replication_rate_expired`,
//!   `pulsar_replication_in_messages_total`, `pulsar_replication_out_messages_total`;
//! - `pulsar_broker_publish_latency_seconds`: a histogram of the time from a SEND to its entry
//!   being durable;
//! - the broker's guards (see `limits`): `magnetar_broker_connections`,
//!   `magnetar_broker_pending_publish_bytes`, `magnetar_broker_publish_throttled_total`
//!   (times a connection's reading paused for its pending publishes or the broker's publish
//!   buffer), `magnetar_broker_limit_refusals_total{limit}` (what a limit refused) and
//!   `magnetar_broker_stalled_connections_total` (closed because the client stopped reading);
//! - whatever the process adds with [`BrokerMetrics::add_source`] (standalone adds its bookie's
//!   journal and its metadata node's Raft figures).
//!
//! Topic figures are read when scraped, from the topics loaded on this broker.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::limits::GuardMetrics;
use crate::stats::{self, RateTracker, TopicSnapshot};
use crate::topic::Topic;

/// Publish latency buckets, in seconds (Pulsar's storage write latency buckets, 0.5 ms–1 s).
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 1.0];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One figure read from elsewhere at scrape time.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub value: f64,
}

type Source = Arc<dyn Fn() -> Vec<Sample> + Send + Sync>;
type FamilySource = Arc<dyn Fn() -> Vec<MetricFamily> + Send + Sync>;

/// The broker's metrics; cheap to clone.
#[derive(Clone)]
pub struct BrokerMetrics {
    cluster: String,
    registry: Registry,
    pub publish_latency: Histogram,
    pub guards: GuardMetrics,
    pub rates: Arc<RateTracker>,
    sources: Arc<Mutex<Vec<Source>>>,
    family_sources: Arc<Mutex<Vec<FamilySource>>>,
}

impl std::fmt::Debug for BrokerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerMetrics")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

fn cluster_registry(cluster: &str) -> Registry {
    let labels = [("cluster".to_string(), cluster.to_string())].into();
    Registry::new_custom(None, Some(labels)).unwrap_or_default()
}

impl BrokerMetrics {
    pub fn new(cluster: &str) -> prometheus::Result<BrokerMetrics> {
        let registry = cluster_registry(cluster);
        let opts = HistogramOpts::new(
            "pulsar_broker_publish_latency_seconds",
            "Time from a SEND to its entry being durable on the bookies",
        )
        .buckets(LATENCY_BUCKETS.to_vec());
        let publish_latency = Histogram::with_opts(opts)?;
        registry.register(Box::new(publish_latency.clone()))?;
        let guards = GuardMetrics::register(&registry)?;
        Ok(BrokerMetrics {
            cluster: cluster.to_string(),
            registry,
            publish_latency,
            guards,
            rates: Arc::default(),
            sources: Arc::default(),
            family_sources: Arc::default(),
        })
    }

    /// Adds figures read at every scrape (e.g. a bookie's journal counters).
    pub fn add_source(&self, source: impl Fn() -> Vec<Sample> + Send + Sync + 'static) {
        self.sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::new(source));
    }

    /// Adds whole metric families read at every scrape (e.g. a bookie's, with histograms).
    pub fn add_families(&self, source: impl Fn() -> Vec<MetricFamily> + Send + Sync + 'static) {
        self.family_sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::new(source));
    }

    /// The Prometheus text exposition of everything, with `loaded` and `non_persistent` (their
    /// figures, already gathered) as the topics.
    pub async fn render(
        &self,
        loaded: &[Arc<Topic>],
        non_persistent: Vec<TopicSnapshot>,
    ) -> String {
        let mut topics = non_persistent;
        for topic in loaded {
            topics.push(stats::snapshot(topic, &self.rates).await);
        }
        let scrape = cluster_registry(&self.cluster);
        if let Err(e) = register_topics(&scrape, &topics) {
            tracing::warn!(error = %e, "topic metrics");
        }
        let sources: Vec<Source> = self
            .sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for sample in sources.iter().flat_map(|source| source()) {
            if let Err(e) = register_sample(&scrape, &sample) {
                tracing::debug!(name = sample.name, error = %e, "metric sample");
            }
        }
        let mut families = self.registry.gather();
        families.extend(scrape.gather());
        let family_sources: Vec<FamilySource> = self
            .family_sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for source in family_sources {
            families.extend(source());
        }
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            tracing::warn!(error = %e, "encoding metrics");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Samples as metric families, outside any broker (the metadata and bookie roles).
pub fn samples_to_families(samples: &[Sample]) -> Vec<MetricFamily> {
    let registry = Registry::new();
    for sample in samples {
        if let Err(e) = register_sample(&registry, sample) {
            tracing::debug!(name = sample.name, error = %e, "metric sample");
        }
    }
    registry.gather()
}

fn register_sample(registry: &Registry, sample: &Sample) -> prometheus::Result<()> {
    let opts = Opts::new(sample.name, sample.help);
    match sample.kind {
        Kind::Counter => {
            let counter = prometheus::Counter::with_opts(opts)?;
            counter.inc_by(sample.value.max(0.0));
            registry.register(Box::new(counter))
        }
        Kind::Gauge => {
            let gauge = prometheus::Gauge::with_opts(opts)?;
            gauge.set(sample.value);
            registry.register(Box::new(gauge))
        }
    }
}

/// The figures of one topic or namespace, in metric order.
#[derive(Debug, Default, Clone, Copy)]
struct Figures {
    counters: [u64; 4],
    gauges: [f64; 4],
    counts: [i64; 6],
}

const COUNTERS: [(&str, &str); 4] = [
    ("in_messages_total", "Messages published"),
    ("out_messages_total", "Messages delivered to consumers"),
    ("in_bytes_total", "Bytes published"),
    ("out_bytes_total", "Bytes delivered to consumers"),
];
const RATES: [(&str, &str); 4] = [
    ("rate_in", "Messages published per second"),
    ("rate_out", "Messages delivered per second"),
    ("throughput_in", "Bytes published per second"),
    ("throughput_out", "Bytes delivered per second"),
];
const COUNTS: [(&str, &str); 6] = [
    (
        "msg_backlog",
        "Entries not yet acknowledged, over all subscriptions",
    ),
    ("storage_size", "Bytes stored in the topic's ledgers"),
    (
        "storage_offloaded_size",
        "Bytes of the topic's ledgers in tiered storage",
    ),
    ("producers_count", "Connected producers"),
    ("consumers_count", "Connected consumers"),
    ("subscriptions_count", "Subscriptions"),
];

impl Figures {
    fn of(t: &TopicSnapshot) -> Figures {
        Figures {
            counters: [t.msg_in, t.msg_out, t.bytes_in, t.bytes_out],
            gauges: [
                t.rates.msg_in,
                t.rates.msg_out,
                t.rates.bytes_in,
                t.rates.bytes_out,
            ],
            counts: [
                t.backlog() as i64,
                t.storage_size as i64,
                t.offloaded_storage_size as i64,
                t.producers.len() as i64,
                t.consumers() as i64,
                t.subscriptions.len() as i64,
            ],
        }
    }

    fn add(&mut self, other: &Figures) {
        for i in 0..4 {
            self.counters[i] += other.counters[i];
            self.gauges[i] += other.gauges[i];
        }
        for i in 0..self.counts.len() {
            self.counts[i] += other.counts[i];
        }
    }
}

/// Registers one metric family per figure, with a series per label set.
fn register_figures(
    registry: &Registry,
    prefix: &str,
    labels: &[&str],
    rows: &[(Vec<String>, Figures)],
) -> prometheus::Result<()> {
    for (i, (name, help)) in COUNTERS.iter().enumerate() {
        let vec = IntCounterVec::new(Opts::new(format!("{prefix}{name}"), *help), labels)?;
        for (values, f) in rows {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            vec.with_label_values(&values).inc_by(f.counters[i]);
        }
        registry.register(Box::new(vec))?;
    }
    for (i, (name, help)) in RATES.iter().enumerate() {
        let vec = prometheus::GaugeVec::new(Opts::new(format!("{prefix}{name}"), *help), labels)?;
        for (values, f) in rows {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            vec.with_label_values(&values).set(f.gauges[i]);
        }
        registry.register(Box::new(vec))?;
    }
    for (i, (name, help)) in COUNTS.iter().enumerate() {
        let vec = IntGaugeVec::new(Opts::new(format!("{prefix}{name}"), *help), labels)?;
        for (values, f) in rows {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            vec.with_label_values(&values).set(f.counts[i]);
        }
        registry.register(Box::new(vec))?;
    }
    Ok(())
}

/// A metric's name, help and how to read it from a replication snapshot.
type ReplicationFigure<T> = (
    &'static str,
    &'static str,
    fn(&stats::ReplicationSnapshot) -> T,
);

/// Pulsar's `pulsar_replication_*` per topic and remote cluster.
fn register_replication(registry: &Registry, topics: &[TopicSnapshot]) -> prometheus::Result<()> {
    let labels = ["namespace", "topic", "remote_cluster"];
    let gauges: [ReplicationFigure<f64>; 8] = [
        (
            "pulsar_replication_rate_in",
            "Messages per second replicated in from the remote cluster",
            |r| r.rates.msg_in,
        ),
        (
            "pulsar_replication_rate_out",
            "Messages per second replicated to the remote cluster",
            |r| r.rates.msg_out,
        ),
        (
            "pulsar_replication_throughput_in",
            "Bytes per second replicated in from the remote cluster",
            |r| r.rates.bytes_in,
        ),
        (
            "pulsar_replication_throughput_out",
            "Bytes per second replicated to the remote cluster",
            |r| r.rates.bytes_out,
        ),
        (
            "pulsar_replication_backlog",
            "Entries not yet replicated to the remote cluster",
            |r| r.backlog as f64,
        ),
        (
            "pulsar_replication_connected_count",
            "1 while the replicator's stream to the remote cluster is up",
            |r| f64::from(u8::from(r.connected)),
        ),
        (
            "pulsar_replication_delay_in_seconds",
            "Age of the oldest message not yet stored by the remote cluster",
            |r| r.delay_secs,
        ),
        (
            "pulsar_replication_rate_expired",
            "Messages per second expired before replication (always 0: replication backlog does not expire)",
            |_| 0.0,
        ),
    ];
    for (name, help, value) in gauges {
        let vec = prometheus::GaugeVec::new(Opts::new(name, help), &labels)?;
        for t in topics {
            for r in &t.replication {
                vec.with_label_values(&[t.namespace.as_str(), t.name.as_str(), r.cluster.as_str()])
                    .set(value(r));
            }
        }
        registry.register(Box::new(vec))?;
    }
    let counters: [ReplicationFigure<u64>; 2] = [
        (
            "pulsar_replication_out_messages_total",
            "Messages the remote cluster stored",
            |r| r.msg_out,
        ),
        (
            "pulsar_replication_in_messages_total",
            "Messages replicated in from the remote cluster",
            |r| r.msg_in,
        ),
    ];
    for (name, help, value) in counters {
        let vec = IntCounterVec::new(Opts::new(name, help), &labels)?;
        for t in topics {
            for r in &t.replication {
                vec.with_label_values(&[t.namespace.as_str(), t.name.as_str(), r.cluster.as_str()])
                    .inc_by(value(r));
            }
        }
        registry.register(Box::new(vec))?;
    }
    Ok(())
}

fn register_topics(registry: &Registry, topics: &[TopicSnapshot]) -> prometheus::Result<()> {
    register_replication(registry, topics)?;
    let mut by_namespace: BTreeMap<&str, (Figures, i64)> = BTreeMap::new();
    let mut rows = Vec::new();
    for t in topics {
        let figures = Figures::of(t);
        let entry = by_namespace.entry(&t.namespace).or_default();
        entry.0.add(&figures);
        entry.1 += 1;
        rows.push((vec![t.namespace.clone(), t.name.clone()], figures));
    }
    register_figures(registry, "pulsar_", &["namespace", "topic"], &rows)?;
    let ns_rows: Vec<(Vec<String>, Figures)> = by_namespace
        .iter()
        .map(|(ns, (f, _))| (vec![ns.to_string()], *f))
        .collect();
    register_figures(registry, "pulsar_namespace_", &["namespace"], &ns_rows)?;
    let topics_count = IntGaugeVec::new(
        Opts::new("pulsar_topics_count", "Topics loaded on this broker"),
        &["namespace"],
    )?;
    for (ns, (_, count)) in &by_namespace {
        topics_count.with_label_values(&[*ns]).set(*count);
    }
    registry.register(Box::new(topics_count))
}
