//! What every admin route shares: the resources, the authenticator and authorizer, local
//! settings, and (once the broker provides it) the [`TopicAdmin`] for topic routes. Also the
//! authentication middleware and the access checks routes call.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use magnetar_auth::{Authenticator, Authorizer, TopicAuthContext, TopicOperation};
use magnetar_protocol::topic::TopicName;

use crate::error::ApiError;
use crate::extract::Principal;
use crate::names::NamespaceName;
use crate::resources::{Resources, SchemaLimits};
use crate::topic_admin::TopicAdmin;

/// Settings of the serving broker that routes need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSettings {
    /// The local cluster: the default replication cluster of new namespaces.
    pub cluster_name: String,
    /// Bundles a new namespace is split into (Pulsar `defaultNumberOfNamespaceBundles`).
    pub default_bundles: u32,
    /// Bounds on schemas uploaded through the admin API (the broker's `limits.max_schema_*`).
    pub schema_limits: SchemaLimits,
}

impl Default for AdminSettings {
    fn default() -> AdminSettings {
        AdminSettings {
            cluster_name: "standalone".into(),
            default_bundles: 4,
            schema_limits: SchemaLimits::default(),
        }
    }
}

#[derive(Debug, Clone)]
struct Inner {
    resources: Resources,
    authenticator: Authenticator,
    authorizer: Authorizer,
    settings: AdminSettings,
    topics: Option<Arc<dyn TopicAdmin>>,
}

/// Shared state of the admin router; cheap to clone.
#[derive(Debug, Clone)]
pub struct AdminState(Arc<Inner>);

impl AdminState {
    pub fn new(
        resources: Resources,
        authenticator: Authenticator,
        authorizer: Authorizer,
        settings: AdminSettings,
    ) -> AdminState {
        AdminState(Arc::new(Inner {
            resources,
            authenticator,
            authorizer,
            settings,
            topics: None,
        }))
    }

    /// Gives topic routes access to the broker.
    pub fn with_topic_admin(self, topics: Arc<dyn TopicAdmin>) -> AdminState {
        let mut inner = (*self.0).clone();
        inner.topics = Some(topics);
        AdminState(Arc::new(inner))
    }

    pub fn resources(&self) -> &Resources {
        &self.0.resources
    }
    pub fn authenticator(&self) -> &Authenticator {
        &self.0.authenticator
    }
    pub fn authorizer(&self) -> &Authorizer {
        &self.0.authorizer
    }
    pub fn settings(&self) -> &AdminSettings {
        &self.0.settings
    }

    /// The broker's topic operations; 501 until a broker has been attached.
    pub fn topic_admin(&self) -> Result<&Arc<dyn TopicAdmin>, ApiError> {
        self.0
            .topics
            .as_ref()
            .ok_or_else(|| ApiError::not_implemented("topic operations need a broker"))
    }

    /// 401/403 unless the caller is a superuser (or authorization is off).
    pub fn require_superuser(&self, principal: &Principal) -> Result<(), ApiError> {
        Ok(self.authorizer().check_superuser(principal.role())?)
    }

    /// 401/403 unless the caller is a superuser or an admin of `tenant`; 404 if the tenant does
    /// not exist (checked only when the caller is not a superuser).
    pub async fn require_tenant_admin(
        &self,
        principal: &Principal,
        tenant: &str,
    ) -> Result<(), ApiError> {
        let authz = self.authorizer();
        if !authz.is_enabled() || principal.role().is_some_and(|r| authz.is_superuser(r)) {
            return Ok(());
        }
        if principal.role().is_none() {
            return Err(ApiError::unauthorized("authentication required"));
        }
        let info = self.resources().tenants.require(tenant).await?;
        Ok(authz.check_tenant_admin(principal.role(), tenant, &info.admin_role_list())?)
    }

    /// Whether `role` may do `operation` on `topic`, from the tenant's admins and the
    /// namespace's grants. 404 if the tenant or namespace does not exist. The broker uses this
    /// for lookup, producers and subscriptions too.
    pub async fn authorize_topic(
        &self,
        role: Option<&str>,
        topic: &TopicName,
        operation: TopicOperation<'_>,
    ) -> Result<(), ApiError> {
        let authz = self.authorizer();
        if !authz.is_enabled() || role.is_some_and(|r| authz.is_superuser(r)) {
            return Ok(());
        }
        let tenant = self.resources().tenants.require(topic.tenant()).await?;
        let ns = NamespaceName {
            tenant: topic.tenant().into(),
            namespace: topic.namespace_local().into(),
        };
        let policies = self.resources().namespaces.require(&ns).await?;
        let name = topic.to_string();
        let admins = tenant.admin_role_list();
        let ctx = TopicAuthContext {
            topic: &name,
            tenant: topic.tenant(),
            tenant_admin_roles: &admins,
            auth_policies: &policies.auth_policies,
            subscription_auth_mode: policies.subscription_auth_mode,
        };
        Ok(authz.check_topic(role, operation, &ctx)?)
    }

    /// Whether `role` may list the topics of `namespace` (binary `GET_TOPICS_OF_NAMESPACE`):
    /// tenant admins and roles with a namespace-wide grant. 404 if the tenant or namespace
    /// does not exist.
    pub async fn authorize_namespace_topics(
        &self,
        role: Option<&str>,
        namespace: &NamespaceName,
    ) -> Result<(), ApiError> {
        let authz = self.authorizer();
        if !authz.is_enabled() || role.is_some_and(|r| authz.is_superuser(r)) {
            return Ok(());
        }
        let tenant = self.resources().tenants.require(&namespace.tenant).await?;
        let policies = self.resources().namespaces.require(namespace).await?;
        Ok(authz.check_namespace_topics(
            role,
            &namespace.to_string(),
            &tenant.admin_role_list(),
            &policies.auth_policies,
        )?)
    }
}

/// Middleware: authenticates the `Authorization: Bearer` token (when authentication is on)
/// and stores the caller's [`Principal`]; 401 for a missing or bad token.
pub async fn authenticate(
    State(state): State<AdminState>,
    mut req: Request,
    next: Next,
) -> Response {
    let header = match req.headers().get(AUTHORIZATION).map(|v| v.to_str()) {
        None => None,
        Some(Ok(value)) => Some(value),
        Some(Err(_)) => {
            return ApiError::unauthorized("Authorization header is not ASCII").into_response();
        }
    };
    match state.authenticator().authenticate_http(header) {
        Ok(role) => {
            req.extensions_mut().insert(Principal {
                role: role.map(|r| r.role),
            });
            next.run(req).await
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}
