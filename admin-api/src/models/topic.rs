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
