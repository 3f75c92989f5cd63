//! The source side: one task per topic per remote cluster. It reads the topic from its cursor
//! `pulsar.repl.{remote}`, sends the entries on its own stream of the link, at most a window
//! ahead of the remote's acknowledgements (a slow remote bounds memory here; the backlog stays
//! on disk), and moves the cursor only over entries the remote acknowledged as durable. Any
//! failure ends the stream; the next one starts again after the cursor's mark-delete and the
//! remote's deduplication absorbs what it already had.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use magnetar_clients::pulsar::RawProducer;
use magnetar_protocol::Payload;
use tokio_util::sync::CancellationToken;

use super::wire::{self, Ack, Entry, Hello, HelloReply, SubscriptionUpdate, Watermark};
use super::{Link, PulsarRoute, ReplError, Replication, Route};
use crate::cursor::Cursor;
use crate::managed_ledger::ManagedCursor;
use crate::position::Position;
use crate::topic::Topic;
use crate::topic_replication::{ReplicatorHandle, ReplicatorStats, now_ms};

const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// A stream that worked this long resets the backoff.
const HEALTHY: Duration = Duration::from_secs(10);

pub(super) fn spawn(
    repl: Arc<Replication>,
    topic: Arc<Topic>,
    remote: String,
    partitions: u32,
    cursor: ManagedCursor,
    state: Cursor,
) -> ReplicatorHandle {
    let stats = Arc::new(ReplicatorStats::default());
    stats.set_mark_delete(state.mark_delete());
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run(Replicator {
        repl,
        topic,
        remote,
        partitions,
        cursor,
        state,
        dirty: false,
        stats: stats.clone(),
        cancel: cancel.clone(),
    }));
    ReplicatorHandle::new(stats, cancel, task)
}

struct Replicator {
    repl: Arc<Replication>,
    topic: Arc<Topic>,
    remote: String,
    partitions: u32,
    cursor: ManagedCursor,
    state: Cursor,
    /// Acknowledged further than last persisted.
    dirty: bool,
    stats: Arc<ReplicatorStats>,
    cancel: CancellationToken,
}

/// An entry between the read and the remote's acknowledgement.
struct InFlight {
    position: Position,
    /// False for entries that are not for this remote (skipped, acknowledged in order).
    sent: bool,
    messages: u64,
    bytes: u64,
    publish_ms: u64,
}

/// Whether an entry goes to `remote`, and its message count and publish time if so.
fn for_remote(data: &Bytes, remote: &str) -> Option<(u64, u64)> {
    // Undecodable entries cannot be replicated either (Pulsar acknowledges them too).
    let metadata = Payload::parse(data.clone()).ok()?.metadata().ok()?;
    if metadata.replicated_from.is_some() || metadata.marker_type.is_some_and(|t| t != 0) {
        return None; // came from another cluster: never forwarded (no loops)
    }
    if !metadata.replicate_to.is_empty() && !metadata.replicate_to.iter().any(|c| c == remote) {
        return None; // the producer limited its clusters (disable_replication: ["__local__"])
    }
    let messages = metadata.num_messages_in_batch.unwrap_or(1).max(1) as u64;
    Some((messages, metadata.publish_time))
}

async fn run(mut r: Replicator) {
    let max_backoff = Duration::from_millis(r.repl.config.max_backoff_ms.max(100));
    let mut backoff = Duration::from_millis(100);
    // The broker of the remote cluster that owns the topic, once one redirected us there.
    let mut target: Option<String> = None;
    loop {
        let started = Instant::now();
        let result = r.session(target.as_deref()).await;
        r.stats.connected.store(false, Ordering::Relaxed);
        r.stats.connected_since_ms.store(0, Ordering::Relaxed);
        match result {
            Ok(()) => break,
            Err(ReplError::Redirect(url)) if target.as_deref() != Some(url.as_str()) => {
                tracing::debug!(topic = %r.topic.name(), remote = r.remote, url, "redirected");
                target = Some(url);
                continue;
            }
            Err(e) => {
                target = None; // ask the cluster's endpoint again: ownership may have moved
                tracing::warn!(topic = %r.topic.name(), remote = r.remote, error = %e, retry_in_ms = backoff.as_millis() as u64, "replication stream ended");
                r.stats.set_last_error(Some(e.to_string()));
            }
        }
        if started.elapsed() >= HEALTHY {
            backoff = Duration::from_millis(100);
        }
        tokio::select! {
            _ = r.cancel.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(max_backoff);
    }
    if r.dirty
        && let Err(e) = r.cursor.persist(&r.state).await
    {
        tracing::debug!(topic = %r.topic.name(), remote = r.remote, error = %e, "persisting the replication cursor failed");
    }
    r.cursor.release(r.state, false);
}

impl Replicator {
    fn ack_through(&mut self, p: Position) {
        let layout = self.topic.managed_ledger().layout();
        if self.state.ack_cumulative(&layout, p, None).is_ok() {
            self.dirty = true;
            self.stats.set_mark_delete(self.state.mark_delete());
        }
    }

    fn update_stats(&self, in_flight: &VecDeque<InFlight>) {
        let oldest = in_flight
            .iter()
            .find(|f| f.sent)
            .map_or(0, |f| f.publish_ms.max(1));
        self.stats
            .oldest_pending_publish_ms
            .store(oldest, Ordering::Relaxed);
    }

    /// One stream: until cancelled (Ok) or anything fails (Err).
    async fn session(&mut self, target: Option<&str>) -> Result<(), ReplError> {
        let route = tokio::select! {
            _ = self.cancel.cancelled() => return Ok(()),
            route = self.repl.route(&self.remote, target) => route?,
        };
        let opened = match route {
            Route::Quic(link) => self.open_quic(link).await?,
            Route::Pulsar(route) => self.open_pulsar(route).await?,
        };
        let Some(mut channel) = opened else {
            return Ok(()); // cancelled
        };
        self.stats.connected.store(true, Ordering::Relaxed);
        self.stats
            .connected_since_ms
            .store(now_ms(), Ordering::Relaxed);
        self.stats.set_last_error(None);

        let ml = self.topic.managed_ledger().clone();
        let mut appended = ml.watch_appends();
        let mut next = ml.layout().next(self.state.mark_delete());
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        let mut bytes_in_flight: u64 = 0;
        let window = self.repl.config.window_entries.max(1);
        let window_bytes = self.repl.config.window_bytes.max(1) as u64;
        let mut persist = tokio::time::interval(
            self.cursor
                .persist_interval()
                .max(Duration::from_millis(100)),
        );
        persist.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut subscription_updates = tokio::time::interval(Duration::from_millis(
            self.repl.config.subscription_update_interval_ms.max(100),
        ));
        subscription_updates.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_sent: HashMap<String, Vec<Watermark>> = HashMap::new();
        let mut ticks: u64 = 0;
        loop {
            // Send what the window allows.
            while in_flight.len() < window
                && bytes_in_flight < window_bytes
                && ml.last_confirmed().is_some_and(|last| next <= last)
            {
                let entries = ml.read(next, window - in_flight.len()).await?;
                let Some((last, _)) = entries.last() else {
                    break;
                };
                next = ml.layout().next(*last);
                for (position, data) in entries {
                    match for_remote(&data, &self.remote) {
                        None if in_flight.is_empty() => self.ack_through(position),
                        None => in_flight.push_back(InFlight {
                            position,
                            sent: false,
                            messages: 0,
                            bytes: 0,
                            publish_ms: 0,
                        }),
                        Some((messages, publish_ms)) => {
                            let bytes = data.len() as u64;
                            channel.feed(position, data).await?;
                            bytes_in_flight += bytes;
                            in_flight.push_back(InFlight {
                                position,
                                sent: true,
                                messages,
                                bytes,
                                publish_ms,
                            });
                        }
                    }
                }
                channel.flush().await?;
            }
            self.update_stats(&in_flight);
            tokio::select! {
                _ = self.cancel.cancelled() => return Ok(()),
                acked = channel.ack() => {
                    let acked = acked?;
                    let mut through = None;
                    while let Some(front) = in_flight.front() {
                        // Everything up to the acknowledged entry, and the skipped ones after it.
                        if front.position > acked && front.sent {
                            break;
                        }
                        let done = in_flight.pop_front().expect("front exists");
                        bytes_in_flight -= done.bytes;
                        self.stats.msg_out.fetch_add(done.messages, Ordering::Relaxed);
                        self.stats.bytes_out.fetch_add(done.bytes, Ordering::Relaxed);
                        through = Some(done.position);
                    }
                    if let Some(p) = through {
                        self.ack_through(p);
                    }
                }
                changed = appended.changed() => {
                    if changed.is_err() {
                        return Err(ReplError::Storage(crate::managed_ledger::MlError::Closed));
                    }
                }
                _ = subscription_updates.tick(), if channel.carries_subscriptions() => {
                    // Changed positions every tick; all of them every tenth (a remote that
                    // could not apply one, e.g. before an entry arrived, catches up).
                    ticks += 1;
                    let resend_all = ticks.is_multiple_of(10);
                    let updates: Vec<SubscriptionUpdate> =
                        super::subscriptions::updates(&self.topic, &self.repl.local_cluster)
                            .await
                            .into_iter()
                            .filter(|u| {
                                resend_all || last_sent.get(&u.subscription) != Some(&u.watermarks)
                            })
                            .collect();
                    if !updates.is_empty() {
                        for u in &updates {
                            last_sent.insert(u.subscription.clone(), u.watermarks.clone());
                        }
                        channel.send_updates(updates).await?;
                    }
                }
                _ = persist.tick() => {
                    if self.dirty {
                        self.cursor.persist(&self.state).await?;
                        self.dirty = false;
                    }
                }
            }
        }
    }
}

impl Replicator {
    /// A stream of the QUIC link, after the remote accepted the hello. None when cancelled.
    async fn open_quic(&mut self, link: Link) -> Result<Option<Channel>, ReplError> {
        let (send, recv) = tokio::select! {
            _ = self.cancel.cancelled() => return Ok(None),
            streams = link.connection.open_bi() => streams?,
        };
        let max = self.repl.max_frame;
        let mut out = wire::writer(send, max);
        let mut acks = wire::reader(recv, max);
        let hello = Hello {
            topic: self.topic.name().to_string(),
            source_cluster: self.repl.local_cluster.clone(),
            token: link.token.clone(),
            partitions: self.partitions,
        };
        wire::send(&mut out, &hello).await?;
        let reply: HelloReply = tokio::select! {
            _ = self.cancel.cancelled() => return Ok(None),
            reply = tokio::time::timeout(HELLO_TIMEOUT, wire::read(&mut acks)) => {
                reply.map_err(|_| ReplError::Timeout(HELLO_TIMEOUT))??
            }
        };
        if let Some(error) = reply.error {
            return Err(ReplError::Refused(error));
        }
        if let Some(url) = reply.redirect {
            return Err(ReplError::Redirect(url));
        }
        Ok(Some(Channel::Quic { out, acks }))
    }

    /// A producer named `pulsar.repl.{local}` on the remote cluster's broker that owns the
    /// topic (created partitioned first, through the remote's admin API, when it is a
    /// partition here). None when cancelled.
    async fn open_pulsar(&mut self, route: PulsarRoute) -> Result<Option<Channel>, ReplError> {
        let topic = self.topic.name().clone();
        let open = async {
            if self.partitions > 0 {
                let root = topic.partitioned_topic().to_string();
                let remote_partitions = route.client.partitions(&root).await?;
                if remote_partitions == 0
                    && let Some(admin) = &route.admin
                {
                    match admin.create_partitioned_topic(&root, self.partitions).await {
                        Err(e) if e.status().map(|s| s.as_u16()) != Some(409) => {
                            return Err(ReplError::Refused(format!(
                                "creating {root} with {} partitions: {e}",
                                self.partitions
                            )));
                        }
                        _ => {}
                    }
                }
            }
            let name = crate::dedup::repl_key(&self.repl.local_cluster);
            let producer = RawProducer::create(&route.client, &topic.to_string(), &name).await?;
            Ok(Channel::Pulsar {
                next_sequence_id: (producer.last_sequence_id() + 1).max(0) as u64,
                producer,
                sent: VecDeque::new(),
                local: self.repl.local_cluster.clone(),
            })
        };
        tokio::select! {
            _ = self.cancel.cancelled() => Ok(None),
            channel = tokio::time::timeout(HELLO_TIMEOUT * 3, open) => {
                channel.map_err(|_| ReplError::Timeout(HELLO_TIMEOUT * 3))?.map(Some)
            }
        }
    }
}

/// Where one replicator's entries go, and where the remote's acknowledgements come from.
enum Channel {
    /// A stream of the QUIC link: entry frames out, acknowledgements by source position back.
    Quic {
        out: wire::Writer<quinn::SendStream>,
        acks: wire::Reader<quinn::RecvStream>,
    },
    /// A producer on the remote's broker: each entry a SEND (with `replicated_from` and its
    /// source position, by which the remote deduplicates), receipts back in order.
    Pulsar {
        producer: RawProducer,
        next_sequence_id: u64,
        /// Sequence ids sent and the positions they stand for, oldest first.
        sent: VecDeque<(u64, Position)>,
        local: String,
    },
}

impl Channel {
    /// Queues an entry (sent by `flush` at the latest).
    async fn feed(&mut self, position: Position, data: Bytes) -> Result<(), ReplError> {
        match self {
            Channel::Quic { out, .. } => {
                let entry = Entry {
                    ledger_id: position.ledger_id,
                    entry_id: position.entry_id,
                    data,
                    updates: Vec::new(),
                };
                Ok(wire::feed(out, &entry).await?)
            }
            Channel::Pulsar {
                producer,
                next_sequence_id,
                sent,
                local,
            } => {
                let mark = (position.ledger_id as u64, position.entry_id as u64);
                let (metadata, body, _) = crate::dedup::mark_replicated(data, local, mark)
                    .map_err(|e| ReplError::Remote(format!("entry {position}: {e}")))?;
                producer.send(*next_sequence_id, &metadata, &body)?;
                sent.push_back((*next_sequence_id, position));
                *next_sequence_id += 1;
                Ok(())
            }
        }
    }

    async fn flush(&mut self) -> Result<(), ReplError> {
        match self {
            Channel::Quic { out, .. } => Ok(wire::flush(out).await?),
            Channel::Pulsar { .. } => Ok(()), // the connection's writer flushes
        }
    }

    /// The next entry the remote stored durably (or already had). Cancel-safe.
    async fn ack(&mut self) -> Result<Position, ReplError> {
        match self {
            Channel::Quic { acks, .. } => {
                let ack: Ack = wire::read(acks).await?;
                if let Some(error) = ack.error {
                    return Err(ReplError::Remote(error));
                }
                Ok(Position::new(ack.ledger_id, ack.entry_id))
            }
            Channel::Pulsar { producer, sent, .. } => {
                let (sequence_id, _) = producer.receipt().await?;
                match sent.pop_front() {
                    Some((expected, position)) if expected == sequence_id => Ok(position),
                    _ => Err(ReplError::Remote(format!(
                        "receipt for sequence id {sequence_id} out of order"
                    ))),
                }
            }
        }
    }

    /// Replicated subscriptions' positions travel on the QUIC link only.
    fn carries_subscriptions(&self) -> bool {
        matches!(self, Channel::Quic { .. })
    }

    async fn send_updates(&mut self, updates: Vec<SubscriptionUpdate>) -> Result<(), ReplError> {
        if let Channel::Quic { out, .. } = self {
            let frame = Entry {
                ledger_id: -1,
                entry_id: -1,
                data: Bytes::new(),
                updates,
            };
            wire::send(out, &frame).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use magnetar_protocol::pulsar::MessageMetadata;

    use super::*;

    fn entry(metadata: MessageMetadata) -> Bytes {
        Payload::new(&metadata, b"x").to_entry()
    }

    #[test]
    fn replicated_entries_and_excluded_clusters_are_not_forwarded() {
        let plain = MessageMetadata {
            producer_name: "p".into(),
            publish_time: 42,
            ..Default::default()
        };
        assert_eq!(for_remote(&entry(plain.clone()), "us"), Some((1, 42)));
        let looped = MessageMetadata {
            replicated_from: Some("eu".into()),
            ..plain.clone()
        };
        assert_eq!(for_remote(&entry(looped), "us"), None);
        let local_only = MessageMetadata {
            replicate_to: vec!["__local__".into()],
            ..plain.clone()
        };
        assert_eq!(for_remote(&entry(local_only), "us"), None);
        let to_us = MessageMetadata {
            replicate_to: vec!["us".into()],
            num_messages_in_batch: Some(5),
            ..plain
        };
        assert_eq!(for_remote(&entry(to_us.clone()), "us"), Some((5, 42)));
        assert_eq!(for_remote(&entry(to_us), "ap"), None);
        assert_eq!(for_remote(&Bytes::from_static(b"junk"), "us"), None);
    }
}
