//! A typed client of the admin REST API (Pulsar's v2 paths), over reqwest with rustls. It
//! speaks to Magnetar and, for the routes both have, to Apache Pulsar brokers.

use std::collections::{BTreeMap, BTreeSet};

use magnetar_admin_api::models::{
    AuthAction, BacklogQuota, BacklogQuotaType, BundlesData, ClusterData, ErrorBody,
    PersistencePolicies, Policies, RetentionPolicies, TenantInfo,
};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminClientError {
    /// The server answered with an error status.
    #[error("{status}: {reason}")]
    Http { status: StatusCode, reason: String },
    #[error("cannot reach the admin service: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("unexpected response body: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("invalid client setup: {0}")]
    Setup(String),
}

impl AdminClientError {
    /// The HTTP status of a server error answer.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            AdminClientError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

type Result<T> = std::result::Result<T, AdminClientError>;

/// A percent-encoded path segment (roles may hold any character).
pub(crate) fn seg(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `tenant/ns` as two encoded segments.
fn ns_path(namespace: &str) -> Result<String> {
    let (tenant, ns) = namespace.split_once('/').ok_or_else(|| {
        AdminClientError::Setup(format!("namespace {namespace:?} must be tenant/namespace"))
    })?;
    Ok(format!("/admin/v2/namespaces/{}/{}", seg(tenant), seg(ns)))
}

#[derive(Debug, Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl AdminClient {
    /// A client of the admin service at `base_url` (e.g. `http://127.0.0.1:8080`), sending
    /// `token` as a bearer token; `trust_cert_pem` adds a CA for HTTPS.
    pub fn new(
        base_url: &str,
        token: Option<String>,
        trust_cert_pem: Option<&[u8]>,
    ) -> Result<AdminClient> {
        // Redirects (307 from a broker that does not own a topic or bundle) are followed by
        // `call`, which keeps the token: reqwest drops it when the port changes.
        let mut builder = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = trust_cert_pem {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| AdminClientError::Setup(format!("bad CA certificate: {e}")))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| AdminClientError::Setup(e.to_string()))?;
        Ok(AdminClient {
            http,
            base: base_url.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// Sends a request; the body of a 2xx answer, None for 204.
    async fn call<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Option<Vec<u8>>> {
        Ok(self.exchange(method, path, body).await?.1)
    }

    /// GET answering bytes with headers (peeked messages); None for 204.
    pub async fn get_raw(
        &self,
        path: &str,
    ) -> Result<(reqwest::header::HeaderMap, Option<Vec<u8>>)> {
        self.exchange::<()>(Method::GET, path, None).await
    }

    /// Sends a request, following redirects; the headers and body of a 2xx answer (no body for
    /// 204), else the server's reason.
    async fn exchange<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<(reqwest::header::HeaderMap, Option<Vec<u8>>)> {
        let mut url = format!("{}{path}", self.base);
        let mut redirects = 0;
        let response = loop {
            let mut request = self.http.request(method.clone(), &url);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await?;
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(str::to_string);
            match location {
                Some(next)
                    if response.status() == StatusCode::TEMPORARY_REDIRECT && redirects < 5 =>
                {
                    redirects += 1;
                    url = next;
                }
                _ => break response,
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        if !status.is_success() {
            let reason = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|e| e.reason)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).trim().to_string());
            return Err(AdminClientError::Http { status, reason });
        }
        let body = (status != StatusCode::NO_CONTENT && !bytes.is_empty()).then(|| bytes.to_vec());
        Ok((headers, body))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>> {
        match self.call::<()>(Method::GET, path, None).await? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    async fn get_required<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.get(path).await?.ok_or_else(|| AdminClientError::Http {
            status: StatusCode::NO_CONTENT,
            reason: format!("no content at {path}"),
        })
    }

    async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<()> {
        self.call(method, path, body).await.map(|_| ())
    }

    /// Live brokers of a cluster (`host:port` ids).
    pub async fn brokers(&self, cluster: &str) -> Result<Vec<String>> {
        self.get_required(&format!("/admin/v2/brokers/{}", seg(cluster)))
            .await
    }
    /// A namespace's bundle boundaries.
    pub async fn bundles(&self, namespace: &str) -> Result<BundlesData> {
        self.get_required(&format!("{}/bundles", ns_path(namespace)?))
            .await
    }
    /// Owned bundles of a namespace: range → broker id.
    pub async fn bundle_owners(&self, namespace: &str) -> Result<BTreeMap<String, String>> {
        self.get_required(&format!("{}/owners", ns_path(namespace)?))
            .await
    }
    /// Unloads one bundle, or the whole namespace without one.
    pub async fn unload(&self, namespace: &str, bundle: Option<&str>) -> Result<()> {
        let path = match bundle {
            Some(b) => format!("{}/{}/unload", ns_path(namespace)?, seg(b)),
            None => format!("{}/unload", ns_path(namespace)?),
        };
        self.send::<()>(Method::PUT, &path, None).await
    }
    pub async fn split_bundle(&self, namespace: &str, bundle: &str) -> Result<()> {
        self.send::<()>(
            Method::PUT,
            &format!("{}/{}/split", ns_path(namespace)?, seg(bundle)),
            None,
        )
        .await
    }

    /// Raw GET returning JSON, for `--json` output of anything.
    pub async fn get_json(&self, path: &str) -> Result<Option<serde_json::Value>> {
        self.get(path).await
    }

    /// PUT to an admin path, with an optional JSON body.
    pub async fn put_json(&self, path: &str, body: Option<&serde_json::Value>) -> Result<()> {
        self.send(Method::PUT, path, body).await
    }

    /// POST to an admin path with an optional JSON body; the JSON answer, if any.
    pub async fn post_json(
        &self,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Option<serde_json::Value>> {
        match self.call(Method::POST, path, body).await? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    /// DELETE an admin path (with its query string); the JSON answer, if any.
    pub async fn delete_json(&self, path: &str) -> Result<Option<serde_json::Value>> {
        match self.call::<()>(Method::DELETE, path, None).await? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    /// DELETE an admin path (with its query string).
    pub async fn delete_path(&self, path: &str) -> Result<()> {
        self.send::<()>(Method::DELETE, path, None).await
    }

    pub async fn clusters(&self) -> Result<Vec<String>> {
        self.get_required("/admin/v2/clusters").await
    }
    pub async fn cluster(&self, name: &str) -> Result<ClusterData> {
        self.get_required(&format!("/admin/v2/clusters/{}", seg(name)))
            .await
    }
    pub async fn create_cluster(&self, name: &str, data: &ClusterData) -> Result<()> {
        self.send(
            Method::PUT,
            &format!("/admin/v2/clusters/{}", seg(name)),
            Some(data),
        )
        .await
    }
    pub async fn update_cluster(&self, name: &str, data: &ClusterData) -> Result<()> {
        self.send(
            Method::POST,
            &format!("/admin/v2/clusters/{}", seg(name)),
            Some(data),
        )
        .await
    }
    pub async fn delete_cluster(&self, name: &str) -> Result<()> {
        self.send::<()>(
            Method::DELETE,
            &format!("/admin/v2/clusters/{}", seg(name)),
            None,
        )
        .await
    }

    /// Creates `persistent://t/ns/x` (or `t/ns/x`) with `partitions` partitions.
    pub async fn create_partitioned_topic(&self, topic: &str, partitions: u32) -> Result<()> {
        let (domain, path) = match topic.strip_prefix("non-persistent://") {
            Some(name) => ("non-persistent", name),
            None => (
                "persistent",
                topic.strip_prefix("persistent://").unwrap_or(topic),
            ),
        };
        let path: Vec<String> = path.split('/').map(seg).collect();
        self.send(
            Method::PUT,
            &format!("/admin/v2/{domain}/{}/partitions", path.join("/")),
            Some(&partitions),
        )
        .await
    }

    pub async fn tenants(&self) -> Result<Vec<String>> {
        self.get_required("/admin/v2/tenants").await
    }
    pub async fn tenant(&self, name: &str) -> Result<TenantInfo> {
        self.get_required(&format!("/admin/v2/tenants/{}", seg(name)))
            .await
    }
    pub async fn create_tenant(&self, name: &str, info: &TenantInfo) -> Result<()> {
        self.send(
            Method::PUT,
            &format!("/admin/v2/tenants/{}", seg(name)),
            Some(info),
        )
        .await
    }
    pub async fn update_tenant(&self, name: &str, info: &TenantInfo) -> Result<()> {
        self.send(
            Method::POST,
            &format!("/admin/v2/tenants/{}", seg(name)),
            Some(info),
        )
        .await
    }
    pub async fn delete_tenant(&self, name: &str) -> Result<()> {
        self.send::<()>(
            Method::DELETE,
            &format!("/admin/v2/tenants/{}", seg(name)),
            None,
        )
        .await
    }

    pub async fn namespaces(&self, tenant: &str) -> Result<Vec<String>> {
        self.get_required(&format!("/admin/v2/namespaces/{}", seg(tenant)))
            .await
    }
    pub async fn create_namespace(
        &self,
        namespace: &str,
        policies: Option<&Policies>,
    ) -> Result<()> {
        self.send(Method::PUT, &ns_path(namespace)?, policies).await
    }
    pub async fn delete_namespace(&self, namespace: &str) -> Result<()> {
        self.send::<()>(Method::DELETE, &ns_path(namespace)?, None)
            .await
    }
    pub async fn policies(&self, namespace: &str) -> Result<Policies> {
        self.get_required(&ns_path(namespace)?).await
    }
    pub async fn permissions(
        &self,
        namespace: &str,
    ) -> Result<BTreeMap<String, BTreeSet<AuthAction>>> {
        self.get_required(&format!("{}/permissions", ns_path(namespace)?))
            .await
    }
    pub async fn grant_permission(
        &self,
        namespace: &str,
        role: &str,
        actions: &BTreeSet<AuthAction>,
    ) -> Result<()> {
        let path = format!("{}/permissions/{}", ns_path(namespace)?, seg(role));
        self.send(Method::POST, &path, Some(actions)).await
    }
    pub async fn revoke_permission(&self, namespace: &str, role: &str) -> Result<()> {
        let path = format!("{}/permissions/{}", ns_path(namespace)?, seg(role));
        self.send::<()>(Method::DELETE, &path, None).await
    }
    /// Subscription → roles allowed to use it.
    pub async fn subscription_permissions(
        &self,
        namespace: &str,
    ) -> Result<BTreeMap<String, BTreeSet<String>>> {
        self.get_required(&format!("{}/permissions/subscription", ns_path(namespace)?))
            .await
    }
    pub async fn grant_subscription_permission(
        &self,
        namespace: &str,
        subscription: &str,
        roles: &BTreeSet<String>,
    ) -> Result<()> {
        let path = format!(
            "{}/permissions/subscription/{}",
            ns_path(namespace)?,
            seg(subscription)
        );
        self.send(Method::POST, &path, Some(roles)).await
    }
    pub async fn revoke_subscription_permission(
        &self,
        namespace: &str,
        subscription: &str,
        role: &str,
    ) -> Result<()> {
        let path = format!(
            "{}/permissions/{}/{}",
            ns_path(namespace)?,
            seg(subscription),
            seg(role)
        );
        self.send::<()>(Method::DELETE, &path, None).await
    }
    pub async fn persistence(&self, namespace: &str) -> Result<Option<PersistencePolicies>> {
        self.get(&format!("{}/persistence", ns_path(namespace)?))
            .await
    }
    pub async fn set_persistence(
        &self,
        namespace: &str,
        persistence: &PersistencePolicies,
    ) -> Result<()> {
        self.send(
            Method::POST,
            &format!("{}/persistence", ns_path(namespace)?),
            Some(persistence),
        )
        .await
    }
    pub async fn retention(&self, namespace: &str) -> Result<Option<RetentionPolicies>> {
        self.get(&format!("{}/retention", ns_path(namespace)?))
            .await
    }
    pub async fn set_retention(
        &self,
        namespace: &str,
        retention: &RetentionPolicies,
    ) -> Result<()> {
        self.send(
            Method::POST,
            &format!("{}/retention", ns_path(namespace)?),
            Some(retention),
        )
        .await
    }
    pub async fn remove_retention(&self, namespace: &str) -> Result<()> {
        self.send::<()>(
            Method::DELETE,
            &format!("{}/retention", ns_path(namespace)?),
            None,
        )
        .await
    }
    pub async fn message_ttl(&self, namespace: &str) -> Result<Option<i32>> {
        self.get(&format!("{}/messageTTL", ns_path(namespace)?))
            .await
    }
    pub async fn set_message_ttl(&self, namespace: &str, seconds: i32) -> Result<()> {
        self.send(
            Method::POST,
            &format!("{}/messageTTL", ns_path(namespace)?),
            Some(&seconds),
        )
        .await
    }
    pub async fn remove_message_ttl(&self, namespace: &str) -> Result<()> {
        self.send::<()>(
            Method::DELETE,
            &format!("{}/messageTTL", ns_path(namespace)?),
            None,
        )
        .await
    }
    pub async fn deduplication(&self, namespace: &str) -> Result<Option<bool>> {
        self.get(&format!("{}/deduplication", ns_path(namespace)?))
            .await
    }
    pub async fn set_deduplication(&self, namespace: &str, enabled: bool) -> Result<()> {
        self.send(
            Method::POST,
            &format!("{}/deduplication", ns_path(namespace)?),
            Some(&enabled),
        )
        .await
    }
    pub async fn remove_deduplication(&self, namespace: &str) -> Result<()> {
        self.send::<()>(
            Method::DELETE,
            &format!("{}/deduplication", ns_path(namespace)?),
            None,
        )
        .await
    }
    pub async fn backlog_quotas(
        &self,
        namespace: &str,
    ) -> Result<BTreeMap<BacklogQuotaType, BacklogQuota>> {
        self.get_required(&format!("{}/backlogQuotaMap", ns_path(namespace)?))
            .await
    }
    pub async fn set_backlog_quota(
        &self,
        namespace: &str,
        kind: BacklogQuotaType,
        quota: &BacklogQuota,
    ) -> Result<()> {
        let path = format!(
            "{}/backlogQuota?backlogQuotaType={}",
            ns_path(namespace)?,
            kind.as_str()
        );
        self.send(Method::POST, &path, Some(quota)).await
    }
    pub async fn remove_backlog_quota(
        &self,
        namespace: &str,
        kind: BacklogQuotaType,
    ) -> Result<()> {
        let path = format!(
            "{}/backlogQuota?backlogQuotaType={}",
            ns_path(namespace)?,
            kind.as_str()
        );
        self.send::<()>(Method::DELETE, &path, None).await
    }
    pub async fn replication_clusters(&self, namespace: &str) -> Result<BTreeSet<String>> {
        self.get_required(&format!("{}/replication", ns_path(namespace)?))
            .await
    }
    pub async fn set_replication_clusters(
        &self,
        namespace: &str,
        clusters: &BTreeSet<String>,
    ) -> Result<()> {
        self.send(
            Method::POST,
            &format!("{}/replication", ns_path(namespace)?),
            Some(clusters),
        )
        .await
    }
}
