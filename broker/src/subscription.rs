//! One durable subscription: its cursor and its dispatcher driven together, without I/O.
//!
//! This is the piece the async shell talks to for a subscription. It routes acknowledgements to
//! the cursor (individual, batch-index via `ack_set`, cumulative; cumulative acks on Shared and
//! Key_Shared are ignored as Java does) and tells the dispatcher what became acknowledged; it
//! drops already-acknowledged entries from reads (as the managed cursor's reads skip
//! individually deleted entries); it handles SUBSCRIBE with another subscription type (refused
//! while consumers are attached, as Java's `ConsumerBusy`), UNSUBSCRIBE checks and SEEK.
//!
//! The shell owns the topic's [`LedgerLayout`] and lends it on each call, persists
//! [`Subscription::snapshot`] at its own pace, and turns [`Delivery`]s into MESSAGE frames (with
//! `cursor().batch_ack_set(position)` as `ack_set` when batch-index acks are enabled).

use crate::cursor::{AckError, AckSet, Cursor, CursorSnapshot, SnapshotLimits};
use crate::dispatch::{
    ActiveConsumerChange, ConsumerId, ConsumerInfo, Delivery, DispatchError, Dispatcher,
    DispatcherConfig, EntryMeta, ReadRequest, SubType,
};
use crate::position::{LedgerLayout, Position};

/// ACK's `ack_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckKind {
    Individual,
    Cumulative,
}

/// One message id of an ACK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckedMessage {
    pub position: Position,
    /// The `ack_set` words when the client acks batch indexes (set bit = still unacked). `None`
    /// acknowledges the whole entry, even when the id carries a `batch_index` (pulsar-rs).
    pub ack_set: Option<Vec<i64>>,
}

impl AckedMessage {
    pub fn entry(position: Position) -> Self {
        Self {
            position,
            ack_set: None,
        }
    }
}

/// What an ACK did, for the shell's logs, stats and `ACK_RESPONSE`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AckReport {
    /// A cumulative ack on a Shared or Key_Shared subscription: ignored (Java logs a warning).
    pub ignored_cumulative: bool,
    pub mark_delete_moved: bool,
    /// Ids naming no entry of the topic; nothing was recorded for them.
    pub unknown: Vec<Position>,
    /// Batch-index acks with an `ack_set` larger than any batch this subscription could have
    /// delivered there: ignored (the messages stay unacknowledged and are redelivered).
    pub oversized_ack_sets: Vec<Position>,
}

/// `ack_set` words accepted for an entry whose batch size the dispatcher does not know (acked
/// after the topic was reloaded, before redelivery): batches of up to 4096 messages.
const MAX_UNKNOWN_ACK_SET_WORDS: usize = 64;

#[derive(Clone, Debug)]
pub struct Subscription {
    cursor: Cursor,
    dispatcher: Dispatcher,
}

impl Subscription {
    /// A subscription over `cursor` (new: `Cursor::earliest/latest`, loaded: `Cursor::restore`).
    pub fn new(config: DispatcherConfig, cursor: Cursor, layout: &LedgerLayout) -> Self {
        let dispatcher = Dispatcher::new(config, cursor.next_unacked(layout));
        Self { cursor, dispatcher }
    }

    pub fn cursor(&self) -> &Cursor {
        &self.cursor
    }

    /// The cursor, when the subscription ends (its state goes back to the managed ledger).
    pub fn into_cursor(self) -> Cursor {
        self.cursor
    }

    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }

    pub fn sub_type(&self) -> SubType {
        self.dispatcher.sub_type()
    }

    /// SUBSCRIBE. A different `sub_type` is accepted only while no consumer is attached (the
    /// dispatcher is then rebuilt, reading again from the first unacknowledged entry).
    pub fn add_consumer(
        &mut self,
        layout: &LedgerLayout,
        sub_type: SubType,
        info: ConsumerInfo,
    ) -> Result<Vec<ActiveConsumerChange>, DispatchError> {
        if sub_type != self.sub_type() {
            if let Some(existing) = self.dispatcher.consumer_ids().first() {
                return Err(DispatchError::ConsumerBusy {
                    existing: *existing,
                });
            }
            let mut config = self.dispatcher.config().clone();
            config.sub_type = sub_type;
            self.dispatcher = Dispatcher::new(config, self.cursor.next_unacked(layout));
        }
        self.dispatcher.add_consumer(info)
    }

    /// CLOSE_CONSUMER or a dropped connection.
    pub fn remove_consumer(
        &mut self,
        id: ConsumerId,
    ) -> Result<Vec<ActiveConsumerChange>, DispatchError> {
        self.dispatcher.remove_consumer(id)
    }

    /// UNSUBSCRIBE is allowed only from the last attached consumer (Java's `canUnsubscribe`).
    pub fn can_unsubscribe(&self, id: ConsumerId) -> bool {
        self.dispatcher.consumer_ids() == [id]
    }

    pub fn flow(&mut self, id: ConsumerId, permits: u32) -> Result<(), DispatchError> {
        self.dispatcher.flow(id, permits)
    }

    pub fn redeliver(
        &mut self,
        id: ConsumerId,
        positions: Option<&[Position]>,
    ) -> Result<usize, DispatchError> {
        self.dispatcher.redeliver(id, positions)
    }

    /// ACK. A cumulative ack uses its first message id (Java expects exactly one).
    pub fn ack(
        &mut self,
        layout: &LedgerLayout,
        kind: AckKind,
        messages: &[AckedMessage],
    ) -> AckReport {
        let mut report = AckReport::default();
        if kind == AckKind::Cumulative && !self.sub_type().accepts_cumulative_ack() {
            report.ignored_cumulative = true;
            return report;
        }
        let batch: &[AckedMessage] = match kind {
            AckKind::Individual => messages,
            AckKind::Cumulative => messages.get(..1).unwrap_or_default(),
        };
        for m in batch {
            let p = m.position;
            let ack_set = match &m.ack_set {
                None => None,
                Some(words) => match self.bounded_ack_set(p, words) {
                    Some(words) => Some(words),
                    None => {
                        report.oversized_ack_sets.push(p);
                        continue;
                    }
                },
            };
            let result = match (kind, &ack_set) {
                (AckKind::Individual, None) => self.cursor.ack(layout, p),
                (AckKind::Individual, Some(words)) => {
                    self.cursor.ack_batch_indexes(layout, p, words)
                }
                (AckKind::Cumulative, words) => {
                    self.cursor.ack_cumulative(layout, p, words.as_deref())
                }
            };
            match result {
                Ok(effect) => {
                    if effect.entry_acked {
                        self.dispatcher.entry_acked(p);
                    }
                    report.mark_delete_moved |= effect.mark_delete_moved;
                }
                Err(AckError::UnknownPosition(q)) => report.unknown.push(q),
            }
        }
        if report.mark_delete_moved {
            self.dispatcher.mark_delete_moved(self.cursor.mark_delete());
        }
        report
    }

    /// `words` as the set stored for entry `p`: cut to the batch size the entry was delivered
    /// with, so a client cannot make the cursor (and every later MESSAGE of the entry) carry more
    /// than the batch has; `None` when the size is unknown and the set is implausibly large.
    fn bounded_ack_set(&self, p: Position, words: &[i64]) -> Option<Vec<i64>> {
        match self.dispatcher.pending_messages(p) {
            Some(messages) => {
                // Only the client's words are touched: the batch size comes from the producer
                // and may be huge, so no set of that size is built.
                let mut kept = words[..words.len().min(messages.div_ceil(64) as usize)].to_vec();
                let tail = messages % 64;
                if tail != 0
                    && kept.len() == messages.div_ceil(64) as usize
                    && let Some(last) = kept.last_mut()
                {
                    *last &= ((1u64 << tail) - 1) as i64;
                }
                Some(AckSet::from_words(&kept).to_words())
            }
            None => (words.len() <= MAX_UNKNOWN_ACK_SET_WORDS).then(|| words.to_vec()),
        }
    }

    /// Stops or resumes delivering to a consumer whose connection is full (see
    /// [`Dispatcher::set_paused`]).
    pub fn set_paused(&mut self, id: ConsumerId, paused: bool) -> Result<(), DispatchError> {
        self.dispatcher.set_paused(id, paused)
    }

    /// What to read next (see [`Dispatcher::next_read`]).
    /// The clock (ms since the epoch) and the delayed-delivery policy, set before each read.
    pub fn set_delayed_delivery(&mut self, now_ms: u64, enabled: bool) {
        self.dispatcher.set_clock(now_ms);
        self.dispatcher.set_delayed_delivery(enabled);
    }

    pub fn next_read(&mut self, layout: &LedgerLayout) -> Option<ReadRequest> {
        self.dispatcher.next_read(layout.end_position())
    }

    /// The entries of a [`ReadRequest::Read`], in order as read. Acknowledged entries are
    /// dropped here; the next read starts after the last entry given.
    pub fn read_complete(
        &mut self,
        layout: &LedgerLayout,
        epoch: u64,
        entries: &[EntryMeta],
    ) -> Vec<Delivery> {
        let next = match entries.last() {
            Some(last) => layout.next(last.position),
            None => self.dispatcher.read_position(),
        };
        let unacked: Vec<EntryMeta> = entries
            .iter()
            .filter(|e| !self.cursor.is_entry_acked(e.position))
            .copied()
            .collect();
        self.dispatcher.read_complete(epoch, &unacked, next)
    }

    /// The entries of a [`ReadRequest::Replay`].
    pub fn replay_complete(&mut self, epoch: u64, entries: &[EntryMeta]) -> Vec<Delivery> {
        self.dispatcher.replay_complete(epoch, entries)
    }

    pub fn read_failed(&mut self, epoch: u64) {
        self.dispatcher.read_failed(epoch);
    }

    /// SEEK to a message id (or to the position the shell found for a publish time): the cursor
    /// is reset and every consumer is dropped; the shell sends them CLOSE_CONSUMER so they
    /// re-subscribe with fresh permits (Java's behaviour).
    pub fn seek(&mut self, layout: &LedgerLayout, position: Position) -> Vec<ConsumerId> {
        self.cursor.reset_to(layout, position);
        self.dispatcher.reset(self.cursor.next_unacked(layout))
    }

    /// Moves the next read back to `to`, and mark-delete below it (see [`Dispatcher::rewind`]).
    pub fn rewind(&mut self, to: Position) {
        if self.dispatcher.has_consumers() {
            return;
        }
        self.cursor
            .rewind_mark_delete(Position::new(to.ledger_id, to.entry_id - 1));
        self.dispatcher.rewind(to);
    }

    /// A compacted read passed over `(after, through]`: those entries were superseded and are
    /// never delivered, so they count as acknowledged. True if mark-delete moved.
    pub fn ack_skipped(
        &mut self,
        layout: &LedgerLayout,
        after: Position,
        through: Position,
    ) -> bool {
        if self.cursor.ack_range(layout, after, through) {
            self.dispatcher.mark_delete_moved(self.cursor.mark_delete());
            true
        } else {
            false
        }
    }

    /// Message TTL: everything up to and including `last` counts as acknowledged, whatever the
    /// subscription type (unlike a client's cumulative ack, which Shared ignores). Entries held
    /// by consumers stay with them until acked or redelivered; they are just no longer backlog.
    pub fn expire_through(&mut self, layout: &LedgerLayout, last: Position) -> bool {
        match self.cursor.ack_cumulative(layout, last, None) {
            Ok(effect) if effect.mark_delete_moved => {
                self.dispatcher.mark_delete_moved(self.cursor.mark_delete());
                true
            }
            _ => false,
        }
    }

    /// The cursor state to persist.
    pub fn snapshot(&self, limits: SnapshotLimits) -> CursorSnapshot {
        self.cursor.snapshot(limits)
    }

    /// Entries not yet acknowledged.
    pub fn backlog(&self, layout: &LedgerLayout) -> u64 {
        self.cursor.backlog(layout)
    }
}

#[cfg(test)]
#[path = "subscription_test.rs"]
mod tests;
