use super::*;

fn p(l: i64, e: i64) -> Position {
    Position::new(l, e)
}

/// Ledger 3 (3 entries), ledger 7 (empty), ledger 9 (2 entries), ledger 12 open (1 entry).
fn layout() -> LedgerLayout {
    LedgerLayout::new([(3, 3), (7, 0), (9, 2), (12, 1)]).expect("valid layout")
}

#[test]
fn positions_order_by_ledger_then_entry() {
    assert!(p(3, 100) < p(9, 0));
    assert!(p(9, 0) < p(9, 1));
    assert!(p(9, -1) < p(9, 0));
    assert_eq!(p(4, 2).to_string(), "4:2");
}

#[test]
fn next_moves_within_and_across_ledgers() {
    let l = layout();
    assert_eq!(l.next(p(3, 0)), p(3, 1));
    assert_eq!(l.next(p(3, -1)), p(3, 0));
    // Last entry of ledger 3: ledger 7 is empty, so the next entry is 9:0.
    assert_eq!(l.next(p(3, 2)), p(9, 0));
    assert_eq!(l.next(p(9, 1)), p(12, 0));
    // A deleted or unknown ledger id moves to the next known non-empty ledger.
    assert_eq!(l.next(p(5, 40)), p(9, 0));
    assert_eq!(l.next(p(1, 0)), p(3, 0));
}

#[test]
fn next_at_end_of_open_ledger_is_write_position() {
    let mut l = layout();
    assert_eq!(l.next(p(12, 0)), p(12, 1));
    assert_eq!(l.end_position(), p(12, 1));
    assert_eq!(l.append(), p(12, 1));
    assert_eq!(l.next(p(12, 0)), p(12, 1));
    assert_eq!(l.next(p(12, 1)), p(12, 2));
    // Past the end, next is still strictly greater.
    assert_eq!(l.next(p(12, 9)), p(12, 10));
}

#[test]
fn next_skips_empty_ledgers_up_to_empty_open_ledger() {
    let l = LedgerLayout::new([(1, 2), (2, 0), (3, 0)]).expect("valid");
    assert_eq!(l.next(p(1, 1)), p(3, 0));
    assert_eq!(l.end_position(), p(3, 0));
    assert_eq!(l.last_position(), Some(p(1, 1)));
}

#[test]
fn prev_crosses_to_previous_nonempty_ledger() {
    let l = layout();
    assert_eq!(l.prev(p(9, 1)), p(9, 0));
    assert_eq!(l.prev(p(9, 0)), p(3, 2));
    assert_eq!(l.prev(p(12, 0)), p(9, 1));
    assert_eq!(l.prev(p(12, 1)), p(12, 0));
}

#[test]
fn prev_of_first_entry_is_minus_one() {
    let l = layout();
    assert_eq!(l.prev(p(3, 0)), p(3, -1));
    let empty = LedgerLayout::new([(5, 0), (6, 0)]).expect("valid");
    assert_eq!(empty.prev(p(6, 0)), p(6, -1));
}

#[test]
fn count_between_spans_ledgers() {
    let l = layout();
    assert_eq!(l.count_between(p(3, -1), p(12, 0)), 6);
    assert_eq!(l.count_between(p(3, 0), p(9, 0)), 3);
    assert_eq!(l.count_between(p(3, 2), p(9, 1)), 2);
    assert_eq!(l.count_between(p(9, 1), p(9, 1)), 0);
    assert_eq!(l.count_between(p(9, 1), p(3, 0)), 0);
    // Bounds past the end of a ledger are clamped to what exists.
    assert_eq!(l.count_between(p(1, 0), p(12, 50)), 6);
    assert_eq!(l.entries_after(p(9, 0)), 2);
}

#[test]
fn contains_only_existing_entries() {
    let l = layout();
    assert!(l.contains(p(3, 2)));
    assert!(!l.contains(p(3, 3)));
    assert!(!l.contains(p(7, 0)));
    assert!(!l.contains(p(12, 1)));
    assert!(!l.contains(p(3, -1)));
    assert_eq!(l.first_position(), Some(p(3, 0)));
    assert_eq!(l.last_position(), Some(p(12, 0)));
}

#[test]
fn layout_rejects_bad_input() {
    assert_eq!(LedgerLayout::new([]), Err(LayoutError::Empty));
    assert_eq!(
        LedgerLayout::new([(4, 1), (4, 1)]),
        Err(LayoutError::NotIncreasing {
            previous: 4,
            next: 4
        })
    );
    assert_eq!(
        LedgerLayout::new([(4, -1)]),
        Err(LayoutError::NegativeEntries {
            ledger_id: 4,
            entries: -1
        })
    );
}

#[test]
fn roll_over_and_remove_ledgers() {
    let mut l = LedgerLayout::single(10);
    assert_eq!(l.first_position(), None);
    assert_eq!(l.append(), p(10, 0));
    assert_eq!(
        l.roll_over(10),
        Err(LayoutError::NotIncreasing {
            previous: 10,
            next: 10
        })
    );
    l.roll_over(15).expect("increasing id");
    assert_eq!(l.append(), p(15, 0));
    assert_eq!(l.next(p(10, 0)), p(15, 0));
    assert_eq!(
        l.remove_ledger(15),
        Err(LayoutError::RemoveOpenLedger { ledger_id: 15 })
    );
    assert_eq!(l.remove_ledger(10), Ok(true));
    assert_eq!(l.remove_ledger(10), Ok(false));
    assert_eq!(l.first_position(), Some(p(15, 0)));
    assert_eq!(l.next(p(10, 0)), p(15, 0));
}
