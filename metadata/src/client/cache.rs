//! A live copy of every key under a prefix: listed once, then kept up to date by a watch from
//! the listing's revision. Reads are local and never wait on the group, which is what hot paths
//! (authorization, lookups, bundle owners, live brokers and bookies) need in a cluster, where
//! every remote read goes to the Raft leader.
//!
//! The copy lags the group by the watch's delay: callers that must not act on stale data
//! (a compare-and-set) still write conditionally; [`PrefixCache::wait_for_revision`] gives
//! read-your-writes after a write of one's own.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{MetadataClient, Record};
use crate::error::MetadataError;
use crate::types::EventKind;

const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);

#[derive(Debug)]
struct Inner {
    prefix: String,
    records: RwLock<BTreeMap<String, Record>>,
    /// The revision the copy is at; changes after every applied revision.
    revision: watch::Sender<u64>,
}

/// A live copy of the keys under one prefix; cheap to clone, stops with its last clone.
#[derive(Debug, Clone)]
pub struct PrefixCache {
    inner: Arc<Inner>,
    _stop: Arc<StopOnDrop>,
}

#[derive(Debug)]
struct StopOnDrop(CancellationToken);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

impl PrefixCache {
    /// Lists `prefix` and starts following it; returns once the first listing is in.
    pub async fn start(
        client: MetadataClient,
        prefix: impl Into<String>,
    ) -> Result<PrefixCache, MetadataError> {
        let prefix = prefix.into();
        let (records, revision) = client.list_with_revision(&prefix).await?;
        let inner = Arc::new(Inner {
            prefix,
            records: RwLock::new(records.into_iter().map(|r| (r.key.clone(), r)).collect()),
            revision: watch::Sender::new(revision),
        });
        let stop = CancellationToken::new();
        tokio::spawn(follow(client, inner.clone(), stop.clone()));
        Ok(PrefixCache {
            inner,
            _stop: Arc::new(StopOnDrop(stop)),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    pub fn get(&self, key: &str) -> Option<Record> {
        self.read().get(key).cloned()
    }

    /// Every record, in key order.
    pub fn records(&self) -> Vec<Record> {
        self.read().values().cloned().collect()
    }

    /// Records whose key starts with `prefix` (a sub-prefix of the cached one), in key order.
    pub fn under(&self, prefix: &str) -> Vec<Record> {
        self.read()
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, r)| r.clone())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// The revision of the group the copy reflects.
    pub fn revision(&self) -> u64 {
        *self.inner.revision.borrow()
    }

    /// Changes whenever the copy moves to a new revision.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.revision.subscribe()
    }

    /// Waits until the copy reflects `revision` (e.g. the revision of one's own write).
    pub async fn wait_for_revision(&self, revision: u64) {
        let mut changes = self.changes();
        let _ = changes.wait_for(|r| *r >= revision).await;
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Record>> {
        self.inner
            .records
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Follows the prefix until stopped; re-lists after a watch that cannot resume (history
/// compacted away) and retries a broken one from where it was.
async fn follow(client: MetadataClient, inner: Arc<Inner>, stop: CancellationToken) {
    let mut retry = RETRY_MIN;
    loop {
        let from = *inner.revision.borrow() + 1;
        let started = tokio::select! {
            _ = stop.cancelled() => return,
            started = client.watch(&inner.prefix, from) => started,
        };
        let mut watch = match started {
            Ok(watch) => watch,
            Err(MetadataError::Compacted { .. }) => {
                relist(&client, &inner, &stop).await;
                continue;
            }
            Err(e) => {
                tracing::debug!(prefix = inner.prefix, error = %e, "cache watch failed to start; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(retry) => {}
                }
                retry = (retry * 2).min(RETRY_MAX);
                continue;
            }
        };
        retry = RETRY_MIN;
        loop {
            let event = tokio::select! {
                _ = stop.cancelled() => return,
                event = watch.next() => event,
            };
            match event {
                Some(Ok(event)) => apply(&inner, event.revision, &event.changes),
                Some(Err(MetadataError::Compacted { .. })) => {
                    relist(&client, &inner, &stop).await;
                    break;
                }
                Some(Err(e)) => {
                    tracing::debug!(prefix = inner.prefix, error = %e, "cache watch ended; resuming");
                    break;
                }
                None => break,
            }
        }
    }
}

fn apply(inner: &Inner, revision: u64, changes: &[super::Change]) {
    {
        let mut records = inner
            .records
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for change in changes {
            let key = &change.record.key;
            match change.kind {
                EventKind::Put => {
                    // A listing page read after this change already holds it (or a newer one).
                    let newer = records
                        .get(key)
                        .is_some_and(|r| r.mod_revision > change.record.mod_revision);
                    if !newer {
                        records.insert(key.clone(), change.record.clone());
                    }
                }
                EventKind::Delete => {
                    let newer = records.get(key).is_some_and(|r| r.mod_revision > revision);
                    if !newer {
                        records.remove(key);
                    }
                }
            }
        }
    }
    inner.revision.send_if_modified(|r| {
        let moved = revision > *r;
        *r = (*r).max(revision);
        moved
    });
}

async fn relist(client: &MetadataClient, inner: &Inner, stop: &CancellationToken) {
    let mut retry = RETRY_MIN;
    loop {
        let listed = tokio::select! {
            _ = stop.cancelled() => return,
            listed = client.list_with_revision(&inner.prefix) => listed,
        };
        match listed {
            Ok((records, revision)) => {
                *inner
                    .records
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) =
                    records.into_iter().map(|r| (r.key.clone(), r)).collect();
                inner.revision.send_replace(revision);
                return;
            }
            Err(e) => {
                tracing::debug!(prefix = inner.prefix, error = %e, "cache re-listing failed; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(retry) => {}
                }
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
}
