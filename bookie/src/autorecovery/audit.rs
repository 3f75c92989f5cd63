//! Which copies a lost bookie took with it, from ledger metadata alone (no I/O).
//!
//! A fragment `[first, last]` of a ledger is under-replicated when a bookie of its ensemble is
//! lost and the fragment holds entries. Fragments of a closed ledger have fixed ranges and are
//! repaired; the last fragment of a ledger still open grows under its writer, which replaces a
//! failed bookie itself (an ensemble change) on its next add — it is reported, not copied, until
//! the ledger is closed (managed ledgers roll theirs over, and a new owner's recovery closes the
//! ledgers of a dead one).

use std::collections::{BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use crate::ledger::{LedgerMetadata, LedgerState};

/// One fragment missing copies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DamagedFragment {
    /// Index into the ledger's fragments.
    pub index: usize,
    pub first_entry: u64,
    /// Last entry of the fragment; `None` while it is the open tail of an open ledger.
    pub last_entry: Option<u64>,
    /// Ensemble slots whose bookie is lost, with that bookie.
    pub lost: Vec<(usize, String)>,
}

impl DamagedFragment {
    /// Whether its range is fixed, so it can be copied now.
    pub fn repairable(&self) -> bool {
        self.last_entry.is_some()
    }
}

/// What a ledger lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnderReplicated {
    pub ledger_id: u64,
    pub state: LedgerState,
    pub lost_bookies: Vec<String>,
    pub fragments: Vec<DamagedFragment>,
}

/// The fragments of `meta` that hold entries on a bookie in `lost`; `None` if there are none.
pub fn audit(
    ledger_id: u64,
    meta: &LedgerMetadata,
    lost: &HashSet<String>,
) -> Option<UnderReplicated> {
    let mut fragments = Vec::new();
    let mut lost_bookies = BTreeSet::new();
    for (index, fragment) in meta.fragments.iter().enumerate() {
        let slots: Vec<(usize, String)> = fragment
            .bookies
            .iter()
            .enumerate()
            .filter(|(_, b)| lost.contains(*b))
            .map(|(slot, b)| (slot, b.clone()))
            .collect();
        if slots.is_empty() {
            continue;
        }
        let last_entry = match meta.fragments.get(index + 1) {
            Some(next) => Some(next.first_entry as i64 - 1),
            None if meta.state == LedgerState::Closed => Some(meta.last_entry_id),
            None => None,
        };
        if let Some(last) = last_entry
            && last < fragment.first_entry as i64
        {
            continue; // an empty fragment: nothing was stored there
        }
        lost_bookies.extend(slots.iter().map(|(_, b)| b.clone()));
        fragments.push(DamagedFragment {
            index,
            first_entry: fragment.first_entry,
            last_entry: last_entry.map(|l| l as u64),
            lost: slots,
        });
    }
    if fragments.is_empty() {
        return None;
    }
    Some(UnderReplicated {
        ledger_id,
        state: meta.state,
        lost_bookies: lost_bookies.into_iter().collect(),
        fragments,
    })
}

/// The entries of `first..=last` that ensemble slot `slot` stores.
pub fn entries_on_slot(meta: &LedgerMetadata, first: u64, last: u64, slot: usize) -> Vec<u64> {
    (first..=last)
        .filter(|&e| meta.write_set(e).contains(&slot))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::ledger::metadata::Fragment;

    fn meta(state: LedgerState, last: i64, fragments: &[(u64, &[&str])]) -> LedgerMetadata {
        LedgerMetadata {
            ensemble_size: 3,
            write_quorum: 2,
            ack_quorum: 2,
            state,
            last_entry_id: last,
            length: 0,
            fragments: fragments
                .iter()
                .map(|(first, bookies)| Fragment {
                    first_entry: *first,
                    bookies: bookies.iter().map(|b| b.to_string()).collect(),
                })
                .collect(),
            created_ms: 0,
            closed_ms: 0,
            custom: BTreeMap::new(),
        }
    }

    fn lost(bookies: &[&str]) -> HashSet<String> {
        bookies.iter().map(|b| b.to_string()).collect()
    }

    #[test]
    fn a_closed_ledger_reports_every_fragment_on_the_lost_bookie() {
        let m = meta(
            LedgerState::Closed,
            29,
            &[
                (0, &["a", "b", "c"]),
                (10, &["a", "d", "c"]),
                (20, &["e", "d", "c"]),
            ],
        );
        let report = audit(7, &m, &lost(&["a"])).expect("damaged");
        assert_eq!(report.lost_bookies, vec!["a"]);
        assert_eq!(report.fragments.len(), 2);
        assert_eq!(report.fragments[0].last_entry, Some(9));
        assert_eq!(report.fragments[1].first_entry, 10);
        assert_eq!(report.fragments[1].last_entry, Some(19));
        assert_eq!(report.fragments[1].lost, vec![(0, "a".to_string())]);
        assert!(report.fragments.iter().all(DamagedFragment::repairable));
        assert!(audit(7, &m, &lost(&["x"])).is_none());
        let both = audit(7, &m, &lost(&["c", "d"])).expect("damaged");
        assert_eq!(both.fragments.len(), 3);
        assert_eq!(both.fragments[2].lost.len(), 2);
    }

    #[test]
    fn empty_fragments_are_skipped_and_open_tails_are_not_repairable() {
        // An ensemble change right at the end left an empty last fragment.
        let m = meta(
            LedgerState::Closed,
            9,
            &[(0, &["a", "b", "c"]), (10, &["d", "b", "c"])],
        );
        assert!(audit(1, &m, &lost(&["d"])).is_none());
        let empty = meta(LedgerState::Closed, -1, &[(0, &["a", "b", "c"])]);
        assert!(audit(1, &empty, &lost(&["a"])).is_none());

        let open = meta(
            LedgerState::Open,
            -1,
            &[(0, &["a", "b", "c"]), (5, &["a", "b", "d"])],
        );
        let report = audit(1, &open, &lost(&["a"])).expect("damaged");
        assert!(report.fragments[0].repairable());
        assert!(!report.fragments[1].repairable());
    }

    #[test]
    fn slot_entries_follow_the_striping() {
        let m = meta(LedgerState::Closed, 5, &[(0, &["a", "b", "c"])]);
        // E=3, Qw=2: entry e on slots e%3 and (e+1)%3.
        assert_eq!(entries_on_slot(&m, 0, 5, 0), vec![0, 2, 3, 5]);
        assert_eq!(entries_on_slot(&m, 0, 5, 1), vec![0, 1, 3, 4]);
        assert_eq!(entries_on_slot(&m, 2, 2, 1), Vec::<u64>::new());
    }
}
