//! Tiered storage: closed ledgers copied to object storage (any S3-compatible service, or a
//! local directory) through the `object_store` crate, read back from there, and deleted from
//! the bookies after a lag. This module is the store side: where the objects are, how a ledger
//! is written and read (`format`). When to offload, and the ledger records, are the managed
//! ledger's (`managed_ledger::offload`).

mod config;
pub mod format;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload, WriteMultipart};

pub use config::{OffloadConfig, OffloadFlags};
use format::{Index, IndexBuilder};

/// Entries read from the bookies per request while offloading.
const READ_BATCH: u64 = 500;
/// Multipart upload parts in flight per ledger.
const PARTS_IN_FLIGHT: usize = 4;
/// Bytes of decoded indexes kept in memory across all topics.
const INDEX_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// What one ledger's offload did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Offloaded {
    pub entries: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

impl Offloaded {
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-6)
    }
}

/// The broker's object store for offloaded ledgers; cheap to clone. Two clones are equal,
/// other offloaders are not (a managed-ledger configuration compares by it).
#[derive(Clone)]
pub struct Offloader {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn ObjectStore>,
    /// `aws-s3` or `filesystem` (logs, stats).
    driver: &'static str,
    /// Where the objects go, for people: `s3://bucket/prefix` or the directory.
    location: String,
    prefix: Vec<String>,
    indexes: Mutex<IndexCache>,
}

impl std::fmt::Debug for Offloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offloader")
            .field("driver", &self.inner.driver)
            .field("location", &self.inner.location)
            .finish()
    }
}

impl PartialEq for Offloader {
    fn eq(&self, other: &Offloader) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Offloader {}

/// A unique id for one offload attempt of a ledger: a retried offload never writes over (or
/// reads) the objects of an earlier, unfinished one.
pub fn new_uid() -> u128 {
    rand::random::<u128>()
}

impl Offloader {
    /// The offloader `config` describes, `None` when offloading is off (no driver).
    pub fn open(config: &OffloadConfig) -> Result<Option<Offloader>, String> {
        config.build()
    }

    fn new(
        store: Arc<dyn ObjectStore>,
        driver: &'static str,
        location: String,
        prefix: &str,
    ) -> Offloader {
        Offloader {
            inner: Arc::new(Inner {
                store,
                driver,
                location,
                prefix: prefix
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
                indexes: Mutex::new(IndexCache::default()),
            }),
        }
    }

    pub fn driver(&self) -> &'static str {
        self.inner.driver
    }

    pub fn location(&self) -> &str {
        &self.inner.location
    }

    /// `{prefix}/{managed ledger}/{ledger}-{uid}/{name}`
    fn object(&self, ml: &str, ledger: u64, uid: u128, name: &str) -> Path {
        let dir = format!("{ledger}-{uid:032x}");
        Path::from_iter(
            self.inner
                .prefix
                .iter()
                .map(String::as_str)
                .chain(ml.split('/').filter(|s| !s.is_empty()))
                .chain([dir.as_str(), name]),
        )
    }

    /// Copies entries `0..entries` of ledger `ledger` of managed ledger `ml`, read in order
    /// with `read(first, last)`, to the store: the data object by multipart upload (bounded
    /// memory, whatever the ledger's size), then the index. Anything written is removed again
    /// if it fails.
    pub async fn write_ledger<F, Fut>(
        &self,
        ml: &str,
        ledger: u64,
        uid: u128,
        entries: u64,
        mut read: F,
    ) -> Result<Offloaded, String>
    where
        F: FnMut(u64, u64) -> Fut,
        Fut: Future<Output = Result<Vec<Bytes>, String>>,
    {
        let started = Instant::now();
        let data_path = self.object(ml, ledger, uid, "data");
        let upload = self
            .inner
            .store
            .put_multipart(&data_path)
            .await
            .map_err(|e| format!("cannot start the upload of {data_path}: {e}"))?;
        let mut writer = WriteMultipart::new(upload);
        let mut index = IndexBuilder::default();
        let mut next = 0;
        while next < entries {
            let last = (next + READ_BATCH - 1).min(entries - 1);
            let batch = match read(next, last).await {
                Ok(batch) if batch.len() as u64 == last - next + 1 => batch,
                Ok(batch) => {
                    writer.abort().await.ok();
                    return Err(format!(
                        "ledger {ledger}: asked the bookies for entries {next}..={last}, got {}",
                        batch.len()
                    ));
                }
                Err(e) => {
                    writer.abort().await.ok();
                    return Err(e);
                }
            };
            if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                writer.abort().await.ok();
                return Err(format!("uploading {data_path}: {e}"));
            }
            for entry in batch {
                index.push(&entry);
                writer.put(entry);
            }
            next = last + 1;
        }
        let bytes = index.data_len();
        writer
            .finish()
            .await
            .map_err(|e| format!("uploading {data_path}: {e}"))?;
        let index_path = self.object(ml, ledger, uid, "index");
        if let Err(e) = self
            .inner
            .store
            .put(&index_path, PutPayload::from(index.finish(ledger)))
            .await
        {
            self.delete(ml, ledger, uid).await;
            return Err(format!("writing {index_path}: {e}"));
        }
        Ok(Offloaded {
            entries,
            bytes,
            elapsed: started.elapsed(),
        })
    }

    /// Entries `first..=last` of an offloaded ledger: one ranged GET of the data object (the
    /// index comes from the cache after its first use), every entry's checksum checked.
    pub async fn read(
        &self,
        ml: &str,
        ledger: u64,
        uid: u128,
        first: u64,
        last: u64,
    ) -> Result<Vec<Bytes>, String> {
        self.read_ahead(ml, ledger, uid, first, last, 0).await
    }

    /// Entries from `first` through at least `last`, and on as long as the whole read stays
    /// within `block` bytes (and the ledger lasts): the caller keeps the extra entries for the
    /// reads that follow.
    pub async fn read_ahead(
        &self,
        ml: &str,
        ledger: u64,
        uid: u128,
        first: u64,
        last: u64,
        block: u64,
    ) -> Result<Vec<Bytes>, String> {
        let index = self.index(ml, ledger, uid).await?;
        let last = index.extend(first, last, block);
        let range = index.range(first, last)?;
        let path = self.object(ml, ledger, uid, "data");
        let data = self
            .inner
            .store
            .get_range(&path, range)
            .await
            .map_err(|e| format!("reading {path}: {e}"))?;
        index.split(first, last, data)
    }

    async fn index(&self, ml: &str, ledger: u64, uid: u128) -> Result<Arc<Index>, String> {
        if let Some(index) = self.lock_indexes().get(uid) {
            return Ok(index);
        }
        let path = self.object(ml, ledger, uid, "index");
        let bytes = self
            .inner
            .store
            .get(&path)
            .await
            .map_err(|e| format!("reading {path}: {e}"))?
            .bytes()
            .await
            .map_err(|e| format!("reading {path}: {e}"))?;
        let index = Index::decode(&bytes).map_err(|e| format!("{path}: {e}"))?;
        if index.ledger_id != ledger {
            return Err(format!(
                "{path} indexes ledger {}, not {ledger}",
                index.ledger_id
            ));
        }
        let index = Arc::new(index);
        self.lock_indexes().insert(uid, index.clone());
        Ok(index)
    }

    fn lock_indexes(&self) -> std::sync::MutexGuard<'_, IndexCache> {
        self.inner
            .indexes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Removes an offloaded ledger's objects (a missing one is fine); failures are logged:
    /// what is left is only space.
    pub async fn delete(&self, ml: &str, ledger: u64, uid: u128) {
        self.lock_indexes().remove(uid);
        for name in ["index", "data"] {
            let path = self.object(ml, ledger, uid, name);
            match self.inner.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!(managed_ledger = ml, ledger, object = %path, error = %e,
                        "could not delete an offloaded object");
                }
            }
        }
    }

    /// Whether both objects of an offloaded ledger exist (tests, tools).
    pub async fn exists(&self, ml: &str, ledger: u64, uid: u128) -> bool {
        let mut found = true;
        for name in ["index", "data"] {
            found &= self
                .inner
                .store
                .head(&self.object(ml, ledger, uid, name))
                .await
                .is_ok();
        }
        found
    }
}

/// Decoded indexes by offload uid, oldest dropped first past the byte budget.
#[derive(Default)]
struct IndexCache {
    map: HashMap<u128, Arc<Index>>,
    order: VecDeque<u128>,
    bytes: usize,
}

impl IndexCache {
    fn get(&self, uid: u128) -> Option<Arc<Index>> {
        self.map.get(&uid).cloned()
    }

    fn insert(&mut self, uid: u128, index: Arc<Index>) {
        self.bytes += index.footprint();
        if let Some(old) = self.map.insert(uid, index) {
            self.bytes -= old.footprint();
        } else {
            self.order.push_back(uid);
        }
        while self.bytes > INDEX_CACHE_BYTES && self.order.len() > 1 {
            if let Some(oldest) = self.order.pop_front() {
                self.remove(oldest);
            }
        }
    }

    fn remove(&mut self, uid: u128) {
        if let Some(old) = self.map.remove(&uid) {
            self.bytes -= old.footprint();
            self.order.retain(|u| *u != uid);
        }
    }
}
