use std::collections::BTreeMap;

use super::*;
use crate::ledger::metadata::LedgerState;

fn metadata(ensemble: usize, write_quorum: usize, ack_quorum: usize) -> LedgerMetadata {
    LedgerMetadata {
        ensemble_size: ensemble,
        write_quorum,
        ack_quorum,
        state: LedgerState::Open,
        last_entry_id: -1,
        length: 0,
        fragments: vec![Fragment {
            first_entry: 0,
            bookies: (0..ensemble).map(|i| format!("b{i}")).collect(),
        }],
        created_ms: 0,
        custom: BTreeMap::new(),
    }
}

/// An ack from a bookie after it was replaced in its slot does not count.
#[test]
fn acks_from_a_replaced_bookie_are_ignored() {
    let mut quorum = Quorum::new(metadata(2, 2, 2));
    let (entry, _) = quorum.append(Bytes::from_static(b"a"));
    let change = quorum.begin_change(1, "b1").expect("b1 is in the ensemble");
    let next = with_replacement(quorum.meta(), 1, change.first_entry, "r");
    let (resend, done) = quorum.finish_change(next);
    assert!(done.is_empty());
    assert_eq!(resend.len(), 1);
    assert_eq!((resend[0].entry, resend[0].bookie.as_str()), (entry, "r"));
    assert!(quorum.ack(entry, 1, "b1").is_empty());
    assert!(quorum.ack(entry, 0, "b0").is_empty());
    assert_eq!(quorum.ack(entry, 1, "r"), vec![entry]);
    assert!(quorum.begin_change(1, "b1").is_none(), "b1 is already out");
}
