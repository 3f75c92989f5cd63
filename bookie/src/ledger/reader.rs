//! Reading ledgers: each entry from any bookie of its write set, falling over to the next.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::{join_all, try_join_all};
use magnetar_protocol::bookie::StatusCode;

use super::metadata::{self, LedgerMetadata, LedgerState};
use super::{ClientInner, LedgerError};

/// Entries read concurrently at most.
const READ_PARALLELISM: usize = 64;

/// A ledger opened for reading.
#[derive(Debug, Clone)]
pub struct LedgerReader {
    id: u64,
    client: Arc<ClientInner>,
    meta: LedgerMetadata,
    last_entry: i64,
}

impl LedgerReader {
    pub(super) fn closed(id: u64, client: Arc<ClientInner>, meta: LedgerMetadata) -> LedgerReader {
        let last_entry = meta.last_entry_id;
        LedgerReader {
            id,
            client,
            meta,
            last_entry,
        }
    }

    pub(super) async fn open(
        client: Arc<ClientInner>,
        id: u64,
    ) -> Result<LedgerReader, LedgerError> {
        let versioned = metadata::read(&client.metadata, id).await?;
        let meta = versioned.metadata;
        let last_entry = if meta.state == LedgerState::Closed {
            meta.last_entry_id
        } else {
            read_lac(&client, id, &meta).await?
        };
        Ok(LedgerReader {
            id,
            client,
            meta,
            last_entry,
        })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// The last readable entry (−1 if none).
    pub fn last_entry_id(&self) -> i64 {
        self.last_entry
    }

    pub fn metadata(&self) -> &LedgerMetadata {
        &self.meta
    }

    /// Entries `first..=last`, in order.
    pub async fn read(&self, first: u64, last: u64) -> Result<Vec<Bytes>, LedgerError> {
        if last as i64 > self.last_entry {
            return Err(LedgerError::NoSuchEntry {
                ledger_id: self.id,
                entry_id: last,
            });
        }
        read_range(&self.client, self.id, &self.meta, first, last).await
    }
}

/// The highest last-add-confirmed the bookies of the last fragment report, asked at once and
/// each bounded by the read timeout.
async fn read_lac(
    client: &ClientInner,
    id: u64,
    meta: &LedgerMetadata,
) -> Result<i64, LedgerError> {
    let bookies = meta
        .fragments
        .last()
        .map(|f| f.bookies.clone())
        .unwrap_or_default();
    let timeout = client.options.read_timeout;
    let replies = join_all(bookies.iter().map(|bookie| async move {
        let conn = client.pool.get(bookie).await.ok()?;
        conn.within(timeout).read_last_add_confirmed(id).await.ok()
    }))
    .await;
    replies
        .into_iter()
        .flatten()
        .map(|reply| reply.last_add_confirmed.map_or(-1, |l| l as i64))
        .max()
        .ok_or_else(|| LedgerError::BookieUnavailable {
            bookie: "all".into(),
            reason: format!("no bookie of ledger {id} answered"),
        })
}

pub(super) async fn read_range(
    client: &ClientInner,
    id: u64,
    meta: &LedgerMetadata,
    first: u64,
    last: u64,
) -> Result<Vec<Bytes>, LedgerError> {
    let mut out = Vec::with_capacity((last.saturating_sub(first) + 1) as usize);
    let mut start = first;
    while start <= last {
        let end = (start + READ_PARALLELISM as u64 - 1).min(last);
        let chunk =
            try_join_all((start..=end).map(|entry| read_entry(client, id, meta, entry))).await?;
        out.extend(chunk);
        start = end + 1;
    }
    Ok(out)
}

/// Reads one entry from the first bookie of its write set that has it.
pub(super) async fn read_entry(
    client: &ClientInner,
    id: u64,
    meta: &LedgerMetadata,
    entry: u64,
) -> Result<Bytes, LedgerError> {
    let fragment = meta.fragment_for(entry);
    let mut last_error = LedgerError::NoSuchEntry {
        ledger_id: id,
        entry_id: entry,
    };
    for slot in meta.write_set(entry) {
        let bookie = &fragment.bookies[slot];
        let conn = match client.pool.get(bookie).await {
            Ok(conn) => conn,
            Err(e) => {
                last_error = e;
                continue;
            }
        };
        match conn
            .within(client.options.read_timeout)
            .read_entry(id, entry, false)
            .await
        {
            Ok(reply) => return Ok(Bytes::from(reply.payload)),
            Err(e)
                if matches!(
                    e.status(),
                    Some(StatusCode::NoSuchEntry | StatusCode::NoSuchLedger)
                ) => {}
            Err(e) => {
                client.pool.forget(bookie).await;
                last_error = LedgerError::BookieUnavailable {
                    bookie: bookie.clone(),
                    reason: e.to_string(),
                };
            }
        }
    }
    Err(last_error)
}
