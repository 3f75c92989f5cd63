//! One compaction of a topic (Pulsar's `TwoPhaseCompactor`):
//!
//! 1. take the `__compaction` cursor (created at the topic's first entry the first time) and fix
//!    the horizon: the last entry confirmed now;
//! 2. phase one reads the previous compacted ledger, then the topic's entries after the
//!    previous horizon up to the new one, and learns the latest message of every key;
//! 3. phase two reads again only the entries holding a survivor and writes what survives of
//!    them to a new ledger (pipelined);
//! 4. the new ledger and horizon are recorded in the managed ledger's properties
//!    (compare-and-set: a broker that lost the topic cannot record one), the topic's view is
//!    replaced, the cursor moves to the horizon, and the previous compacted ledger is deleted.
//!
//! A failure before step 4 deletes the new ledger and leaves the previous compaction in force.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use magnetar_bookie::ledger::{LedgerWriter, PendingAdd};

use super::select::{Latest, Outcome, last_live_index};
use super::{CURSOR, CompactedLedger, CompactedTopic, PROPERTY, encode_entry, property_value};
use crate::managed_ledger::{InitialPosition, ManagedLedger, MlError};
use crate::position::Position;

/// Entries read per request.
const READ_BATCH: usize = 500;
/// Appends to the compacted ledger in flight at most.
const MAX_PENDING_WRITES: usize = 256;

/// What one compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// The last position it covers (None: the topic is empty).
    pub horizon: Option<Position>,
    /// Messages read in phase one (previous compacted ledger included).
    pub messages_read: u64,
    /// Messages read that the compacted ledger does not hold.
    pub removed_messages: u64,
    pub entries_written: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Keys with a live value.
    pub keys: u64,
}

/// The entries compaction reads, in order: the previous compacted ledger, then the topic from
/// after its horizon up to `end`.
struct Source<'a> {
    ml: &'a ManagedLedger,
    previous: Option<&'a CompactedLedger>,
    previous_next: usize,
    from: Position,
    end: Position,
}

impl<'a> Source<'a> {
    fn new(ml: &'a ManagedLedger, previous: Option<&'a CompactedLedger>, end: Position) -> Self {
        let from = match previous {
            Some(p) => ml.layout().next(p.horizon),
            None => Position::new(-1, -1),
        };
        Source {
            ml,
            previous,
            previous_next: 0,
            from,
            end,
        }
    }

    async fn next(&mut self) -> Result<Option<Vec<(Position, Bytes)>>, MlError> {
        if let Some(previous) = self.previous
            && self.previous_next < previous.entries()
        {
            let last = (self.previous_next + READ_BATCH - 1).min(previous.entries() - 1);
            let entries = previous.read_range(self.previous_next, last).await?;
            self.previous_next = last + 1;
            return Ok(Some(entries));
        }
        if self.from > self.end {
            return Ok(None);
        }
        let mut entries = self.ml.read(self.from, READ_BATCH).await?;
        entries.retain(|(p, _)| *p <= self.end);
        let Some((last, _)) = entries.last() else {
            return Ok(None);
        };
        self.from = self.ml.layout().next(*last);
        Ok(Some(entries))
    }
}

/// Writes the compacted ledger, keeping at most [`MAX_PENDING_WRITES`] appends in flight.
struct Output {
    writer: LedgerWriter,
    pending: VecDeque<PendingAdd>,
    positions: Vec<Position>,
    last_entry: Option<Bytes>,
    bytes: u64,
    /// Messages it holds.
    messages: u64,
}

impl Output {
    async fn write(&mut self, position: Position, entry: Bytes) -> Result<(), MlError> {
        let data = encode_entry(position, &entry);
        self.bytes += data.len() as u64;
        self.pending.push_back(self.writer.append(data));
        self.positions.push(position);
        self.last_entry = Some(entry);
        if self.pending.len() >= MAX_PENDING_WRITES
            && let Some(add) = self.pending.pop_front()
        {
            add.await?;
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<Output, MlError> {
        while let Some(add) = self.pending.pop_front() {
            add.await?;
        }
        self.writer.close().await?;
        Ok(self)
    }
}

/// Compacts the topic stored in `ml` up to its last confirmed entry; `limit` is the largest
/// batch it decompresses. Only the topic's owner can record the result.
pub async fn compact(
    ml: &ManagedLedger,
    compacted: &CompactedTopic,
    limit: usize,
) -> Result<CompactionReport, MlError> {
    let (handle, mut cursor) = ml.open_cursor(CURSOR, InitialPosition::Earliest).await?;
    let result = run(ml, compacted, limit).await;
    let mut unwritten = false;
    if let Ok(CompactionReport {
        horizon: Some(horizon),
        ..
    }) = &result
    {
        let layout = ml.layout();
        if layout.contains(*horizon)
            && cursor.ack_cumulative(&layout, *horizon, None).is_ok()
            && let Err(e) = handle.persist(&cursor).await
        {
            tracing::warn!(managed_ledger = ml.name(), error = %e, "persisting the compaction cursor failed; retried in the background");
            unwritten = true;
        }
    }
    handle.release(cursor, unwritten);
    result
}

async fn run(
    ml: &ManagedLedger,
    compacted: &CompactedTopic,
    limit: usize,
) -> Result<CompactionReport, MlError> {
    let previous = compacted.view(ml, limit).await?;
    let Some(end) = ml.last_confirmed() else {
        return Ok(CompactionReport::default());
    };
    let mut report = CompactionReport {
        horizon: Some(end),
        ..Default::default()
    };
    if let Some(previous) = &previous
        && previous.horizon >= end
    {
        report.horizon = Some(previous.horizon);
        report.entries_written = previous.entries() as u64;
        return Ok(report);
    }
    let mut latest = Latest::new(limit);
    let mut source = Source::new(ml, previous.as_deref(), end);
    while let Some(entries) = source.next().await? {
        for (position, entry) in &entries {
            report.bytes_read += entry.len() as u64;
            latest.observe(*position, entry);
        }
    }
    report.messages_read = latest.messages_seen();
    report.keys = latest.keys() as u64;

    let custom = BTreeMap::from([
        ("application".to_string(), "magnetar-broker".to_string()),
        ("component".to_string(), "compactor".to_string()),
        ("compacted-topic".to_string(), ml.name().to_string()),
    ]);
    let writer = ml
        .ledger_client()
        .create(ml.config().ledger_config(), custom)
        .await?;
    let ledger_id = writer.id();
    let written = write(ml, previous.as_deref(), &latest, writer).await;
    let recorded = match written {
        Ok(output) => ml
            .set_property(PROPERTY, property_value(ledger_id, end))
            .await
            .map(|()| output),
        Err(e) => Err(e),
    };
    let output = match recorded {
        Ok(output) => output,
        Err(e) => {
            if let Err(delete) = ml.ledger_client().delete(ledger_id).await {
                tracing::warn!(ledger_id, error = %delete, "deleting an unrecorded compacted ledger failed");
            }
            return Err(e);
        }
    };
    report.entries_written = output.positions.len() as u64;
    report.bytes_written = output.bytes;
    report.removed_messages = report.messages_read.saturating_sub(output.messages);
    let reader = ml.ledger_client().open(ledger_id).await?;
    let last_batch_index = output
        .last_entry
        .as_ref()
        .and_then(|e| last_live_index(e, limit));
    compacted
        .install(CompactedLedger::new(
            ledger_id,
            end,
            output.positions,
            last_batch_index,
            output.bytes,
            reader,
        ))
        .await;
    if let Some(previous) = previous
        && let Err(e) = ml.ledger_client().delete(previous.ledger_id).await
    {
        tracing::warn!(ledger_id = previous.ledger_id, error = %e, "deleting the previous compacted ledger failed; it stays as an orphan");
    }
    tracing::info!(managed_ledger = ml.name(), ledger_id, horizon = %end, messages = report.messages_read, removed = report.removed_messages, keys = report.keys, "topic compacted");
    Ok(report)
}

/// Phase two: reads again only the entries phase one named as survivors (the previous
/// compacted ledger's from it, the rest from the topic) and writes what survives of each.
async fn write(
    ml: &ManagedLedger,
    previous: Option<&CompactedLedger>,
    latest: &Latest,
    writer: LedgerWriter,
) -> Result<Output, MlError> {
    let mut output = Output {
        writer,
        pending: VecDeque::new(),
        positions: Vec::new(),
        last_entry: None,
        bytes: 0,
        messages: 0,
    };
    for chunk in latest.survivors().chunks(READ_BATCH) {
        let (old, new): (Vec<Position>, Vec<Position>) = chunk
            .iter()
            .partition(|p| previous.is_some_and(|prev| **p <= prev.horizon));
        let mut entries = match previous {
            Some(previous) => previous.read_positions(&old).await?,
            None => Vec::new(),
        };
        entries.extend(ml.read_positions(&new).await?);
        if entries.len() != chunk.len() {
            return Err(MlError::Corrupt(format!(
                "compaction: {} of {} surviving entries could be read again",
                entries.len(),
                chunk.len()
            )));
        }
        for (position, entry) in entries {
            let (outcome, survivors) = latest.rewrite(position, &entry);
            output.messages += survivors;
            match outcome {
                Outcome::Drop => {}
                Outcome::Keep => output.write(position, entry).await?,
                Outcome::Rewritten(rewritten) => output.write(position, rewritten).await?,
            }
        }
    }
    output.finish().await
}
