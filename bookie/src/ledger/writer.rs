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

use super::metadata::{self, LedgerState, Versioned};
use super::quorum::{self, Quorum};
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

type Waiter = oneshot::Sender<Result<u64, LedgerError>>;

#[derive(Debug)]
struct State {
    /// Entries, acknowledgements and the ensemble, without I/O.
    quorum: Quorum,
    /// Version of the metadata in `quorum`.
    version: u64,
    /// Callers of `append` not yet answered, in entry order.
    waiters: VecDeque<(u64, Waiter)>,
    /// Set once the writer can take no more adds.
    error: Option<LedgerError>,
    closed: bool,
}

impl State {
    /// The waiters of `completed` (entries completed in order), to answer outside the lock.
    fn take_completed(&mut self, completed: &[u64]) -> Vec<(Waiter, u64)> {
        let Some(&last) = completed.last() else {
            return Vec::new();
        };
        let mut done = Vec::new();
        while self
            .waiters
            .front()
            .is_some_and(|(entry, _)| *entry <= last)
        {
            if let Some((entry, tx)) = self.waiters.pop_front() {
                done.push((tx, entry));
            }
        }
        done
    }
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
            quorum: Quorum::new(meta.metadata),
            version: meta.version,
            waiters: VecDeque::new(),
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

    /// Frees the buffers of the queues of entries in flight if none is (a writer that goes
    /// idle keeps the capacity of its busiest moment otherwise).
    pub fn shrink_if_idle(&self) {
        let mut state = self.inner.lock();
        if state.waiters.is_empty() {
            state.waiters.shrink_to_fit();
        }
        state.quorum.shrink_if_idle();
    }

    /// The last entry acknowledged to callers (−1 before the first).
    pub fn last_add_confirmed(&self) -> i64 {
        self.inner.lock().quorum.lac()
    }

    /// Bytes acknowledged so far.
    pub fn length(&self) -> u64 {
        self.inner.lock().quorum.length()
    }

    /// The writer's current view of the ledger metadata.
    pub fn metadata(&self) -> metadata::LedgerMetadata {
        self.inner.lock().quorum.meta().clone()
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
        let (entry, sends) = state.quorum.append(data);
        state.waiters.push_back((entry, tx));
        let lac = state.quorum.lac();
        drop(state);
        for request in sends {
            send(self.inner.clone(), request, lac);
        }
        pending
    }

    /// Reads acknowledged entries `first..=last` of this ledger.
    pub async fn read(&self, first: u64, last: u64) -> Result<Vec<Bytes>, LedgerError> {
        let (meta, lac) = {
            let state = self.inner.lock();
            (state.quorum.meta().clone(), state.quorum.lac())
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
                if state.quorum.is_drained() || state.error.is_some() {
                    break;
                }
            }
            notified.await;
        }
        let _guard = self.inner.ensemble_change.lock().await;
        let (mut meta, version, lac, length, error) = {
            let state = self.inner.lock();
            (
                state.quorum.meta().clone(),
                state.version,
                state.quorum.lac(),
                state.quorum.length(),
                state.error.clone(),
            )
        };
        if let Some(LedgerError::Fenced(_)) = error {
            return Err(LedgerError::Fenced(self.inner.id));
        }
        meta.state = LedgerState::Closed;
        meta.last_entry_id = lac;
        meta.length = length;
        meta.closed_ms = super::now_ms();
        match metadata::update(&self.inner.client.metadata, self.inner.id, &meta, version).await {
            Ok(version) => {
                self.inner.lock().version = version;
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

fn send(inner: Arc<Inner>, request: quorum::Send, lac: i64) {
    tokio::spawn(async move {
        let quorum::Send {
            entry,
            slot,
            bookie,
            data,
        } = request;
        let add = AddEntryRequest {
            ledger_id: inner.id,
            entry_id: entry,
            last_add_confirmed: u64::try_from(lac).ok(),
            payload: data.to_vec(),
            recovery: false,
        };
        // The timeout runs from when the add is written to the connection: waiting in its
        // queue behind other adds (overload) does not make a bookie look dead.
        let timeout = inner.client.options.add_timeout;
        let result = match inner.client.pool.get(&bookie).await {
            Ok(conn) => match conn.within(timeout).add_entry(add).await {
                Ok(()) => Ok(()),
                Err(e) if e.status() == Some(StatusCode::Fenced) => {
                    Err(LedgerError::Fenced(inner.id))
                }
                Err(e) => Err(LedgerError::BookieUnavailable {
                    bookie: bookie.clone(),
                    reason: e.to_string(),
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
    let done = {
        let mut state = inner.lock();
        let completed = state.quorum.ack(entry, slot, bookie);
        let done = state.take_completed(&completed);
        if state.quorum.is_drained() {
            inner.drained.notify_waiters();
        }
        done
    };
    for (tx, entry) in done {
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
        state.quorum.fail();
        state.waiters.drain(..).map(|(_, tx)| tx).collect()
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
    let (change, meta, version) = {
        let mut state = inner.lock();
        if state.error.is_some() {
            return;
        }
        let Some(change) = state.quorum.begin_change(slot, &failed) else {
            return; // this bookie was already replaced
        };
        (change, state.quorum.meta().clone(), state.version)
    };
    inner.client.pool.forget(&failed).await;
    let candidates = match registry::writable(&inner.client.metadata).await {
        Ok(all) => all,
        Err(e) => {
            fail_all(&inner, LedgerError::Metadata(e));
            return;
        }
    };
    let chosen =
        inner
            .client
            .placement
            .replacement(&change.ensemble, &candidates, &mut rand::rng());
    let Some(replacement) = chosen else {
        let needed = meta.ensemble_size;
        fail_all(
            &inner,
            LedgerError::NotEnoughBookies {
                needed,
                available: needed - 1,
            },
        );
        return;
    };
    let next = quorum::with_replacement(&meta, slot, change.first_entry, &replacement);
    let version = match metadata::update(&inner.client.metadata, inner.id, &next, version).await {
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
        first_entry = change.first_entry,
        reason,
        "bookie failed; ensemble changed"
    );
    let (resend, done, lac) = {
        let mut state = inner.lock();
        state.version = version;
        let (resend, completed) = state.quorum.finish_change(next);
        let done = state.take_completed(&completed);
        if state.quorum.is_drained() {
            inner.drained.notify_waiters();
        }
        (resend, done, state.quorum.lac())
    };
    for (tx, entry) in done {
        let _ = tx.send(Ok(entry));
    }
    for request in resend {
        send(inner.clone(), request, lac);
    }
}
