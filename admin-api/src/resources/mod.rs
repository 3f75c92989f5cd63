//! Typed access to the admin state in the metadata service. Every write is a compare-and-set
//! on the key's version; a read-modify-write that loses a race re-reads and tries again.
//!
//! Key layout (Pulsar's ZooKeeper layout):
//! - `/admin/clusters/{cluster}` → [`ClusterData`](crate::models::ClusterData)
//! - `/admin/policies/{tenant}` → [`TenantInfo`](crate::models::TenantInfo)
//! - `/admin/policies/{tenant}/{namespace}` → [`Policies`](crate::models::Policies)
//! - `/admin/partitioned-topics/{tenant}/{namespace}/{domain}/{topic}` →
//!   [`PartitionedTopicMetadata`](crate::models::PartitionedTopicMetadata)
//! - `/schemas/{tenant}/{namespace}/{topic}` → a topic's schema versions ([`SchemaResources`])
//!
//! Existence races are closed by "touching" the parent: creating a tenant rewrites each of its
//! clusters' records (same bytes, expected version) in the same transaction, and creating a
//! namespace does the same to its tenant's record. A concurrent delete of the parent, which is
//! itself a CAS on the version it checked, then fails and re-checks.
//!
//! The broker reads policies through [`Resources`] too (and should watch the prefixes above to
//! keep a cache fresh).

mod clusters;
mod namespaces;
pub mod schema_compat;
mod schemas;
mod store;
mod tenants;
mod topics;

use magnetar_metadata::{MetadataClient, MetadataError};

pub use clusters::ClusterResources;
pub use namespaces::NamespaceResources;
pub use schemas::{SchemaLimits, SchemaRegistryError, SchemaResources, StoredSchema};
pub use store::Versioned;
pub use tenants::TenantResources;
pub use topics::TopicResources;

use store::Store;

/// Why a resource operation failed; each maps to one REST status.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 412.
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("metadata service: {0}")]
    Metadata(#[from] MetadataError),
    #[error("stored value at {key} is not valid: {source}")]
    Corrupt {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("gave up on {key} after {attempts} conflicting concurrent updates")]
    TooMuchContention { key: String, attempts: u32 },
}

/// All typed resources over one metadata client; cheap to clone.
#[derive(Debug, Clone)]
pub struct Resources {
    pub clusters: ClusterResources,
    pub tenants: TenantResources,
    pub namespaces: NamespaceResources,
    pub topics: TopicResources,
    pub schemas: SchemaResources,
}

impl Resources {
    pub fn new(client: MetadataClient) -> Resources {
        let store = Store::new(client);
        Resources {
            clusters: ClusterResources::new(store.clone()),
            tenants: TenantResources::new(store.clone()),
            namespaces: NamespaceResources::new(store.clone()),
            topics: TopicResources::new(store.clone()),
            schemas: SchemaResources::new(store),
        }
    }
}
