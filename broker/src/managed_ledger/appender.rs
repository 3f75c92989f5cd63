//! The appender: one task per managed ledger that owns the current ledger's writer.
//!
//! Appends arrive through a channel in call order and are written pipelined; completions arrive
//! in entry order, so each is confirmed in order (layout, cache, watchers, then the caller).
//! The task also rolls the ledger over — by entries, size or age as Pulsar's rules say, and after
//! a write failure: the broken ledger is closed at its last confirmed entry and the appends that
//! were in flight or queued are written again, in their order, to a new ledger; their callers
//! get positions in the new ledger. A `Fenced` ledger means another broker owns the topic: every
//! pending append fails and no more are taken.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use futures::StreamExt;
use futures::channel::mpsc;
use magnetar_bookie::ledger::{LedgerError, LedgerWriter, PendingAdd};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::MlError;
use super::info::LedgerRecord;
use super::ledgers::{create_ledger, delete_quietly, now_ms};
use super::shared::{Command, Shared};
use crate::position::Position;

#[derive(Debug)]
struct Request {
    data: Bytes,
    done: oneshot::Sender<Result<Position, MlError>>,
}

#[derive(Debug)]
struct InFlight {
    request: Request,
    ledger_id: u64,
    add: PendingAdd,
}

#[derive(Debug)]
struct Current {
    writer: LedgerWriter,
    created: Instant,
    sent: u64,
    sent_bytes: u64,
    /// When the cursors were last asked whether they caught up with this ledger.
    consumed_checked: Option<Instant>,
    last_append: Instant,
}

#[derive(Debug)]
pub(super) struct Appender {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedReceiver<Command>,
    current: Option<Current>,
    /// A ledger sealed (or abandoned) whose final count is not in the ledger list yet.
    unrecorded: Option<LedgerRecord>,
    /// Whether that ledger's own metadata says closed, with its last entry and bytes (its
    /// writer's close succeeded); if not, a recovery by the next owner would know only the
    /// bytes of the tail it re-writes, and the list must keep the count.
    unrecorded_closed: bool,
    inflight: VecDeque<InFlight>,
    /// Appends not yet sent: queued while there is no writable ledger.
    waiting: VecDeque<Request>,
    /// The last ledger creation failed after its retries: the next tries once, so that appends
    /// fail fast until the bookies take writes again.
    creation_failing: bool,
}

async fn next_completion(inflight: &mut VecDeque<InFlight>) -> Result<u64, LedgerError> {
    match inflight.front_mut() {
        Some(front) => (&mut front.add).await,
        None => std::future::pending().await,
    }
}

impl Appender {
    pub fn new(
        shared: Arc<Shared>,
        commands: mpsc::UnboundedReceiver<Command>,
        writer: LedgerWriter,
    ) -> Appender {
        Appender {
            shared,
            commands,
            current: Some(Current::new(writer)),
            unrecorded: None,
            unrecorded_closed: false,
            inflight: VecDeque::new(),
            waiting: VecDeque::new(),
            creation_failing: false,
        }
    }

    pub async fn run(mut self, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(self.shared.config.rollover_check_interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                result = next_completion(&mut self.inflight) => self.completed(result).await,
                command = self.commands.next() => match command {
                    None => break,
                    Some(Command::Append { data, done }) => self.submit(Request { data, done }).await,
                    Some(Command::Rollover { done }) => {
                        let result = Box::pin(self.rollover()).await;
                        let _ = done.send(result);
                    }
                    Some(Command::Close { done }) => {
                        let result = Box::pin(self.close()).await;
                        let _ = done.send(result);
                        break;
                    }
                },
                // An empty ledger cannot be full or due: idle topics do not tick.
                _ = tick.tick(), if self.current.as_ref().is_some_and(|c| c.sent > 0) => {
                    if self.is_full()
                        && let Err(e) = Box::pin(self.rollover()).await
                    {
                        tracing::warn!(managed_ledger = %self.shared.name, error = %e, "time-based rollover failed");
                    }
                    self.shrink_if_idle();
                }
            }
        }
        // Whatever is left is answered `Closed` as its sender is dropped.
        self.shared.set_closed();
    }

    /// Gives back the queues' buffers while nothing is in flight: they keep the capacity of
    /// their busiest moment, and an idle topic should cost as little as a new one.
    fn shrink_if_idle(&mut self) {
        if self.inflight.is_empty() && self.waiting.is_empty() {
            self.inflight.shrink_to_fit();
            self.waiting.shrink_to_fit();
            if let Some(current) = &self.current {
                current.writer.shrink_if_idle();
            }
        }
    }

    async fn submit(&mut self, request: Request) {
        if let Err(e) = self.shared.check_open() {
            let _ = request.done.send(Err(e));
            return;
        }
        self.waiting.push_back(request);
        if self.current.is_none() {
            let _ = Box::pin(self.open_new_ledger()).await;
        } else if self.is_full() {
            if let Err(e) = Box::pin(self.rollover()).await {
                tracing::warn!(managed_ledger = %self.shared.name, error = %e, "rollover failed");
            }
        } else {
            self.send_waiting();
        }
    }

    /// Pulsar's `currentLedgerIsFull`: not before the minimum age, then by entries, size or
    /// the maximum age; an empty ledger never rolls over. Unlike Pulsar, a ledger full by
    /// entries or size whose every earlier entry is consumed rolls over before the minimum age
    /// (not before `consumed_rollover_floor`): the consumers keep up, so the ledger will be
    /// consumed soon and can be deleted, instead of holding minutes of consumed data on disk.
    /// So does a ledger nobody appended to for that long whose every entry is consumed (the
    /// last ledger of a topic whose producers stopped), when no retention would keep it and it
    /// holds at least 1/64 of the size limit (a sparse topic would otherwise make a ledger per
    /// message, each created, sealed and deleted for a few bytes).
    fn is_full(&mut self) -> bool {
        let config = &self.shared.config;
        let Some(current) = &mut self.current else {
            return false;
        };
        let age = current.created.elapsed();
        let space = current.sent >= config.max_entries_per_ledger
            || current.sent_bytes >= config.max_size_per_ledger;
        if current.sent == 0 {
            return false;
        }
        let idle = current.last_append.elapsed() >= config.consumed_rollover_floor
            && current.sent_bytes >= config.max_size_per_ledger / 64;
        if age >= config.min_rollover && (space || age >= config.max_rollover) {
            return true;
        }
        if !(space || idle) || age < config.consumed_rollover_floor {
            return false;
        }
        // Asked at most once a second: cursors are persisted (and trimming looks) no more often.
        if current
            .consumed_checked
            .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            return false;
        }
        current.consumed_checked = Some(Instant::now());
        let ledger_id = current.writer.id() as i64;
        if !space {
            let retention = super::shared::lock(&self.shared.retention);
            if retention.time.is_some() || retention.size.is_some() {
                return false; // kept anyway: rolling over would free nothing
            }
        }
        match space {
            true => self.shared.caught_up_with(Position::new(ledger_id, -1)),
            // Every entry sent is acknowledged (entry ids count from 0 in each ledger).
            false => self
                .shared
                .caught_up_with(Position::new(ledger_id, current.sent as i64 - 1)),
        }
    }

    fn send_waiting(&mut self) {
        let Some(current) = &mut self.current else {
            return;
        };
        let ledger_id = current.writer.id();
        while let Some(request) = self.waiting.pop_front() {
            let add = current.writer.append(request.data.clone());
            current.sent += 1;
            current.sent_bytes += request.data.len() as u64;
            current.last_append = Instant::now();
            self.inflight.push_back(InFlight {
                request,
                ledger_id,
                add,
            });
        }
    }

    async fn completed(&mut self, result: Result<u64, LedgerError>) {
        let mut last = None;
        let mut result = Some(result);
        loop {
            let outcome = match result.take() {
                Some(r) => r,
                None => match self
                    .inflight
                    .front_mut()
                    .and_then(|f| (&mut f.add).now_or_never())
                {
                    Some(r) => r,
                    None => break,
                },
            };
            match outcome {
                Ok(entry_id) => {
                    if let Some(done) = self.inflight.pop_front() {
                        last = Some(self.confirm(done, entry_id));
                    }
                }
                Err(e) => {
                    self.notify(last.take());
                    Box::pin(self.failed(e)).await;
                    return;
                }
            }
        }
        self.notify(last);
    }

    fn notify(&self, last: Option<Position>) {
        if last.is_some() {
            self.shared.appended.send_replace(last);
        }
    }

    fn confirm(&self, done: InFlight, entry_id: u64) -> Position {
        let position = Position::new(done.ledger_id as i64, entry_id as i64);
        let size = done.request.data.len() as u64;
        {
            let mut state = self.shared.lock();
            let appended = state.layout.append();
            if appended != position {
                tracing::error!(managed_ledger = %self.shared.name, %appended, %position, "confirmed entry out of layout order");
            }
            state.last_confirmed = Some(position);
            state.current_size += size;
        }
        super::shared::lock(&self.shared.cache).insert(position, done.request.data);
        let _ = done.request.done.send(Ok(position));
        position
    }

    /// Waits for every append in flight, confirming them; a failure among them rolls over.
    async fn drain(&mut self) {
        while let Some(front) = self.inflight.front_mut() {
            let result = (&mut front.add).await;
            self.completed(result).await;
        }
    }

    /// A write failed: seal the broken ledger at its last confirmed entry and write the failed
    /// and queued appends, in order, to a new ledger.
    async fn failed(&mut self, error: LedgerError) {
        if matches!(error, LedgerError::Fenced(_)) {
            self.fence_all();
            return;
        }
        tracing::warn!(managed_ledger = %self.shared.name, %error, "write failed; rolling over to a new ledger");
        self.shared
            .write_failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for InFlight { request, .. } in self.inflight.drain(..).rev() {
            self.waiting.push_front(request);
        }
        if self.seal_current().await.is_ok() {
            let _ = self.open_new_ledger().await;
        }
    }

    /// Forced or rule-driven rollover.
    async fn rollover(&mut self) -> Result<(), MlError> {
        self.shared.check_open()?;
        self.drain().await;
        self.seal_current().await?;
        self.open_new_ledger().await
    }

    /// Closes the current writer (after its adds completed or failed) and remembers its final
    /// size for the next list update.
    async fn seal_current(&mut self) -> Result<(), MlError> {
        let Some(current) = self.current.take() else {
            return Ok(());
        };
        let closed = match current.writer.close().await {
            Ok(_) => true,
            Err(LedgerError::Fenced(_)) => {
                self.fence_all();
                return Err(MlError::Fenced);
            }
            Err(e) => {
                // Its confirmed entries stay readable; the list records only those.
                tracing::warn!(managed_ledger = %self.shared.name, ledger_id = current.writer.id(), error = %e, "closing the ledger failed");
                false
            }
        };
        let id = current.writer.id();
        let (entries, size) = {
            let state = self.shared.lock();
            let entries = state
                .layout
                .ledgers()
                .iter()
                .find(|l| l.ledger_id == id as i64)
                .map_or(0, |l| l.entries as u64);
            (entries, state.current_size)
        };
        self.unrecorded = Some(LedgerRecord {
            ledger_id: id,
            entries,
            size,
            timestamp: now_ms(),
            offload_context: None,
        });
        self.unrecorded_closed = closed;
        Ok(())
    }

    /// Creates a ledger, records it (with the sealed one) in the list, sends the queue to it.
    /// On failure the queued appends fail with the error.
    async fn open_new_ledger(&mut self) -> Result<(), MlError> {
        let writer = match create_ledger(
            &self.shared.ledgers,
            &self.shared.config,
            &self.shared.name,
            !self.creation_failing,
        )
        .await
        {
            Ok(writer) => {
                self.creation_failing = false;
                writer
            }
            Err(e) => {
                self.creation_failing = true;
                tracing::warn!(managed_ledger = %self.shared.name, error = %e, "cannot create a ledger");
                self.fail_waiting(e.clone());
                return Err(e);
            }
        };
        let new_id = writer.id();
        let sealed = self.unrecorded.take();
        let empty = sealed.filter(|s| s.entries == 0).map(|s| s.ledger_id);
        let record = LedgerRecord {
            ledger_id: new_id,
            entries: 0,
            size: 0,
            timestamp: 0,
            offload_context: None,
        };
        let kept = writer.clone();
        let result = self
            .shared
            .update_info(
                |info| {
                    if let Some(sealed) = sealed
                        && let Some(entry) = info.ledger_mut(sealed.ledger_id)
                    {
                        *entry = sealed;
                    }
                    if let Some(id) = empty {
                        info.ledgers.retain(|l| l.ledger_id != id);
                    }
                    info.ledgers.push(record);
                },
                |state| {
                    if let Err(e) = state.layout.roll_over(new_id as i64) {
                        tracing::error!(error = %e, "ledger layout refused the new ledger");
                    }
                    if let Some(id) = empty {
                        let _ = state.layout.remove_ledger(id as i64);
                    }
                    state.current_size = 0;
                    state.remember_writer(kept);
                },
            )
            .await;
        match result {
            Ok(()) => {
                tracing::debug!(managed_ledger = %self.shared.name, ledger_id = new_id, "new ledger");
                self.current = Some(Current::new(writer));
                // The ledger before it is closed now: trimming may have work (at its next
                // round, as before the task could stop).
                super::trim::start(&self.shared);
                self.send_waiting();
                if let Some(id) = empty {
                    delete_quietly(&self.shared.ledgers, &self.shared.name, id).await;
                }
                Ok(())
            }
            Err(e) => {
                self.unrecorded = sealed;
                delete_quietly(&self.shared.ledgers, &self.shared.name, new_id).await;
                match &e {
                    MlError::Fenced => self.fence_all(),
                    e => self.fail_waiting(e.clone()),
                }
                Err(e)
            }
        }
    }

    fn fail_waiting(&mut self, error: MlError) {
        if error == MlError::Fenced {
            self.shared.fence();
        }
        for request in self.waiting.drain(..) {
            let _ = request.done.send(Err(error.clone()));
        }
    }

    fn fence_all(&mut self) {
        self.shared.fence();
        self.current = None;
        for InFlight { request, .. } in self.inflight.drain(..) {
            let _ = request.done.send(Err(MlError::Fenced));
        }
        self.fail_waiting(MlError::Fenced);
    }

    /// Finishes in-flight appends and seals the current ledger; an empty one is dropped from
    /// the list and deleted.
    ///
    /// A sealed ledger with entries is not written to the list when its own metadata says
    /// closed: that holds what the list would (last entry, bytes, close time), and the next
    /// owner reads it there when it opens the managed ledger, as it does after a crash. One
    /// metadata write per topic instead of two is what a shutdown or a bundle unload of many
    /// topics waits on. If the ledger's close failed, the list records its count as before.
    async fn close(&mut self) -> Result<(), MlError> {
        self.drain().await;
        self.fail_waiting(MlError::Closed);
        if self.shared.check_open() == Err(MlError::Fenced) {
            return Ok(());
        }
        self.shared.set_closed();
        self.seal_current().await?;
        let Some(sealed) = self.unrecorded.take() else {
            return Ok(());
        };
        let empty = sealed.entries == 0;
        if !empty && self.unrecorded_closed {
            return Ok(());
        }
        self.shared
            .update_info(
                |info| {
                    if empty {
                        info.ledgers.retain(|l| l.ledger_id != sealed.ledger_id);
                    } else if let Some(entry) = info.ledger_mut(sealed.ledger_id) {
                        *entry = sealed;
                    }
                },
                |_| {},
            )
            .await?;
        if empty {
            delete_quietly(&self.shared.ledgers, &self.shared.name, sealed.ledger_id).await;
        }
        Ok(())
    }
}

impl Current {
    fn new(writer: LedgerWriter) -> Current {
        Current {
            writer,
            created: Instant::now(),
            sent: 0,
            sent_bytes: 0,
            consumed_checked: None,
            last_append: Instant::now(),
        }
    }
}
