//! Tenants: `/admin/policies/{tenant}`.

use magnetar_metadata::{Expected, MetadataError, Txn};

use crate::models::TenantInfo;

use super::store::{Store, Versioned, encode};
use super::{NamespaceResources, ResourceError};
use crate::keys::{cluster as cluster_key, tenant as tenant_key};

#[derive(Debug, Clone)]
pub struct TenantResources {
    store: Store,
}

fn missing(tenant: &str) -> String {
    format!("Tenant {tenant} does not exist")
}

impl TenantResources {
    pub(crate) fn new(store: Store) -> TenantResources {
        TenantResources { store }
    }

    /// Tenant names in order.
    pub async fn list(&self) -> Result<Vec<String>, ResourceError> {
        self.store.children(crate::keys::POLICIES).await
    }

    pub async fn get(&self, tenant: &str) -> Result<Option<TenantInfo>, ResourceError> {
        Ok(self.get_versioned(tenant).await?.map(|v| v.value))
    }

    pub async fn get_versioned(
        &self,
        tenant: &str,
    ) -> Result<Option<Versioned<TenantInfo>>, ResourceError> {
        self.store.get(&tenant_key(tenant)).await
    }

    /// The tenant or `NotFound`.
    pub async fn require(&self, tenant: &str) -> Result<TenantInfo, ResourceError> {
        self.get(tenant)
            .await?
            .ok_or_else(|| ResourceError::NotFound(missing(tenant)))
    }

    /// Creates a tenant: `Conflict` if it exists, `PreconditionFailed` for no or unknown
    /// clusters. Each allowed cluster's record is touched in the same transaction.
    pub async fn create(&self, tenant: &str, info: &TenantInfo) -> Result<(), ResourceError> {
        if info.allowed_clusters.is_empty() {
            return Err(ResourceError::PreconditionFailed(
                "Clusters can not be empty".into(),
            ));
        }
        let key = tenant_key(tenant);
        self.store
            .retry(&key, || async {
                let mut txn = Txn::new().put(key.clone(), encode(info), Expected::Absent);
                for cluster in &info.allowed_clusters {
                    let ckey = cluster_key(cluster);
                    let Some((bytes, version)) = self.store.get_raw(&ckey).await? else {
                        return Err(ResourceError::PreconditionFailed(format!(
                            "Clusters do not exist: {cluster}"
                        )));
                    };
                    txn = txn.put(ckey, bytes, Expected::Version(version));
                }
                match self.store.txn(txn).await {
                    Err(ResourceError::Metadata(MetadataError::BadVersion { key: k, .. }))
                        if k == key =>
                    {
                        Err(ResourceError::Conflict(format!(
                            "Tenant {tenant} already exists"
                        )))
                    }
                    other => other,
                }
            })
            .await
    }

    /// Replaces a tenant's info: `NotFound` if missing, `PreconditionFailed` for no or unknown
    /// clusters or for dropping a cluster a namespace still replicates to.
    pub async fn update(
        &self,
        tenant: &str,
        info: &TenantInfo,
        namespaces: &NamespaceResources,
    ) -> Result<(), ResourceError> {
        self.require(tenant).await?;
        if info.allowed_clusters.is_empty() {
            return Err(ResourceError::PreconditionFailed(
                "Clusters can not be empty".into(),
            ));
        }
        for cluster in &info.allowed_clusters {
            if self.store.get_raw(&cluster_key(cluster)).await?.is_none() {
                return Err(ResourceError::PreconditionFailed(format!(
                    "Clusters do not exist: {cluster}"
                )));
            }
        }
        for ns in namespaces.list(tenant).await? {
            if let Some(policies) = namespaces.get(&ns).await?
                && let Some(c) = policies
                    .replication_clusters
                    .iter()
                    .find(|c| !info.allowed_clusters.contains(*c))
            {
                return Err(ResourceError::PreconditionFailed(format!(
                    "Cluster {c} is still used by namespace {ns}"
                )));
            }
        }
        self.store
            .update(
                &tenant_key(tenant),
                || missing(tenant),
                |current: &mut TenantInfo| {
                    *current = info.clone();
                    Ok(())
                },
            )
            .await
            .map(|_| ())
    }

    /// Deletes a tenant: `NotFound` if missing, `Conflict` while it has namespaces. Namespace
    /// creation touches the tenant record, so the version check closes the race.
    pub async fn delete(
        &self,
        tenant: &str,
        namespaces: &NamespaceResources,
    ) -> Result<(), ResourceError> {
        let key = tenant_key(tenant);
        self.store
            .retry(&key, || async {
                let Some((_, version)) = self.store.get_raw(&key).await? else {
                    return Err(ResourceError::NotFound(missing(tenant)));
                };
                if !namespaces.list(tenant).await?.is_empty() {
                    return Err(ResourceError::Conflict(format!(
                        "The tenant {tenant} still has active namespaces"
                    )));
                }
                self.store.delete(&key, version).await
            })
            .await
    }
}
