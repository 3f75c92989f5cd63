//! The dispatcher's state and its consumer and acknowledgement events; reading and routing
//! entries live in `read`.

use std::collections::{BTreeMap, HashMap};

use super::delayed::DelayIndex;
use super::key_shared::{HashHolders, HashRing, StickyRanges};
use super::redelivery::{EntryInfo, RedeliveryQueue};
use super::selection::{Candidate, insertion_index, pick_active};
use super::{
    ActiveConsumerChange, ConsumerId, ConsumerInfo, DispatchError, DispatcherConfig, SubType,
};
use crate::position::Position;

#[derive(Clone, Debug)]
pub(super) struct ConsumerState {
    pub(super) info: ConsumerInfo,
    /// Messages it may still receive; may go negative after a batch.
    pub(super) permits: i64,
    /// Delivered, not yet acknowledged.
    pub(super) pending: BTreeMap<Position, EntryInfo>,
    /// Its connection is not taking more (the shell could not queue a frame): it gets nothing
    /// until resumed, whatever its permits.
    pub(super) paused: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum InFlight {
    Replay,
    Read,
}

/// One subscription's dispatch state. See the module documentation for how the shell drives it.
#[derive(Clone, Debug)]
pub struct Dispatcher {
    pub(super) config: DispatcherConfig,
    pub(super) consumers: HashMap<ConsumerId, ConsumerState>,
    /// Arrival order (Failover's tie-break among equal names).
    pub(super) arrival: Vec<ConsumerId>,
    /// Shared round-robin order: by priority level, arrival order within a level.
    pub(super) rr_order: Vec<(ConsumerId, i32)>,
    pub(super) rr_index: usize,
    /// Which consumer holds each pending entry.
    pub(super) owners: BTreeMap<Position, ConsumerId>,
    pub(super) active: Option<ConsumerId>,
    pub(super) ring: HashRing,
    /// Key_Shared STICKY: the consumers' own ranges (the ring is unused then).
    pub(super) sticky: StickyRanges,
    pub(super) holders: HashHolders,
    pub(super) queue: RedeliveryQueue,
    /// Delayed entries not yet due.
    pub(super) delayed: DelayIndex,
    /// The shell's clock (ms since the epoch), for delayed delivery.
    pub(super) now_ms: u64,
    /// The read in flight re-reads entries the delay index evicted: where it started, and the
    /// read position it started below.
    pub(super) rescanning: Option<(Position, Position)>,
    pub(super) read_position: Position,
    pub(super) epoch: u64,
    pub(super) in_flight: Option<InFlight>,
    /// Messages per entry seen in reads, in sixteenths.
    pub(super) avg_messages_per_entry_x16: u32,
}

impl Dispatcher {
    /// A dispatcher that will read new entries from `read_position` (the cursor's first
    /// unacknowledged position).
    pub fn new(config: DispatcherConfig, read_position: Position) -> Self {
        let ring = HashRing::new(config.key_shared_replica_points);
        let delayed = DelayIndex::new(config.delayed_index_capacity);
        Self {
            delayed,
            now_ms: 0,
            rescanning: None,
            config,
            consumers: HashMap::new(),
            arrival: Vec::new(),
            rr_order: Vec::new(),
            rr_index: 0,
            owners: BTreeMap::new(),
            active: None,
            ring,
            sticky: StickyRanges::default(),
            holders: HashHolders::default(),
            queue: RedeliveryQueue::default(),
            read_position,
            epoch: 0,
            in_flight: None,
            avg_messages_per_entry_x16: 16,
        }
    }

    pub fn sub_type(&self) -> SubType {
        self.config.sub_type
    }

    pub fn config(&self) -> &DispatcherConfig {
        &self.config
    }

    /// The next position a sequential read starts from.
    pub fn read_position(&self) -> Position {
        self.read_position
    }

    /// Consumer ids in arrival order.
    pub fn consumer_ids(&self) -> &[ConsumerId] {
        &self.arrival
    }

    pub fn has_consumers(&self) -> bool {
        !self.consumers.is_empty()
    }

    /// Exclusive/Failover: the consumer receiving messages.
    pub fn active_consumer(&self) -> Option<ConsumerId> {
        self.active
    }

    pub fn permits(&self, id: ConsumerId) -> Option<i64> {
        self.consumers.get(&id).map(|c| c.permits)
    }

    /// Entries delivered to `id` and not yet acknowledged, in position order.
    pub fn pending(&self, id: ConsumerId) -> Vec<Position> {
        self.consumers
            .get(&id)
            .map(|c| c.pending.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Unacknowledged messages delivered to `id` (Java's `unackedMessages` stat).
    pub fn unacked_messages(&self, id: ConsumerId) -> u64 {
        self.consumers
            .get(&id)
            .map(|c| c.pending.values().map(|i| u64::from(i.num_messages)).sum())
            .unwrap_or(0)
    }

    /// Entries waiting for redelivery, in position order.
    pub fn redelivery_queue(&self) -> Vec<Position> {
        self.queue.iter().map(|(p, _)| p).collect()
    }

    pub fn redelivery_count(&self, p: Position) -> u32 {
        self.queue.redelivery_count(p)
    }

    /// Key_Shared: slot ranges `[start, end]` per consumer, for stats.
    pub fn key_hash_ranges(&self) -> Vec<(u32, u32, ConsumerId)> {
        if self.config.key_shared_sticky {
            return self.sticky.ranges();
        }
        self.ring.ranges()
    }

    /// The Key_Shared consumer owning `slot` (a ring slot, or a sticky hash); `None` when no
    /// consumer takes it.
    pub(super) fn key_owner(&self, slot: u32) -> Option<ConsumerId> {
        if self.config.key_shared_sticky {
            self.sticky.select(slot)
        } else {
            self.ring.select(slot)
        }
    }

    /// The slot an entry is routed and ordered by in this subscription.
    pub(super) fn slot_of(&self, e: &super::EntryMeta) -> u32 {
        if self.config.key_shared_sticky {
            e.range_hash
        } else {
            e.slot
        }
    }

    pub fn add_consumer(
        &mut self,
        info: ConsumerInfo,
    ) -> Result<Vec<ActiveConsumerChange>, DispatchError> {
        let id = info.id;
        if self.consumers.contains_key(&id) {
            return Err(DispatchError::DuplicateConsumer(id));
        }
        if self.config.sub_type == SubType::Exclusive
            && let Some(existing) = self.arrival.first()
        {
            return Err(DispatchError::ConsumerBusy {
                existing: *existing,
            });
        }
        if self.config.sub_type == SubType::KeyShared && self.config.key_shared_sticky {
            self.sticky
                .add(id, &info.hash_ranges)
                .map_err(DispatchError::ConsumerAssign)?;
        }
        let at = insertion_index(self.rr_order.iter().map(|(_, l)| *l), info.priority_level);
        self.rr_order.insert(at, (id, info.priority_level));
        self.arrival.push(id);
        if self.config.sub_type == SubType::KeyShared && !self.config.key_shared_sticky {
            self.ring.add(id, &info.name);
        }
        self.consumers.insert(
            id,
            ConsumerState {
                info,
                permits: 0,
                pending: BTreeMap::new(),
                paused: false,
            },
        );
        if self.config.sub_type.is_single_active() {
            return Ok(self.repick_active(Some(id)));
        }
        Ok(Vec::new())
    }

    /// A consumer closed or its connection dropped: its unacknowledged entries go back to the
    /// redelivery queue (their redelivery count unchanged, as Java).
    pub fn remove_consumer(
        &mut self,
        id: ConsumerId,
    ) -> Result<Vec<ActiveConsumerChange>, DispatchError> {
        let state = self
            .consumers
            .remove(&id)
            .ok_or(DispatchError::UnknownConsumer(id))?;
        self.arrival.retain(|c| *c != id);
        self.rr_order.retain(|(c, _)| *c != id);
        self.ring.remove(id);
        self.sticky.remove(id);
        self.requeue(id, state.pending);
        if self.active == Some(id) {
            self.active = None;
        }
        if self.config.sub_type.is_single_active() && !self.consumers.is_empty() {
            return Ok(self.repick_active(None));
        }
        Ok(Vec::new())
    }

    fn requeue(&mut self, id: ConsumerId, pending: BTreeMap<Position, EntryInfo>) {
        for (p, info) in pending {
            self.owners.remove(&p);
            self.holders.remove(info.slot, id);
            self.queue.insert(p, info);
        }
    }

    /// Re-elects the active consumer; on a change the previous one's unacknowledged entries move
    /// to the redelivery queue (Java rewinds the cursor) and Failover announces the change to
    /// every consumer. `joined` alone hears about an unchanged active consumer.
    fn repick_active(&mut self, joined: Option<ConsumerId>) -> Vec<ActiveConsumerChange> {
        let candidates: Vec<Candidate<'_>> = self
            .arrival
            .iter()
            .filter_map(|id| self.consumers.get(id))
            .map(|c| Candidate {
                id: c.info.id,
                name: &c.info.name,
                priority_level: c.info.priority_level,
            })
            .collect();
        let picked = pick_active(
            &candidates,
            self.config.partition_index,
            &self.config.topic_name,
            self.config.failover_consistent_hashing,
        );
        let failover = self.config.sub_type == SubType::Failover;
        if picked == self.active {
            return match (joined, failover) {
                (Some(j), true) => {
                    vec![ActiveConsumerChange {
                        consumer_id: j,
                        is_active: picked == Some(j),
                    }]
                }
                _ => Vec::new(),
            };
        }
        if let Some(old) = self.active
            && let Some(state) = self.consumers.get_mut(&old)
        {
            let pending = std::mem::take(&mut state.pending);
            self.requeue(old, pending);
        }
        self.active = picked;
        if !failover {
            return Vec::new();
        }
        self.arrival
            .iter()
            .map(|c| ActiveConsumerChange {
                consumer_id: *c,
                is_active: Some(*c) == picked,
            })
            .collect()
    }

    /// Stops (`true`) or resumes delivering to a consumer whose connection is not taking more
    /// frames; its permits are kept. Entries that would have gone to it wait in the redelivery
    /// queue (Shared sends them to others; Key_Shared keeps its keys behind them).
    pub fn set_paused(&mut self, id: ConsumerId, paused: bool) -> Result<(), DispatchError> {
        let c = self
            .consumers
            .get_mut(&id)
            .ok_or(DispatchError::UnknownConsumer(id))?;
        c.paused = paused;
        Ok(())
    }

    /// Messages in entry `p`, if it is delivered and not yet acknowledged.
    pub fn pending_messages(&self, p: Position) -> Option<u32> {
        let id = self.owners.get(&p)?;
        let info = self.consumers.get(id)?.pending.get(&p)?;
        Some(info.num_messages)
    }

    /// FLOW: `permits` more messages for this consumer.
    pub fn flow(&mut self, id: ConsumerId, permits: u32) -> Result<(), DispatchError> {
        let c = self
            .consumers
            .get_mut(&id)
            .ok_or(DispatchError::UnknownConsumer(id))?;
        c.permits += i64::from(permits);
        Ok(())
    }

    /// REDELIVER_UNACKNOWLEDGED_MESSAGES / negative ack. Shared and Key_Shared redeliver only the
    /// listed entries that this consumer holds (all of them when none is listed); Exclusive and
    /// Failover always redeliver everything the consumer holds (Java ignores the ids there).
    /// Each redelivered entry's count goes up by one. Returns how many entries were put back.
    pub fn redeliver(
        &mut self,
        id: ConsumerId,
        positions: Option<&[Position]>,
    ) -> Result<usize, DispatchError> {
        let single = self.config.sub_type.is_single_active();
        let state = self
            .consumers
            .get_mut(&id)
            .ok_or(DispatchError::UnknownConsumer(id))?;
        let taken: BTreeMap<Position, EntryInfo> = match positions {
            Some(ps) if !single && !ps.is_empty() => ps
                .iter()
                .filter_map(|p| state.pending.remove(p).map(|i| (*p, i)))
                .collect(),
            _ => std::mem::take(&mut state.pending),
        };
        let n = taken.len();
        for p in taken.keys() {
            self.queue.bump_redelivery_count(*p);
        }
        self.requeue(id, taken);
        Ok(n)
    }

    /// The shell's clock, ms since the epoch: delayed entries due by then go out.
    pub fn set_clock(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    /// Turns delayed delivery on or off (the namespace policy); off releases every held entry.
    pub fn set_delayed_delivery(&mut self, enabled: bool) {
        if self.config.delayed_delivery == enabled {
            return;
        }
        self.config.delayed_delivery = enabled;
        if !enabled {
            for (p, info) in self.delayed.release_all() {
                self.queue.insert(p, info);
            }
        }
    }

    /// When the first delayed entry is due (ms since the epoch), for the shell's timer.
    pub fn next_delayed_at(&self) -> Option<u64> {
        self.delayed.next_due()
    }

    /// Delayed entries waiting (Pulsar's `msgDelayed`, counted in entries).
    pub fn delayed_entries(&self) -> usize {
        self.delayed.len()
    }

    /// The cursor reports `p` fully acknowledged (by whichever consumer).
    pub fn entry_acked(&mut self, p: Position) {
        self.delayed.remove(p);
        self.queue.acked(p);
        if let Some(id) = self.owners.remove(&p)
            && let Some(info) = self
                .consumers
                .get_mut(&id)
                .and_then(|c| c.pending.remove(&p))
        {
            self.holders.remove(info.slot, id);
        }
    }

    /// The cursor's mark-delete position moved to `mark_delete`: all at or below it is acked.
    pub fn mark_delete_moved(&mut self, mark_delete: Position) {
        self.delayed.remove_through(mark_delete);
        self.queue.remove_through(mark_delete);
        let keep = self.owners.split_off(&mark_delete.successor());
        for (p, id) in std::mem::replace(&mut self.owners, keep) {
            if let Some(info) = self
                .consumers
                .get_mut(&id)
                .and_then(|c| c.pending.remove(&p))
            {
                self.holders.remove(info.slot, id);
            }
        }
    }

    /// Moves the next read back to `to` (a read-compacted subscription whose compacted entries
    /// lie before what the topic still holds). Only while no consumer is attached.
    pub fn rewind(&mut self, to: Position) {
        if self.consumers.is_empty() && to < self.read_position {
            self.read_position = to;
            self.epoch += 1;
            self.in_flight = None;
        }
    }

    /// Seek: forgets every consumer, pending entry and queued redelivery, and restarts reading at
    /// `read_position`. Returns the consumers to disconnect (Java closes them so that they
    /// re-subscribe with fresh permits). Reads issued before are ignored when they complete.
    pub fn reset(&mut self, read_position: Position) -> Vec<ConsumerId> {
        let dropped = std::mem::take(&mut self.arrival);
        self.consumers.clear();
        self.rr_order.clear();
        self.rr_index = 0;
        self.owners.clear();
        self.active = None;
        self.ring = HashRing::new(self.config.key_shared_replica_points);
        self.sticky = StickyRanges::default();
        self.holders.clear();
        self.queue.clear();
        self.delayed.clear();
        self.rescanning = None;
        self.read_position = read_position;
        self.epoch += 1;
        self.in_flight = None;
        dropped
    }
}
