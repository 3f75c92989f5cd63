//! The entry cache: the most recently appended entries of one managed ledger, bounded by bytes,
//! so that tailing readers are served from memory. Entries arrive in position order, so the
//! cache is a queue: new entries at the back, eviction from the front.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::position::Position;

#[derive(Debug)]
pub struct EntryCache {
    entries: VecDeque<(Position, Bytes)>,
    bytes: usize,
    capacity: usize,
    hits: u64,
    misses: u64,
}

impl EntryCache {
    pub fn new(capacity: usize) -> EntryCache {
        EntryCache {
            entries: VecDeque::new(),
            bytes: 0,
            capacity,
            hits: 0,
            misses: 0,
        }
    }

    /// Adds the entry just confirmed; positions only grow.
    pub fn insert(&mut self, position: Position, data: Bytes) {
        if self.entries.back().is_some_and(|(p, _)| *p >= position) {
            return;
        }
        self.bytes += data.len();
        self.entries.push_back((position, data));
        while self.bytes > self.capacity {
            match self.entries.pop_front() {
                Some((_, evicted)) => self.bytes -= evicted.len(),
                None => break,
            }
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
        self.bytes = self.entries.iter().map(|(_, d)| d.len()).sum();
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
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
        let mut cache = EntryCache::new(10);
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
}
