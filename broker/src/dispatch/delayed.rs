//! The delay index of a Shared or Key_Shared subscription (delayed delivery, PIP-26).
//!
//! An entry whose `deliver_at_time` is in the future is held here instead of being dispatched;
//! once due it moves to the redelivery queue and goes out like any replay. Nothing here is
//! persisted, and nothing needs to be: a delayed entry is never acknowledged before it is
//! delivered, so after a restart or a topic handover the subscription reads it again from the
//! ledger and indexes it again.
//!
//! Memory is bounded by a capacity. When an insert goes over it, the entry due last is evicted
//! and the index remembers the lowest position it evicted (`rescan`); once the index has
//! drained to half its capacity, the dispatcher reads the ledger again from there. Every entry
//! below the read position that is neither acknowledged, delivered, queued nor indexed is an
//! evicted delayed entry, so that read finds exactly those (Pulsar's bucket index spills to
//! ledgers of its own instead; here the topic's own ledger is the spill).

use std::collections::{BTreeMap, BTreeSet};

use super::redelivery::EntryInfo;
use crate::position::Position;

/// Entries one subscription indexes at most (about 110 bytes each; the broker's
/// `delayed_index_entries_per_subscription`).
pub const DEFAULT_CAPACITY: usize = 1_000_000;

#[derive(Clone, Debug)]
pub struct DelayIndex {
    by_position: BTreeMap<Position, (u64, EntryInfo)>,
    by_time: BTreeSet<(u64, Position)>,
    capacity: usize,
    rescan: Option<Position>,
}

impl DelayIndex {
    pub fn new(capacity: usize) -> Self {
        Self {
            by_position: BTreeMap::new(),
            by_time: BTreeSet::new(),
            capacity: capacity.max(1),
            rescan: None,
        }
    }

    pub fn len(&self) -> usize {
        self.by_position.len()
    }

    pub fn contains(&self, p: Position) -> bool {
        self.by_position.contains_key(&p)
    }

    /// Holds `p` until `deliver_at` (ms since the epoch). Over capacity, the entry due last is
    /// evicted and must be read again later.
    pub fn insert(&mut self, p: Position, deliver_at: u64, info: EntryInfo) {
        if let Some((old, _)) = self.by_position.insert(p, (deliver_at, info)) {
            self.by_time.remove(&(old, p));
        }
        self.by_time.insert((deliver_at, p));
        while self.by_position.len() > self.capacity {
            let Some((_, evicted)) = self.by_time.pop_last() else {
                break;
            };
            self.by_position.remove(&evicted);
            self.rescan = Some(self.rescan.map_or(evicted, |r| r.min(evicted)));
        }
    }

    /// The entry was acknowledged (or skipped) while it waited.
    pub fn remove(&mut self, p: Position) {
        if let Some((at, _)) = self.by_position.remove(&p) {
            self.by_time.remove(&(at, p));
        }
    }

    /// Everything at or below `p` was acknowledged.
    pub fn remove_through(&mut self, p: Position) {
        let keep = self.by_position.split_off(&p.successor());
        for (q, (at, _)) in std::mem::replace(&mut self.by_position, keep) {
            self.by_time.remove(&(at, q));
        }
    }

    /// When the first held entry is due.
    pub fn next_due(&self) -> Option<u64> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// Takes out every entry due at `now`, in position order.
    pub fn release_due(&mut self, now: u64) -> Vec<(Position, EntryInfo)> {
        let mut out = Vec::new();
        while let Some((at, p)) = self.by_time.first().copied() {
            if at > now {
                break;
            }
            self.by_time.pop_first();
            if let Some((_, info)) = self.by_position.remove(&p) {
                out.push((p, info));
            }
        }
        out.sort_unstable_by_key(|(p, _)| *p);
        out
    }

    /// Takes out everything (delayed delivery was turned off).
    pub fn release_all(&mut self) -> Vec<(Position, EntryInfo)> {
        self.by_time.clear();
        self.rescan = None;
        std::mem::take(&mut self.by_position)
            .into_iter()
            .map(|(p, (_, info))| (p, info))
            .collect()
    }

    /// Where evicted entries must be read again from, once there is room for them (half the
    /// capacity free); taken, so the caller sets it again if its read stops short.
    pub fn take_rescan(&mut self) -> Option<Position> {
        if self.by_position.len() > self.capacity / 2 {
            return None;
        }
        self.rescan.take()
    }

    /// Puts back where a rescan must go on from (lowest of this and any new eviction).
    pub fn resume_rescan(&mut self, from: Position) {
        self.rescan = Some(self.rescan.map_or(from, |r| r.min(from)));
    }

    pub fn clear(&mut self) {
        self.by_position.clear();
        self.by_time.clear();
        self.rescan = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(e: i64) -> Position {
        Position::new(1, e)
    }

    const INFO: EntryInfo = EntryInfo {
        num_messages: 1,
        slot: 7,
    };

    #[test]
    fn entries_come_out_when_due_in_position_order() {
        let mut d = DelayIndex::new(100);
        d.insert(p(3), 500, INFO);
        d.insert(p(1), 200, INFO);
        d.insert(p(2), 200, INFO);
        assert_eq!(d.next_due(), Some(200));
        assert!(d.release_due(199).is_empty());
        let due: Vec<Position> = d.release_due(200).into_iter().map(|(q, _)| q).collect();
        assert_eq!(due, vec![p(1), p(2)]);
        d.remove(p(3));
        assert_eq!((d.len(), d.next_due()), (0, None));
    }

    #[test]
    fn acknowledged_entries_leave_the_index() {
        let mut d = DelayIndex::new(100);
        for e in 0..10 {
            d.insert(p(e), 1000 + e as u64, INFO);
        }
        d.remove_through(p(4));
        assert_eq!(d.len(), 5);
        assert_eq!(d.next_due(), Some(1005));
        assert!(!d.contains(p(4)) && d.contains(p(5)));
    }

    #[test]
    fn over_capacity_the_latest_are_evicted_and_rescanned_when_room_returns() {
        let mut d = DelayIndex::new(4);
        for (e, at) in [(0, 100), (1, 900), (2, 200), (3, 800), (4, 300), (5, 50)] {
            d.insert(p(e), at, INFO);
        }
        // 900 (entry 1) and 800 (entry 3) were due last: evicted, lowest position remembered.
        assert_eq!(d.len(), 4);
        assert!(!d.contains(p(1)) && !d.contains(p(3)));
        assert_eq!(d.take_rescan(), None, "no room yet");
        assert_eq!(d.release_due(250).len(), 3);
        assert_eq!(d.take_rescan(), Some(p(1)));
        assert_eq!(d.take_rescan(), None, "taken");
        d.resume_rescan(p(4));
        d.resume_rescan(p(2));
        assert_eq!(d.take_rescan(), Some(p(2)));
    }
}
