//! `/admin/v2/namespaces/{tenant}[/{namespace}]`: list, create, delete, get policies, and the
//! replication clusters. Superuser or tenant admin.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::tenants::ForceQuery;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, OptionalJson, Principal};
use crate::models::{BundlesData, ErrorBody, Policies, TenantInfo};
use crate::names::{NamespaceName, check_name};
use crate::state::AdminState;

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_namespaces))
        .routes(routes!(get_policies, create_namespace, delete_namespace))
        .routes(routes!(get_replication, set_replication))
}

/// Checks a namespace name and the caller's right to administer it.
pub(super) async fn authorized(
    state: &AdminState,
    principal: &Principal,
    tenant: &str,
    namespace: &str,
) -> Result<NamespaceName, ApiError> {
    let ns = NamespaceName::new(tenant, namespace)?;
    state.require_tenant_admin(principal, tenant).await?;
    Ok(ns)
}

/// Every cluster must exist (`unknown` status otherwise) and be allowed for the tenant (412).
pub(super) async fn check_clusters(
    state: &AdminState,
    tenant: &str,
    info: &TenantInfo,
    clusters: &BTreeSet<String>,
    unknown: StatusCode,
) -> Result<(), ApiError> {
    for cluster in clusters {
        if !state.resources().clusters.exists(cluster).await? {
            return Err(ApiError::new(
                unknown,
                format!("Cluster {cluster} does not exist"),
            ));
        }
        if !info.allowed_clusters.contains(cluster) {
            return Err(ApiError::precondition_failed(format!(
                "Cluster {cluster} is not in the list of allowed clusters of tenant {tenant}"
            )));
        }
    }
    Ok(())
}

/// List a tenant's namespaces.
#[utoipa::path(get, path = "/namespaces/{tenant}", tag = "namespaces",
    params(("tenant" = String, Path, description = "Tenant name")),
    responses(
        (status = 200, description = "Namespace names as tenant/namespace", body = Vec<String>),
        (status = 404, description = "No such tenant", body = ErrorBody)))]
async fn list_namespaces(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(tenant): ApiPath<String>,
) -> Result<Json<Vec<String>>, ApiError> {
    state.require_tenant_admin(&principal, &tenant).await?;
    let r = state.resources();
    r.tenants.require(&tenant).await?;
    Ok(Json(
        r.namespaces
            .list(&tenant)
            .await?
            .iter()
            .map(ToString::to_string)
            .collect(),
    ))
}

/// Get a namespace's policies.
#[utoipa::path(get, path = "/namespaces/{tenant}/{namespace}", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses(
        (status = 200, description = "The policies", body = Policies),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn get_policies(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath((tenant, namespace)): ApiPath<(String, String)>,
) -> Result<Json<Policies>, ApiError> {
    let ns = authorized(&state, &principal, &tenant, &namespace).await?;
    Ok(Json(state.resources().namespaces.require(&ns).await?))
}

/// Create a namespace, optionally with initial policies.
#[utoipa::path(put, path = "/namespaces/{tenant}/{namespace}", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    request_body(content = Option<Policies>, content_type = "application/json", description = "Initial policies (optional)"),
    responses(
        (status = 204, description = "Created"),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such tenant or cluster", body = ErrorBody),
        (status = 409, description = "The namespace exists", body = ErrorBody),
        (status = 412, description = "Invalid name, or a cluster not allowed for the tenant", body = ErrorBody)))]
async fn create_namespace(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath((tenant, namespace)): ApiPath<(String, String)>,
    OptionalJson(policies): OptionalJson<Policies>,
) -> Result<StatusCode, ApiError> {
    check_name("tenant", &tenant)?;
    check_name("namespace", &namespace)?;
    let ns = authorized(&state, &principal, &tenant, &namespace).await?;
    let r = state.resources();
    let info = r.tenants.require(&tenant).await?;
    let mut policies = policies.unwrap_or_default();
    if policies.replication_clusters.is_empty() {
        policies
            .replication_clusters
            .insert(state.settings().cluster_name.clone());
    }
    check_clusters(
        &state,
        &tenant,
        &info,
        &policies.replication_clusters,
        StatusCode::NOT_FOUND,
    )
    .await?;
    if policies.bundles.is_none() {
        policies.bundles = Some(BundlesData::even(state.settings().default_bundles));
    }
    policies.deleted = false;
    r.namespaces.create(&ns, &policies).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete an empty namespace.
#[utoipa::path(delete, path = "/namespaces/{tenant}/{namespace}", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path), ForceQuery),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such namespace", body = ErrorBody),
        (status = 405, description = "Force delete is not allowed", body = ErrorBody),
        (status = 409, description = "The namespace still has topics", body = ErrorBody)))]
async fn delete_namespace(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath((tenant, namespace)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<ForceQuery>,
) -> Result<StatusCode, ApiError> {
    let ns = authorized(&state, &principal, &tenant, &namespace).await?;
    if query.force {
        return Err(ApiError::not_allowed(
            "Force delete of a namespace is not allowed",
        ));
    }
    state.resources().namespaces.delete(&ns).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Get the clusters a namespace replicates to.
#[utoipa::path(get, path = "/namespaces/{tenant}/{namespace}/replication", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses(
        (status = 200, description = "Replication clusters", body = Vec<String>),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn get_replication(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath((tenant, namespace)): ApiPath<(String, String)>,
) -> Result<Json<BTreeSet<String>>, ApiError> {
    let ns = authorized(&state, &principal, &tenant, &namespace).await?;
    Ok(Json(
        state
            .resources()
            .namespaces
            .require(&ns)
            .await?
            .replication_clusters,
    ))
}

/// Set the clusters a namespace replicates to.
#[utoipa::path(post, path = "/namespaces/{tenant}/{namespace}/replication", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    request_body(content = Vec<String>, content_type = "application/json", description = "Cluster names"),
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such namespace", body = ErrorBody),
        (status = 412, description = "Empty list, or an unknown or disallowed cluster", body = ErrorBody)))]
async fn set_replication(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath((tenant, namespace)): ApiPath<(String, String)>,
    ApiJson(clusters): ApiJson<BTreeSet<String>>,
) -> Result<StatusCode, ApiError> {
    let ns = authorized(&state, &principal, &tenant, &namespace).await?;
    if clusters.is_empty() {
        return Err(ApiError::precondition_failed(
            "Replication clusters must not be empty",
        ));
    }
    let r = state.resources();
    r.namespaces.require(&ns).await?;
    let info = r.tenants.require(&tenant).await?;
    check_clusters(
        &state,
        &tenant,
        &info,
        &clusters,
        StatusCode::PRECONDITION_FAILED,
    )
    .await?;
    r.namespaces
        .update(&ns, |p| {
            p.replication_clusters = clusters.clone();
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
