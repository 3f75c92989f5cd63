//! The `[broker.offload]` settings (a broker's config file) and the `--offload-*` flags (the
//! standalone): where offloaded ledgers go, and the defaults of the namespace policies
//! `offloadThreshold`, `offloadThresholdInSeconds` and `offloadDeletionLagMs`.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use serde::{Deserialize, Serialize};

use super::Offloader;

/// Pulsar's `managedLedgerOffloadDeletionLagMs` default: 4 hours.
const DEFAULT_DELETION_LAG_MS: u64 = 4 * 60 * 60 * 1000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OffloadConfig {
    /// `aws-s3` (or `s3`: any S3-compatible service), `filesystem`, or empty for no offloading
    /// (Pulsar's `managedLedgerOffloadDriver`).
    pub driver: String,
    /// S3: the bucket (must exist).
    pub bucket: String,
    /// S3: the region (`us-east-1` when empty).
    pub region: String,
    /// S3: the service's URL, for S3-compatible services (MinIO, Ceph, moto…); empty for AWS.
    /// `http://` URLs are allowed. Credentials come from the standard `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`) variables.
    pub endpoint: String,
    /// filesystem: the directory offloaded ledgers go to (created if missing).
    pub path: Option<PathBuf>,
    /// A key prefix inside the bucket or directory.
    pub prefix: String,
    /// Broker default of the namespace policy `offloadThreshold`: offload closed ledgers once
    /// the topic keeps more than this many bytes on the bookies; -1 never, 0 as soon as a ledger
    /// closes (Pulsar's `managedLedgerOffloadAutoTriggerSizeThresholdBytes`).
    pub threshold_bytes: i64,
    /// Broker default of `offloadThresholdInSeconds`: offload ledgers closed longer ago than
    /// this; -1 never (Pulsar's `managedLedgerOffloadThresholdInSeconds`).
    pub threshold_secs: i64,
    /// Broker default of `offloadDeletionLagMs`: how long an offloaded ledger stays on the
    /// bookies too (Pulsar's `managedLedgerOffloadDeletionLagMs`, 4 hours).
    pub deletion_lag_ms: u64,
}

impl Default for OffloadConfig {
    fn default() -> OffloadConfig {
        OffloadConfig {
            driver: String::new(),
            bucket: String::new(),
            region: String::new(),
            endpoint: String::new(),
            path: None,
            prefix: String::new(),
            threshold_bytes: -1,
            threshold_secs: -1,
            deletion_lag_ms: DEFAULT_DELETION_LAG_MS,
        }
    }
}

impl OffloadConfig {
    pub(super) fn build(&self) -> Result<Option<Offloader>, String> {
        match self.driver.as_str() {
            "" | "none" => Ok(None),
            "filesystem" => {
                let Some(root) = &self.path else {
                    return Err(
                        "offload driver `filesystem` needs a directory: set offload \
                                `path` (--offload-path)"
                            .into(),
                    );
                };
                std::fs::create_dir_all(root).map_err(|e| {
                    format!(
                        "cannot create the offload directory {} (offload `path`, \
                         --offload-path): {e}",
                        root.display()
                    )
                })?;
                let store = LocalFileSystem::new_with_prefix(root).map_err(|e| {
                    format!("offload directory {} (--offload-path): {e}", root.display())
                })?;
                Ok(Some(Offloader::new(
                    Arc::new(store),
                    "filesystem",
                    root.display().to_string(),
                    &self.prefix,
                )))
            }
            "aws-s3" | "s3" | "S3" => {
                if self.bucket.is_empty() {
                    return Err(
                        "offload driver `aws-s3` needs a bucket: set offload `bucket` \
                                (--offload-bucket)"
                            .into(),
                    );
                }
                let region = if self.region.is_empty() {
                    "us-east-1"
                } else {
                    &self.region
                };
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(&self.bucket)
                    .with_region(region);
                if !self.endpoint.is_empty() {
                    builder = builder
                        .with_endpoint(&self.endpoint)
                        .with_allow_http(self.endpoint.starts_with("http://"))
                        .with_virtual_hosted_style_request(false);
                }
                let store = builder.build().map_err(|e| {
                    format!(
                        "offload bucket {} (--offload-bucket, --offload-endpoint): {e}",
                        self.bucket
                    )
                })?;
                let location = format!("s3://{}/{}", self.bucket, self.prefix);
                Ok(Some(Offloader::new(
                    Arc::new(store),
                    "aws-s3",
                    location,
                    &self.prefix,
                )))
            }
            other => Err(format!(
                "unknown offload driver {other:?} (offload `driver`, --offload-driver): use \
                 aws-s3 or filesystem"
            )),
        }
    }
}

/// The standalone's `--offload-*` flags, the `[broker.offload]` keys of a broker's file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OffloadFlags {
    /// Tiered storage: `aws-s3` (any S3-compatible service) or `filesystem`; closed ledgers
    /// are offloaded by the namespace policies (docs/tiered-storage.md).
    #[arg(long, env = "MAGNETAR_OFFLOAD_DRIVER", value_name = "DRIVER")]
    pub offload_driver: Option<String>,
    /// The S3 bucket offloaded ledgers go to.
    #[arg(long, env = "MAGNETAR_OFFLOAD_BUCKET")]
    pub offload_bucket: Option<String>,
    #[arg(long, env = "MAGNETAR_OFFLOAD_REGION")]
    pub offload_region: Option<String>,
    /// URL of an S3-compatible service (MinIO, Ceph…); AWS when absent.
    #[arg(long, env = "MAGNETAR_OFFLOAD_ENDPOINT", value_name = "URL")]
    pub offload_endpoint: Option<String>,
    /// The directory of the `filesystem` driver.
    #[arg(long, env = "MAGNETAR_OFFLOAD_PATH", value_name = "DIR")]
    pub offload_path: Option<PathBuf>,
    /// Key prefix inside the bucket or directory.
    #[arg(long, env = "MAGNETAR_OFFLOAD_PREFIX")]
    pub offload_prefix: Option<String>,
    /// Default offload threshold in bytes (-1 never, 0 at once; namespaces override it).
    #[arg(long, allow_hyphen_values = true)]
    pub offload_threshold_bytes: Option<i64>,
    /// Default offload threshold in seconds since a ledger closed (-1 never).
    #[arg(long, allow_hyphen_values = true)]
    pub offload_threshold_secs: Option<i64>,
    /// Default time an offloaded ledger also stays on the bookies (ms; 4 hours).
    #[arg(long)]
    pub offload_deletion_lag_ms: Option<u64>,
}

impl OffloadFlags {
    pub fn into_config(self) -> OffloadConfig {
        let d = OffloadConfig::default();
        OffloadConfig {
            driver: self.offload_driver.unwrap_or(d.driver),
            bucket: self.offload_bucket.unwrap_or(d.bucket),
            region: self.offload_region.unwrap_or(d.region),
            endpoint: self.offload_endpoint.unwrap_or(d.endpoint),
            path: self.offload_path.or(d.path),
            prefix: self.offload_prefix.unwrap_or(d.prefix),
            threshold_bytes: self.offload_threshold_bytes.unwrap_or(d.threshold_bytes),
            threshold_secs: self.offload_threshold_secs.unwrap_or(d.threshold_secs),
            deletion_lag_ms: self.offload_deletion_lag_ms.unwrap_or(d.deletion_lag_ms),
        }
    }
}
