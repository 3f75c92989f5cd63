//! Clusters: `/admin/clusters/{name}`.

use crate::models::ClusterData;

use super::ResourceError;
use super::store::{Store, Versioned};
use crate::keys::cluster as cluster_key;

/// Pulsar's pseudo-cluster of global namespaces; never listed.
const GLOBAL: &str = "global";

#[derive(Debug, Clone)]
pub struct ClusterResources {
    store: Store,
}

impl ClusterResources {
    pub(crate) fn new(store: Store) -> ClusterResources {
        ClusterResources { store }
    }

    /// Cluster names in order.
    pub async fn list(&self) -> Result<Vec<String>, ResourceError> {
        let mut names = self.store.children(crate::keys::CLUSTERS).await?;
        names.retain(|n| n != GLOBAL);
        Ok(names)
    }

    pub async fn get(&self, name: &str) -> Result<Option<ClusterData>, ResourceError> {
        Ok(self.get_versioned(name).await?.map(|v| v.value))
    }

    pub async fn get_versioned(
        &self,
        name: &str,
    ) -> Result<Option<Versioned<ClusterData>>, ResourceError> {
        self.store.get(&cluster_key(name)).await
    }

    pub async fn exists(&self, name: &str) -> Result<bool, ResourceError> {
        Ok(self.store.get_raw(&cluster_key(name)).await?.is_some())
    }

    /// Registers a cluster; `Conflict` if it exists.
    pub async fn create(&self, name: &str, data: &ClusterData) -> Result<(), ResourceError> {
        self.store
            .create(&cluster_key(name), data, || {
                format!("Cluster {name} already exists")
            })
            .await
    }

    /// Replaces a cluster's data; `NotFound` if it does not exist.
    pub async fn update(&self, name: &str, data: &ClusterData) -> Result<(), ResourceError> {
        self.store
            .update(
                &cluster_key(name),
                || format!("Cluster {name} does not exist"),
                |current: &mut ClusterData| {
                    *current = data.clone();
                    Ok(())
                },
            )
            .await
            .map(|_| ())
    }

    /// Removes a cluster; `PreconditionFailed` while a tenant allows it or a namespace
    /// replicates to it. Tenant creation touches the cluster record, so the version check of
    /// the delete catches a tenant created after the usage check.
    pub async fn delete(
        &self,
        name: &str,
        tenants: &super::TenantResources,
        namespaces: &super::NamespaceResources,
    ) -> Result<(), ResourceError> {
        let key = cluster_key(name);
        self.store
            .retry(&key, || async {
                let Some((_, version)) = self.store.get_raw(&key).await? else {
                    return Err(ResourceError::NotFound(format!(
                        "Cluster {name} does not exist"
                    )));
                };
                for tenant in tenants.list().await? {
                    let Some(info) = tenants.get(&tenant).await? else {
                        continue;
                    };
                    if info.allowed_clusters.contains(name) {
                        return Err(ResourceError::PreconditionFailed(format!(
                            "Cluster not empty: tenant {tenant} allows it"
                        )));
                    }
                    for ns in namespaces.list(&tenant).await? {
                        if let Some(policies) = namespaces.get(&ns).await?
                            && policies.replication_clusters.contains(name)
                        {
                            return Err(ResourceError::PreconditionFailed(format!(
                                "Cluster not empty: namespace {ns} replicates to it"
                            )));
                        }
                    }
                }
                self.store.delete(&key, version).await
            })
            .await
    }
}
