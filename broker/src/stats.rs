//! A topic's figures, gathered once and shown two ways: Pulsar's `TopicStats` and
//! `PersistentTopicInternalStats` JSON for the admin API, and the Prometheus metrics. Rates are
//! computed from the topic's counters sampled over time.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::dispatch::SubType;
use crate::subscription_actor::SubscriptionStats;
use crate::topic::Topic;

/// Rates are recomputed at most this often; calls in between see the last ones.
const RATE_INTERVAL: Duration = Duration::from_secs(1);

/// Per second, over the interval between two samples.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    pub msg_in: f64,
    pub msg_out: f64,
    pub bytes_in: f64,
    pub bytes_out: f64,
}

/// msg in, msg out, bytes in, bytes out.
pub(crate) type Counts = [u64; 4];

#[derive(Debug)]
struct Sample {
    at: Instant,
    counts: Counts,
    rates: Rates,
}

/// The last counter sample of each topic.
#[derive(Debug, Default)]
pub struct RateTracker {
    samples: Mutex<HashMap<String, Sample>>,
}

impl RateTracker {
    pub(crate) fn rates(&self, topic: &str, counts: Counts) -> Rates {
        let now = Instant::now();
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(sample) = samples.get_mut(topic) else {
            samples.insert(
                topic.to_string(),
                Sample {
                    at: now,
                    counts,
                    rates: Rates::default(),
                },
            );
            return Rates::default();
        };
        let elapsed = now.duration_since(sample.at);
        if elapsed >= RATE_INTERVAL {
            let secs = elapsed.as_secs_f64();
            let rate = |i: usize| counts[i].saturating_sub(sample.counts[i]) as f64 / secs;
            sample.rates = Rates {
                msg_in: rate(0),
                msg_out: rate(1),
                bytes_in: rate(2),
                bytes_out: rate(3),
            };
            sample.at = now;
            sample.counts = counts;
        }
        sample.rates
    }

    /// Drops the samples whose key starts with `prefix`, but those in `keep` (subscriptions and
    /// consumers that are gone).
    pub fn retain_under(&self, prefix: &str, keep: &std::collections::HashSet<String>) {
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        samples.retain(|k, _| !k.starts_with(prefix) || keep.contains(k));
    }

    /// Drops a topic's samples (and its replication samples).
    pub fn forget(&self, topic: &str) {
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        samples.remove(topic);
        let prefix = format!("{topic}\u{0}");
        samples.retain(|k, _| !k.starts_with(&prefix));
    }
}

#[derive(Debug, Clone)]
pub struct SubscriptionSnapshot {
    pub name: String,
    /// None when no consumer has loaded the subscription since the topic was loaded.
    pub sub_type: Option<SubType>,
    pub backlog: u64,
    pub stats: Option<SubscriptionStats>,
}

impl SubscriptionSnapshot {
    pub fn consumers(&self) -> usize {
        self.stats.as_ref().map_or(0, |s| s.consumers.len())
    }
}

#[derive(Debug, Clone)]
pub struct TopicSnapshot {
    pub name: String,
    pub namespace: String,
    pub msg_in: u64,
    pub msg_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub rates: Rates,
    pub storage_size: u64,
    /// Bytes of its ledgers in tiered storage (part of `storage_size`).
    pub offloaded_storage_size: u64,
    pub entries: u64,
    pub producers: Vec<String>,
    pub subscriptions: Vec<SubscriptionSnapshot>,
    /// `"Enabled"` or `"Disabled"`.
    pub deduplication_status: &'static str,
    /// The last compaction's outcome and figures.
    pub compaction: crate::compaction::CompactionStatus,
    /// Per remote cluster: replication out of this topic and into it.
    pub replication: Vec<ReplicationSnapshot>,
}

/// Pulsar's `ReplicatorStats` for one remote cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplicationSnapshot {
    pub cluster: String,
    pub rates: Rates,
    pub msg_out: u64,
    pub bytes_out: u64,
    pub msg_in: u64,
    pub bytes_in: u64,
    /// Entries not yet replicated (the `pulsar.repl.{cluster}` cursor's backlog).
    pub backlog: u64,
    /// A replicator to that cluster is connected.
    pub connected: bool,
    pub delay_secs: f64,
    /// Streams from that cluster's replicators open now.
    pub inbound_streams: u64,
    pub connected_since_ms: u64,
    pub last_error: Option<String>,
    /// A replicator to that cluster runs on this topic.
    pub outbound: bool,
}

impl ReplicationSnapshot {
    pub fn to_json(&self) -> Value {
        let since = |ms: u64| (ms > 0).then(|| ms.to_string());
        json!({
            "msgRateIn": self.rates.msg_in,
            "msgThroughputIn": self.rates.bytes_in,
            "msgRateOut": self.rates.msg_out,
            "msgThroughputOut": self.rates.bytes_out,
            "msgInCounter": self.msg_in,
            "bytesInCounter": self.bytes_in,
            "msgOutCounter": self.msg_out,
            "bytesOutCounter": self.bytes_out,
            "msgRateExpired": 0.0,
            "replicationBacklog": self.backlog,
            "connected": self.connected,
            "replicationDelayInSeconds": self.delay_secs,
            "inboundConnection": (self.inbound_streams > 0).then_some("quic"),
            "outboundConnection": self.outbound.then_some("quic"),
            "outboundConnectedSince": since(self.connected_since_ms),
            "lastError": self.last_error,
        })
    }
}

async fn replication_snapshot(topic: &Topic, rates: &RateTracker) -> Vec<ReplicationSnapshot> {
    use std::collections::BTreeMap;
    use std::sync::atomic::Ordering::Relaxed;
    let mut by_cluster: BTreeMap<String, ReplicationSnapshot> = BTreeMap::new();
    for (cluster, stats) in topic.replicator_stats().await {
        let s = by_cluster.entry(cluster.clone()).or_default();
        s.outbound = true;
        s.msg_out = stats.msg_out.load(Relaxed);
        s.bytes_out = stats.bytes_out.load(Relaxed);
        s.backlog = stats.backlog(topic.managed_ledger());
        s.connected = stats.connected.load(Relaxed);
        s.delay_secs = stats.delay_secs();
        s.connected_since_ms = stats.connected_since_ms.load(Relaxed);
        s.last_error = stats.last_error();
    }
    for (cluster, stats) in topic.inbound_stats() {
        let s = by_cluster.entry(cluster).or_default();
        s.msg_in = stats.msg_in.load(Relaxed);
        s.bytes_in = stats.bytes_in.load(Relaxed);
        s.inbound_streams = stats.streams.load(Relaxed);
    }
    by_cluster
        .into_iter()
        .map(|(cluster, mut s)| {
            let key = format!("{}\u{0}replication\u{0}{cluster}", topic.name());
            s.rates = rates.rates(&key, [s.msg_in, s.msg_out, s.bytes_in, s.bytes_out]);
            s.cluster = cluster;
            s
        })
        .collect()
}

/// Gathers a loaded topic's figures (asks each loaded subscription for its own).
pub async fn snapshot(topic: &Topic, rates: &RateTracker) -> TopicSnapshot {
    use std::sync::atomic::Ordering::Relaxed;
    let c = &topic.counters;
    let counts = [
        c.msg_in.load(Relaxed),
        c.msg_out.load(Relaxed),
        c.bytes_in.load(Relaxed),
        c.bytes_out.load(Relaxed),
    ];
    let name = topic.name().to_string();
    let ml = topic.managed_ledger();
    let mut subscriptions = Vec::new();
    for sub in topic.subscription_names().await {
        let handle = topic.loaded_subscription(&sub).await;
        let stats = match &handle {
            Some(handle) => handle.stats().await,
            None => None,
        };
        let backlog = match &stats {
            Some(stats) => stats.backlog,
            None => ml
                .cursor(&sub)
                .and_then(|c| c.stats().idle)
                .map_or(0, |idle| idle.backlog),
        };
        subscriptions.push(SubscriptionSnapshot {
            name: sub,
            sub_type: handle.map(|h| h.sub_type()),
            backlog,
            stats,
        });
    }
    TopicSnapshot {
        rates: rates.rates(&name, counts),
        namespace: topic.name().namespace(),
        name,
        msg_in: counts[0],
        msg_out: counts[1],
        bytes_in: counts[2],
        bytes_out: counts[3],
        storage_size: ml.size_bytes(),
        offloaded_storage_size: ml.offloaded_size(),
        entries: ml.entries(),
        producers: topic.producer_names(),
        subscriptions,
        deduplication_status: topic.dedup().status(),
        compaction: topic.compacted().status(),
        replication: replication_snapshot(topic, rates).await,
    }
}

pub(crate) fn type_name(sub_type: Option<SubType>) -> &'static str {
    match sub_type {
        Some(SubType::Exclusive) => "Exclusive",
        Some(SubType::Shared) => "Shared",
        Some(SubType::Failover) => "Failover",
        Some(SubType::KeyShared) => "Key_Shared",
        None => "None",
    }
}

impl TopicSnapshot {
    /// Entries not yet acknowledged, summed over subscriptions.
    pub fn backlog(&self) -> u64 {
        self.subscriptions.iter().map(|s| s.backlog).sum()
    }

    pub fn consumers(&self) -> usize {
        self.subscriptions.iter().map(|s| s.consumers()).sum()
    }

    /// Pulsar's `TopicStats`.
    pub fn to_json(&self) -> Value {
        let mut subscriptions = Map::new();
        for sub in &self.subscriptions {
            let consumers: Vec<Value> = sub
                .stats
                .iter()
                .flat_map(|s| &s.consumers)
                .map(|c| {
                    let mut consumer = json!({
                        "consumerName": c.name,
                        "availablePermits": c.available_permits,
                        "unackedMessages": c.unacked_messages,
                        "msgRateOut": 0.0,
                    });
                    if !c.key_hash_ranges.is_empty() {
                        // Pulsar's form: ["[start, end]", …].
                        let ranges: Vec<String> = c
                            .key_hash_ranges
                            .iter()
                            .map(|(start, end)| format!("[{start}, {end}]"))
                            .collect();
                        consumer["keyHashRanges"] = json!(ranges);
                    }
                    consumer
                })
                .collect();
            let unacked: u64 = sub
                .stats
                .iter()
                .flat_map(|s| &s.consumers)
                .map(|c| c.unacked_messages)
                .sum();
            let delayed: usize = sub.stats.iter().map(|s| s.delayed).sum();
            subscriptions.insert(
                sub.name.clone(),
                json!({
                    "msgBacklog": sub.backlog,
                    "msgDelayed": delayed,
                    "type": type_name(sub.sub_type),
                    "unackedMessages": unacked,
                    "isDurable": true,
                    "consumers": consumers,
                }),
            );
        }
        let publishers: Vec<Value> = self
            .producers
            .iter()
            .map(|name| json!({ "producerName": name }))
            .collect();
        let average = if self.msg_in > 0 {
            self.bytes_in as f64 / self.msg_in as f64
        } else {
            0.0
        };
        json!({
            "msgRateIn": self.rates.msg_in,
            "msgRateOut": self.rates.msg_out,
            "msgThroughputIn": self.rates.bytes_in,
            "msgThroughputOut": self.rates.bytes_out,
            "msgInCounter": self.msg_in,
            "msgOutCounter": self.msg_out,
            "bytesInCounter": self.bytes_in,
            "bytesOutCounter": self.bytes_out,
            "averageMsgSize": average,
            "storageSize": self.storage_size,
            "offloadedStorageSize": self.offloaded_storage_size,
            "backlogSize": self.backlog(),
            "publishers": publishers,
            "subscriptions": subscriptions,
            "replication": self
                .replication
                .iter()
                .map(|r| (r.cluster.clone(), r.to_json()))
                .collect::<Map<String, Value>>(),
            "deduplicationStatus": self.deduplication_status,
            "compaction": {
                "lastCompactionRemovedEventCount": self.compaction.last_removed_events,
                "lastCompactionSucceedTimestamp": self.compaction.last_succeeded_ms,
                "lastCompactionFailedTimestamp": self.compaction.last_failed_ms,
                "lastCompactionDurationTimeInMills": self.compaction.last_duration_ms,
            },
        })
    }
}

/// Pulsar's `PersistentTopicInternalStats`: the ledgers and the cursors (a loaded
/// subscription's figures come from it, an idle cursor's from the managed ledger).
pub async fn internal_stats(topic: &Topic) -> Value {
    let ml = topic.managed_ledger();
    let layout = ml.layout();
    let info = ml.info();
    let records: HashMap<u64, &crate::managed_ledger::LedgerRecord> =
        info.ledgers.iter().map(|l| (l.ledger_id, l)).collect();
    let ledgers: Vec<Value> = layout
        .ledgers()
        .iter()
        .map(|l| {
            let record = records.get(&(l.ledger_id as u64));
            let mut ledger = json!({
                "ledgerId": l.ledger_id,
                "entries": l.entries,
                "size": record.map_or(0, |r| r.size),
                "offloaded": record.is_some_and(|r| r.offloaded()),
            });
            // Not Pulsar's: whether the bookies still hold an offloaded ledger.
            if let Some(context) = record
                .and_then(|r| r.offload_context)
                .filter(|c| c.complete)
            {
                ledger["bookieDeleted"] = json!(context.bookkeeper_deleted);
            }
            ledger
        })
        .collect();
    let current = layout.ledgers().last();
    let compacted = topic
        .compacted()
        .view(ml, topic.compaction_limit())
        .await
        .ok()
        .flatten();
    let compacted_ledger = match &compacted {
        Some(view) => json!({
            "ledgerId": view.ledger_id,
            "entries": view.entries(),
            "size": view.size_bytes,
            "offloaded": false,
            "underReplicated": false,
        }),
        None => json!({
            "ledgerId": -1, "entries": -1, "size": -1, "offloaded": false, "underReplicated": false,
        }),
    };
    let mut cursors = Map::new();
    for name in ml.cursor_names() {
        let Some(cursor) = ml.cursor(&name) else {
            continue;
        };
        let stats = cursor.stats();
        let live = match topic.loaded_subscription(&name).await {
            Some(handle) => handle.stats().await,
            None => None,
        };
        let (mark_delete, read_position, backlog, acked_ranges) = match (&live, &stats.idle) {
            (Some(live), _) => (
                live.mark_delete,
                live.read_position,
                live.backlog,
                live.acked_ranges,
            ),
            (None, Some(idle)) => (
                idle.mark_delete,
                idle.read_position,
                idle.backlog,
                idle.acked_ranges,
            ),
            (None, None) => {
                let at = stats.persisted_mark_delete;
                (at, layout.next(at), 0, 0)
            }
        };
        cursors.insert(
            name,
            json!({
                "markDeletePosition": mark_delete.to_string(),
                "readPosition": read_position.to_string(),
                "persistedMarkDeletePosition": stats.persisted_mark_delete.to_string(),
                "numberOfEntriesSinceFirstNotAckedMessage": backlog,
                "totalNonContiguousDeletedMessagesRange": acked_ranges,
                "state": "Open",
                "properties": {},
            }),
        );
    }
    json!({
        "entriesAddedCounter": ml.entries(),
        "numberOfEntries": ml.entries(),
        "totalSize": ml.size_bytes(),
        "currentLedgerEntries": current.map_or(0, |l| l.entries),
        "lastConfirmedEntry": ml
            .last_confirmed()
            .map_or_else(|| "-1:-1".to_string(), |p| p.to_string()),
        "state": "LedgerOpened",
        "ledgers": ledgers,
        "cursors": cursors,
        "compactedLedger": compacted_ledger,
    })
}
