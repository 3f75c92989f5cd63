//! Opening a managed ledger, as a new owner of the topic does (Pulsar's `initialize`):
//! 1. read the ledger list (absent: a new topic);
//! 2. recover the last ledger — fence it on its bookies and close it, so the previous owner can
//!    write no more — and record its real entry count (its previous owner's close recorded
//!    only the ledger's own metadata);
//! 3. drop empty ledgers from the list;
//! 4. create a new ledger (one on every open) and write the list by compare-and-set, the new
//!    ledger's metadata in the same transaction: a conflict means another broker got there first
//!    (`Fenced`);
//! 5. load the persisted cursors.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use magnetar_bookie::ledger::metadata::CREATED_VERSION;
use magnetar_bookie::ledger::{LedgerClient, LedgerError};
use magnetar_metadata::Expected;

use super::appender::Appender;
use super::info::{self, LedgerRecord, MlInfo};
use super::ledgers::{now_ms, prepare_ledger};
use super::shared::{CursorCore, Shared, State};
use super::stored_cursor;
use super::{ManagedLedgerConfig, MlError};
use crate::position::LedgerLayout;

/// Everything `ManagedLedger::open` builds before starting its tasks.
pub(super) struct Opened {
    pub shared: Arc<Shared>,
    pub appender: Appender,
}

pub(super) async fn open(
    name: &str,
    ledgers: LedgerClient,
    config: ManagedLedgerConfig,
) -> Result<Opened, MlError> {
    config.validate()?;
    let metadata = ledgers.metadata().clone();
    let key = info::ml_key(name);
    let (mut info, expected) = match metadata.get(&key).await? {
        Some(record) => (
            MlInfo::decode(name, &record.value)?,
            Expected::Version(record.version),
        ),
        None => (MlInfo::default(), Expected::Absent),
    };
    let mut readers = HashMap::new();
    // An offloaded last ledger was closed before it was offloaded (an empty ledger after it
    // was dropped), and its bookies may have deleted it: nothing to recover.
    if let Some(last) = info
        .ledgers
        .last_mut()
        .filter(|l| l.offload_context.is_none())
    {
        match ledgers.open_with_recovery(last.ledger_id).await {
            Ok(reader) => {
                last.entries = u64::try_from(reader.last_entry_id() + 1).unwrap_or(0);
                // Recovery knows only the bytes of the tail it re-wrote; a ledger its writer
                // closed (the previous owner's close records nothing else) knows them all.
                last.size = last.size.max(reader.metadata().length);
                if last.timestamp == 0 {
                    last.timestamp = Some(reader.metadata().closed_ms)
                        .filter(|&ms| ms > 0)
                        .unwrap_or_else(now_ms);
                }
                readers.insert(reader.id(), reader);
            }
            Err(LedgerError::NoSuchLedger(id)) => {
                tracing::warn!(
                    managed_ledger = name,
                    ledger_id = id,
                    "last ledger is gone; dropping it"
                );
                last.entries = 0;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let empty: Vec<u64> = info
        .ledgers
        .iter()
        .filter(|l| l.entries == 0)
        .map(|l| l.ledger_id)
        .collect();
    info.ledgers.retain(|l| l.entries > 0);

    // The new ledger's metadata is written in the same transaction as the list naming it: one
    // round trip less per topic opened, and no orphan ledger when the write loses.
    let new = prepare_ledger(&ledgers, &config, name).await?;
    info.ledgers.push(LedgerRecord {
        ledger_id: new.id,
        entries: 0,
        size: 0,
        timestamp: 0,
        offload_context: None,
    });
    let version = info::cas_with(
        &metadata,
        &key,
        info.encode(),
        expected,
        config.ownership.as_ref(),
        Some(&|txn| new.put(txn)),
    )
    .await?;
    let writer = ledgers.writer(new, CREATED_VERSION);
    for id in empty {
        if let Err(e) = ledgers.delete(id).await {
            tracing::warn!(managed_ledger = name, ledger_id = id, error = %e, "could not delete empty ledger");
        }
    }
    let layout = LedgerLayout::new(
        info.ledgers
            .iter()
            .map(|l| (l.ledger_id as i64, l.entries as i64)),
    )
    .map_err(|e| MlError::Corrupt(format!("managed ledger {name}: {e}")))?;
    // A new managed ledger has no cursors: they are created on an open one, and deleting one
    // removes its cursors before its list. (One round trip less per new topic.)
    let cursors = if expected == Expected::Absent {
        Vec::new()
    } else {
        stored_cursor::load_all(&metadata, name).await?
    };

    let mut writers = VecDeque::new();
    writers.push_back(writer.clone());
    let state = State {
        last_confirmed: layout.last_position(),
        info,
        version,
        layout,
        current_size: 0,
        writers,
    };
    let (commands, rx) = futures::channel::mpsc::unbounded();
    let shared = Arc::new(Shared::new(name, config, ledgers, state, commands));
    for reader in readers.into_values() {
        shared.keep_reader(reader);
    }
    {
        let mut map = super::shared::lock(&shared.cursors);
        for (cursor_name, cursor) in cursors {
            map.insert(
                cursor_name.clone(),
                Arc::new(CursorCore::new(cursor_name, cursor, true)),
            );
        }
    }
    // At debug: the broker logs "topic loaded" for the same event (a line per topic and
    // event is what 100,000 topics can afford).
    tracing::debug!(
        managed_ledger = name,
        ledger_id = writer.id(),
        "managed ledger opened"
    );
    let appender = Appender::new(shared.clone(), rx, writer);
    Ok(Opened { shared, appender })
}
