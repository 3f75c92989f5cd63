//! Request and response bodies of the admin REST API, with Pulsar's JSON field names: one set
//! of types shared by the server routes, the resources layer (they are also the stored form in
//! the metadata service) and the admin client.

mod cluster;
mod namespace;
mod schema;
mod tenant;
mod topic;
mod topic_policies;

pub use cluster::{ClusterData, LeaderBroker};
pub use magnetar_auth::{AuthAction, AuthPolicies, SubscriptionAuthMode};
pub use namespace::{
    BacklogQuota, BacklogQuotaType, BundlesData, DelayedDeliveryPolicies, PersistencePolicies,
    Policies, RetentionPolicies, RetentionPolicy,
};
pub use schema::{
    DeleteSchemaResponse, GetAllVersionsSchemaResponse, GetSchemaResponse, IsCompatibilityResponse,
    LongSchemaVersion, PostSchemaPayload, PostSchemaResponse, SCHEMA_TYPES,
    SchemaCompatibilityStrategy, schema_type_name, schema_type_number,
};
pub use tenant::TenantInfo;
pub use topic::{
    CompactionStatus, LookupData, MessageIdBody, OffloadProcessStatus, PartitionedTopicMetadata,
};
pub use topic_policies::TopicPolicies;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The body of every error response: `{"reason": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub reason: String,
}
