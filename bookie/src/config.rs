//! The bookie's configuration: a TOML file layer with defaults for every field, command-line
//! flags applied on top by the binary, then [`BookieConfig::validate`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::journal::JournalConfig;
use crate::storage::StorageConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BookieConfig {
    /// Where the binary binds the bookie protocol listener (tests pass their own listener).
    pub listen: SocketAddr,
    /// Journal segments; ideally a disk of their own.
    pub journal_dir: PathBuf,
    /// RocksDB ledger storage.
    pub ledger_dir: PathBuf,
    /// Largest entry payload accepted, in bytes.
    pub max_entry_size: usize,
    /// Largest protocol frame accepted, in bytes; a larger one closes the connection.
    pub max_frame_size: usize,
    /// Bytes of requests one connection may have in process at once (each request counts at
    /// least 1 KiB); the bookie stops reading the connection beyond it.
    pub max_inflight_bytes: usize,
    /// Milliseconds between checkpoints (RocksDB flush, then old journal segments removed).
    pub checkpoint_interval_ms: u64,
    /// Milliseconds shutdown waits for connections to finish their in-flight requests.
    pub shutdown_grace_ms: u64,
    pub journal: JournalConfig,
    pub storage: StorageConfig,
}

impl Default for BookieConfig {
    fn default() -> Self {
        let max_entry_size = 5 * 1024 * 1024 + 10 * 1024;
        BookieConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 3181)),
            journal_dir: PathBuf::from("data/bookie/journal"),
            ledger_dir: PathBuf::from("data/bookie/ledgers"),
            max_entry_size,
            max_frame_size: max_entry_size + 64 * 1024,
            max_inflight_bytes: 64 * 1024 * 1024,
            checkpoint_interval_ms: 10_000,
            shutdown_grace_ms: 10_000,
            journal: JournalConfig::default(),
            storage: StorageConfig::default(),
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing config file {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("invalid bookie config: {0}")]
    Invalid(String),
}

impl BookieConfig {
    /// Reads a TOML file; fields it does not name keep their defaults.
    pub fn from_file(path: &Path) -> Result<BookieConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
    }

    pub fn from_toml(text: &str) -> Result<BookieConfig, toml::de::Error> {
        toml::from_str(text)
    }

    /// Checks the values against each other; the one step between "parsed" and "usable".
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |msg: String| Err(ConfigError::Invalid(msg));
        let j = &self.journal;
        if self.max_entry_size == 0 {
            return invalid("max_entry_size must be positive".into());
        }
        if self.max_inflight_bytes < self.max_frame_size || self.max_inflight_bytes > 1 << 31 {
            return invalid(format!(
                "max_inflight_bytes ({}) must be between max_frame_size ({}) and 2 GiB",
                self.max_inflight_bytes, self.max_frame_size
            ));
        }
        if self.max_frame_size < self.max_entry_size + 1024 {
            return invalid(format!(
                "max_frame_size ({}) must exceed max_entry_size ({}) by at least 1 KiB",
                self.max_frame_size, self.max_entry_size
            ));
        }
        if j.max_batch_bytes == 0 || j.max_batch_records == 0 {
            return invalid("journal batch limits must be positive".into());
        }
        let needed = (self.max_entry_size as u64 + 64) + j.max_batch_bytes as u64;
        if j.segment_size < needed {
            return invalid(format!(
                "journal.segment_size ({}) must hold a full batch plus the largest entry ({needed})",
                j.segment_size
            ));
        }
        if self.journal_dir == self.ledger_dir {
            return invalid("journal_dir and ledger_dir must differ".into());
        }
        Ok(())
    }

    pub fn checkpoint_interval(&self) -> Duration {
        Duration::from_millis(self.checkpoint_interval_ms.max(1))
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_a_partial_file_keeps_them() {
        BookieConfig::default().validate().expect("defaults valid");
        let config =
            BookieConfig::from_toml("journal_dir = \"/j\"\n[journal]\nmax_group_wait_us = 1000\n")
                .expect("parses");
        assert_eq!(config.journal_dir, PathBuf::from("/j"));
        assert_eq!(config.journal.max_group_wait_us, 1000);
        assert_eq!(
            config.journal.segment_size,
            JournalConfig::default().segment_size
        );
        config.validate().expect("valid");
    }

    #[test]
    fn deploy_sample_is_the_defaults() {
        let sample = include_str!("../../deploy/bookie.toml");
        let config = BookieConfig::from_toml(sample).expect("sample parses");
        config.validate().expect("sample valid");
        assert_eq!(config, BookieConfig::default());
    }

    #[test]
    fn unknown_fields_and_impossible_values_are_refused() {
        assert!(BookieConfig::from_toml("jornal_dir = \"/j\"").is_err());
        let config = BookieConfig {
            journal: JournalConfig {
                segment_size: 1024,
                ..JournalConfig::default()
            },
            ..BookieConfig::default()
        };
        assert!(config.validate().is_err());
    }
}
