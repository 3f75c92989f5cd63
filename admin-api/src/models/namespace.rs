//! Namespace `Policies` (stored at `/admin/policies/{tenant}/{ns}`), snake_case JSON as Pulsar
//! writes it, and the policy parts that have their own routes.

use std::collections::{BTreeMap, BTreeSet};

use magnetar_auth::{AuthPolicies, SubscriptionAuthMode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::SchemaCompatibilityStrategy;

/// Everything configured on a namespace. Fields absent from a request body keep their
/// defaults; unknown fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct Policies {
    pub auth_policies: AuthPolicies,
    /// Clusters the namespace's topics are replicated to (the local cluster by default).
    pub replication_clusters: BTreeSet<String>,
    /// Hash ranges the namespace's topics are split into for ownership.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundles: Option<BundlesData>,
    /// Backlog quota per type (`destination_storage`, `message_age`).
    pub backlog_quota_map: BTreeMap<BacklogQuotaType, BacklogQuota>,
    /// Unacknowledged messages older than this are acknowledged by the broker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_ttl_in_seconds: Option<i32>,
    /// How long and how much acknowledged data is kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_policies: Option<RetentionPolicies>,
    /// Bookies and copies for the namespace's ledgers (the broker's defaults when unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persistence: Option<PersistencePolicies>,
    /// Message deduplication for the namespace's topics (the broker's
    /// `deduplication_enabled` when unset).
    #[serde(
        rename = "deduplicationEnabled",
        skip_serializing_if = "Option::is_none"
    )]
    pub deduplication_enabled: Option<bool>,
    /// Delayed delivery for the namespace's Shared and Key_Shared subscriptions (on when
    /// unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delayed_delivery_policies: Option<DelayedDeliveryPolicies>,
    /// Bytes not yet compacted above which a topic compacts itself (never when unset or 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compaction_threshold: Option<i64>,
    /// Bytes a topic keeps on the bookies before its oldest closed ledgers are offloaded to
    /// tiered storage (-1 never, 0 as soon as a ledger closes; the broker's default when unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offload_threshold: Option<i64>,
    /// Seconds after a ledger closed at which it is offloaded (-1 never; the broker's default
    /// when unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offload_threshold_in_seconds: Option<i64>,
    /// How long an offloaded ledger also stays on the bookies, in ms (the broker's default,
    /// 4 hours, when unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offload_deletion_lag_ms: Option<i64>,
    /// How new schema versions must relate to earlier ones (`UNDEFINED`: the broker's `FULL`).
    pub schema_compatibility_strategy: SchemaCompatibilityStrategy,
    /// Whether producers may add schema versions (true when unset); when false, only schemas
    /// uploaded through the admin API are accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_allow_auto_update_schema: Option<bool>,
    /// Whether producers without a schema are refused on topics that have one.
    pub schema_validation_enforced: bool,
    pub subscription_auth_mode: SubscriptionAuthMode,
    pub encryption_required: bool,
    pub deleted: bool,
}

/// Bundle boundaries: `numBundles + 1` hex strings from `0x00000000` to `0xffffffff`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BundlesData {
    pub boundaries: Vec<String>,
    pub num_bundles: u32,
}

impl BundlesData {
    /// `n` equal hash ranges over the 32-bit space, as Pulsar splits a new namespace.
    pub fn even(n: u32) -> BundlesData {
        let n = n.max(1);
        let step = (1u64 << 32) / u64::from(n);
        let mut boundaries: Vec<String> = (0..u64::from(n))
            .map(|i| format!("0x{:08x}", i * step))
            .collect();
        boundaries.push("0xffffffff".into());
        BundlesData {
            boundaries,
            num_bundles: n,
        }
    }
}

/// Replication of a namespace's ledgers (Pulsar's `PersistencePolicies`): bookies per ledger,
/// copies written, copies acknowledged; and how often cursors may be persisted (0: the
/// broker's default). New values apply to ledgers created afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersistencePolicies {
    pub bookkeeper_ensemble: i32,
    pub bookkeeper_write_quorum: i32,
    pub bookkeeper_ack_quorum: i32,
    /// Cursor writes per second at most.
    #[serde(default = "zero")]
    #[schema(value_type = f64)]
    pub managed_ledger_max_mark_delete_rate: serde_json::Number,
}

fn zero() -> serde_json::Number {
    serde_json::Number::from(0)
}

impl PersistencePolicies {
    /// Pulsar's rule: each value in 1..=`max`, and E >= Qw >= Qa; the rate not negative.
    pub fn validate(&self, max: i32) -> Result<(), String> {
        let (e, w, a) = (
            self.bookkeeper_ensemble,
            self.bookkeeper_write_quorum,
            self.bookkeeper_ack_quorum,
        );
        let in_range = |v: i32| (1..=max).contains(&v);
        if !(in_range(e) && in_range(w) && in_range(a) && e >= w && w >= a) {
            return Err(format!(
                "Bookkeeper Ensemble ({e}) >= WriteQuorum ({w}) >= AckQuorum ({a}), each between 1 and {max}"
            ));
        }
        if self.mark_delete_rate() < 0.0 || !self.mark_delete_rate().is_finite() {
            return Err("managedLedgerMaxMarkDeleteRate must not be negative".into());
        }
        Ok(())
    }

    pub fn mark_delete_rate(&self) -> f64 {
        self.managed_ledger_max_mark_delete_rate
            .as_f64()
            .unwrap_or(0.0)
    }
}

/// Pulsar's `DelayedDeliveryPolicies`. `tickTime` (ms) is accepted and reported for
/// compatibility; Magnetar's timer is exact to the millisecond whatever it says.
/// `maxDeliveryDelayInMillis` (0: no limit) caps the delay: a message asking for more is
/// delivered that long after it was published (Pulsar refuses such a publish, and the C++
/// client answers that refusal by resending forever).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DelayedDeliveryPolicies {
    pub active: bool,
    #[serde(default = "default_tick_time")]
    pub tick_time: i64,
    #[serde(default)]
    pub max_delivery_delay_in_millis: i64,
}

fn default_tick_time() -> i64 {
    1000
}

/// Retention of acknowledged messages: -1 is unlimited, 0 is none. Both limits apply; data
/// goes when either is exceeded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicies {
    pub retention_time_in_minutes: i32,
    #[serde(rename = "retentionSizeInMB")]
    pub retention_size_in_mb: i64,
}

/// What a backlog quota limits.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum BacklogQuotaType {
    /// Backlog size in bytes.
    DestinationStorage,
    /// Age of the oldest unacknowledged message, in seconds.
    MessageAge,
}

impl BacklogQuotaType {
    pub fn as_str(self) -> &'static str {
        match self {
            BacklogQuotaType::DestinationStorage => "destination_storage",
            BacklogQuotaType::MessageAge => "message_age",
        }
    }
}

impl std::str::FromStr for BacklogQuotaType {
    type Err = String;
    fn from_str(s: &str) -> Result<BacklogQuotaType, String> {
        match s {
            "destination_storage" => Ok(BacklogQuotaType::DestinationStorage),
            "message_age" => Ok(BacklogQuotaType::MessageAge),
            other => Err(format!(
                "unknown backlogQuotaType {other:?} (destination_storage, message_age)"
            )),
        }
    }
}

/// What happens when a backlog quota is exceeded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RetentionPolicy {
    /// Producers wait until there is room.
    #[default]
    ProducerRequestHold,
    /// Producers get an error.
    ProducerException,
    /// The oldest backlog is dropped.
    ConsumerBacklogEviction,
}

/// A backlog limit: `limitSize` bytes for `destination_storage`, `limitTime` seconds for
/// `message_age`; -1 means unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct BacklogQuota {
    #[serde(alias = "limit")]
    pub limit_size: i64,
    pub limit_time: i64,
    pub policy: RetentionPolicy,
}

impl Default for BacklogQuota {
    fn default() -> BacklogQuota {
        BacklogQuota {
            limit_size: -1,
            limit_time: -1,
            policy: RetentionPolicy::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_use_pulsar_field_names() {
        let mut p = Policies {
            retention_policies: Some(RetentionPolicies {
                retention_time_in_minutes: 60,
                retention_size_in_mb: 1024,
            }),
            message_ttl_in_seconds: Some(30),
            ..Policies::default()
        };
        p.backlog_quota_map.insert(
            BacklogQuotaType::DestinationStorage,
            BacklogQuota::default(),
        );
        let json = serde_json::to_value(&p).expect("serializable");
        assert_eq!(json["retention_policies"]["retentionSizeInMB"], 1024);
        assert_eq!(json["retention_policies"]["retentionTimeInMinutes"], 60);
        assert_eq!(json["message_ttl_in_seconds"], 30);
        assert_eq!(
            json["backlog_quota_map"]["destination_storage"]["policy"],
            "producer_request_hold"
        );
        assert!(json["auth_policies"]["namespace_auth"].is_object());
        let back: Policies = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, p);
        let quota: BacklogQuota =
            serde_json::from_str(r#"{"limit":10,"policy":"producer_exception"}"#).expect("alias");
        assert_eq!(quota.limit_size, 10);
        assert_eq!(quota.limit_time, -1);
    }

    #[test]
    fn even_bundles_cover_the_hash_space() {
        let b = BundlesData::even(4);
        assert_eq!(
            b.boundaries,
            [
                "0x00000000",
                "0x40000000",
                "0x80000000",
                "0xc0000000",
                "0xffffffff"
            ]
        );
    }
}
