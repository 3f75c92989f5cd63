//! The entry cache: the most recently appended entries of one managed ledger, bounded by bytes,
//! so that tailing readers are served from memory. Entries arrive in position order, so the
//! cache is a queue: new entries at the back, eviction from the front.
//!
//! Every topic's cache also draws from one [`CacheBudget`] for the whole broker
//! (`managedLedgerCacheSizeMB`): a topic that finds the budget spent first evicts its own oldest
//! entries, and caches nothing more if that is not enough (readers then go to the bookies).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;

use crate::position::Position;

/// Bytes of cached entries over every managed ledger sharing it; cheap to clone.
#[derive(Debug, Clone)]
pub struct CacheBudget {
    used: Arc<AtomicUsize>,
    limit: usize,
}

impl PartialEq for CacheBudget {
    fn eq(&self, other: &CacheBudget) -> bool {
        Arc::ptr_eq(&self.used, &other.used)
    }
}

impl Eq for CacheBudget {}

impl CacheBudget {
    pub fn new(limit: usize) -> CacheBudget {
        CacheBudget {
            used: Arc::default(),
            limit,
        }
    }

    /// Bytes cached now, over every sharer.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub(super) fn try_reserve(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }

    pub(super) fn release(&self, bytes: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(bytes))
            });
    }
}

#[derive(Debug)]
pub struct EntryCache {
    entries: VecDeque<(Position, Bytes)>,
    bytes: usize,
    capacity: usize,
    budget: Option<CacheBudget>,
    hits: u64,
    misses: u64,
}

impl Drop for EntryCache {
    fn drop(&mut self) {
        self.clear();
    }
}

impl EntryCache {
    pub fn new(capacity: usize, budget: Option<CacheBudget>) -> EntryCache {
        EntryCache {
            entries: VecDeque::new(),
            bytes: 0,
            capacity,
            budget,
            hits: 0,
            misses: 0,
        }
    }

    /// Adds the entry just confirmed; positions only grow.
    pub fn insert(&mut self, position: Position, data: Bytes) {
        if self.entries.back().is_some_and(|(p, _)| *p >= position) {
            return;
        }
        let size = data.len();
        while self.bytes + size > self.capacity && self.evict_oldest() {}
        if let Some(budget) = self.budget.clone() {
            while !budget.try_reserve(size) {
                if !self.evict_oldest() {
                    return; // the broker's cache is full of other topics' entries
                }
            }
        }
        if self.bytes + size > self.capacity {
            if let Some(budget) = &self.budget {
                budget.release(size);
            }
            return; // larger than the whole cache
        }
        self.bytes += size;
        self.entries.push_back((position, data));
    }

    fn evict_oldest(&mut self) -> bool {
        match self.entries.pop_front() {
            Some((_, evicted)) => {
                self.bytes -= evicted.len();
                if let Some(budget) = &self.budget {
                    budget.release(evicted.len());
                }
                true
            }
            None => false,
        }
    }

    pub fn get(&mut self, position: Position) -> Option<Bytes> {
        let found = self
            .entries
            .binary_search_by_key(&position, |(p, _)| *p)
            .ok()
            .map(|i| self.entries[i].1.clone());
        if found.is_some() {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
        found
    }

    /// Drops every entry of a ledger that no longer exists.
    pub fn remove_ledger(&mut self, ledger_id: i64) {
        self.entries.retain(|(p, _)| p.ledger_id != ledger_id);
        let bytes = self.entries.iter().map(|(_, d)| d.len()).sum();
        if let Some(budget) = &self.budget {
            budget.release(self.bytes - bytes);
        }
        self.bytes = bytes;
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        if let Some(budget) = &self.budget {
            budget.release(self.bytes);
        }
        self.bytes = 0;
    }

    /// The oldest entry held.
    pub fn oldest(&self) -> Option<Position> {
        self.entries.front().map(|(p, _)| *p)
    }

    pub fn size_bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// (hits, misses) so far.
    pub fn hit_counts(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(e: i64) -> Position {
        Position::new(1, e)
    }

    #[test]
    fn evicts_oldest_beyond_capacity() {
        let mut cache = EntryCache::new(10, None);
        for e in 0..5 {
            cache.insert(p(e), Bytes::from(vec![0u8; 3]));
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.size_bytes(), 9);
        assert!(cache.get(p(1)).is_none());
        assert!(cache.get(p(4)).is_some());
        cache.insert(p(3), Bytes::from_static(b"old"));
        assert_eq!(cache.len(), 3, "out-of-order inserts are ignored");
        cache.insert(Position::new(2, 0), Bytes::from_static(b"x"));
        cache.remove_ledger(1);
        assert_eq!((cache.len(), cache.size_bytes()), (1, 1));
        assert_eq!(cache.hit_counts(), (1, 1));
    }

    /// Two topics share a budget of 10 bytes: the second finds it spent by the first and evicts
    /// its own entries (it has none, so it caches nothing); once the first drops its cache, the
    /// budget is back.
    #[test]
    fn topics_share_one_broker_budget() {
        let budget = CacheBudget::new(10);
        let mut a = EntryCache::new(100, Some(budget.clone()));
        let mut b = EntryCache::new(100, Some(budget.clone()));
        for e in 0..3 {
            a.insert(p(e), Bytes::from(vec![0u8; 3]));
        }
        assert_eq!(budget.used(), 9);
        b.insert(p(0), Bytes::from(vec![0u8; 3]));
        assert_eq!(
            (b.len(), budget.used()),
            (0, 9),
            "no room, nothing of its own to evict"
        );
        a.insert(p(3), Bytes::from(vec![0u8; 3]));
        assert_eq!(
            (a.len(), budget.used()),
            (3, 9),
            "a made room by evicting its oldest"
        );
        a.remove_ledger(1);
        assert_eq!(budget.used(), 0);
        b.insert(p(1), Bytes::from(vec![0u8; 4]));
        drop(b);
        assert_eq!(budget.used(), 0, "a dropped cache gives its bytes back");
    }
}
