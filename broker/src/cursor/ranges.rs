//! The individually acknowledged ranges of a cursor, kept as Pulsar keeps them.
//!
//! Each range is open-closed, `(lower, upper]`, where `lower` is the valid position right before
//! the first acknowledged entry (so an ack of `p` is `(prev(p), p]`). Expressed that way, two
//! ranges that are contiguous in the ledger layout share an endpoint and merge by plain position
//! comparison, even across ledger boundaries and empty ledgers. Ranges are kept disjoint and
//! never touching.

use std::collections::BTreeMap;

use crate::position::{LedgerLayout, Position};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AckedRanges {
    /// `lower -> upper` for each range `(lower, upper]`.
    by_lower: BTreeMap<Position, Position>,
}

impl AckedRanges {
    pub fn is_empty(&self) -> bool {
        self.by_lower.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_lower.len()
    }

    /// Adds `(lower, upper]`, merging with every range it overlaps or touches.
    pub fn insert(&mut self, lower: Position, upper: Position) {
        if upper <= lower {
            return;
        }
        let (mut lo, mut hi) = (lower, upper);
        // Ranges starting at or before `hi` whose end reaches `lo`; scanning backwards stops at
        // the first one that ends before `lo`, as ends are ordered like starts.
        let merged: Vec<(Position, Position)> = self
            .by_lower
            .range(..=upper)
            .rev()
            .take_while(|(_, u)| **u >= lower)
            .map(|(l, u)| (*l, *u))
            .collect();
        for (l, u) in merged {
            self.by_lower.remove(&l);
            lo = lo.min(l);
            hi = hi.max(u);
        }
        self.by_lower.insert(lo, hi);
    }

    pub fn contains(&self, p: Position) -> bool {
        match self.by_lower.range(..p).next_back() {
            Some((_, upper)) => p <= *upper,
            None => false,
        }
    }

    /// The lowest range.
    pub fn first(&self) -> Option<(Position, Position)> {
        self.by_lower.iter().next().map(|(l, u)| (*l, *u))
    }

    pub fn pop_first(&mut self) -> Option<(Position, Position)> {
        self.by_lower.pop_first()
    }

    /// Forgets everything at or below `p`: ranges ending there go, a range straddling `p` is cut.
    pub fn remove_through(&mut self, p: Position) {
        let mut keep = self.by_lower.split_off(&p);
        if let Some((l, u)) = self.by_lower.pop_last()
            && u > p
        {
            debug_assert!(l < p);
            keep.insert(p, u);
        }
        self.by_lower = keep;
    }

    pub fn iter(&self) -> impl Iterator<Item = (Position, Position)> + '_ {
        self.by_lower.iter().map(|(l, u)| (*l, *u))
    }

    /// How many existing entries the ranges cover.
    pub fn count_entries(&self, layout: &LedgerLayout) -> u64 {
        self.iter().map(|(l, u)| layout.count_between(l, u)).sum()
    }

    pub fn clear(&mut self) {
        self.by_lower.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(l: i64, e: i64) -> Position {
        Position::new(l, e)
    }

    #[test]
    fn touching_and_overlapping_ranges_merge() {
        let mut r = AckedRanges::default();
        r.insert(p(1, 4), p(1, 5));
        r.insert(p(1, 6), p(1, 7));
        assert_eq!(r.len(), 2);
        r.insert(p(1, 5), p(1, 6));
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![(p(1, 4), p(1, 7))]);
        r.insert(p(1, 0), p(1, 9));
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![(p(1, 0), p(1, 9))]);
        assert!(r.contains(p(1, 1)) && r.contains(p(1, 9)));
        assert!(!r.contains(p(1, 0)) && !r.contains(p(1, 10)));
    }

    #[test]
    fn remove_through_cuts_a_straddling_range() {
        let mut r = AckedRanges::default();
        r.insert(p(1, 0), p(1, 2));
        r.insert(p(1, 4), p(1, 8));
        r.remove_through(p(1, 6));
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![(p(1, 6), p(1, 8))]);
        r.remove_through(p(1, 8));
        assert!(r.is_empty());
    }
}
