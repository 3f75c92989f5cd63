//! The receiving side: streams from other clusters' replicators. A stream starts with a hello
//! (topic, source cluster, token) that must arrive within 10 s and fit in 16 KiB; a refused
//! hello gets its reason and the stream ends. Each entry is then stored with
//! `replicated_from = source` and its source position as the property
//! `__MSG_PROP_REPL_SOURCE_POSITION`, deduplicated by that position, and acknowledged in order
//! once durable.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use magnetar_admin_api::keys;
use magnetar_auth::TopicOperation;
use magnetar_metadata::Expected;
use magnetar_protocol::{Payload, TopicName};
use tokio_util::sync::CancellationToken;

use super::Replication;
use super::wire::{self, Ack, Entry, HELLO_MAX, Hello, HelloReply};
use crate::dedup::{self, Mark, Verdict};
use crate::error::BrokerError;
use crate::service::BrokerService;
use crate::topic::Topic;

const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Entries being stored per stream before the next is read.
const MAX_PENDING: usize = 1000;

pub(super) async fn serve(
    repl: Arc<Replication>,
    service: Arc<BrokerService>,
    cancel: CancellationToken,
) {
    loop {
        let incoming = tokio::select! {
            _ = cancel.cancelled() => return,
            incoming = repl.endpoint.accept() => match incoming {
                Some(incoming) => incoming,
                None => return,
            },
        };
        let (repl, service, cancel) = (repl.clone(), service.clone(), cancel.clone());
        tokio::spawn(async move {
            let peer = incoming.remote_address();
            let connection = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    tracing::info!(%peer, error = %e, "replication handshake failed");
                    return;
                }
            };
            loop {
                let (send, recv) = tokio::select! {
                    _ = cancel.cancelled() => return,
                    streams = connection.accept_bi() => match streams {
                        Ok(s) => s,
                        Err(_) => return,
                    },
                };
                let (repl, service) = (repl.clone(), service.clone());
                tokio::spawn(async move {
                    if let Err(e) = stream(&repl, &service, send, recv).await {
                        tracing::debug!(%peer, error = %e, "replication stream ended");
                    }
                });
            }
        });
    }
}

/// Checks a hello and returns the topic to store into.
async fn accept(
    repl: &Replication,
    service: &BrokerService,
    hello: &Hello,
) -> Result<Arc<Topic>, BrokerError> {
    if hello.source_cluster == repl.local_cluster || hello.source_cluster.is_empty() {
        return Err(BrokerError::NotAllowed(format!(
            "cluster {} does not replicate into itself",
            hello.source_cluster
        )));
    }
    let name =
        TopicName::parse(&hello.topic).map_err(|e| BrokerError::InvalidTopicName(e.to_string()))?;
    let admin = &service.ctx().admin;
    if admin.authenticator().is_enabled() {
        let role = admin
            .authenticator()
            .authenticate(magnetar_auth::TOKEN_METHOD, hello.token.as_bytes())
            .map_err(|e| BrokerError::AuthenticationError(e.to_string()))?;
        crate::server::authorize(admin, Some(&role.role), &name, TopicOperation::Produce).await?;
    }
    if hello.partitions > 0 && name.partition().is_some() {
        create_partitioned(service, &name.partitioned_topic(), hello.partitions).await?;
    }
    let topic = service.create_topic(&name).await?;
    topic
        .dedup()
        .ensure_tracking(topic.managed_ledger())
        .await
        .map_err(|e| BrokerError::Persistence(e.to_string()))?;
    Ok(topic)
}

/// The partitioned topic's metadata as the source has it, unless this cluster has it already.
async fn create_partitioned(
    service: &BrokerService,
    root: &TopicName,
    partitions: u32,
) -> Result<(), BrokerError> {
    if service.partitions(root).await? > 0 {
        return Ok(());
    }
    let value = serde_json::json!({ "partitions": partitions }).to_string();
    match service
        .ctx()
        .metadata
        .put(&keys::partitioned_topic(root), value, Expected::Absent)
        .await
    {
        Ok(_) | Err(magnetar_metadata::MetadataError::BadVersion { .. }) => Ok(()),
        Err(e) => Err(BrokerError::Metadata(e.to_string())),
    }
}

/// The entry as stored here: marked as replicated from `source`, with its source position.
fn rewrite(entry: &Entry, source: &str) -> Result<(bytes::Bytes, u32), String> {
    let position = (entry.ledger_id as u64, entry.entry_id as u64);
    let (metadata, body, messages) = dedup::mark_replicated(entry.data.clone(), source, position)?;
    Ok((Payload::new(&metadata, &body).to_entry(), messages))
}

/// What a stream waits on, in arrival order: an entry being stored (then acknowledged), or
/// subscription updates (applied once every entry before them is stored, so the walk sees
/// them).
enum Done {
    Stored(Mark),
    Failed(String),
    Updates(Vec<wire::SubscriptionUpdate>),
}

type Pending = BoxFuture<'static, Done>;

async fn stream(
    repl: &Replication,
    service: &BrokerService,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
) -> Result<(), wire::WireError> {
    let mut entries = wire::reader(recv, HELLO_MAX);
    let mut out = wire::writer(send, repl.max_frame);
    let hello: Hello = tokio::time::timeout(HELLO_TIMEOUT, wire::read(&mut entries))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no hello"))??;
    let topic = match accept(repl, service, &hello).await {
        Ok(topic) => topic,
        Err(BrokerError::NotOwner { owner, .. }) if owner.replication_url.is_some() => {
            let reply = HelloReply {
                error: None,
                redirect: owner.replication_url,
            };
            return wire::send(&mut out, &reply).await;
        }
        Err(e) => {
            tracing::info!(topic = hello.topic, source = hello.source_cluster, error = %e, "replication stream refused");
            let reply = HelloReply {
                error: Some(e.to_string()),
                redirect: None,
            };
            return wire::send(&mut out, &reply).await;
        }
    };
    entries.decoder_mut().set_max_frame_length(repl.max_frame);
    let accepted = HelloReply {
        error: None,
        redirect: None,
    };
    wire::send(&mut out, &accepted).await?;
    let source = hello.source_cluster;
    let key = dedup::repl_key(&source);
    let inbound = topic.inbound(&source);
    inbound.streams.fetch_add(1, Ordering::Relaxed);
    let _streams = scopeguard(inbound.clone());
    tracing::info!(topic = %topic.name(), source, "receiving replicated entries");
    let mut pending: FuturesOrdered<Pending> = FuturesOrdered::new();
    loop {
        tokio::select! {
            frame = wire::read::<Entry, _>(&mut entries), if pending.len() < MAX_PENDING => {
                let entry = match frame {
                    Ok(entry) => entry,
                    Err(wire::WireError::Closed) => return Ok(()),
                    Err(e) => return Err(e),
                };
                if entry.data.is_empty() {
                    pending.push_back(futures::future::ready(Done::Updates(entry.updates)).boxed());
                    continue;
                }
                pending.push_back(
                    store(&topic, &key, &source, entry, &inbound)
                        .map(|r| r.map_or_else(Done::Failed, Done::Stored))
                        .boxed(),
                );
            }
            Some(done) = pending.next() => {
                let ack = match done {
                    Done::Updates(updates) => {
                        apply_updates(&topic, &repl.local_cluster, updates);
                        continue;
                    }
                    Done::Stored((ledger, entry)) => Ack { ledger_id: ledger as i64, entry_id: entry as i64, error: None },
                    Done::Failed(error) => Ack { ledger_id: -1, entry_id: -1, error: Some(error) },
                };
                let failed = ack.error.is_some();
                wire::send(&mut out, &ack).await?;
                if failed {
                    return Ok(()); // the source starts over from its cursor
                }
            }
        }
    }
}

fn store(
    topic: &Arc<Topic>,
    key: &str,
    source: &str,
    entry: Entry,
    inbound: &Arc<crate::topic_replication::InboundStats>,
) -> BoxFuture<'static, Result<Mark, String>> {
    let mark: Mark = (entry.ledger_id as u64, entry.entry_id as u64);
    if topic.is_unloading() {
        return futures::future::ready(Err(format!("topic {} is being unloaded", topic.name())))
            .boxed();
    }
    if !topic.dedup().is_tracking() {
        // Deduplication was switched off under the stream: the next stream turns marks on again.
        return futures::future::ready(Err("the topic keeps no replication marks".to_string()))
            .boxed();
    }
    let (data, messages) = match rewrite(&entry, source) {
        Ok(r) => r,
        // Never stored, never acknowledged: the link stays stuck on it, which stats show.
        Err(e) => return futures::future::ready(Err(format!("undecodable entry: {e}"))).boxed(),
    };
    match topic.dedup().check(key, mark, mark) {
        Verdict::Duplicate => futures::future::ready(Ok(mark)).boxed(),
        Verdict::Unknown => futures::future::ready(Err(
            "an earlier copy of this entry is still being stored".to_string(),
        ))
        .boxed(),
        Verdict::New => {
            let bytes = data.len() as u64;
            let write = topic.publish(data, messages, Some((key.to_string(), mark)));
            let inbound = inbound.clone();
            let (topic, source) = (topic.clone(), source.to_string());
            async move {
                let local = write.await.map_err(|e| e.to_string())?;
                topic.subscription_sync().checkpoint(&source, local, mark);
                inbound
                    .msg_in
                    .fetch_add(u64::from(messages), Ordering::Relaxed);
                inbound.bytes_in.fetch_add(bytes, Ordering::Relaxed);
                Ok(mark)
            }
            .boxed()
        }
    }
}

/// Moves replicated subscriptions here, off the stream's loop.
fn apply_updates(topic: &Arc<Topic>, local_cluster: &str, updates: Vec<wire::SubscriptionUpdate>) {
    let (topic, local_cluster) = (topic.clone(), local_cluster.to_string());
    tokio::spawn(async move {
        for update in updates {
            if let Err(e) = super::subscriptions::apply(&topic, &local_cluster, &update).await {
                tracing::debug!(topic = %topic.name(), subscription = update.subscription, error = %e, "replicated subscription update failed");
            }
        }
    });
}

/// Counts the stream down when it ends.
struct StreamGuard(Arc<crate::topic_replication::InboundStats>);

fn scopeguard(stats: Arc<crate::topic_replication::InboundStats>) -> StreamGuard {
    StreamGuard(stats)
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
    }
}
