//! Key_Shared (AUTO_SPLIT) consumer selection and the per-key ordering guard.
//!
//! [`HashRing`] mirrors Java's `ConsistentHashingStickyKeyConsumerSelector` (the default since
//! `subscriptionKeySharedUseConsistentHashing=true`): each consumer puts 100 points on a ring of
//! slots `1..=65535`, the point for index `i` being the sticky-key hash of
//! `"{name}\0{name_index}\0{i}"`, where `name_index` is the lowest index not used by another
//! consumer of the same name. A key's slot goes to the first point at or after it (wrapping).
//! On a point collision the first consumer keeps it and later ones wait in line.
//!
//! [`HashHolders`] counts, per slot, the delivered-but-unacknowledged entries of each consumer.
//! Java 4.x (PIP-379, "draining hashes") blocks a slot for its new owner while the previous
//! owner still has unacknowledged messages of it; that is exactly "some other consumer holds
//! entries of this slot", which this index answers.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::ConsumerId;
use super::hash::sticky_key_hash;

#[derive(Clone, Debug)]
struct RingPoint {
    selected: ConsumerId,
    colliding: Vec<ConsumerId>,
}

#[derive(Clone, Debug)]
pub struct HashRing {
    points: BTreeMap<u32, RingPoint>,
    replica_points: u32,
    used_name_indexes: HashMap<String, BTreeSet<u32>>,
    members: HashMap<ConsumerId, (String, u32)>,
}

impl HashRing {
    pub fn new(replica_points: u32) -> Self {
        Self {
            points: BTreeMap::new(),
            replica_points: replica_points.max(1),
            used_name_indexes: HashMap::new(),
            members: HashMap::new(),
        }
    }

    fn point_hash(name: &str, name_index: u32, i: u32) -> u32 {
        sticky_key_hash(format!("{name}\0{name_index}\0{i}").as_bytes())
    }

    pub fn add(&mut self, id: ConsumerId, name: &str) {
        if self.members.contains_key(&id) {
            return;
        }
        let used = self.used_name_indexes.entry(name.to_owned()).or_default();
        let name_index = (0..).find(|i| !used.contains(i)).unwrap_or(0);
        used.insert(name_index);
        self.members.insert(id, (name.to_owned(), name_index));
        for i in 0..self.replica_points {
            let h = Self::point_hash(name, name_index, i);
            match self.points.get_mut(&h) {
                Some(point) => point.colliding.push(id),
                None => {
                    self.points.insert(
                        h,
                        RingPoint {
                            selected: id,
                            colliding: Vec::new(),
                        },
                    );
                }
            }
        }
    }

    pub fn remove(&mut self, id: ConsumerId) {
        let Some((name, name_index)) = self.members.remove(&id) else {
            return;
        };
        for i in 0..self.replica_points {
            let h = Self::point_hash(&name, name_index, i);
            let Some(point) = self.points.get_mut(&h) else {
                continue;
            };
            if point.selected == id {
                if point.colliding.is_empty() {
                    self.points.remove(&h);
                } else {
                    point.selected = point.colliding.remove(0);
                }
            } else if let Some(pos) = point.colliding.iter().position(|c| *c == id) {
                point.colliding.remove(pos);
            }
        }
        if let Some(used) = self.used_name_indexes.get_mut(&name) {
            used.remove(&name_index);
            if used.is_empty() {
                self.used_name_indexes.remove(&name);
            }
        }
    }

    /// The consumer owning a slot; `None` only when the ring is empty.
    pub fn select(&self, slot: u32) -> Option<ConsumerId> {
        self.points
            .range(slot..)
            .next()
            .or_else(|| self.points.iter().next())
            .map(|(_, p)| p.selected)
    }

    /// Slot ranges `[start, end]` per consumer, for subscription stats (`keyHashRanges`).
    pub fn ranges(&self) -> Vec<(u32, u32, ConsumerId)> {
        let mut out: Vec<(u32, u32, ConsumerId)> = Vec::new();
        let mut start = 1;
        for (slot, point) in &self.points {
            match out.last_mut() {
                Some(last) if last.2 == point.selected => last.1 = *slot,
                _ => out.push((start, *slot, point.selected)),
            }
            start = slot + 1;
        }
        if let Some(first) = self.points.values().next().map(|p| p.selected)
            && start <= 65535
        {
            match out.last_mut() {
                Some(last) if last.2 == first => last.1 = 65535,
                _ => out.push((start, 65535, first)),
            }
        }
        out
    }
}

/// Key_Shared STICKY mode (Java's `HashRangeExclusiveStickyKeyConsumerSelector`): each consumer
/// names the hash ranges it takes, within `0..=65535`; ranges of two consumers never overlap,
/// and a key whose hash no consumer took waits until one does.
#[derive(Clone, Debug, Default)]
pub struct StickyRanges {
    /// Range start -> (end, owner).
    by_start: BTreeMap<u32, (u32, ConsumerId)>,
}

/// The last sticky hash (Java's range size 65536).
pub const STICKY_MAX: u32 = 65535;

impl StickyRanges {
    /// Takes `ranges` for `id`, or says why not (empty, inverted, out of bounds, overlapping).
    pub fn add(&mut self, id: ConsumerId, ranges: &[(u32, u32)]) -> Result<(), String> {
        if ranges.is_empty() {
            return Err("a sticky Key_Shared consumer must name its hash ranges".into());
        }
        let mut sorted = ranges.to_vec();
        sorted.sort_unstable();
        for (i, (start, end)) in sorted.iter().enumerate() {
            if start > end || *end > STICKY_MAX {
                return Err(format!(
                    "hash range [{start}, {end}] is not within [0, {STICKY_MAX}]"
                ));
            }
            if i > 0 && sorted[i - 1].1 >= *start {
                return Err(format!("the consumer's hash ranges overlap at {start}"));
            }
            if let Some((other, (o_end, owner))) = self.by_start.range(..=end).next_back()
                && *o_end >= *start
            {
                return Err(format!(
                    "hash range [{start}, {end}] conflicts with [{other}, {o_end}] of consumer {owner}"
                ));
            }
        }
        for (start, end) in sorted {
            self.by_start.insert(start, (end, id));
        }
        Ok(())
    }

    pub fn remove(&mut self, id: ConsumerId) {
        self.by_start.retain(|_, (_, owner)| *owner != id);
    }

    /// The consumer whose range holds `hash`, if any.
    pub fn select(&self, hash: u32) -> Option<ConsumerId> {
        self.by_start
            .range(..=hash)
            .next_back()
            .filter(|(_, (end, _))| *end >= hash)
            .map(|(_, (_, owner))| *owner)
    }

    pub fn ranges(&self) -> Vec<(u32, u32, ConsumerId)> {
        self.by_start
            .iter()
            .map(|(start, (end, owner))| (*start, *end, *owner))
            .collect()
    }
}

/// Per slot, how many unacknowledged entries each consumer holds.
#[derive(Clone, Debug, Default)]
pub struct HashHolders {
    by_slot: HashMap<u32, HashMap<ConsumerId, u32>>,
}

impl HashHolders {
    pub fn add(&mut self, slot: u32, consumer: ConsumerId) {
        *self
            .by_slot
            .entry(slot)
            .or_default()
            .entry(consumer)
            .or_default() += 1;
    }

    pub fn remove(&mut self, slot: u32, consumer: ConsumerId) {
        if let Some(holders) = self.by_slot.get_mut(&slot) {
            if let Some(n) = holders.get_mut(&consumer) {
                *n -= 1;
                if *n == 0 {
                    holders.remove(&consumer);
                }
            }
            if holders.is_empty() {
                self.by_slot.remove(&slot);
            }
        }
    }

    /// Whether a consumer other than `consumer` still has unacknowledged entries of `slot`.
    pub fn held_by_other(&self, slot: u32, consumer: ConsumerId) -> bool {
        self.by_slot
            .get(&slot)
            .is_some_and(|h| h.keys().any(|c| *c != consumer))
    }

    pub fn clear(&mut self) {
        self.by_slot.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_points_follow_java_key_format() {
        let mut ring = HashRing::new(100);
        ring.add(1, "c1");
        // With one consumer every slot maps to it.
        assert_eq!(ring.select(1), Some(1));
        assert_eq!(ring.select(65535), Some(1));
        let first = sticky_key_hash(b"c1\x000\x000");
        assert_eq!(ring.points.get(&first).map(|p| p.selected), Some(1));
        assert_eq!(ring.ranges(), vec![(1, 65535, 1)]);
    }

    #[test]
    fn same_name_consumers_get_distinct_indexes_and_removal_restores() {
        let mut ring = HashRing::new(100);
        ring.add(1, "same");
        ring.add(2, "same");
        assert_eq!(ring.members[&2].1, 1);
        let owners: BTreeSet<_> = (1..=65535)
            .step_by(97)
            .filter_map(|s| ring.select(s))
            .collect();
        assert_eq!(owners, BTreeSet::from([1, 2]));
        ring.remove(1);
        assert!((1..=65535).step_by(97).all(|s| ring.select(s) == Some(2)));
        // The freed index 0 is reused by the next consumer with that name.
        ring.add(3, "same");
        assert_eq!(ring.members[&3].1, 0);
        ring.remove(2);
        ring.remove(3);
        assert_eq!(ring.select(5), None);
        assert!(ring.used_name_indexes.is_empty());
    }

    #[test]
    fn ranges_cover_the_whole_space_once() {
        let mut ring = HashRing::new(100);
        for (id, name) in [(1, "a"), (2, "b"), (3, "c")] {
            ring.add(id, name);
        }
        let ranges = ring.ranges();
        let mut next = 1;
        for (start, end, owner) in &ranges {
            assert_eq!(*start, next);
            assert!(end >= start);
            assert_eq!(ring.select(*start), Some(*owner));
            assert_eq!(ring.select(*end), Some(*owner));
            next = end + 1;
        }
        assert_eq!(next, 65536);
    }

    #[test]
    fn sticky_ranges_are_exclusive_and_checked() {
        let mut r = StickyRanges::default();
        assert!(r.add(1, &[(0, 99), (200, 299)]).is_ok());
        assert_eq!(r.select(50), Some(1));
        assert_eq!(r.select(150), None);
        assert_eq!(r.select(299), Some(1));
        assert!(r.add(2, &[(250, 400)]).is_err(), "overlaps consumer 1");
        assert!(r.add(2, &[(99, 120)]).is_err(), "touches consumer 1's end");
        assert!(r.add(2, &[]).is_err());
        assert!(r.add(2, &[(10, 5)]).is_err());
        assert!(r.add(2, &[(60000, 70000)]).is_err());
        assert!(
            r.add(2, &[(300, 310), (305, 320)]).is_err(),
            "its own ranges overlap"
        );
        assert_eq!(r.select(305), None, "a refused consumer took nothing");
        assert!(r.add(2, &[(100, 199)]).is_ok());
        assert_eq!(r.select(150), Some(2));
        r.remove(1);
        assert_eq!((r.select(50), r.select(150)), (None, Some(2)));
        assert_eq!(r.ranges(), vec![(100, 199, 2)]);
    }

    #[test]
    fn holders_count_per_consumer() {
        let mut h = HashHolders::default();
        h.add(7, 1);
        h.add(7, 1);
        assert!(!h.held_by_other(7, 1) && h.held_by_other(7, 2));
        h.remove(7, 1);
        assert!(h.held_by_other(7, 2));
        h.remove(7, 1);
        assert!(!h.held_by_other(7, 2));
    }
}
