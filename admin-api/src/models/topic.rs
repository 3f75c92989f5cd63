//! Partitioned topic metadata (stored at
//! `/admin/partitioned-topics/{tenant}/{ns}/{domain}/{topic}`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `{"partitions": N}`; 0 means a non-partitioned topic when answered by the REST API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct PartitionedTopicMetadata {
    pub partitions: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub properties: Option<BTreeMap<String, String>>,
}

/// A position in a topic as the admin API takes it: the body of `resetcursor` (Pulsar's
/// `ResetCursorData`) and of subscription creation (`MessageIdImpl`). `ledgerId` −1 means the
/// earliest position, `ledgerId` 9223372036854775807 the latest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct MessageIdBody {
    pub ledger_id: i64,
    pub entry_id: i64,
    /// −1 for a non-partitioned topic.
    pub partition_index: i32,
    /// Put the cursor after this message instead of on it.
    pub is_excluded: bool,
    /// −1 for the whole entry.
    pub batch_index: i32,
}

impl Default for MessageIdBody {
    fn default() -> MessageIdBody {
        MessageIdBody {
            ledger_id: i64::MAX,
            entry_id: i64::MAX,
            partition_index: -1,
            is_excluded: false,
            batch_index: -1,
        }
    }
}

/// Where the broker serving a topic is reached: the answer of the HTTP lookup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LookupData {
    pub broker_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_url_tls: Option<String>,
    pub http_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_url_tls: Option<String>,
}

/// The status of a long-running topic operation (compaction), as Pulsar's
/// `LongRunningProcessStatus`: `status` is `NOT_RUN`, `RUNNING`, `SUCCESS` or `ERROR`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompactionStatus {
    pub status: String,
    #[serde(default)]
    pub last_error: String,
}

impl Default for CompactionStatus {
    fn default() -> CompactionStatus {
        CompactionStatus {
            status: "NOT_RUN".into(),
            last_error: String::new(),
        }
    }
}

/// The status of a topic's last offload to tiered storage, as Pulsar's `OffloadProcessStatus`:
/// `status` as [`CompactionStatus`], and the first message still only on the bookies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OffloadProcessStatus {
    pub status: String,
    #[serde(default)]
    pub last_error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_unoffloaded_message: Option<MessageIdBody>,
}

impl Default for OffloadProcessStatus {
    fn default() -> OffloadProcessStatus {
        OffloadProcessStatus {
            status: "NOT_RUN".into(),
            last_error: String::new(),
            first_unoffloaded_message: None,
        }
    }
}
