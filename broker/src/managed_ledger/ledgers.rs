//! The managed ledger's calls to the ledger client that more than one part makes: creating a
//! ledger for the topic (with retries while bookies come and go), deleting one that left the
//! list, and the clock ledger records are stamped with.

use std::collections::BTreeMap;
use std::time::Duration;

use magnetar_bookie::ledger::{LedgerClient, LedgerError, LedgerWriter, NewLedger};
use magnetar_metadata::MetadataError;

use super::{ManagedLedgerConfig, MlError};

/// Milliseconds since the epoch (ledger close times, retention).
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

/// What a managed ledger's ledgers carry in their metadata.
fn custom(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("application".to_string(), "magnetar-broker".to_string()),
        ("managed-ledger".to_string(), name.to_string()),
    ])
}

/// Creates a ledger for `name`, retrying a few times while bookies are missing (a bookie restarting, registrations not yet visible) before giving up.
/// With `retry` false one attempt is made: the caller already waited out a whole retry window
/// without bookies (a full disk on every bookie, say) and its publishers should hear so at once,
/// as Pulsar's do.
pub(super) async fn create_ledger(
    ledgers: &LedgerClient,
    config: &ManagedLedgerConfig,
    name: &str,
    retry: bool,
) -> Result<LedgerWriter, MlError> {
    retrying(name, retry, || {
        ledgers.create(config.ledger_config(), custom(name))
    })
    .await
}

/// As [`create_ledger`] (with retries), without writing the ledger's metadata: the caller
/// writes it in its own transaction.
pub(super) async fn prepare_ledger(
    ledgers: &LedgerClient,
    config: &ManagedLedgerConfig,
    name: &str,
) -> Result<NewLedger, MlError> {
    retrying(name, true, || {
        ledgers.prepare(config.ledger_config(), custom(name))
    })
    .await
}

async fn retrying<T, F: Future<Output = Result<T, LedgerError>>>(
    name: &str,
    retry: bool,
    attempt_once: impl Fn() -> F,
) -> Result<T, MlError> {
    let attempts = if retry { CREATE_ATTEMPTS } else { 0 };
    let mut delay = Duration::from_millis(100);
    let mut attempt = 0;
    loop {
        match attempt_once().await {
            Ok(done) => return Ok(done),
            Err(e) if retryable(&e) && attempt < attempts => {
                tracing::debug!(managed_ledger = name, error = %e, "ledger creation failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Deletes a ledger no longer in the list; a failure leaves an orphan, which is only space.
pub(super) async fn delete_quietly(ledgers: &LedgerClient, name: &str, ledger_id: u64) {
    if let Err(e) = ledgers.delete(ledger_id).await {
        tracing::warn!(managed_ledger = name, ledger_id, error = %e, "could not delete ledger");
    }
}

/// Deletes a ledger that left the list: from the bookies unless they no longer have it, and
/// its offloaded copy, if any.
pub(super) async fn delete_ledger(shared: &super::shared::Shared, ledger: &super::LedgerRecord) {
    let context = ledger.offload_context;
    if !context.is_some_and(|c| c.bookkeeper_deleted) {
        delete_quietly(&shared.ledgers, &shared.name, ledger.ledger_id).await;
    }
    if let (Some(context), Some(offloader)) = (context, &shared.config.offloader) {
        offloader
            .delete(&shared.name, ledger.ledger_id, context.uid())
            .await;
    }
}
