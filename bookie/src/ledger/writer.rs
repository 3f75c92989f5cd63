//! The single writer of a ledger: striped, pipelined adds completed in entry order at the ack
//! quorum, with ensemble changes when a bookie fails.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use magnetar_protocol::bookie::{AddEntryRequest, StatusCode};
use tokio::sync::{Notify, oneshot};

use super::metadata::{self, Fragment, LedgerState, Versioned};
use super::{ClientInner, LedgerError, reader};
use crate::registry;

/// An add in flight; resolves to the entry id once `Qa` bookies have it durably.
#[derive(Debug)]
pub struct PendingAdd {
    rx: oneshot::Receiver<Result<u64, LedgerError>>,
    ledger_id: u64,
}

impl Future for PendingAdd {
    type Output = Result<u64, LedgerError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let ledger_id = self.ledger_id;
        Pin::new(&mut self.rx).poll(cx).map(|r| {
            r.unwrap_or_else(|_| {
                Err(LedgerError::Internal(format!(
                    "writer of ledger {ledger_id} went away"
                )))
            })
        })
    }
}

#[derive(Debug)]
struct Pending {
    entry: u64,
    data: Bytes,
    /// Per ensemble slot: has the bookie currently in that slot acknowledged this entry.
    acked: Vec<bool>,
    done: Option<oneshot::Sender<Result<u64, LedgerError>>>,
}

impl Pending {
    fn ack_count(&self) -> usize {
        self.acked.iter().filter(|a| **a).count()
    }
}

#[derive(Debug)]
struct State {
    meta: Versioned,
    next_entry: u64,
    /// Last entry acknowledged to the caller (every entry up to it is at `Qa`).
    lac: i64,
    length: u64,
    /// Entries not yet acknowledged, in entry order; the front is `lac + 1`.
    pending: VecDeque<Pending>,
    /// Set once the writer can take no more adds.
    error: Option<LedgerError>,
    closed: bool,
}

#[derive(Debug)]
struct Inner {
    id: u64,
    client: Arc<ClientInner>,
    state: Mutex<State>,
    /// One ensemble change at a time.
    ensemble_change: tokio::sync::Mutex<()>,
    drained: Notify,
}

/// Writes one ledger. Cheap to clone; clones share the writer.
#[derive(Debug, Clone)]
pub struct LedgerWriter {
    inner: Arc<Inner>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl LedgerWriter {
    pub(super) fn new(id: u64, client: Arc<ClientInner>, meta: Versioned) -> LedgerWriter {
        let state = State {
            meta,
            next_entry: 0,
            lac: -1,
            length: 0,
            pending: VecDeque::new(),
            error: None,
            closed: false,
        };
        LedgerWriter {
            inner: Arc::new(Inner {
                id,
                client,
                state: Mutex::new(state),
                ensemble_change: tokio::sync::Mutex::new(()),
                drained: Notify::new(),
            }),
        }
    }

    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The last entry acknowledged to callers (−1 before the first).
    pub fn last_add_confirmed(&self) -> i64 {
        self.inner.lock().lac
    }

    /// Bytes acknowledged so far.
    pub fn length(&self) -> u64 {
        self.inner.lock().length
    }

    /// The writer's current view of the ledger metadata.
    pub fn metadata(&self) -> metadata::LedgerMetadata {
        self.inner.lock().meta.metadata.clone()
    }

    /// Why the writer stopped taking adds, if it did.
    pub fn error(&self) -> Option<LedgerError> {
        self.inner.lock().error.clone()
    }

    /// Queues an entry. Ids follow call order; the returned future resolves in that order too.
    pub fn append(&self, data: Bytes) -> PendingAdd {
        let (tx, rx) = oneshot::channel();
        let pending = PendingAdd {
            rx,
            ledger_id: self.inner.id,
        };
        let mut state = self.inner.lock();
        if let Some(e) = state.error.clone() {
            let _ = tx.send(Err(e));
            return pending;
        }
        if state.closed {
            let _ = tx.send(Err(LedgerError::Closed(self.inner.id)));
            return pending;
        }
        let entry = state.next_entry;
        state.next_entry += 1;
        let meta = &state.meta.metadata;
        let bookies = meta.fragment_for(entry).bookies.clone();
        let write_set = meta.write_set(entry);
        let lac = state.lac;
        let slots = meta.ensemble_size;
        state.pending.push_back(Pending {
            entry,
            data: data.clone(),
            acked: vec![false; slots],
            done: Some(tx),
        });
        drop(state);
        for slot in write_set {
            send(
                self.inner.clone(),
                entry,
                slot,
                bookies[slot].clone(),
                data.clone(),
                lac,
            );
        }
        pending
    }

    /// Reads acknowledged entries `first..=last` of this ledger.
    pub async fn read(&self, first: u64, last: u64) -> Result<Vec<Bytes>, LedgerError> {
        let (meta, lac) = {
            let state = self.inner.lock();
            (state.meta.metadata.clone(), state.lac)
        };
        if last as i64 > lac {
            return Err(LedgerError::NoSuchEntry {
                ledger_id: self.inner.id,
                entry_id: last,
            });
        }
        reader::read_range(&self.inner.client, self.inner.id, &meta, first, last).await
    }

    /// Waits for the adds in flight, then seals the ledger at its last acknowledged entry.
    /// Returns that entry id (−1 if empty).
    pub async fn close(&self) -> Result<i64, LedgerError> {
        loop {
            let notified = self.inner.drained.notified();
            {
                let mut state = self.inner.lock();
                state.closed = true;
                if state.pending.is_empty() || state.error.is_some() {
                    break;
                }
            }
            notified.await;
        }
        let _guard = self.inner.ensemble_change.lock().await;
        let (mut versioned, lac, length, error) = {
            let state = self.inner.lock();
            (
                state.meta.clone(),
                state.lac,
                state.length,
                state.error.clone(),
            )
        };
        if let Some(LedgerError::Fenced(_)) = error {
            return Err(LedgerError::Fenced(self.inner.id));
        }
        versioned.metadata.state = LedgerState::Closed;
        versioned.metadata.last_entry_id = lac;
        versioned.metadata.length = length;
        match metadata::update(
            &self.inner.client.metadata,
            self.inner.id,
            &versioned.metadata,
            versioned.version,
        )
        .await
        {
            Ok(version) => {
                let mut state = self.inner.lock();
                state.meta = Versioned {
                    metadata: versioned.metadata,
                    version,
                };
                Ok(lac)
            }
            Err(LedgerError::Metadata(magnetar_metadata::MetadataError::BadVersion { .. })) => {
                // Someone recovered the ledger meanwhile.
                Err(LedgerError::Fenced(self.inner.id))
            }
            Err(e) => Err(e),
        }
    }
}

fn send(inner: Arc<Inner>, entry: u64, slot: usize, bookie: String, data: Bytes, lac: i64) {
    tokio::spawn(async move {
        let add = AddEntryRequest {
            ledger_id: inner.id,
            entry_id: entry,
            last_add_confirmed: u64::try_from(lac).ok(),
            payload: data.to_vec(),
            recovery: false,
        };
        let timeout = inner.client.options.add_timeout;
        let result = match inner.client.pool.get(&bookie).await {
            Ok(conn) => match tokio::time::timeout(timeout, conn.add_entry(add)).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) if e.status() == Some(StatusCode::Fenced) => {
                    Err(LedgerError::Fenced(inner.id))
                }
                Ok(Err(e)) => Err(LedgerError::BookieUnavailable {
                    bookie: bookie.clone(),
                    reason: e.to_string(),
                }),
                Err(_) => Err(LedgerError::BookieUnavailable {
                    bookie: bookie.clone(),
                    reason: "add timed out".into(),
                }),
            },
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => on_ack(&inner, entry, slot, &bookie),
            Err(LedgerError::Fenced(id)) => fail_all(&inner, LedgerError::Fenced(id)),
            Err(e) => {
                // Every add in flight to a failed bookie ends here; the change itself is logged once.
                tracing::debug!(ledger_id = inner.id, entry, bookie, error = %e, "add failed; changing ensemble");
                tokio::spawn(change_ensemble(inner.clone(), slot, bookie, e.to_string()));
            }
        }
    });
}

fn on_ack(inner: &Inner, entry: u64, slot: usize, bookie: &str) {
    let mut completed = Vec::new();
    {
        let mut state = inner.lock();
        // An ack from a bookie that has since been replaced in this slot does not count.
        if state
            .meta
            .metadata
            .fragment_for(entry)
            .bookies
            .get(slot)
            .map(String::as_str)
            != Some(bookie)
        {
            return;
        }
        let Some(front) = state.pending.front().map(|p| p.entry) else {
            return;
        };
        let Some(pending) = entry
            .checked_sub(front)
            .and_then(|i| state.pending.get_mut(i as usize))
        else {
            return;
        };
        pending.acked[slot] = true;
        let quorum = state.meta.metadata.ack_quorum;
        while state
            .pending
            .front()
            .is_some_and(|p| p.ack_count() >= quorum)
        {
            let mut done = state.pending.pop_front().expect("front exists");
            state.lac = done.entry as i64;
            state.length += done.data.len() as u64;
            if let Some(tx) = done.done.take() {
                completed.push((tx, done.entry));
            }
        }
        if state.pending.is_empty() {
            inner.drained.notify_waiters();
        }
    }
    for (tx, entry) in completed {
        let _ = tx.send(Ok(entry));
    }
}

fn fail_all(inner: &Inner, error: LedgerError) {
    let failed: Vec<_> = {
        let mut state = inner.lock();
        if state.error.is_none() {
            tracing::warn!(ledger_id = inner.id, %error, "ledger writer failed");
            state.error = Some(error.clone());
        }
        state
            .pending
            .drain(..)
            .filter_map(|mut p| p.done.take())
            .collect()
    };
    for tx in failed {
        let _ = tx.send(Err(error.clone()));
    }
    inner.drained.notify_waiters();
}

/// Replaces the bookie in `slot` of the current ensemble, records the new fragment by
/// compare-and-set, and re-sends the pending entries that belong on it.
async fn change_ensemble(inner: Arc<Inner>, slot: usize, failed: String, reason: String) {
    let _guard = inner.ensemble_change.lock().await;
    let (versioned, first_entry) = {
        let state = inner.lock();
        let current = state
            .meta
            .metadata
            .fragments
            .last()
            .map(|f| f.bookies[slot].clone());
        if state.error.is_some() || current.as_deref() != Some(failed.as_str()) {
            return; // already failed, or this bookie was already replaced
        }
        // Entries completed while this change is under way keep the copies they were
        // acknowledged with; the new fragment starts where acknowledgements stood now.
        (state.meta.clone(), (state.lac + 1) as u64)
    };
    inner.client.pool.forget(&failed).await;
    let ensemble = versioned
        .metadata
        .fragments
        .last()
        .map(|f| f.bookies.clone())
        .unwrap_or_default();
    let candidates = match registry::writable(&inner.client.metadata).await {
        Ok(all) => all,
        Err(e) => {
            fail_all(&inner, LedgerError::Metadata(e));
            return;
        }
    };
    let chosen = inner
        .client
        .placement
        .replacement(&ensemble, &candidates, &mut rand::rng());
    let Some(replacement) = chosen else {
        let needed = versioned.metadata.ensemble_size;
        fail_all(
            &inner,
            LedgerError::NotEnoughBookies {
                needed,
                available: needed - 1,
            },
        );
        return;
    };
    let mut meta = versioned.metadata.clone();
    let mut bookies = ensemble.clone();
    bookies[slot] = replacement.clone();
    match meta.fragments.last_mut() {
        Some(last) if last.first_entry == first_entry => last.bookies = bookies,
        _ => meta.fragments.push(Fragment {
            first_entry,
            bookies,
        }),
    }
    let version =
        match metadata::update(&inner.client.metadata, inner.id, &meta, versioned.version).await {
            Ok(version) => version,
            Err(LedgerError::Metadata(magnetar_metadata::MetadataError::BadVersion { .. })) => {
                // Only a recovering reader changes the metadata of a ledger we write.
                fail_all(&inner, LedgerError::Fenced(inner.id));
                return;
            }
            Err(e) => {
                fail_all(&inner, e);
                return;
            }
        };
    if let Ok(fresh) = metadata::read(&inner.client.metadata, inner.id).await
        && fresh.metadata.state != LedgerState::Open
    {
        fail_all(&inner, LedgerError::Fenced(inner.id));
        return;
    }
    tracing::warn!(
        ledger_id = inner.id,
        failed,
        replacement,
        first_entry,
        reason,
        "bookie failed; ensemble changed"
    );
    let resend: Vec<(u64, Bytes)> = {
        let mut state = inner.lock();
        state.meta = Versioned {
            metadata: meta.clone(),
            version,
        };
        let mut resend = Vec::new();
        for pending in state.pending.iter_mut() {
            if meta.write_set(pending.entry).contains(&slot) {
                pending.acked[slot] = false;
                resend.push((pending.entry, pending.data.clone()));
            }
        }
        resend
    };
    let lac = inner.lock().lac;
    for (entry, data) in resend {
        send(inner.clone(), entry, slot, replacement.clone(), data, lac);
    }
}
