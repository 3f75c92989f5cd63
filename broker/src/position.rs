//! Entry positions and the ledger layout of a topic.
//!
//! A topic's managed ledger is an ordered list of ledgers whose ids increase but are not
//! contiguous; every ledger but the last is closed, the last one is open and grows. A position
//! `(ledger_id, entry_id)` names one entry (it is the client's message id without the batch
//! index). Cursors need the layout to know which positions exist, what comes right after or
//! right before a position (across ledger boundaries and empty ledgers) and how many entries
//! lie between two positions. This module is pure data: the managed-ledger shell keeps one
//! [`LedgerLayout`] per topic up to date and lends it to the subscription cores.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One entry of a topic: ledger id and entry id, ordered by ledger then entry.
///
/// `entry_id == -1` is the conventional "before the first entry of this ledger", as in Pulsar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    pub ledger_id: i64,
    pub entry_id: i64,
}

impl Position {
    pub const fn new(ledger_id: i64, entry_id: i64) -> Self {
        Self {
            ledger_id,
            entry_id,
        }
    }

    /// The smallest position strictly greater than `self` in the total order (not in a layout).
    pub(crate) const fn successor(self) -> Self {
        Self::new(self.ledger_id, self.entry_id.saturating_add(1))
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.ledger_id, self.entry_id)
    }
}

/// One ledger of the layout and how many entries it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LedgerInfo {
    pub ledger_id: i64,
    pub entries: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error("a topic's layout needs at least one (open) ledger")]
    Empty,
    #[error("ledger ids must increase: {previous} is followed by {next}")]
    NotIncreasing { previous: i64, next: i64 },
    #[error("ledger {ledger_id} has a negative entry count {entries}")]
    NegativeEntries { ledger_id: i64, entries: i64 },
    #[error("ledger {ledger_id} is the open ledger and cannot be removed")]
    RemoveOpenLedger { ledger_id: i64 },
}

/// The ledgers of a topic, ascending by id; the last one is the open ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerLayout {
    ledgers: Vec<LedgerInfo>,
}

impl LedgerLayout {
    /// Builds a layout from `(ledger_id, entry_count)` pairs, the last one being the open ledger.
    pub fn new(ledgers: impl IntoIterator<Item = (i64, i64)>) -> Result<Self, LayoutError> {
        let mut out: Vec<LedgerInfo> = Vec::new();
        for (ledger_id, entries) in ledgers {
            if entries < 0 {
                return Err(LayoutError::NegativeEntries { ledger_id, entries });
            }
            if let Some(prev) = out.last()
                && prev.ledger_id >= ledger_id
            {
                return Err(LayoutError::NotIncreasing {
                    previous: prev.ledger_id,
                    next: ledger_id,
                });
            }
            out.push(LedgerInfo { ledger_id, entries });
        }
        if out.is_empty() {
            return Err(LayoutError::Empty);
        }
        Ok(Self { ledgers: out })
    }

    /// A layout with one empty open ledger.
    pub fn single(ledger_id: i64) -> Self {
        Self {
            ledgers: vec![LedgerInfo {
                ledger_id,
                entries: 0,
            }],
        }
    }

    pub fn ledgers(&self) -> &[LedgerInfo] {
        &self.ledgers
    }

    fn open(&self) -> LedgerInfo {
        // `new` and `remove_ledger` keep at least one ledger.
        self.ledgers[self.ledgers.len() - 1]
    }

    pub fn open_ledger_id(&self) -> i64 {
        self.open().ledger_id
    }

    /// Records one more entry in the open ledger and returns its position.
    pub fn append(&mut self) -> Position {
        let last = self.ledgers.len() - 1;
        let open = &mut self.ledgers[last];
        open.entries += 1;
        Position::new(open.ledger_id, open.entries - 1)
    }

    /// Closes the open ledger and opens `ledger_id` (empty) after it.
    pub fn roll_over(&mut self, ledger_id: i64) -> Result<(), LayoutError> {
        let previous = self.open_ledger_id();
        if ledger_id <= previous {
            return Err(LayoutError::NotIncreasing {
                previous,
                next: ledger_id,
            });
        }
        self.ledgers.push(LedgerInfo {
            ledger_id,
            entries: 0,
        });
        Ok(())
    }

    /// Drops a closed ledger (trimmed after every cursor passed it). Returns whether it was there.
    pub fn remove_ledger(&mut self, ledger_id: i64) -> Result<bool, LayoutError> {
        if ledger_id == self.open_ledger_id() {
            return Err(LayoutError::RemoveOpenLedger { ledger_id });
        }
        match self.index_of(ledger_id) {
            Ok(i) => {
                self.ledgers.remove(i);
                Ok(true)
            }
            Err(_) => Ok(false),
        }
    }

    fn index_of(&self, ledger_id: i64) -> Result<usize, usize> {
        self.ledgers
            .binary_search_by_key(&ledger_id, |l| l.ledger_id)
    }

    /// Whether `p` names an entry that exists.
    pub fn contains(&self, p: Position) -> bool {
        match self.index_of(p.ledger_id) {
            Ok(i) => p.entry_id >= 0 && p.entry_id < self.ledgers[i].entries,
            Err(_) => false,
        }
    }

    /// The first entry of the topic, if any.
    pub fn first_position(&self) -> Option<Position> {
        self.ledgers
            .iter()
            .find(|l| l.entries > 0)
            .map(|l| Position::new(l.ledger_id, 0))
    }

    /// The last entry written, if any.
    pub fn last_position(&self) -> Option<Position> {
        self.ledgers
            .iter()
            .rev()
            .find(|l| l.entries > 0)
            .map(|l| Position::new(l.ledger_id, l.entries - 1))
    }

    /// Where the next entry will be written: just past the end of the open ledger.
    pub fn end_position(&self) -> Position {
        let open = self.open();
        Position::new(open.ledger_id, open.entries)
    }

    /// The next valid position after `p`: the following entry of the same ledger, else the first
    /// entry of the next non-empty ledger, else the end position. Always greater than `p`.
    pub fn next(&self, p: Position) -> Position {
        let start = match self.index_of(p.ledger_id) {
            Ok(i) => {
                let candidate = p.entry_id.saturating_add(1).max(0);
                if candidate < self.ledgers[i].entries {
                    return Position::new(p.ledger_id, candidate);
                }
                i + 1
            }
            Err(i) => i,
        };
        if let Some(l) = self.ledgers[start.min(self.ledgers.len())..]
            .iter()
            .find(|l| l.entries > 0)
        {
            return Position::new(l.ledger_id, 0);
        }
        let end = self.end_position();
        if end > p { end } else { p.successor() }
    }

    /// The valid position right before `p` (as Java's `getPreviousPosition`): the previous entry
    /// of the same ledger, else the last entry of the previous non-empty ledger, else
    /// `(p.ledger_id, -1)`.
    pub fn prev(&self, p: Position) -> Position {
        if p.entry_id > 0 {
            return Position::new(p.ledger_id, p.entry_id - 1);
        }
        let below = match self.index_of(p.ledger_id) {
            Ok(i) | Err(i) => &self.ledgers[..i],
        };
        match below.iter().rev().find(|l| l.entries > 0) {
            Some(l) => Position::new(l.ledger_id, l.entries - 1),
            None => Position::new(p.ledger_id, -1),
        }
    }

    /// How many existing entries `q` satisfy `after < q <= up_to`.
    pub fn count_between(&self, after: Position, up_to: Position) -> u64 {
        if up_to <= after {
            return 0;
        }
        let mut count: u64 = 0;
        for l in &self.ledgers {
            if l.ledger_id < after.ledger_id || l.ledger_id > up_to.ledger_id || l.entries == 0 {
                continue;
            }
            let first = if l.ledger_id == after.ledger_id {
                after.entry_id + 1
            } else {
                0
            };
            let last = if l.ledger_id == up_to.ledger_id {
                up_to.entry_id.min(l.entries - 1)
            } else {
                l.entries - 1
            };
            let first = first.max(0);
            if last >= first {
                count += (last - first + 1) as u64;
            }
        }
        count
    }

    /// How many existing entries come after `p`.
    pub fn entries_after(&self, p: Position) -> u64 {
        match self.last_position() {
            Some(last) => self.count_between(p, last),
            None => 0,
        }
    }
}

#[cfg(test)]
#[path = "position_test.rs"]
mod tests;
