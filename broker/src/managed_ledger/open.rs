//! Opening a managed ledger, as a new owner of the topic does (Pulsar's `initialize`):
//! 1. read the ledger list (absent: a new topic);
//! 2. recover the last ledger — fence it on its bookies and close it, so the previous owner can
//!    write no more — and record its real entry count;
//! 3. drop empty ledgers from the list;
//! 4. create a new ledger (one on every open) and write the list by compare-and-set: a conflict
//!    means another broker got there first (`Fenced`);
//! 5. load the persisted cursors.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use magnetar_bookie::ledger::{LedgerClient, LedgerError, LedgerWriter};
use magnetar_metadata::{Expected, MetadataError};

use super::appender::Appender;
use super::info::{self, LedgerRecord, MlInfo};
use super::shared::{Shared, State};
use super::stored_cursor;
use super::{ManagedLedgerConfig, MlError};
use crate::position::LedgerLayout;

pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn retryable(e: &LedgerError) -> bool {
    match e {
        LedgerError::NotEnoughBookies { .. } | LedgerError::BookieUnavailable { .. } => true,
        LedgerError::Metadata(m) => matches!(
            m,
            MetadataError::Unavailable(_)
                | MetadataError::NotLeader { .. }
                | MetadataError::Indeterminate(_)
        ),
        _ => false,
    }
}

/// Retries of a ledger creation, about 10 s in all.
const CREATE_ATTEMPTS: u32 = 12;

/// Creates a ledger for `name`, retrying a few times while bookies are missing (a bookie
/// restarting, registrations not yet visible) before giving up.
pub(super) async fn create_ledger(
    ledgers: &LedgerClient,
    config: &ManagedLedgerConfig,
    name: &str,
) -> Result<LedgerWriter, MlError> {
    let custom = BTreeMap::from([
        ("application".to_string(), "magnetar-broker".to_string()),
        ("managed-ledger".to_string(), name.to_string()),
    ]);
    let mut delay = Duration::from_millis(100);
    let mut attempt = 0;
    loop {
        match ledgers.create(config.ledger_config(), custom.clone()).await {
            Ok(writer) => return Ok(writer),
            Err(e) if retryable(&e) && attempt < CREATE_ATTEMPTS => {
                tracing::debug!(managed_ledger = name, error = %e, "ledger creation failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

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
    if let Some(last) = info.ledgers.last_mut() {
        match ledgers.open_with_recovery(last.ledger_id).await {
            Ok(reader) => {
                last.entries = u64::try_from(reader.last_entry_id() + 1).unwrap_or(0);
                // Recovery knows only the bytes of the tail it re-wrote.
                last.size = last.size.max(reader.metadata().length);
                if last.timestamp == 0 {
                    last.timestamp = now_ms();
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

    let writer = create_ledger(&ledgers, &config, name).await?;
    info.ledgers.push(LedgerRecord {
        ledger_id: writer.id(),
        entries: 0,
        size: 0,
        timestamp: 0,
    });
    let version = match info::cas(
        &metadata,
        &key,
        info.encode(),
        expected,
        config.ownership.as_ref(),
    )
    .await
    {
        Ok(version) => version,
        Err(e) => {
            if let Err(e) = ledgers.delete(writer.id()).await {
                tracing::debug!(ledger_id = writer.id(), error = %e, "could not delete unused ledger");
            }
            return Err(e);
        }
    };
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
    let cursors = stored_cursor::load_all(&metadata, name).await?;

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
    let (commands, rx) = tokio::sync::mpsc::unbounded_channel();
    let shared = Arc::new(Shared::new(name, config, ledgers, state, commands));
    for reader in readers.into_values() {
        shared.keep_reader(reader);
    }
    {
        let mut map = super::shared::lock(&shared.cursors);
        for (cursor_name, cursor) in cursors {
            map.insert(
                cursor_name.clone(),
                Arc::new(super::cursor::CursorCore::restored(cursor_name, cursor)),
            );
        }
    }
    tracing::info!(
        managed_ledger = name,
        ledger_id = writer.id(),
        "managed ledger opened"
    );
    let appender = Appender::new(shared.clone(), rx, writer);
    Ok(Opened { shared, appender })
}
