//! Reads: from the entry cache when the entries are recent, otherwise from the bookies — through
//! this instance's own writers for the ledgers it wrote (they know their last confirmed entry),
//! and through cached readers for closed ledgers.

use bytes::Bytes;

use super::MlError;
use super::read_ahead::{self, Block};
use super::shared::{Shared, lock};
use crate::position::{LedgerLayout, Position};

/// Bytes fetched per GET when a reader reads an offloaded ledger.
const TIERED_READ_AHEAD: u64 = 4 * 1024 * 1024;

/// Consecutive entries of one ledger: `(ledger, first, last)`.
type Run = (i64, i64, i64);

/// The runs holding up to `max` existing entries from `from` on, up to `last`.
pub(super) fn plan(
    layout: &LedgerLayout,
    last: Option<Position>,
    from: Position,
    max: usize,
) -> Vec<Run> {
    let Some(last) = last else {
        return Vec::new();
    };
    let mut p = if layout.contains(from) {
        from
    } else {
        layout.next(from)
    };
    let mut remaining = max as i64;
    let mut runs = Vec::new();
    while remaining > 0 && p <= last && layout.contains(p) {
        let Some(entries) = layout
            .ledgers()
            .iter()
            .find(|l| l.ledger_id == p.ledger_id)
            .map(|l| l.entries)
        else {
            break;
        };
        let mut end = (entries - 1).min(p.entry_id + remaining - 1);
        if p.ledger_id == last.ledger_id {
            end = end.min(last.entry_id);
        }
        runs.push((p.ledger_id, p.entry_id, end));
        remaining -= end - p.entry_id + 1;
        p = layout.next(Position::new(p.ledger_id, end));
    }
    runs
}

/// Up to `max` entries from `from` (inclusive), in order, up to the last confirmed one.
pub(super) async fn read(
    shared: &Shared,
    from: Position,
    max: usize,
) -> Result<Vec<(Position, Bytes)>, MlError> {
    let runs = {
        let state = shared.lock();
        plan(&state.layout, state.last_confirmed, from, max)
    };
    let mut out = Vec::new();
    for run in runs {
        read_run(shared, run, true, &mut out).await?;
    }
    Ok(out)
}

/// The entries at `positions` that exist, in the order given.
pub(super) async fn read_positions(
    shared: &Shared,
    positions: &[Position],
) -> Result<Vec<(Position, Bytes)>, MlError> {
    let mut runs: Vec<Run> = Vec::new();
    {
        let state = shared.lock();
        for p in positions {
            if !state.layout.contains(*p) || state.last_confirmed.is_none_or(|last| *p > last) {
                continue;
            }
            match runs.last_mut() {
                Some((ledger, _, end)) if *ledger == p.ledger_id && *end + 1 == p.entry_id => {
                    *end = p.entry_id;
                }
                _ => runs.push((p.ledger_id, p.entry_id, p.entry_id)),
            }
        }
    }
    let mut out = Vec::with_capacity(positions.len());
    for run in runs {
        read_run(shared, run, false, &mut out).await?;
    }
    Ok(out)
}

/// One run: cached entries as they are, the gaps between them from the bookies. A `sequential`
/// run whose last entries are not cached reads ahead past them (see [`read_ahead`]).
async fn read_run(
    shared: &Shared,
    (ledger, first, last): Run,
    sequential: bool,
    out: &mut Vec<(Position, Bytes)>,
) -> Result<(), MlError> {
    let cached: Vec<Option<Bytes>> = {
        let mut cache = lock(&shared.cache);
        (first..=last)
            .map(|e| cache.get(Position::new(ledger, e)))
            .collect()
    };
    let mut entry = first;
    let mut i = 0;
    while entry <= last {
        if let Some(data) = &cached[i] {
            out.push((Position::new(ledger, entry), data.clone()));
            entry += 1;
            i += 1;
            continue;
        }
        let gap_end = cached[i..]
            .iter()
            .position(Option::is_some)
            .map_or(last, |n| entry + n as i64 - 1);
        let ahead = sequential && gap_end == last;
        let data = from_bookies(shared, ledger, entry, gap_end, ahead).await?;
        if data.len() as i64 != gap_end - entry + 1 {
            return Err(MlError::Corrupt(format!(
                "ledger {ledger}: asked for entries {entry}..={gap_end}, got {}",
                data.len()
            )));
        }
        for d in data {
            out.push((Position::new(ledger, entry), d));
            entry += 1;
            i += 1;
        }
    }
    Ok(())
}

/// Entries `first..=last` of a ledger: entries read ahead before, else from the bookies while
/// they have it, else from tiered storage (also when a bookie read of an offloaded ledger
/// fails). With `ahead`, the entries after `last` are read too and kept for the next read.
async fn from_bookies(
    shared: &Shared,
    ledger: i64,
    first: i64,
    last: i64,
    ahead: bool,
) -> Result<Vec<Bytes>, MlError> {
    let (Ok(id), Ok(first), Ok(last)) = (
        u64::try_from(ledger),
        u64::try_from(first),
        u64::try_from(last),
    ) else {
        return Err(MlError::UnknownPosition(Position::new(ledger, first)));
    };
    let mut held = lock(&shared.read_ahead).take(id, first, last);
    if held.len() as u64 > last - first {
        return Ok(held);
    }
    if !held.is_empty() {
        let next = first + held.len() as u64;
        held.extend(
            Box::pin(from_bookies(
                shared,
                ledger,
                next as i64,
                last as i64,
                ahead,
            ))
            .await?,
        );
        return Ok(held);
    }
    let offloaded = shared
        .lock()
        .info
        .ledgers
        .iter()
        .find(|l| l.ledger_id == id)
        .and_then(|l| l.offload_context)
        .filter(|c| c.complete);
    let Some(context) = offloaded else {
        return bookie_read_ahead(shared, id, first, last, ahead).await;
    };
    if !context.bookkeeper_deleted {
        match bookie_read_ahead(shared, id, first, last, ahead).await {
            Ok(entries) => return Ok(entries),
            Err(e) => {
                tracing::debug!(managed_ledger = %shared.name, ledger = id, error = %e,
                    "bookie read of an offloaded ledger failed; reading tiered storage");
            }
        }
    }
    let Some(offloader) = &shared.config.offloader else {
        return Err(MlError::Offload(format!(
            "ledger {id} is in tiered storage, but this broker has no offload driver configured"
        )));
    };
    let mut entries = offloader
        .read_ahead(
            &shared.name,
            id,
            context.uid(),
            first,
            last,
            TIERED_READ_AHEAD,
        )
        .await
        .map_err(MlError::Offload)?;
    keep_past(shared, id, first, last, &mut entries, false);
    Ok(entries)
}

/// Entries `first..=last` from the bookies, and with `ahead` the ones after them as far as
/// [`read_ahead::extra_entries`] allows (kept for the next read).
async fn bookie_read_ahead(
    shared: &Shared,
    id: u64,
    first: u64,
    last: u64,
    ahead: bool,
) -> Result<Vec<Bytes>, MlError> {
    let extra = if ahead {
        extra_entries(shared, id, first, last)
    } else {
        0
    };
    if extra == 0 {
        return bookie_read(shared, id, first, last).await;
    }
    match bookie_read(shared, id, first, last + extra).await {
        Ok(mut entries) => {
            keep_past(shared, id, first, last, &mut entries, true);
            Ok(entries)
        }
        Err(e) => {
            // What was asked for may still be readable without the entries after it.
            tracing::debug!(managed_ledger = %shared.name, ledger = id, error = %e,
                "read-ahead failed; reading only the entries asked for");
            bookie_read(shared, id, first, last).await
        }
    }
}

/// Moves the entries past `last` out of `entries` into a read-ahead block (which must fit the
/// cache budget if `budgeted`).
fn keep_past(
    shared: &Shared,
    id: u64,
    first: u64,
    last: u64,
    entries: &mut Vec<Bytes>,
    budgeted: bool,
) {
    let wanted = (last - first + 1) as usize;
    if entries.len() <= wanted {
        return;
    }
    let rest = entries.split_off(wanted);
    let budget = shared.config.cache_budget.as_ref();
    if let Some(block) = Block::new(id, last + 1, rest, budget, budgeted) {
        lock(&shared.read_ahead).keep(block);
    }
}

/// How many entries of ledger `id` to read past `first..=last`: up to its last confirmed entry,
/// short of the entries in the entry cache, within the read-ahead window and while the cache
/// budget is at most half used.
fn extra_entries(shared: &Shared, id: u64, first: u64, last: u64) -> u64 {
    let Ok(ledger) = i64::try_from(id) else {
        return 0;
    };
    let (mut ledger_last, average) = {
        let state = shared.lock();
        let Some(entries) = state
            .layout
            .ledgers()
            .iter()
            .find(|l| l.ledger_id == ledger)
            .map(|l| l.entries)
        else {
            return 0;
        };
        let mut ledger_last = entries - 1;
        if let Some(confirmed) = state.last_confirmed.filter(|p| p.ledger_id == ledger) {
            ledger_last = ledger_last.min(confirmed.entry_id);
        }
        let bytes = if ledger == state.layout.open_ledger_id() {
            state.current_size
        } else {
            let record = state.info.ledgers.iter().find(|l| l.ledger_id == id);
            record.map_or(0, |l| l.size)
        };
        let average = u64::try_from(entries)
            .ok()
            .filter(|n| *n > 0)
            .map_or(0, |n| bytes / n);
        (ledger_last, average)
    };
    if let Some(oldest) = lock(&shared.cache)
        .oldest()
        .filter(|p| p.ledger_id == ledger)
    {
        ledger_last = ledger_last.min(oldest.entry_id - 1);
    }
    let Ok(ledger_last) = u64::try_from(ledger_last) else {
        return 0;
    };
    let window = lock(&shared.read_ahead).window();
    let extra = read_ahead::extra_entries(first, last, ledger_last, average, window);
    match &shared.config.cache_budget {
        Some(budget) if budget.used() as u64 + extra * average > budget.limit() as u64 / 2 => 0,
        _ => extra,
    }
}

/// Entries `first..=last` of ledger `id` from the bookies: through this instance's writer if it
/// wrote the ledger, else a cached (or new) reader.
pub(super) async fn bookie_read(
    shared: &Shared,
    id: u64,
    first: u64,
    last: u64,
) -> Result<Vec<Bytes>, MlError> {
    let writer = shared.lock().writers.iter().find(|w| w.id() == id).cloned();
    if let Some(writer) = writer {
        return Ok(writer.read(first, last).await?);
    }
    let reader = match shared.cached_reader(id) {
        Some(reader) => reader,
        None => {
            let reader = shared.ledgers.open(id).await?;
            shared.keep_reader(reader.clone());
            reader
        }
    };
    Ok(reader.read(first, last).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_runs_across_ledgers_up_to_last_confirmed() {
        let layout = LedgerLayout::new([(1, 3), (2, 0), (5, 4)]).expect("layout");
        let last = Some(Position::new(5, 3));
        assert_eq!(
            plan(&layout, last, Position::new(1, 1), 10),
            vec![(1, 1, 2), (5, 0, 3)]
        );
        assert_eq!(
            plan(&layout, last, Position::new(1, 1), 3),
            vec![(1, 1, 2), (5, 0, 0)]
        );
        assert_eq!(plan(&layout, last, Position::new(0, 0), 2), vec![(1, 0, 1)]);
        assert_eq!(
            plan(&layout, last, Position::new(2, -1), 2),
            vec![(5, 0, 1)]
        );
        assert_eq!(plan(&layout, last, Position::new(5, 4), 2), vec![]);
        assert_eq!(plan(&layout, None, Position::new(1, 0), 2), vec![]);
        assert_eq!(
            plan(&layout, Some(Position::new(5, 1)), Position::new(5, 0), 9),
            vec![(5, 0, 1)]
        );
    }
}
