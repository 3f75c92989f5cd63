//! Namespaces: `/admin/policies/{tenant}/{namespace}` holding [`Policies`].

use std::collections::BTreeSet;

use magnetar_metadata::{Expected, MetadataError, Txn};
use magnetar_protocol::topic::TopicName;

use crate::models::{AuthAction, Policies};
use crate::names::NamespaceName;

use super::ResourceError;
use super::store::{Store, Versioned, encode};
use crate::keys::{self, namespace as namespace_key, tenant as tenant_key};

#[derive(Debug, Clone)]
pub struct NamespaceResources {
    store: Store,
}

fn missing(ns: &NamespaceName) -> String {
    format!("Namespace {ns} does not exist")
}

impl NamespaceResources {
    pub(crate) fn new(store: Store) -> NamespaceResources {
        NamespaceResources { store }
    }

    /// Namespaces of `tenant` in order (empty if the tenant has none or does not exist).
    pub async fn list(&self, tenant: &str) -> Result<Vec<NamespaceName>, ResourceError> {
        let names = self.store.children(&tenant_key(tenant)).await?;
        Ok(names
            .into_iter()
            .map(|namespace| NamespaceName {
                tenant: tenant.into(),
                namespace,
            })
            .collect())
    }

    pub async fn get(&self, ns: &NamespaceName) -> Result<Option<Policies>, ResourceError> {
        Ok(self.get_versioned(ns).await?.map(|v| v.value))
    }

    pub async fn get_versioned(
        &self,
        ns: &NamespaceName,
    ) -> Result<Option<Versioned<Policies>>, ResourceError> {
        self.store.get(&namespace_key(ns)).await
    }

    /// The policies or `NotFound`.
    pub async fn require(&self, ns: &NamespaceName) -> Result<Policies, ResourceError> {
        self.get(ns)
            .await?
            .ok_or_else(|| ResourceError::NotFound(missing(ns)))
    }

    /// Creates a namespace with `policies` (already validated against the tenant by the
    /// caller): `NotFound` if the tenant is gone, `Conflict` if the namespace exists. The
    /// tenant record is touched in the same transaction so that a concurrent tenant delete
    /// fails its version check.
    pub async fn create(
        &self,
        ns: &NamespaceName,
        policies: &Policies,
    ) -> Result<(), ResourceError> {
        let key = namespace_key(ns);
        let tkey = tenant_key(&ns.tenant);
        self.store
            .retry(&key, || async {
                let Some((tenant_bytes, tenant_version)) = self.store.get_raw(&tkey).await? else {
                    return Err(ResourceError::NotFound(format!(
                        "Tenant {} does not exist",
                        ns.tenant
                    )));
                };
                let txn = Txn::new()
                    .put(key.clone(), encode(policies), Expected::Absent)
                    .put(
                        tkey.clone(),
                        tenant_bytes,
                        Expected::Version(tenant_version),
                    );
                match self.store.txn(txn).await {
                    Err(ResourceError::Metadata(MetadataError::BadVersion { key: k, .. }))
                        if k == key =>
                    {
                        Err(ResourceError::Conflict(format!(
                            "Namespace {ns} already exists"
                        )))
                    }
                    other => other,
                }
            })
            .await
    }

    /// Changes a namespace's policies with compare-and-set; `NotFound` if it does not exist.
    pub async fn update<F>(&self, ns: &NamespaceName, change: F) -> Result<Policies, ResourceError>
    where
        F: FnMut(&mut Policies) -> Result<(), ResourceError>,
    {
        self.store
            .update(&namespace_key(ns), || missing(ns), change)
            .await
    }

    /// Grants `actions` on one topic to `role` (`auth_policies.destination_auth`, keyed by the
    /// partitioned topic's full name), replacing the role's previous grant on it.
    pub async fn grant_topic_permission(
        &self,
        topic: &TopicName,
        role: &str,
        actions: &BTreeSet<AuthAction>,
    ) -> Result<Policies, ResourceError> {
        let (ns, name) = topic_namespace(topic);
        self.update(&ns, |p| {
            let grants = p
                .auth_policies
                .destination_auth
                .entry(name.clone())
                .or_default();
            grants.insert(role.to_string(), actions.clone());
            Ok(())
        })
        .await
    }

    /// Removes `role`'s grant on one topic.
    pub async fn revoke_topic_permission(
        &self,
        topic: &TopicName,
        role: &str,
    ) -> Result<Policies, ResourceError> {
        let (ns, name) = topic_namespace(topic);
        self.update(&ns, |p| {
            let destination = &mut p.auth_policies.destination_auth;
            if let Some(grants) = destination.get_mut(&name) {
                grants.remove(role);
                if grants.is_empty() {
                    destination.remove(&name);
                }
            }
            Ok(())
        })
        .await
    }

    /// Whether any topic exists in the namespace: a partitioned topic's metadata or a managed
    /// ledger (`/managed-ledgers/{tenant}/{ns}/…`, written by brokers).
    pub async fn has_topics(&self, ns: &NamespaceName) -> Result<bool, ResourceError> {
        let partitioned = keys::partitioned_topics_prefix(ns);
        let ledgers = keys::managed_ledgers_prefix(ns);
        Ok(self.store.any_under(&partitioned).await? || self.store.any_under(&ledgers).await?)
    }

    /// Deletes a namespace: `NotFound` if missing, `Conflict` while it has topics.
    pub async fn delete(&self, ns: &NamespaceName) -> Result<(), ResourceError> {
        let key = namespace_key(ns);
        self.store
            .retry(&key, || async {
                let Some((_, version)) = self.store.get_raw(&key).await? else {
                    return Err(ResourceError::NotFound(missing(ns)));
                };
                if self.has_topics(ns).await? {
                    return Err(ResourceError::Conflict(format!(
                        "Namespace {ns} is not empty"
                    )));
                }
                self.store.delete(&key, version).await
            })
            .await
    }
}

/// The namespace of a topic and the key its grants are stored under.
fn topic_namespace(topic: &TopicName) -> (NamespaceName, String) {
    let ns = NamespaceName {
        tenant: topic.tenant().into(),
        namespace: topic.namespace_local().into(),
    };
    (ns, topic.partitioned_topic().to_string())
}
