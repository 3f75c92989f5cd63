//! `TenantInfo` (stored at `/admin/policies/{tenant}`).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Who administers a tenant and where its namespaces may live (Pulsar's `TenantInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct TenantInfo {
    /// Roles that may administer the tenant and use all of its topics.
    pub admin_roles: BTreeSet<String>,
    /// Clusters the tenant's namespaces may be replicated to; never empty.
    pub allowed_clusters: BTreeSet<String>,
}

impl TenantInfo {
    /// The admin roles as a slice-friendly list for the authorizer.
    pub fn admin_role_list(&self) -> Vec<String> {
        self.admin_roles.iter().cloned().collect()
    }
}
