//! Entries waiting to be (re)delivered, served before new reads, lowest position first.
//!
//! Java's `MessageRedeliveryController`: positions put back by a consumer's close, a negative
//! ack, a failover switch, or a read whose entries could not all be dispatched. Each carries its
//! batch size and Key_Shared slot so that the dispatcher can plan replays without reading the
//! entry, and the queue indexes slots so Key_Shared can keep a key's later entries behind it.
//! Redelivery counts live here too (Java's `InMemoryRedeliveryTracker`): they survive delivery
//! and are dropped on acknowledgement.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::position::Position;

/// What the dispatcher knows about an entry without its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryInfo {
    pub num_messages: u32,
    pub slot: u32,
}

#[derive(Clone, Debug, Default)]
pub struct RedeliveryQueue {
    entries: BTreeMap<Position, EntryInfo>,
    by_slot: HashMap<u32, BTreeSet<Position>>,
    counts: BTreeMap<Position, u32>,
}

impl RedeliveryQueue {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, p: Position) -> bool {
        self.entries.contains_key(&p)
    }

    pub fn insert(&mut self, p: Position, info: EntryInfo) {
        if let Some(old) = self.entries.insert(p, info) {
            self.unindex(p, old.slot);
        }
        self.by_slot.entry(info.slot).or_default().insert(p);
    }

    pub fn remove(&mut self, p: Position) -> Option<EntryInfo> {
        let info = self.entries.remove(&p)?;
        self.unindex(p, info.slot);
        Some(info)
    }

    fn unindex(&mut self, p: Position, slot: u32) {
        if let Some(set) = self.by_slot.get_mut(&slot) {
            set.remove(&p);
            if set.is_empty() {
                self.by_slot.remove(&slot);
            }
        }
    }

    /// Whether an entry of `slot` below `p` is waiting (it must go out before `p`).
    pub fn has_slot_before(&self, slot: u32, p: Position) -> bool {
        self.by_slot
            .get(&slot)
            .and_then(|s| s.first())
            .is_some_and(|first| *first < p)
    }

    /// Whether any entry below `p` is waiting.
    pub fn has_before(&self, p: Position) -> bool {
        self.entries.keys().next().is_some_and(|first| *first < p)
    }

    pub fn iter(&self) -> impl Iterator<Item = (Position, EntryInfo)> + '_ {
        self.entries.iter().map(|(p, i)| (*p, *i))
    }

    /// Drops everything at or below `p` (acknowledged by a mark-delete move), counts included.
    pub fn remove_through(&mut self, p: Position) {
        let keep = self.entries.split_off(&p.successor());
        for (q, info) in std::mem::replace(&mut self.entries, keep) {
            self.unindex(q, info.slot);
        }
        self.counts = self.counts.split_off(&p.successor());
    }

    pub fn redelivery_count(&self, p: Position) -> u32 {
        self.counts.get(&p).copied().unwrap_or(0)
    }

    pub fn bump_redelivery_count(&mut self, p: Position) {
        *self.counts.entry(p).or_default() += 1;
    }

    /// The entry was acknowledged: forget it entirely.
    pub fn acked(&mut self, p: Position) {
        self.remove(p);
        self.counts.remove(&p);
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.by_slot.clear();
        self.counts.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(e: i64) -> Position {
        Position::new(1, e)
    }

    #[test]
    fn slot_index_and_counts_follow_the_entries() {
        let mut q = RedeliveryQueue::default();
        let info = |slot| EntryInfo {
            num_messages: 1,
            slot,
        };
        q.insert(p(5), info(9));
        q.insert(p(2), info(9));
        q.insert(p(3), info(4));
        assert!(q.has_slot_before(9, p(5)) && !q.has_slot_before(9, p(2)));
        assert!(!q.has_slot_before(4, p(3)) && q.has_before(p(3)));
        q.bump_redelivery_count(p(2));
        q.bump_redelivery_count(p(2));
        q.bump_redelivery_count(p(5));
        assert_eq!(
            q.iter().map(|(pos, _)| pos).collect::<Vec<_>>(),
            vec![p(2), p(3), p(5)]
        );
        q.remove_through(p(3));
        assert_eq!(q.len(), 1);
        assert!(!q.has_slot_before(9, p(5)));
        assert_eq!(q.redelivery_count(p(2)), 0);
        assert_eq!(q.redelivery_count(p(5)), 1);
        q.acked(p(5));
        assert!(q.is_empty() && q.redelivery_count(p(5)) == 0);
    }
}
