//! The disk-usage monitor: it measures the filesystems of the journal and ledger directories,
//! turns the bookie read-only when the fullest passes `disk_usage_threshold`, and writable again
//! once it falls below `disk_usage_lwm_threshold` (the gap keeps it from flapping). Every check
//! publishes the bookie's [`BookieInfo`] for the registration to carry.
//!
//! Usage is counted as `df` counts it: `used / (used + available to users)`, so blocks reserved
//! for root count neither as used nor as free.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::bookie::Bookie;
use crate::registry::BookieInfo;

/// Space on one filesystem, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskUsage {
    /// Bytes an unprivileged writer may still use.
    pub free_bytes: u64,
    /// Bytes in use.
    pub used_bytes: u64,
    /// Size of the filesystem.
    pub total_bytes: u64,
}

impl DiskUsage {
    /// Share of the usable space in use, from 0 to 1.
    pub fn fraction_used(&self) -> f64 {
        let usable = self.used_bytes + self.free_bytes;
        if usable == 0 {
            return 1.0;
        }
        self.used_bytes as f64 / usable as f64
    }

    /// Measures the filesystem holding `path`.
    pub fn of(path: &Path) -> std::io::Result<DiskUsage> {
        let stat = rustix::fs::statvfs(path)?;
        let unit = stat.f_frsize.max(1);
        Ok(DiskUsage {
            free_bytes: stat.f_bavail.saturating_mul(unit),
            used_bytes: stat
                .f_blocks
                .saturating_sub(stat.f_bfree)
                .saturating_mul(unit),
            total_bytes: stat.f_blocks.saturating_mul(unit),
        })
    }

    /// The fullest of the filesystems holding `paths`: the one that decides read-only.
    pub fn fullest(paths: &[PathBuf]) -> std::io::Result<DiskUsage> {
        let mut fullest: Option<DiskUsage> = None;
        for path in paths {
            let usage = DiskUsage::of(path)?;
            if fullest.is_none_or(|f| usage.fraction_used() > f.fraction_used()) {
                fullest = Some(usage);
            }
        }
        Ok(fullest.unwrap_or_default())
    }
}

/// Read-only with hysteresis: on at `threshold` or above, off only below `low_water_mark`.
#[derive(Debug, Clone, Copy)]
pub struct ReadOnlyGate {
    pub threshold: f64,
    pub low_water_mark: f64,
    pub read_only: bool,
}

impl ReadOnlyGate {
    /// Takes a measurement; returns the new state if it changed.
    pub fn observe(&mut self, fraction_used: f64) -> Option<bool> {
        let next = if self.read_only {
            fraction_used >= self.low_water_mark
        } else {
            fraction_used >= self.threshold
        };
        (next != self.read_only).then(|| {
            self.read_only = next;
            next
        })
    }
}

/// Checks the disks of one bookie and applies the outcome to it.
#[derive(Debug)]
pub(crate) struct DiskMonitor {
    pub bookie: Arc<Bookie>,
    pub address: String,
    pub dirs: Vec<PathBuf>,
    pub gate: ReadOnlyGate,
}

impl DiskMonitor {
    /// Measures, switches the bookie's read-only state if the gate says so, and returns what the
    /// registration should say. A failed measurement keeps the previous state.
    pub fn check(&mut self) -> Option<BookieInfo> {
        let usage = match DiskUsage::fullest(&self.dirs) {
            Ok(usage) => usage,
            Err(e) => {
                tracing::warn!(error = %e, "measuring disk usage failed");
                return None;
            }
        };
        let used = usage.fraction_used();
        if let Some(read_only) = self.gate.observe(used) {
            let percent = used * 100.0;
            if read_only {
                tracing::warn!(
                    used_percent = format!("{percent:.1}"),
                    threshold = self.gate.threshold,
                    "disk nearly full: bookie is read-only"
                );
            } else {
                tracing::info!(
                    used_percent = format!("{percent:.1}"),
                    "disk usage below the low-water mark: bookie is writable again"
                );
            }
            self.bookie.set_read_only(read_only);
        }
        Some(BookieInfo {
            address: self.address.clone(),
            read_only: self.gate.read_only,
            free_disk_bytes: usage.free_bytes,
            total_disk_bytes: usage.total_bytes,
        })
    }

    /// Checks every `interval` until `shutdown`, publishing each result on `info`.
    pub async fn run(
        mut self,
        interval: Duration,
        info: watch::Sender<BookieInfo>,
        shutdown: CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await; // immediate; the server checked once before it started serving
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            if let Some(current) = self.check() {
                info.send_if_modified(|published| {
                    let changed = *published != current;
                    *published = current;
                    changed
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_has_hysteresis() {
        let mut gate = ReadOnlyGate {
            threshold: 0.95,
            low_water_mark: 0.90,
            read_only: false,
        };
        assert_eq!(gate.observe(0.5), None);
        assert_eq!(gate.observe(0.95), Some(true));
        assert_eq!(gate.observe(0.97), None);
        assert_eq!(
            gate.observe(0.92),
            None,
            "between the marks it stays read-only"
        );
        assert_eq!(gate.observe(0.899), Some(false));
        assert_eq!(
            gate.observe(0.94),
            None,
            "between the marks it stays writable"
        );
    }

    #[test]
    fn a_zero_threshold_is_always_read_only() {
        let mut gate = ReadOnlyGate {
            threshold: 0.0,
            low_water_mark: 0.0,
            read_only: false,
        };
        assert_eq!(gate.observe(0.0), Some(true));
        assert_eq!(gate.observe(0.0), None);
    }

    #[test]
    fn usage_counts_like_df() {
        let usage = DiskUsage {
            free_bytes: 50,
            used_bytes: 50,
            total_bytes: 120,
        };
        assert!((usage.fraction_used() - 0.5).abs() < 1e-9);
        assert_eq!(DiskUsage::default().fraction_used(), 1.0);
        let here = DiskUsage::fullest(&[std::env::temp_dir()]).expect("statvfs");
        assert!(here.total_bytes > 0 && here.total_bytes >= here.free_bytes);
    }
}
