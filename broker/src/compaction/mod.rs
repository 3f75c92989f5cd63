//! Topic compaction, as Pulsar's: a compacted ledger holding the latest message of every key
//! up to a *horizon*, read by consumers and readers that ask for `read_compacted` in place of
//! the topic's own entries up to that horizon.
//!
//! - The compacted ledger is an ordinary ledger on the bookies, written by [`compactor`]; each of
//!   its entries is `[ledger id: i64][entry id: i64]` (the original position, big-endian)
//!   followed by the entry, rewritten when some of a batch's messages were superseded
//!   ([`select`]). Message ids therefore never change.
//! - The managed ledger's property `pulsar.compaction` (`ledger:horizon-ledger:horizon-entry`)
//!   names the current compacted ledger; it is written with the ledger list's compare-and-set,
//!   so only the topic's owner records one. The durable cursor `__compaction` is moved to the
//!   horizon afterwards: until then it holds the topic's uncompacted entries against trimming.
//! - [`CompactedTopic`] is a topic's view of it: the compacted ledger opened for reading with
//!   an index of the original positions, loaded on first use, replaced by each compaction.

mod compactor;
pub mod select;

use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Buf, Bytes};
use magnetar_bookie::ledger::{LedgerClient, LedgerReader};
use serde::Serialize;

use crate::managed_ledger::{ManagedLedger, MlError};
use crate::position::Position;

pub use compactor::{CompactionReport, compact};

/// The managed ledger property naming the compacted ledger and its horizon.
pub const PROPERTY: &str = "pulsar.compaction";
/// The durable cursor that holds uncompacted entries (Pulsar's compaction subscription).
pub const CURSOR: &str = "__compaction";
/// Bytes of the original position in front of each compacted entry.
const HEADER: usize = 16;
/// Entries read from the compacted ledger per bookie request when loading its index.
const INDEX_READ: u64 = 1_000;

/// `(compacted ledger, horizon)` from the property's value.
pub fn parse_property(value: &str) -> Option<(u64, Position)> {
    let mut parts = value.split(':');
    let ledger = parts.next()?.parse().ok()?;
    let horizon = Position::new(parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
    parts.next().is_none().then_some((ledger, horizon))
}

pub fn property_value(ledger: u64, horizon: Position) -> String {
    format!("{ledger}:{}:{}", horizon.ledger_id, horizon.entry_id)
}

/// A compacted entry: the original position, then the entry.
pub fn encode_entry(position: Position, entry: &[u8]) -> Bytes {
    let mut buf = Vec::with_capacity(HEADER + entry.len());
    buf.extend_from_slice(&position.ledger_id.to_be_bytes());
    buf.extend_from_slice(&position.entry_id.to_be_bytes());
    buf.extend_from_slice(entry);
    Bytes::from(buf)
}

fn decode_entry(ledger: u64, mut data: Bytes) -> Result<(Position, Bytes), MlError> {
    if data.len() < HEADER {
        return Err(MlError::Corrupt(format!(
            "compacted ledger {ledger}: an entry of {} bytes has no position",
            data.len()
        )));
    }
    let position = Position::new(data.get_i64(), data.get_i64());
    Ok((position, data))
}

/// A compacted ledger opened for reading.
#[derive(Debug)]
pub struct CompactedLedger {
    pub ledger_id: u64,
    /// The last position of the topic it covers.
    pub horizon: Position,
    /// The original position of each of its entries (entry id = index).
    positions: Vec<Position>,
    /// The batch index of the last live message of its last entry, for GET_LAST_MESSAGE_ID.
    last_batch_index: Option<u32>,
    pub size_bytes: u64,
    reader: LedgerReader,
}

impl CompactedLedger {
    pub(crate) fn new(
        ledger_id: u64,
        horizon: Position,
        positions: Vec<Position>,
        last_batch_index: Option<u32>,
        size_bytes: u64,
        reader: LedgerReader,
    ) -> CompactedLedger {
        CompactedLedger {
            ledger_id,
            horizon,
            positions,
            last_batch_index,
            size_bytes,
            reader,
        }
    }

    /// Opens `ledger_id` and reads it through once to learn its positions.
    async fn load(
        ledgers: &LedgerClient,
        ledger_id: u64,
        horizon: Position,
        limit: usize,
    ) -> Result<CompactedLedger, MlError> {
        let reader = ledgers.open(ledger_id).await?;
        let last = reader.last_entry_id();
        let mut positions = Vec::with_capacity((last + 1).max(0) as usize);
        let mut size_bytes = 0;
        let mut last_entry = None;
        let mut next = 0u64;
        while (next as i64) <= last {
            let to = (next + INDEX_READ - 1).min(last as u64);
            for data in reader.read(next, to).await? {
                size_bytes += data.len() as u64;
                let (position, entry) = decode_entry(ledger_id, data)?;
                positions.push(position);
                last_entry = Some(entry);
            }
            next = to + 1;
        }
        let last_batch_index = last_entry.and_then(|e| select::last_live_index(&e, limit));
        Ok(CompactedLedger::new(
            ledger_id,
            horizon,
            positions,
            last_batch_index,
            size_bytes,
            reader,
        ))
    }

    pub fn entries(&self) -> usize {
        self.positions.len()
    }

    /// The last message it holds: position and, for a batch, the index of its last live
    /// message.
    pub fn last_message(&self) -> Option<(Position, Option<u32>)> {
        self.positions.last().map(|p| (*p, self.last_batch_index))
    }

    pub(crate) async fn read_range(
        &self,
        first: usize,
        last: usize,
    ) -> Result<Vec<(Position, Bytes)>, MlError> {
        self.reader
            .read(first as u64, last as u64)
            .await?
            .into_iter()
            .map(|data| decode_entry(self.ledger_id, data))
            .collect()
    }

    /// The first position it holds at or after `from`.
    pub fn first_at_or_after(&self, from: Position) -> Option<Position> {
        let i = self.positions.partition_point(|p| *p < from);
        self.positions.get(i).copied()
    }

    /// Up to `max` compacted entries at or after `from`, in order.
    pub async fn read_from(
        &self,
        from: Position,
        max: usize,
    ) -> Result<Vec<(Position, Bytes)>, MlError> {
        let first = self.positions.partition_point(|p| *p < from);
        if first >= self.positions.len() || max == 0 {
            return Ok(Vec::new());
        }
        let last = (first + max - 1).min(self.positions.len() - 1);
        self.read_range(first, last).await
    }

    /// The compacted entries at `positions` (those it holds), in the order given; runs of
    /// consecutive entries are read with one request.
    pub async fn read_positions(
        &self,
        positions: &[Position],
    ) -> Result<Vec<(Position, Bytes)>, MlError> {
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for p in positions {
            let Ok(i) = self.positions.binary_search(p) else {
                continue;
            };
            match runs.last_mut() {
                Some((_, last)) if *last + 1 == i => *last = i,
                _ => runs.push((i, i)),
            }
        }
        let mut out = Vec::with_capacity(positions.len());
        for (first, last) in runs {
            out.extend(self.read_range(first, last).await?);
        }
        Ok(out)
    }
}

/// Where a topic's compaction stands, in Pulsar's `LongRunningProcessStatus` terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CompactionState {
    NotRun,
    Running,
    Success,
    Error,
}

/// A topic's compaction status and the figures of its last run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionStatus {
    pub state: CompactionState,
    pub last_error: String,
    pub last_removed_events: u64,
    pub last_succeeded_ms: u64,
    pub last_failed_ms: u64,
    pub last_duration_ms: u64,
}

impl Default for CompactionStatus {
    fn default() -> CompactionStatus {
        CompactionStatus {
            state: CompactionState::NotRun,
            last_error: String::new(),
            last_removed_events: 0,
            last_succeeded_ms: 0,
            last_failed_ms: 0,
            last_duration_ms: 0,
        }
    }
}

#[derive(Debug, Default)]
struct Cached {
    /// The property value the view was loaded for.
    property: Option<String>,
    view: Option<Arc<CompactedLedger>>,
}

/// A topic's compacted view and compaction status; shared by the topic and its subscriptions.
#[derive(Debug, Default)]
pub struct CompactedTopic {
    cached: tokio::sync::Mutex<Cached>,
    status: Mutex<CompactionStatus>,
}

impl CompactedTopic {
    /// The compacted ledger as the managed ledger's property names it, loaded on first use;
    /// None before the first compaction.
    pub async fn view(
        &self,
        ml: &ManagedLedger,
        limit: usize,
    ) -> Result<Option<Arc<CompactedLedger>>, MlError> {
        let property = ml.property(PROPERTY);
        let mut cached = self.cached.lock().await;
        if cached.property == property {
            return Ok(cached.view.clone());
        }
        let view = match property.as_deref().and_then(parse_property) {
            Some((ledger, horizon)) => Some(Arc::new(
                CompactedLedger::load(ml.ledger_client(), ledger, horizon, limit).await?,
            )),
            None => None,
        };
        *cached = Cached {
            property,
            view: view.clone(),
        };
        Ok(view)
    }

    /// The view a compaction just recorded (no need to read it back).
    pub(crate) async fn install(&self, view: CompactedLedger) {
        let property = property_value(view.ledger_id, view.horizon);
        *self.cached.lock().await = Cached {
            property: Some(property),
            view: Some(Arc::new(view)),
        };
    }

    /// The loaded view, if any, without loading it (stats).
    pub fn loaded(&self) -> Option<Arc<CompactedLedger>> {
        self.cached.try_lock().ok().and_then(|c| c.view.clone())
    }

    pub fn status(&self) -> CompactionStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Marks a compaction as started; false if one is running.
    pub fn start(&self) -> bool {
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        if status.state == CompactionState::Running {
            return false;
        }
        status.state = CompactionState::Running;
        true
    }

    pub fn finish(&self, result: &Result<CompactionReport, MlError>, now_ms: u64, took_ms: u64) {
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        status.last_duration_ms = took_ms;
        match result {
            Ok(report) => {
                status.state = CompactionState::Success;
                status.last_error.clear();
                status.last_removed_events = report.removed_messages;
                status.last_succeeded_ms = now_ms;
            }
            Err(e) => {
                status.state = CompactionState::Error;
                status.last_error = e.to_string();
                status.last_failed_ms = now_ms;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_property_round_trips_and_refuses_garbage() {
        let value = property_value(42, Position::new(7, 9));
        assert_eq!(parse_property(&value), Some((42, Position::new(7, 9))));
        assert_eq!(parse_property("42:7"), None);
        assert_eq!(parse_property("42:7:9:1"), None);
        assert_eq!(parse_property("x:7:9"), None);
    }

    #[test]
    fn entries_carry_their_original_position() {
        let entry = encode_entry(Position::new(3, 5), b"payload");
        assert_eq!(
            decode_entry(1, entry).expect("decodes"),
            (Position::new(3, 5), Bytes::from_static(b"payload"))
        );
        assert!(decode_entry(1, Bytes::from_static(b"short")).is_err());
    }
}
