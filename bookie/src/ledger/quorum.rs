//! The ledger writer's bookkeeping without I/O: entry numbering, which bookie of which slot each
//! pending entry went to and which have acknowledged it, in-order completion at the ack quorum,
//! and what an ensemble change must re-send. The async shell (`writer.rs`) sends the requests,
//! feeds the acks back and records ensemble changes in the metadata service; tests drive this
//! core directly with any order of acks and failures.
//!
//! Ensemble changes are BookKeeper's: when a bookie fails, the new fragment starts at the
//! last-add-confirmed + 1 and, until the new metadata is stored, no entry completes (acks are
//! recorded, completions held). Then the replaced slot's acks of every pending entry (all at or
//! past the new fragment's first entry) are cleared and those entries re-sent to the
//! replacement. So an entry completes only on acks from bookies that the final metadata names
//! for it, never on the failed bookie's acks for entries the new fragment gives to another.

use std::collections::VecDeque;

use bytes::Bytes;

use super::metadata::{Fragment, LedgerMetadata};

/// One request the shell must send: `entry` to `bookie`, which holds `slot` of its ensemble.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Send {
    pub entry: u64,
    pub slot: usize,
    pub bookie: String,
    pub data: Bytes,
}

#[derive(Debug)]
struct Pending {
    entry: u64,
    data: Bytes,
    /// Per ensemble slot: has the bookie the metadata names in that slot acknowledged it.
    acked: Vec<bool>,
}

impl Pending {
    fn ack_count(&self) -> usize {
        self.acked.iter().filter(|a| **a).count()
    }
}

/// An ensemble change under way: the new fragment starts at `first_entry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Change {
    pub slot: usize,
    pub failed: String,
    pub first_entry: u64,
    /// The ensemble the replacement goes into.
    pub ensemble: Vec<String>,
}

#[derive(Debug)]
pub(super) struct Quorum {
    meta: LedgerMetadata,
    next_entry: u64,
    /// Last entry completed (every entry up to it is at `Qa`); −1 before the first.
    lac: i64,
    /// Bytes completed.
    length: u64,
    /// Entries not yet completed, in entry order; the front is `lac + 1`.
    pending: VecDeque<Pending>,
    /// While set, completions are held and the changing slot gets no new requests.
    change: Option<Change>,
}

impl Quorum {
    /// Frees the pending queue's buffer if nothing is pending.
    pub fn shrink_if_idle(&mut self) {
        if self.pending.is_empty() {
            self.pending.shrink_to_fit();
        }
    }

    pub fn new(meta: LedgerMetadata) -> Quorum {
        Quorum {
            meta,
            next_entry: 0,
            lac: -1,
            length: 0,
            pending: VecDeque::new(),
            change: None,
        }
    }

    pub fn meta(&self) -> &LedgerMetadata {
        &self.meta
    }

    pub fn lac(&self) -> i64 {
        self.lac
    }

    pub fn length(&self) -> u64 {
        self.length
    }

    pub fn is_drained(&self) -> bool {
        self.pending.is_empty()
    }

    /// Numbers the next entry; returns its id and the requests that store it (none yet to a
    /// slot being replaced: the change re-sends to its replacement).
    pub fn append(&mut self, data: Bytes) -> (u64, Vec<Send>) {
        let entry = self.next_entry;
        self.next_entry += 1;
        let bookies = &self.meta.fragment_for(entry).bookies;
        let changing = self.change.as_ref().map(|c| c.slot);
        let sends = self
            .meta
            .write_set(entry)
            .into_iter()
            .filter(|&slot| Some(slot) != changing)
            .map(|slot| Send {
                entry,
                slot,
                bookie: bookies[slot].clone(),
                data: data.clone(),
            })
            .collect();
        self.pending.push_back(Pending {
            entry,
            data,
            acked: vec![false; self.meta.ensemble_size],
        });
        (entry, sends)
    }

    /// `bookie`, in `slot`, has made `entry` durable. Returns the entries that complete, in order.
    pub fn ack(&mut self, entry: u64, slot: usize, bookie: &str) -> Vec<u64> {
        // An ack from a bookie that the metadata no longer names in this slot does not count.
        if self
            .meta
            .fragment_for(entry)
            .bookies
            .get(slot)
            .map(String::as_str)
            != Some(bookie)
        {
            return Vec::new();
        }
        let Some(front) = self.pending.front().map(|p| p.entry) else {
            return Vec::new();
        };
        let Some(pending) = entry
            .checked_sub(front)
            .and_then(|i| self.pending.get_mut(i as usize))
        else {
            return Vec::new();
        };
        if let Some(acked) = pending.acked.get_mut(slot) {
            *acked = true;
        }
        self.complete()
    }

    fn complete(&mut self) -> Vec<u64> {
        let mut completed = Vec::new();
        if self.change.is_some() {
            return completed; // held until the new ensemble is recorded
        }
        let quorum = self.meta.ack_quorum;
        while self
            .pending
            .front()
            .is_some_and(|p| p.ack_count() >= quorum)
        {
            let Some(done) = self.pending.pop_front() else {
                break;
            };
            self.lac = done.entry as i64;
            self.length += done.data.len() as u64;
            completed.push(done.entry);
        }
        completed
    }

    /// `failed`, in `slot`, could not store an entry. Starts replacing it unless it is already
    /// out of the current ensemble, holding completions from now on; the caller picks a
    /// replacement and records [`with_replacement`] in the metadata, then calls
    /// [`Quorum::finish_change`] (or [`Quorum::fail`]). One change at a time.
    pub fn begin_change(&mut self, slot: usize, failed: &str) -> Option<Change> {
        let ensemble = self.meta.fragments.last()?.bookies.clone();
        if self.change.is_some() || ensemble.get(slot).map(String::as_str) != Some(failed) {
            return None;
        }
        let change = Change {
            slot,
            failed: failed.to_string(),
            first_entry: (self.lac + 1) as u64,
            ensemble,
        };
        self.change = Some(change.clone());
        Some(change)
    }

    /// The metadata with the change recorded is stored: adopts it, forgets the replaced slot's
    /// acks of the pending entries, and returns the requests that re-send them to the
    /// replacement and the entries that complete (on the other slots' acks).
    pub fn finish_change(&mut self, meta: LedgerMetadata) -> (Vec<Send>, Vec<u64>) {
        let Some(change) = self.change.take() else {
            return (Vec::new(), Vec::new());
        };
        self.meta = meta;
        let slot = change.slot;
        let mut resend = Vec::new();
        for pending in self.pending.iter_mut() {
            if self.meta.write_set(pending.entry).contains(&slot) {
                pending.acked[slot] = false;
                resend.push(Send {
                    entry: pending.entry,
                    slot,
                    bookie: self.meta.fragment_for(pending.entry).bookies[slot].clone(),
                    data: pending.data.clone(),
                });
            }
        }
        (resend, self.complete())
    }

    /// Forgets every pending entry and any change under way: the writer failed.
    pub fn fail(&mut self) {
        self.pending.clear();
        self.change = None;
    }
}

/// `meta` with the bookie in `slot` replaced by `replacement` from `first_entry` on: a new
/// fragment, or the last one rewritten if it starts there (no entry of it completed yet).
pub(super) fn with_replacement(
    meta: &LedgerMetadata,
    slot: usize,
    first_entry: u64,
    replacement: &str,
) -> LedgerMetadata {
    let mut next = meta.clone();
    let mut bookies = meta
        .fragments
        .last()
        .map(|f| f.bookies.clone())
        .unwrap_or_default();
    bookies[slot] = replacement.to_string();
    match next.fragments.last_mut() {
        Some(last) if last.first_entry == first_entry => last.bookies = bookies,
        _ => next.fragments.push(Fragment {
            first_entry,
            bookies,
        }),
    }
    next
}

#[cfg(test)]
#[path = "quorum_test.rs"]
mod tests;
