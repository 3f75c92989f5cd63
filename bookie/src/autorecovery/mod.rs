//! Autorecovery: bringing ledgers back to their write quorum after a bookie is lost for good, as
//! BookKeeper's auditor and replication workers do — here one elected process does both.
//!
//! - Election: every process running autorecovery tries to create the ephemeral key
//!   [`AUDITOR_KEY`] on its own session; the one that holds it is the auditor until its session
//!   ends, and the others try again every audit interval.
//! - Audit, every `audit_interval`: a bookie that some ledger's metadata names but that has not
//!   been registered for `lost_bookie_delay` is *lost* (a bookie restarting within the delay is
//!   not: its data is still there). Every ledger with a fragment on a lost bookie is recorded
//!   under [`UNDER_REPLICATED_PREFIX`] (the admin view reads these) with its damaged fragments
//!   ([`audit`]).
//! - Repair: each damaged fragment with a fixed range (every fragment of a closed ledger, and
//!   those of an open ledger that an ensemble change ended) is copied to a new bookie and the
//!   metadata switched to it ([`replicate`]); a ledger's record is deleted once nothing is left
//!   to copy. The open tail of a ledger grows under its writer, which replaces a failed bookie
//!   on its next add; a tail still on a lost bookie after `open_ledger_grace` belongs to an idle
//!   or dead writer, so the auditor recovers the ledger (fencing and closing it, as BookKeeper's
//!   workers do after `openLedgerRereplicationGracePeriod`) and repairs it closed. A live
//!   writer then sees `Fenced` and its managed ledger moves to a new ledger.
//!   Progress goes to the log (per ledger, with entries, bytes and MB/s) and to [`Stats`].

pub mod audit;
pub mod replicate;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use magnetar_metadata::{Expected, MetadataClient, MetadataError, Session, SessionKeeper};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::ledger::{LedgerClient, LedgerError, LedgerMetadata};
use crate::registry;
pub use audit::{DamagedFragment, UnderReplicated};
pub use replicate::CopyCounters;

/// Held (ephemeral) by the elected auditor; its value is an [`AuditorInfo`].
pub const AUDITOR_KEY: &str = "/autorecovery/auditor";
/// One key per under-replicated ledger, `{prefix}{ledger id:020}`, holding an
/// [`UnderReplicatedRecord`].
pub const UNDER_REPLICATED_PREFIX: &str = "/autorecovery/underreplicated/";

/// Settings of a process taking part in autorecovery.
#[derive(Debug, Clone)]
pub struct AutoRecoveryConfig {
    /// How long a bookie must stay unregistered before its copies are made again elsewhere.
    pub lost_bookie_delay: Duration,
    /// Time between audits (and between attempts to become the auditor).
    pub audit_interval: Duration,
    /// TTL of the auditor's metadata session.
    pub session_ttl: Duration,
    /// How long the open tail of a ledger may stay on a lost bookie before the auditor fences
    /// and closes the ledger to repair it (`openLedgerRereplicationGracePeriod`).
    pub open_ledger_grace: Duration,
}

impl Default for AutoRecoveryConfig {
    fn default() -> AutoRecoveryConfig {
        AutoRecoveryConfig {
            lost_bookie_delay: Duration::from_secs(60),
            audit_interval: Duration::from_secs(10),
            session_ttl: Duration::from_secs(10),
            open_ledger_grace: Duration::from_secs(30),
        }
    }
}

/// Who the auditor is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditorInfo {
    pub owner: String,
    pub since_ms: u64,
}

/// The admin view of one under-replicated ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnderReplicatedRecord {
    #[serde(flatten)]
    pub ledger: UnderReplicated,
    /// When the auditor first found it.
    pub since_ms: u64,
    /// Why the last repair attempt failed, if it did.
    pub last_error: Option<String>,
}

/// Counters and gauges of this process's autorecovery, for metrics.
#[derive(Debug, Default)]
pub struct Stats {
    pub is_auditor: AtomicBool,
    pub under_replicated_ledgers: AtomicU64,
    pub lost_bookies: AtomicU64,
    pub audits: AtomicU64,
    pub repaired_fragments: AtomicU64,
    pub failed_repairs: AtomicU64,
    pub copied: Arc<CopyCounters>,
}

fn record_key(ledger_id: u64) -> String {
    format!("{UNDER_REPLICATED_PREFIX}{ledger_id:020}")
}

fn now_ms() -> u64 {
    crate::ledger::now_ms()
}

/// The under-replicated ledgers the auditor last recorded, in ledger order.
pub async fn under_replicated(
    client: &MetadataClient,
) -> Result<Vec<UnderReplicatedRecord>, MetadataError> {
    let records = client.list(UNDER_REPLICATED_PREFIX).await?;
    Ok(records
        .into_iter()
        .filter_map(|r| serde_json::from_slice(&r.value).ok())
        .collect())
}

/// The current auditor, if any.
pub async fn auditor(client: &MetadataClient) -> Result<Option<AuditorInfo>, MetadataError> {
    Ok(client
        .get(AUDITOR_KEY)
        .await?
        .and_then(|r| serde_json::from_slice(&r.value).ok()))
}

/// Takes part in the auditor election until `shutdown`; audits and repairs while elected.
pub async fn run(
    ledgers: LedgerClient,
    owner: String,
    config: AutoRecoveryConfig,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
) {
    let client = ledgers.metadata().clone();
    let keeper = SessionKeeper::start(
        client.clone(),
        config.session_ttl,
        format!("auditor {owner}"),
    );
    let mut auditor = Auditor::new(ledgers, config.clone(), stats.clone());
    let mut ticker = tokio::time::interval(config.audit_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut elected: Option<u64> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let Some(session) = keeper.current() else {
            elected = None;
            stats.is_auditor.store(false, Ordering::Relaxed);
            continue;
        };
        if elected != Some(session.id()) {
            match claim(&client, &session, &owner).await {
                Ok(true) => {
                    tracing::info!(owner, "elected autorecovery auditor");
                    elected = Some(session.id());
                    auditor.forget();
                }
                Ok(false) => {
                    stats.is_auditor.store(false, Ordering::Relaxed);
                    continue;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "auditor election attempt failed");
                    continue;
                }
            }
        }
        stats.is_auditor.store(true, Ordering::Relaxed);
        let pass = tokio::select! {
            _ = shutdown.cancelled() => break,
            pass = auditor.pass(&session) => pass,
        };
        if let Err(e) = pass {
            tracing::warn!(error = %e, "audit pass stopped; trying again next interval");
        }
    }
    stats.is_auditor.store(false, Ordering::Relaxed);
    keeper.close().await;
}

/// Creates the auditor key on `session`; `false` if another process holds it.
async fn claim(
    client: &MetadataClient,
    session: &Session,
    owner: &str,
) -> Result<bool, MetadataError> {
    let info = AuditorInfo {
        owner: owner.to_string(),
        since_ms: now_ms(),
    };
    let value = serde_json::to_vec(&info).map_err(|e| MetadataError::Internal(e.to_string()))?;
    match client
        .put_ephemeral(AUDITOR_KEY, value, Expected::Absent, session)
        .await
    {
        Ok(_) => Ok(true),
        Err(MetadataError::BadVersion { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The auditor's memory between passes.
struct Auditor {
    ledgers: LedgerClient,
    config: AutoRecoveryConfig,
    stats: Arc<Stats>,
    /// Bookies named in ledger metadata but unregistered, since when.
    missing_since: HashMap<String, Instant>,
    /// Why each ledger's last repair failed.
    last_errors: HashMap<u64, Option<String>>,
    /// Open ledgers whose tail is on a lost bookie, since when the auditor knows.
    open_tails_since: HashMap<u64, Instant>,
}

async fn write_record(
    client: &MetadataClient,
    ledger: &UnderReplicated,
    since_ms: u64,
    last_error: Option<String>,
) -> Result<(), LedgerError> {
    let record = UnderReplicatedRecord {
        ledger: ledger.clone(),
        since_ms,
        last_error,
    };
    let value = serde_json::to_vec(&record).map_err(|e| LedgerError::Internal(e.to_string()))?;
    client
        .put(&record_key(ledger.ledger_id), value, Expected::Any)
        .await?;
    Ok(())
}

impl Auditor {
    fn new(ledgers: LedgerClient, config: AutoRecoveryConfig, stats: Arc<Stats>) -> Auditor {
        Auditor {
            ledgers,
            config,
            stats,
            missing_since: HashMap::new(),
            last_errors: HashMap::new(),
            open_tails_since: HashMap::new(),
        }
    }

    /// A newly elected auditor starts every bookie's absence afresh.
    fn forget(&mut self) {
        self.missing_since.clear();
        self.last_errors.clear();
        self.open_tails_since.clear();
    }

    async fn pass(&mut self, session: &Session) -> Result<(), LedgerError> {
        let client = self.ledgers.metadata().clone();
        self.stats.audits.fetch_add(1, Ordering::Relaxed);
        let live: HashSet<String> = registry::list(&client)
            .await?
            .into_iter()
            .map(|b| b.address)
            .collect();
        let ledgers = list_ledgers(&client).await?;
        let named: HashSet<&String> = ledgers
            .values()
            .flat_map(|m| m.fragments.iter().flat_map(|f| f.bookies.iter()))
            .collect();
        let now = Instant::now();
        self.missing_since
            .retain(|b, _| !live.contains(b) && named.contains(b));
        for bookie in named {
            if !live.contains(bookie) {
                self.missing_since.entry(bookie.clone()).or_insert(now);
            }
        }
        let lost: HashSet<String> = self
            .missing_since
            .iter()
            .filter(|(_, since)| now.duration_since(**since) >= self.config.lost_bookie_delay)
            .map(|(b, _)| b.clone())
            .collect();
        self.stats
            .lost_bookies
            .store(lost.len() as u64, Ordering::Relaxed);

        let damaged: BTreeMap<u64, UnderReplicated> = ledgers
            .iter()
            .filter_map(|(&id, meta)| audit::audit(id, meta, &lost).map(|u| (id, u)))
            .collect();
        let recorded = under_replicated(&client).await?;
        let mut since: HashMap<u64, u64> = HashMap::new();
        for record in recorded {
            if !damaged.contains_key(&record.ledger.ledger_id) {
                client
                    .delete(&record_key(record.ledger.ledger_id), Expected::Any)
                    .await?;
            } else {
                since.insert(record.ledger.ledger_id, record.since_ms);
            }
        }
        self.open_tails_since.retain(|id, _| {
            damaged
                .get(id)
                .is_some_and(|u| u.fragments.iter().any(|f| !f.repairable()))
        });
        for (&id, ledger) in &damaged {
            if ledger.fragments.iter().any(|f| !f.repairable()) {
                self.open_tails_since.entry(id).or_insert(now);
            }
        }
        self.stats
            .under_replicated_ledgers
            .store(damaged.len() as u64, Ordering::Relaxed);
        if !lost.is_empty() {
            tracing::info!(
                lost = ?lost,
                under_replicated = damaged.len(),
                "audit: bookies lost for good"
            );
        }
        // Record every damaged ledger before copying, so the admin view shows the whole backlog.
        let mut errors: HashMap<u64, Option<String>> = HashMap::new();
        for (&id, ledger) in &damaged {
            let since_ms = since.get(&id).copied().unwrap_or_else(now_ms);
            since.insert(id, since_ms);
            let previous = self.last_errors.get(&id).cloned().flatten();
            write_record(&client, ledger, since_ms, previous).await?;
        }
        for (id, ledger) in damaged {
            if !session.is_live() {
                return Ok(()); // no longer surely the auditor
            }
            let error = self.repair(&ledger, &lost).await;
            match &error {
                None => {
                    client.delete(&record_key(id), Expected::Any).await?;
                    self.stats
                        .under_replicated_ledgers
                        .fetch_sub(1, Ordering::Relaxed);
                }
                Some(reason) => {
                    let since_ms = since.get(&id).copied().unwrap_or_else(now_ms);
                    write_record(&client, &ledger, since_ms, Some(reason.clone())).await?;
                }
            }
            errors.insert(id, error);
        }
        self.last_errors = errors;
        Ok(())
    }

    /// Closes an open ledger whose tail has been on a lost bookie for longer than the grace
    /// period (recovery fences its writer), and audits it again closed. `Ok(None)`: still
    /// within the grace period.
    async fn close_stale_tail(
        &self,
        ledger: &UnderReplicated,
        lost: &HashSet<String>,
    ) -> Result<Option<Option<UnderReplicated>>, LedgerError> {
        let id = ledger.ledger_id;
        let stale = self
            .open_tails_since
            .get(&id)
            .is_some_and(|since| since.elapsed() >= self.config.open_ledger_grace);
        if !stale {
            return Ok(None);
        }
        let reader = self.ledgers.open_with_recovery(id).await?;
        tracing::warn!(
            ledger_id = id,
            last_entry = reader.last_entry_id(),
            "fenced and closed an open ledger whose tail was on a lost bookie"
        );
        Ok(Some(audit::audit(id, reader.metadata(), lost)))
    }

    /// Repairs every repairable fragment of `ledger`; the reason it is still under-replicated,
    /// or `None` once it is not.
    async fn repair(&self, ledger: &UnderReplicated, lost: &HashSet<String>) -> Option<String> {
        let closed;
        let ledger = if ledger.fragments.iter().any(|f| !f.repairable()) {
            match self.close_stale_tail(ledger, lost).await {
                Ok(None) => ledger,
                Ok(Some(None)) => return None, // closing re-wrote the tail elsewhere
                Ok(Some(Some(audited))) => {
                    closed = audited;
                    &closed
                }
                Err(e) => {
                    self.stats.failed_repairs.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(ledger_id = ledger.ledger_id, error = %e, "closing an open ledger on a lost bookie failed; retrying next audit");
                    return Some(format!("closing the open ledger failed: {e}"));
                }
            }
        } else {
            ledger
        };
        let id = ledger.ledger_id;
        let mut left = None;
        for fragment in &ledger.fragments {
            if !fragment.repairable() {
                left = Some(format!(
                    "open ledger: its writer replaces the bookie on its next add, or it is closed and repaired after {} s",
                    self.config.open_ledger_grace.as_secs()
                ));
                continue;
            }
            for (slot, bookie) in &fragment.lost {
                let started = Instant::now();
                match replicate::repair_slot(
                    &self.ledgers,
                    id,
                    fragment,
                    *slot,
                    lost,
                    &self.stats.copied,
                )
                .await
                {
                    Ok(copied) => {
                        self.stats
                            .repaired_fragments
                            .fetch_add(1, Ordering::Relaxed);
                        let secs = started.elapsed().as_secs_f64().max(1e-6);
                        tracing::info!(
                            ledger_id = id,
                            first_entry = fragment.first_entry,
                            lost = bookie,
                            replacement = copied.replacement,
                            entries = copied.entries,
                            bytes = copied.bytes,
                            mb_per_s = format!("{:.1}", copied.bytes as f64 / secs / 1e6),
                            "re-replicated a fragment"
                        );
                    }
                    Err(e) => {
                        self.stats.failed_repairs.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(ledger_id = id, first_entry = fragment.first_entry, lost = bookie, error = %e, "re-replication failed; retrying next audit");
                        left = Some(e.to_string());
                    }
                }
            }
        }
        left
    }
}

/// Every ledger's metadata, by id; unreadable ones are skipped with a warning.
async fn list_ledgers(
    client: &MetadataClient,
) -> Result<BTreeMap<u64, LedgerMetadata>, LedgerError> {
    let mut out = BTreeMap::new();
    for record in client.list(crate::ledger::metadata::LEDGERS_PREFIX).await? {
        let Some(id) = record
            .key
            .strip_prefix(crate::ledger::metadata::LEDGERS_PREFIX)
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        match serde_json::from_slice::<LedgerMetadata>(&record.value) {
            Ok(meta) => {
                out.insert(id, meta);
            }
            Err(e) => {
                tracing::warn!(ledger_id = id, error = %e, "skipping unreadable ledger metadata")
            }
        }
    }
    Ok(out)
}
