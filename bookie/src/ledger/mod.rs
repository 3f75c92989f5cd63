//! The ledger client brokers use, as Apache BookKeeper's: a ledger is a log of entries written by
//! one writer to an ensemble of bookies and sealed by closing it.
//!
//! - [`LedgerClient::create`] picks `E` writable bookies and records the ledger's metadata.
//! - [`LedgerWriter::append`] numbers entries in call order, sends entry `e` to the write set
//!   `bookies[(e+k) % E], k < Qw`, pipelined, and completes entries in order once `Qa` bookies
//!   have made them durable. A failing bookie is replaced by an ensemble change (a new fragment,
//!   by compare-and-set on the metadata) and the pending entries are re-sent.
//! - [`LedgerClient::open_with_recovery`] fences the ledger on enough bookies that the old writer
//!   can no longer reach `Qa`, re-replicates every entry that may have been acknowledged, and
//!   closes it. The old writer's next add fails with `Fenced`.
//! - Reads go to any bookie of an entry's write set, falling over to the next.

pub mod metadata;
pub mod placement;
mod pool;
mod quorum;
mod reader;
mod recovery;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use magnetar_metadata::{Expected, MetadataClient, MetadataError, PrefixCache, Txn};
use magnetar_protocol::ClusterToken;

pub use metadata::{LedgerMetadata, LedgerState};
pub use placement::{PlacementPolicy, SpreadPlacement};
pub use reader::LedgerReader;
pub use writer::{LedgerWriter, PendingAdd};

use crate::registry;
use pool::BookiePool;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {0} does not exist")]
    NoSuchLedger(u64),
    #[error("ledger {ledger_id} has no entry {entry_id}")]
    NoSuchEntry { ledger_id: u64, entry_id: u64 },
    #[error("ledger {0} is fenced: another client recovered it")]
    Fenced(u64),
    #[error("ledger {0} is closed")]
    Closed(u64),
    #[error("not enough writable bookies: need {needed}, found {available}")]
    NotEnoughBookies { needed: usize, available: usize },
    #[error("bookie {bookie} is unavailable: {reason}")]
    BookieUnavailable { bookie: String, reason: String },
    #[error("metadata service: {0}")]
    Metadata(#[from] MetadataError),
    #[error("metadata of ledger {ledger_id} is unreadable: {reason}")]
    CorruptMetadata { ledger_id: u64, reason: String },
    #[error("recovery of ledger {ledger_id} failed: {reason}")]
    RecoveryFailed { ledger_id: u64, reason: String },
    #[error("invalid ledger configuration: {0}")]
    InvalidConfig(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Replication of a new ledger: `ensemble` bookies, each entry on `write_quorum` of them,
/// acknowledged after `ack_quorum`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerConfig {
    pub ensemble: usize,
    pub write_quorum: usize,
    pub ack_quorum: usize,
}

impl LedgerConfig {
    pub fn validate(&self) -> Result<(), LedgerError> {
        if self.ack_quorum == 0
            || self.ack_quorum > self.write_quorum
            || self.write_quorum > self.ensemble
        {
            return Err(LedgerError::InvalidConfig(format!(
                "need 1 <= ack quorum ({}) <= write quorum ({}) <= ensemble ({})",
                self.ack_quorum, self.write_quorum, self.ensemble
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct LedgerOptions {
    /// A bookie that has not acknowledged an add this long after the request was written to
    /// its connection is replaced (time queued behind other requests does not count).
    pub add_timeout: Duration,
    pub read_timeout: Duration,
    /// Connecting to a bookie (address lookup, TCP, authentication).
    pub connect_timeout: Duration,
    /// Presented first on every bookie connection; the bookies' `cluster_token`.
    pub cluster_token: Option<ClusterToken>,
}

impl Default for LedgerOptions {
    fn default() -> LedgerOptions {
        LedgerOptions {
            add_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            cluster_token: None,
        }
    }
}

impl LedgerOptions {
    fn connect_options(&self) -> crate::client::ConnectOptions {
        crate::client::ConnectOptions {
            cluster_token: self.cluster_token.clone(),
            connect_timeout: self.connect_timeout,
            // A bookie that takes no bytes for as long as it may take to answer an add is dead.
            write_timeout: self.add_timeout,
            ..crate::client::ConnectOptions::default()
        }
    }
}

#[derive(Debug)]
pub(crate) struct ClientInner {
    pub(crate) metadata: MetadataClient,
    pub(crate) pool: BookiePool,
    pub(crate) options: LedgerOptions,
    pub(crate) placement: Arc<dyn PlacementPolicy>,
    /// A live copy of the bookie registrations new ensembles are chosen from, started by the
    /// first creation.
    bookies: tokio::sync::OnceCell<PrefixCache>,
}

/// Creates, opens, recovers and deletes ledgers. Cheap to clone; connections are shared.
#[derive(Debug, Clone)]
pub struct LedgerClient {
    inner: Arc<ClientInner>,
}

/// A ledger chosen by [`LedgerClient::prepare`] whose metadata is not written yet.
#[derive(Debug, Clone)]
pub struct NewLedger {
    pub id: u64,
    /// Encoded once, into `value`: not to be changed after.
    metadata: LedgerMetadata,
    value: Vec<u8>,
}

impl NewLedger {
    pub fn metadata(&self) -> &LedgerMetadata {
        &self.metadata
    }

    /// Adds the creation of its metadata (which must not exist yet) to `txn`.
    pub fn put(&self, txn: Txn) -> Txn {
        txn.put(metadata::key(self.id), self.value.clone(), Expected::Absent)
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl LedgerClient {
    /// A client placing ledgers with [`SpreadPlacement`].
    pub fn new(metadata: MetadataClient, options: LedgerOptions) -> LedgerClient {
        LedgerClient::with_placement(metadata, options, Arc::new(SpreadPlacement))
    }

    pub fn with_placement(
        metadata: MetadataClient,
        options: LedgerOptions,
        placement: Arc<dyn PlacementPolicy>,
    ) -> LedgerClient {
        LedgerClient {
            inner: Arc::new(ClientInner {
                metadata,
                pool: BookiePool::new(options.connect_options()),
                options,
                placement,
                bookies: tokio::sync::OnceCell::new(),
            }),
        }
    }

    /// The timeouts and credentials the client was made with.
    pub fn options(&self) -> &LedgerOptions {
        &self.inner.options
    }

    /// The policy choosing the bookies of new ensembles and replacements.
    pub fn placement(&self) -> &Arc<dyn PlacementPolicy> {
        &self.inner.placement
    }

    /// An open connection to `bookie`, shared with the client's other users.
    pub async fn bookie(&self, bookie: &str) -> Result<Arc<crate::BookieClient>, LedgerError> {
        self.inner.pool.get(bookie).await
    }

    /// Drops a broken connection so the next use reconnects.
    pub async fn forget_bookie(&self, bookie: &str) {
        self.inner.pool.forget(bookie).await
    }

    pub fn metadata(&self) -> &MetadataClient {
        &self.inner.metadata
    }

    /// Creates a ledger on `config.ensemble` writable bookies chosen by the placement policy.
    pub async fn create(
        &self,
        config: LedgerConfig,
        custom: std::collections::BTreeMap<String, String>,
    ) -> Result<LedgerWriter, LedgerError> {
        let new = self.prepare(config, custom).await?;
        let version = metadata::create(&self.inner.metadata, new.id, &new.metadata).await?;
        Ok(self.writer(new, version))
    }

    /// Chooses a new ledger's id and ensemble without writing its metadata: the caller writes
    /// it with [`NewLedger::put`] in a transaction of its own (a managed ledger's list and its
    /// first ledger in one write), then calls [`Self::writer`].
    pub async fn prepare(
        &self,
        config: LedgerConfig,
        custom: std::collections::BTreeMap<String, String>,
    ) -> Result<NewLedger, LedgerError> {
        config.validate()?;
        let candidates = self.candidates(config.ensemble).await?;
        let bookies = self
            .inner
            .placement
            .new_ensemble(config.ensemble, &candidates, &mut rand::rng())
            .ok_or(LedgerError::NotEnoughBookies {
                needed: config.ensemble,
                available: candidates.len(),
            })?;
        let id = metadata::allocate_id(&self.inner.metadata).await?;
        let metadata = LedgerMetadata {
            ensemble_size: config.ensemble,
            write_quorum: config.write_quorum,
            ack_quorum: config.ack_quorum,
            state: LedgerState::Open,
            last_entry_id: -1,
            length: 0,
            fragments: vec![metadata::Fragment {
                first_entry: 0,
                bookies,
            }],
            created_ms: now_ms(),
            closed_ms: 0,
            custom,
        };
        let value = metadata::encode(&metadata)?;
        Ok(NewLedger {
            id,
            metadata,
            value,
        })
    }

    /// The writer of a prepared ledger whose metadata was written at `version`.
    pub fn writer(&self, new: NewLedger, version: u64) -> LedgerWriter {
        LedgerWriter::new(
            new.id,
            self.inner.clone(),
            metadata::Versioned {
                metadata: new.metadata,
                version,
            },
        )
    }

    /// Writable bookies for a new ensemble of `needed`: from the live copy of the registrations
    /// when it has enough (no round trip per ledger), else listed afresh (a bookie that has just
    /// registered, or a copy that could not start).
    async fn candidates(&self, needed: usize) -> Result<Vec<registry::BookieInfo>, LedgerError> {
        let metadata = &self.inner.metadata;
        let cache = self
            .inner
            .bookies
            .get_or_try_init(|| PrefixCache::start(metadata.clone(), registry::BOOKIES_PREFIX))
            .await;
        match cache {
            Ok(cache) => {
                let cached = registry::writable_of(cache.records());
                if cached.len() >= needed {
                    return Ok(cached);
                }
            }
            Err(e) => tracing::debug!(error = %e, "bookie registrations not cached; listing them"),
        }
        Ok(registry::writable(metadata).await?)
    }

    /// Fences and closes a ledger another writer may still hold, keeping every entry that may
    /// have been acknowledged; returns it for reading.
    pub async fn open_with_recovery(&self, ledger_id: u64) -> Result<LedgerReader, LedgerError> {
        recovery::recover(self.inner.clone(), ledger_id).await
    }

    /// Opens a ledger for reading without recovery: a closed ledger up to its last entry, an
    /// open one up to the last-add-confirmed its bookies report.
    pub async fn open(&self, ledger_id: u64) -> Result<LedgerReader, LedgerError> {
        LedgerReader::open(self.inner.clone(), ledger_id).await
    }

    /// Deletes a ledger's entries from its bookies, then its metadata.
    pub async fn delete(&self, ledger_id: u64) -> Result<(), LedgerError> {
        let versioned = match metadata::read(&self.inner.metadata, ledger_id).await {
            Ok(versioned) => versioned,
            Err(LedgerError::NoSuchLedger(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        for bookie in versioned.metadata.all_bookies() {
            // A bookie that misses this collects the ledger later, once its metadata is gone.
            match self.inner.pool.get(&bookie).await {
                Ok(conn) => {
                    if let Err(e) = conn.delete_ledger(ledger_id).await {
                        tracing::debug!(ledger_id, bookie, error = %e, "delete on bookie failed");
                    }
                }
                Err(e) => {
                    tracing::debug!(ledger_id, bookie, error = %e, "bookie unreachable for delete")
                }
            }
        }
        let key = metadata::key(ledger_id);
        match self
            .inner
            .metadata
            .delete(
                &key,
                magnetar_metadata::Expected::Version(versioned.version),
            )
            .await
        {
            // Version 0 is an absent key: a concurrent delete of the same ledger finished first.
            Ok(_)
            | Err(MetadataError::BadVersion {
                actual_version: 0, ..
            }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
