//! Finding entries by publish time (SEEK by time, message TTL, the message-age backlog quota):
//! a binary search over the ledgers by their last entry's publish time, then over one ledger's
//! entries — O(log n) entry reads and nothing the size of the topic in memory. Publish times
//! are taken as non-decreasing, as Pulsar does.

use magnetar_protocol::Payload;

use crate::error::BrokerError;
use crate::managed_ledger::ManagedLedger;
use crate::position::{LedgerLayout, Position};

/// The first entry of `layout` published at or after `time` (ms since the epoch); the end
/// position if there is none.
pub async fn first_at_or_after(
    ml: &ManagedLedger,
    layout: &LedgerLayout,
    time: u64,
) -> Result<Position, BrokerError> {
    search(layout, time, |p| publish_time(ml, p)).await
}

/// The search itself, over any source of publish times (tests count its probes).
pub async fn search<F, Fut>(
    layout: &LedgerLayout,
    time: u64,
    mut published: F,
) -> Result<Position, BrokerError>
where
    F: FnMut(Position) -> Fut,
    Fut: Future<Output = Result<u64, BrokerError>>,
{
    let ledgers: Vec<(i64, i64)> = layout
        .ledgers()
        .iter()
        .filter(|l| l.entries > 0)
        .map(|l| (l.ledger_id, l.entries))
        .collect();
    let (mut low, mut high) = (0usize, ledgers.len());
    while low < high {
        let mid = low + (high - low) / 2;
        let (ledger_id, entries) = ledgers[mid];
        if published(Position::new(ledger_id, entries - 1)).await? < time {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    let Some(&(ledger_id, entries)) = ledgers.get(low) else {
        return Ok(layout.end_position());
    };
    let (mut low, mut high) = (0i64, entries);
    while low < high {
        let mid = low + (high - low) / 2;
        if published(Position::new(ledger_id, mid)).await? < time {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    Ok(Position::new(ledger_id, low))
}

/// The publish time of the entry at `p` (0 if it is gone or unreadable).
pub async fn publish_time(ml: &ManagedLedger, p: Position) -> Result<u64, BrokerError> {
    let entries = ml
        .read_positions(&[p])
        .await
        .map_err(|e| BrokerError::Persistence(e.to_string()))?;
    Ok(entries
        .first()
        .and_then(|(_, bytes)| Payload::parse(bytes.clone()).ok())
        .and_then(|p| p.metadata().ok())
        .map_or(0, |m| m.publish_time))
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// 1,000 ledgers of 1,000 entries, entry n published at time 10·n: every search lands on
    /// the right entry with at most log2(ledgers) + log2(entries) + 2 reads.
    #[test]
    fn searches_a_million_entries_in_a_few_reads() {
        let layout =
            LedgerLayout::new((1..=1000).map(|l| (l, 1000)).chain([(1001, 0)])).expect("layout");
        let time_of = |p: Position| ((p.ledger_id - 1) * 1000 + p.entry_id) as u64 * 10;
        for target in [
            0u64,
            5,
            10,
            12_345,
            4_999_990,
            9_999_990,
            9_999_995,
            u64::MAX,
        ] {
            let probes = Cell::new(0u32);
            let found = futures::executor::block_on(search(&layout, target, |p| {
                probes.set(probes.get() + 1);
                std::future::ready(Ok(time_of(p)))
            }))
            .expect("search");
            let expected = if target > 9_999_990 {
                layout.end_position()
            } else {
                let n = target.div_ceil(10) as i64;
                Position::new(n / 1000 + 1, n % 1000)
            };
            assert_eq!(found, expected, "target {target}");
            assert!(probes.get() <= 10 + 10 + 2, "{} reads", probes.get());
        }
    }
}
