//! Planning reads and routing the entries that come back.
//!
//! The redelivery queue is always planned first, lowest position first, and only as far as the
//! consumers it would go to have permits. New entries are read when the queue has nothing
//! deliverable. Each entry is checked on its own: a consumer gets it only while its permits are
//! above zero (an entry of N messages then takes N, so permits can go negative). Whatever cannot
//! go out waits in the queue. Ordering rules:
//! - Exclusive/Failover: nothing overtakes a waiting entry.
//! - Key_Shared (unless out-of-order delivery is allowed): an entry waits while an earlier entry
//!   of its slot waits, or while another consumer still holds unacknowledged entries of its slot
//!   (the slot moved to a new consumer and the previous owner has not drained it yet).
//! - Shared: no order; Java's per-turn round-robin batch.

use std::collections::{HashMap, HashSet};

use super::dispatcher::{Dispatcher, InFlight};
use super::redelivery::EntryInfo;
use super::selection::next_round_robin;
use super::{ConsumerId, Delivery, EntryMeta, ReadRequest, SubType};
use crate::position::Position;

impl Dispatcher {
    fn available(&self, id: ConsumerId) -> i64 {
        self.consumers
            .get(&id)
            .filter(|c| !c.paused)
            .map_or(0, |c| c.permits.max(0))
    }

    fn total_available(&self) -> i64 {
        self.consumers
            .values()
            .filter(|c| !c.paused)
            .map(|c| c.permits.max(0))
            .sum()
    }

    fn ordered_key_shared(&self) -> bool {
        self.config.sub_type == SubType::KeyShared && !self.config.key_shared_allow_out_of_order
    }

    fn look_ahead_limit(&self) -> usize {
        let per_sub = self.config.key_shared_look_ahead_per_subscription;
        let per_consumer = self
            .config
            .key_shared_look_ahead_per_consumer
            .saturating_mul(self.consumers.len());
        match (per_consumer, per_sub) {
            (0, 0) => usize::MAX,
            (0, s) => s,
            (c, 0) => c,
            (c, s) => c.min(s),
        }
    }

    /// What to read next, or nothing (no consumer can take anything, a read is already in
    /// flight, or nothing new exists before `end`, the topic's end position).
    pub fn next_read(&mut self, end: Position) -> Option<ReadRequest> {
        for (p, info) in self.delayed.release_due(self.now_ms) {
            self.queue.insert(p, info);
        }
        if self.in_flight.is_some() || self.consumers.is_empty() {
            return None;
        }
        let positions = self.plan_replay();
        if !positions.is_empty() {
            self.in_flight = Some(InFlight::Replay);
            return Some(ReadRequest::Replay {
                epoch: self.epoch,
                positions,
            });
        }
        let messages = self.new_read_budget()?;
        if let Some(from) = self.delayed.take_rescan() {
            // Entries the delay index evicted: read again from the lowest of them.
            self.rescanning = Some((from, self.read_position));
            self.in_flight = Some(InFlight::Read);
            return Some(ReadRequest::Read {
                epoch: self.epoch,
                from,
                max_entries: self.config.max_read_batch.max(1),
            });
        }
        if self.read_position >= end {
            return None;
        }
        let per_entry = i64::from((self.avg_messages_per_entry_x16 + 8) / 16).max(1);
        let entries = (messages / per_entry).max(1);
        let max_entries = u32::try_from(entries)
            .unwrap_or(u32::MAX)
            .min(self.config.max_read_batch);
        self.in_flight = Some(InFlight::Read);
        Some(ReadRequest::Read {
            epoch: self.epoch,
            from: self.read_position,
            max_entries,
        })
    }

    fn plan_replay(&self) -> Vec<Position> {
        let limit = self.config.max_read_batch.max(1) as usize;
        let mut out = Vec::new();
        if self.config.sub_type == SubType::KeyShared {
            let mut budgets: HashMap<ConsumerId, i64> = HashMap::new();
            let mut blocked: HashSet<u32> = HashSet::new();
            for (p, info) in self.queue.iter() {
                if out.len() >= limit {
                    break;
                }
                let Some(c) = self.key_owner(info.slot) else {
                    // No consumer takes this key (STICKY ranges leave it out): it waits.
                    blocked.insert(info.slot);
                    continue;
                };
                let budget = budgets.entry(c).or_insert_with(|| self.available(c));
                let held = self.ordered_key_shared() && self.holders.held_by_other(info.slot, c);
                if blocked.contains(&info.slot) || *budget <= 0 || held {
                    blocked.insert(info.slot);
                    continue;
                }
                *budget -= i64::from(info.num_messages);
                out.push(p);
            }
            return out;
        }
        let mut budget = match self.config.sub_type {
            SubType::Shared => self.total_available(),
            _ => self.active.map_or(0, |a| self.available(a)),
        };
        for (p, info) in self.queue.iter() {
            if out.len() >= limit || budget <= 0 {
                break;
            }
            budget -= i64::from(info.num_messages);
            out.push(p);
        }
        out
    }

    /// Messages' worth of new entries to read, if reading new entries is allowed now.
    fn new_read_budget(&self) -> Option<i64> {
        let budget = match self.config.sub_type {
            SubType::Exclusive | SubType::Failover => {
                if !self.queue.is_empty() {
                    return None;
                }
                self.available(self.active?)
            }
            SubType::Shared => self.total_available(),
            SubType::KeyShared => {
                if self.queue.len() >= self.look_ahead_limit() {
                    return None;
                }
                self.total_available()
            }
        };
        (budget > 0).then_some(budget.min(i64::from(self.config.max_read_batch)))
    }

    /// The entries of a [`ReadRequest::Read`]: `next_read_position` is where the next sequential
    /// read starts (the position after the last entry read, even if the shell dropped acked
    /// entries from `entries`). Stale results (after a reset) are ignored.
    pub fn read_complete(
        &mut self,
        epoch: u64,
        entries: &[EntryMeta],
        next_read_position: Position,
    ) -> Vec<Delivery> {
        if epoch != self.epoch || self.in_flight != Some(InFlight::Read) {
            return Vec::new();
        }
        self.in_flight = None;
        let rescanned_below = self.rescanning.take();
        self.read_position = self.read_position.max(next_read_position);
        let fresh: Vec<EntryMeta> = entries
            .iter()
            .filter(|e| {
                !self.queue.contains(e.position)
                    && !self.is_pending(e.position)
                    && !self.delayed.contains(e.position)
            })
            .copied()
            .collect();
        if !fresh.is_empty() {
            let messages: u64 = fresh.iter().map(|e| u64::from(e.num_messages)).sum();
            // Moving average in sixteenths, as Java's weighted `avgMessagesPerEntry`.
            let sample = u32::try_from(messages * 16 / fresh.len() as u64).unwrap_or(u32::MAX);
            let avg = self.avg_messages_per_entry_x16;
            self.avg_messages_per_entry_x16 =
                (avg.saturating_mul(3).saturating_add(sample) / 4).max(16);
        }
        let deliveries = self.route(&fresh);
        if let Some((_, below)) = rescanned_below
            && next_read_position < below
        {
            self.delayed.resume_rescan(next_read_position);
        }
        deliveries
    }

    /// The entries of a [`ReadRequest::Replay`]. Entries acknowledged meanwhile are skipped.
    pub fn replay_complete(&mut self, epoch: u64, entries: &[EntryMeta]) -> Vec<Delivery> {
        if epoch != self.epoch || self.in_flight != Some(InFlight::Replay) {
            return Vec::new();
        }
        self.in_flight = None;
        let fresh: Vec<EntryMeta> = entries
            .iter()
            .filter(|e| self.queue.contains(e.position))
            .copied()
            .collect();
        self.route(&fresh)
    }

    /// The read of `epoch` failed; a new one may be planned.
    pub fn read_failed(&mut self, epoch: u64) {
        if epoch == self.epoch {
            self.in_flight = None;
            if let Some((from, _)) = self.rescanning.take() {
                // The re-read failed: it starts over from the same place next time.
                self.delayed.resume_rescan(from);
            }
        }
    }

    fn is_pending(&self, p: Position) -> bool {
        self.owners.contains_key(&p)
    }

    fn route(&mut self, entries: &[EntryMeta]) -> Vec<Delivery> {
        let mut out = Vec::with_capacity(entries.len());
        let mut turn: Option<(ConsumerId, u32)> = None;
        let mut blocked_slots: HashSet<u32> = HashSet::new();
        let mut single_blocked = false;
        for e in entries {
            let slot = self.slot_of(e);
            let info = EntryInfo {
                num_messages: e.num_messages.max(1),
                slot,
            };
            if let Some(at) = self.delay_of(e) {
                self.delayed.insert(e.position, at, info);
                continue;
            }
            let target = match self.config.sub_type {
                SubType::Exclusive | SubType::Failover => self.active.filter(|a| {
                    !single_blocked && self.available(*a) > 0 && !self.queue.has_before(e.position)
                }),
                SubType::Shared => {
                    let batch = self.config.max_round_robin_batch.max(1);
                    match turn {
                        Some((c, n)) if n < batch && self.available(c) > 0 => Some(c),
                        _ => {
                            let consumers = &self.consumers;
                            let next = next_round_robin(&self.rr_order, &mut self.rr_index, |c| {
                                consumers
                                    .get(&c)
                                    .is_some_and(|s| !s.paused && s.permits > 0)
                            });
                            turn = next.map(|c| (c, 0));
                            next
                        }
                    }
                }
                SubType::KeyShared => self.key_shared_target(e.position, slot, &blocked_slots),
            };
            match target {
                Some(c) => {
                    if let Some((_, n)) = turn.as_mut() {
                        *n = n.saturating_add(info.num_messages);
                    }
                    out.push(self.deliver(c, e.position, info));
                }
                None => {
                    single_blocked = true;
                    blocked_slots.insert(slot);
                    self.queue.insert(e.position, info);
                }
            }
        }
        out
    }

    /// When the entry is to be delivered, if that is later than now and this subscription
    /// holds delayed entries (Shared and Key_Shared with delayed delivery on).
    fn delay_of(&self, e: &EntryMeta) -> Option<u64> {
        let holds = self.config.delayed_delivery
            && matches!(self.config.sub_type, SubType::Shared | SubType::KeyShared);
        e.deliver_at.filter(|at| holds && *at > self.now_ms)
    }

    /// The owner of the entry's slot, if it may have the entry now.
    fn key_shared_target(
        &self,
        position: Position,
        slot: u32,
        blocked_slots: &HashSet<u32>,
    ) -> Option<ConsumerId> {
        let c = self.key_owner(slot)?;
        if blocked_slots.contains(&slot) || self.available(c) <= 0 {
            return None;
        }
        let ordered = self.ordered_key_shared();
        if ordered
            && (self.holders.held_by_other(slot, c) || self.queue.has_slot_before(slot, position))
        {
            return None;
        }
        Some(c)
    }

    fn deliver(&mut self, id: ConsumerId, p: Position, info: EntryInfo) -> Delivery {
        self.queue.remove(p);
        if self.config.sub_type == SubType::KeyShared {
            self.holders.add(info.slot, id);
        }
        if let Some(c) = self.consumers.get_mut(&id) {
            c.permits -= i64::from(info.num_messages);
            c.pending.insert(p, info);
            self.owners.insert(p, id);
        }
        Delivery {
            consumer_id: id,
            position: p,
            num_messages: info.num_messages,
            redelivery_count: self.queue.redelivery_count(p),
        }
    }
}
