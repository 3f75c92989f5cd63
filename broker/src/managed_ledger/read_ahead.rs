//! Entries read past what a sequential reader asked for, kept until it asks for them.
//!
//! A subscription catching up on a backlog asks for a few entries at a time: as many as its
//! consumer's permits cover, which with batched entries is often one. Read from the bookies one
//! request at a time, every such step waits for a bookie round trip while the consumer, having
//! used its permits, waits for the step. So a read that goes to the bookies (or to tiered
//! storage) for the entries at the end of what was asked also fetches the entries after them,
//! and keeps them here; the next sequential read takes them from memory.
//!
//! A managed ledger keeps at most [`BLOCKS`] blocks, the oldest replaced first. Entries leave a
//! block as they are taken, so a reader that got to the end of one leaves nothing behind. How
//! far to read ahead adapts, as a kernel's file read-ahead does: a block dropped before it was
//! used up (more sequential readers than blocks, a reader that went away or jumped) halves the
//! window, down to [`MIN_WINDOW`] entries; a block used up doubles it, up to [`BOOKIE_ENTRIES`].
//! So readers taking turns cannot make the bookies read much more than they are asked for.
//!
//! Blocks read from the bookies draw on the broker's entry-cache budget and are read only while
//! at most half of it is in use (the entry cache of tailing readers keeps the other half); a
//! block read from tiered storage is kept even when it has no room, as one GET brings it whole.
//! The blocks of a ledger go when it is trimmed, and all of them when the managed ledger closes.

use std::collections::VecDeque;

use bytes::Bytes;

use super::cache::CacheBudget;

/// Blocks kept per managed ledger.
pub(super) const BLOCKS: usize = 2;
/// Bytes read ahead from the bookies past a sequential read.
pub(super) const BOOKIE_BYTES: u64 = 2 * 1024 * 1024;
/// Entries a read from the bookies fetches at most, asked and read ahead together (the ledger
/// client reads up to 64 entries in parallel).
pub(super) const BOOKIE_ENTRIES: u64 = 64;
/// The smallest read-ahead window, in entries.
pub(super) const MIN_WINDOW: u64 = 2;

/// Consecutive entries of one ledger, from `first`.
#[derive(Debug)]
pub(super) struct Block {
    ledger: u64,
    first: u64,
    entries: VecDeque<Bytes>,
    /// Bytes reserved in the broker's cache budget for `entries` (released as they leave).
    reserved: Option<CacheBudget>,
}

impl Block {
    /// A block of `entries` from `first`, reserving their bytes in `budget` if it has room;
    /// `None` if it has not and `required` is set.
    pub fn new(
        ledger: u64,
        first: u64,
        entries: Vec<Bytes>,
        budget: Option<&CacheBudget>,
        required: bool,
    ) -> Option<Block> {
        let bytes = entries.iter().map(Bytes::len).sum();
        let reserved = match budget {
            Some(budget) if budget.try_reserve(bytes) => Some(budget.clone()),
            Some(_) if required => return None,
            _ => None,
        };
        Some(Block {
            ledger,
            first,
            entries: entries.into(),
            reserved,
        })
    }

    fn end(&self) -> u64 {
        self.first + self.entries.len() as u64
    }

    /// Takes out the entries from `first` up to `last` (or to the block's end, if sooner),
    /// dropping any before them; nothing if the block does not hold `first`.
    fn take(&mut self, ledger: u64, first: u64, last: u64) -> Vec<Bytes> {
        if ledger != self.ledger || first < self.first || first >= self.end() || first > last {
            return Vec::new();
        }
        let through = (last.min(self.end() - 1) - self.first + 1) as usize;
        let skipped = (first - self.first) as usize;
        let drained: Vec<Bytes> = self.entries.drain(..through).collect();
        self.first += through as u64;
        if let Some(budget) = &self.reserved {
            budget.release(drained.iter().map(Bytes::len).sum());
        }
        drained.into_iter().skip(skipped).collect()
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        if let Some(budget) = &self.reserved {
            budget.release(self.entries.iter().map(Bytes::len).sum());
        }
    }
}

/// The blocks of one managed ledger, most recently kept last.
#[derive(Debug)]
pub(super) struct ReadAhead {
    blocks: Vec<Block>,
    /// Entries to read ahead now (see the module's documentation).
    window: u64,
}

impl Default for ReadAhead {
    fn default() -> ReadAhead {
        ReadAhead {
            blocks: Vec::new(),
            window: BOOKIE_ENTRIES,
        }
    }
}

impl ReadAhead {
    /// The entries from `first` on, up to `last`, that a block holds (none if no block holds
    /// `first`); a block used up by this is dropped and widens the window.
    pub fn take(&mut self, ledger: u64, first: u64, last: u64) -> Vec<Bytes> {
        let Some(i) = self
            .blocks
            .iter()
            .position(|b| b.ledger == ledger && b.first <= first && first < b.end())
        else {
            return Vec::new();
        };
        let taken = self.blocks[i].take(ledger, first, last);
        if self.blocks[i].entries.is_empty() {
            self.blocks.remove(i);
            self.window = (self.window * 2).min(BOOKIE_ENTRIES);
        }
        taken
    }

    /// Keeps `block`, dropping the oldest if [`BLOCKS`] are kept already (which narrows the
    /// window: that block was not used up).
    pub fn keep(&mut self, block: Block) {
        if block.entries.is_empty() {
            return;
        }
        if self.blocks.len() >= BLOCKS {
            self.blocks.remove(0);
            self.window = (self.window / 2).max(MIN_WINDOW);
        }
        self.blocks.push(block);
    }

    /// Entries to read ahead now.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// Drops the blocks of a ledger that no longer exists.
    pub fn remove_ledger(&mut self, ledger: u64) {
        self.blocks.retain(|b| b.ledger != ledger);
    }

    /// Drops every block.
    pub fn clear(&mut self) {
        self.blocks.clear();
    }

    /// Bytes held over every block.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.blocks
            .iter()
            .flat_map(|b| b.entries.iter())
            .map(Bytes::len)
            .sum()
    }
}

/// How many entries to read past `first..=last` of a ledger whose entries up to `ledger_last`
/// exist, given their average size and the window: none if the average is unknown.
pub(super) fn extra_entries(
    first: u64,
    last: u64,
    ledger_last: u64,
    average_bytes: u64,
    window: u64,
) -> u64 {
    if average_bytes == 0 || ledger_last <= last {
        return 0;
    }
    let asked = last.saturating_sub(first) + 1;
    (ledger_last - last)
        .min(window)
        .min(BOOKIE_ENTRIES.saturating_sub(asked))
        .min(BOOKIE_BYTES / average_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(n: usize, size: usize) -> Vec<Bytes> {
        (0..n).map(|i| Bytes::from(vec![i as u8; size])).collect()
    }

    #[test]
    fn a_sequential_reader_takes_the_block_in_steps_and_leaves_nothing() {
        let budget = CacheBudget::new(1000);
        let mut ra = ReadAhead::default();
        ra.keep(Block::new(7, 10, entries(5, 10), Some(&budget), true).expect("room"));
        assert_eq!(budget.used(), 50);
        assert!(ra.take(7, 9, 10).is_empty(), "starts before the block");
        assert!(ra.take(8, 10, 10).is_empty(), "another ledger");
        assert_eq!(ra.take(7, 10, 11), entries(2, 10));
        assert_eq!(budget.used(), 30);
        assert!(ra.take(7, 10, 10).is_empty(), "taken entries are gone");
        assert!(ra.take(7, 15, 16).is_empty(), "past the end");
        // Skipping ahead inside the block drops what was skipped; a read past the block's end
        // gets the part it holds.
        assert_eq!(ra.take(7, 13, 20).len(), 2);
        assert_eq!(ra.bytes(), 0);
        assert_eq!(budget.used(), 0);
        assert!(ra.blocks.is_empty());
    }

    #[test]
    fn the_oldest_block_goes_and_its_budget_is_released() {
        let budget = CacheBudget::new(1000);
        let mut ra = ReadAhead::default();
        for ledger in 1..=3 {
            ra.keep(Block::new(ledger, 0, entries(2, 100), Some(&budget), true).expect("room"));
        }
        assert_eq!(ra.blocks.len(), BLOCKS);
        assert_eq!(budget.used(), 400);
        assert!(ra.take(1, 0, 0).is_empty(), "the first block was dropped");
        assert_eq!(ra.take(3, 0, 1).len(), 2);
        drop(ra);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_full_budget_refuses_a_bookie_block_but_not_a_tiered_one() {
        let budget = CacheBudget::new(100);
        assert!(Block::new(1, 0, entries(2, 60), Some(&budget), true).is_none());
        let tiered = Block::new(1, 0, entries(2, 60), Some(&budget), false).expect("kept");
        assert_eq!(budget.used(), 0, "kept without a reservation");
        drop(tiered);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn the_window_narrows_when_blocks_go_unused_and_widens_when_used_up() {
        let mut ra = ReadAhead::default();
        assert_eq!(ra.window(), BOOKIE_ENTRIES);
        // Three readers taking turns: every block kept pushes out one not used up.
        for ledger in 0..20 {
            ra.keep(Block::new(ledger, 0, entries(4, 1), None, true).expect("kept"));
        }
        assert_eq!(ra.window(), MIN_WINDOW);
        // One reader using its blocks up widens it again.
        for _ in 0..10 {
            ra.keep(Block::new(99, 0, entries(2, 1), None, true).expect("kept"));
            assert_eq!(ra.take(99, 0, 1).len(), 2);
        }
        assert_eq!(ra.window(), BOOKIE_ENTRIES);
    }

    #[test]
    fn a_trimmed_ledger_and_a_close_drop_their_blocks_and_budget() {
        let budget = CacheBudget::new(1000);
        let mut ra = ReadAhead::default();
        ra.keep(Block::new(1, 0, entries(2, 100), Some(&budget), true).expect("room"));
        ra.keep(Block::new(2, 0, entries(2, 100), Some(&budget), true).expect("room"));
        ra.remove_ledger(1);
        assert_eq!(budget.used(), 200);
        assert!(ra.take(1, 0, 0).is_empty());
        ra.clear();
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn reads_ahead_by_bytes_and_entries_within_the_ledger() {
        assert_eq!(extra_entries(10, 10, 100, 0, 64), 0, "average unknown");
        assert_eq!(extra_entries(10, 10, 10, 100, 64), 0, "at the ledger's end");
        assert_eq!(extra_entries(10, 10, 20, 100, 64), 10);
        assert_eq!(
            extra_entries(0, 0, 10_000, 100, 64),
            63,
            "64 entries in all"
        );
        assert_eq!(extra_entries(0, 9, 10_000, 100, 64), 54);
        assert_eq!(extra_entries(0, 0, 10_000, 100, 4), 4, "the window");
        assert_eq!(extra_entries(0, 0, 10_000, 1024 * 1024, 64), 2);
        assert_eq!(extra_entries(0, 0, 10_000, 5 * 1024 * 1024, 64), 0);
        assert_eq!(
            extra_entries(0, 99, 10_000, 100, 64),
            0,
            "asked for more than 64"
        );
    }
}
