//! JSON values over the metadata client, with the compare-and-set retry loop in one place.

use magnetar_metadata::{Expected, MetadataClient, MetadataError, Txn};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ResourceError;

/// How many times a read-modify-write is retried when others keep changing the key.
const MAX_ATTEMPTS: u32 = 64;

/// A value with the version it was read at (for a later compare-and-set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Store {
    client: MetadataClient,
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("model types always serialize to JSON")
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, ResourceError> {
    serde_json::from_slice(bytes).map_err(|source| ResourceError::Corrupt {
        key: key.into(),
        source,
    })
}

/// A failed write that is worth re-reading and trying again.
pub(crate) fn is_race(error: &ResourceError) -> bool {
    matches!(
        error,
        ResourceError::Metadata(MetadataError::BadVersion { .. } | MetadataError::Indeterminate(_))
    )
}

impl Store {
    pub(crate) fn new(client: MetadataClient) -> Store {
        Store { client }
    }

    pub(crate) fn client(&self) -> &MetadataClient {
        &self.client
    }

    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<Versioned<T>>, ResourceError> {
        match self.client.get(key).await? {
            Some(record) => Ok(Some(Versioned {
                value: decode(key, &record.value)?,
                version: record.version,
            })),
            None => Ok(None),
        }
    }

    /// Raw bytes and version, for "touching" a record in a transaction.
    pub(crate) async fn get_raw(&self, key: &str) -> Result<Option<(Vec<u8>, u64)>, ResourceError> {
        Ok(self.client.get(key).await?.map(|r| (r.value, r.version)))
    }

    pub(crate) async fn children(&self, path: &str) -> Result<Vec<String>, ResourceError> {
        Ok(self.client.children(path).await?)
    }

    /// Whether any key starts with `prefix`.
    pub(crate) async fn any_under(&self, prefix: &str) -> Result<bool, ResourceError> {
        let (page, _) = self.client.list_page(prefix, "", 1).await?;
        Ok(!page.is_empty())
    }

    /// Creates `key`; `Conflict(exists)` if it is already there.
    pub(crate) async fn create<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        exists: impl Fn() -> String,
    ) -> Result<(), ResourceError> {
        let bytes = encode(value);
        match self.client.put(key, bytes.clone(), Expected::Absent).await {
            Ok(_) => Ok(()),
            Err(MetadataError::BadVersion { .. }) => Err(ResourceError::Conflict(exists())),
            // The outcome is unknown: if the key now holds exactly our value, it was ours.
            Err(MetadataError::Indeterminate(_)) => match self.client.get(key).await? {
                Some(record) if record.value == bytes => Ok(()),
                _ => Err(ResourceError::Conflict(exists())),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Applies `change` to the value at `key` with compare-and-set, re-reading on conflicts.
    /// `NotFound(missing)` if the key does not exist. Returns the value written.
    pub(crate) async fn update<T, F>(
        &self,
        key: &str,
        missing: impl Fn() -> String,
        mut change: F,
    ) -> Result<T, ResourceError>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(&mut T) -> Result<(), ResourceError>,
    {
        for _ in 0..MAX_ATTEMPTS {
            let Some(Versioned { mut value, version }) = self.get::<T>(key).await? else {
                return Err(ResourceError::NotFound(missing()));
            };
            change(&mut value)?;
            match self
                .client
                .put(key, encode(&value), Expected::Version(version))
                .await
            {
                Ok(_) => return Ok(value),
                Err(e) => {
                    let e = ResourceError::from(e);
                    if !is_race(&e) {
                        return Err(e);
                    }
                }
            }
        }
        Err(ResourceError::TooMuchContention {
            key: key.into(),
            attempts: MAX_ATTEMPTS,
        })
    }

    /// Runs `attempt` until it does not end in a lost race.
    pub(crate) async fn retry<T, F, Fut>(
        &self,
        key: &str,
        mut attempt: F,
    ) -> Result<T, ResourceError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ResourceError>>,
    {
        for _ in 0..MAX_ATTEMPTS {
            match attempt().await {
                Err(e) if is_race(&e) => continue,
                other => return other,
            }
        }
        Err(ResourceError::TooMuchContention {
            key: key.into(),
            attempts: MAX_ATTEMPTS,
        })
    }

    pub(crate) async fn txn(&self, txn: Txn) -> Result<(), ResourceError> {
        self.client.txn(txn).await?;
        Ok(())
    }

    pub(crate) async fn delete(&self, key: &str, version: u64) -> Result<(), ResourceError> {
        self.client.delete(key, Expected::Version(version)).await?;
        Ok(())
    }
}
