//! How a namespace's storage policies (retention, offload) turn into managed-ledger settings
//! over the broker's defaults.

use std::time::Duration;

use magnetar_admin_api::models::{Policies, RetentionPolicies};

use crate::managed_ledger::{ManagedLedgerConfig, OffloadPolicy};
use crate::tiered::OffloadConfig;

/// A namespace's retention policy over the broker's defaults (Pulsar's 0: none, -1: forever).
pub(super) fn apply_retention(
    config: &mut ManagedLedgerConfig,
    policy: Option<&RetentionPolicies>,
) {
    let Some(r) = policy else {
        return;
    };
    config.retention_time = match r.retention_time_in_minutes {
        m if m < 0 => Some(Duration::MAX),
        0 => None,
        m => Some(Duration::from_secs(u64::from(m.unsigned_abs()) * 60)),
    };
    config.retention_size = match r.retention_size_in_mb {
        mb if mb < 0 => Some(u64::MAX),
        0 => None,
        mb => Some((mb as u64).saturating_mul(1024 * 1024)),
    };
}

/// A namespace's offload policies over the broker's `[offload]` defaults (-1: never).
pub(super) fn apply_offload(
    config: &mut ManagedLedgerConfig,
    policies: &Policies,
    defaults: &OffloadConfig,
) {
    let bytes = policies
        .offload_threshold
        .unwrap_or(defaults.threshold_bytes);
    let secs = policies
        .offload_threshold_in_seconds
        .unwrap_or(defaults.threshold_secs);
    let lag_ms = policies
        .offload_deletion_lag_ms
        .map_or(defaults.deletion_lag_ms, |ms| ms.max(0) as u64);
    config.offload = OffloadPolicy {
        threshold_bytes: u64::try_from(bytes).ok(),
        threshold_age: u64::try_from(secs).ok().map(Duration::from_secs),
        deletion_lag: Duration::from_millis(lag_ms),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_offload_policies_override_the_broker_defaults() {
        let defaults = OffloadConfig {
            threshold_bytes: 1000,
            ..OffloadConfig::default()
        };
        let mut config = ManagedLedgerConfig::default();
        apply_offload(&mut config, &Policies::default(), &defaults);
        assert_eq!(config.offload.threshold_bytes, Some(1000));
        assert_eq!(config.offload.threshold_age, None);
        assert_eq!(config.offload.deletion_lag, Duration::from_secs(4 * 3600));
        let policies = Policies {
            offload_threshold: Some(-1),
            offload_threshold_in_seconds: Some(60),
            offload_deletion_lag_ms: Some(0),
            ..Policies::default()
        };
        apply_offload(&mut config, &policies, &defaults);
        assert_eq!(config.offload.threshold_bytes, None);
        assert_eq!(config.offload.threshold_age, Some(Duration::from_secs(60)));
        assert_eq!(config.offload.deletion_lag, Duration::ZERO);
    }
}
