//! `/admin/v2/tenants`: list, get, create (PUT), update (POST), delete. Superuser only, except
//! reading a tenant, which its admins may do.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Principal};
use crate::models::{ErrorBody, TenantInfo};
use crate::names::check_name;
use crate::state::AdminState;

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_tenants))
        .routes(routes!(
            get_tenant,
            create_tenant,
            update_tenant,
            delete_tenant
        ))
}

/// `?force=true` on deletes: refused (Pulsar's `forceDeleteTenantAllowed=false`).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ForceQuery {
    /// Delete with everything inside; not allowed (405).
    #[serde(default)]
    pub force: bool,
}

/// List tenants.
#[utoipa::path(get, path = "/tenants", tag = "tenants",
    responses((status = 200, description = "Tenant names, sorted", body = Vec<String>)))]
async fn list_tenants(
    State(state): State<AdminState>,
    principal: Principal,
) -> Result<Json<Vec<String>>, ApiError> {
    state.require_superuser(&principal)?;
    Ok(Json(state.resources().tenants.list().await?))
}

/// Get a tenant's admin roles and allowed clusters.
#[utoipa::path(get, path = "/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant name")),
    responses(
        (status = 200, description = "The tenant", body = TenantInfo),
        (status = 404, description = "No such tenant", body = ErrorBody)))]
async fn get_tenant(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(tenant): ApiPath<String>,
) -> Result<Json<TenantInfo>, ApiError> {
    state.require_tenant_admin(&principal, &tenant).await?;
    Ok(Json(state.resources().tenants.require(&tenant).await?))
}

/// Create a tenant.
#[utoipa::path(put, path = "/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant name")),
    request_body = TenantInfo,
    responses(
        (status = 204, description = "Created"),
        (status = 400, description = "Missing or invalid body", body = ErrorBody),
        (status = 409, description = "The tenant exists", body = ErrorBody),
        (status = 412, description = "Invalid name, or no or unknown clusters", body = ErrorBody)))]
async fn create_tenant(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(info): ApiJson<TenantInfo>,
) -> Result<StatusCode, ApiError> {
    state.require_superuser(&principal)?;
    check_name("tenant", &tenant)?;
    state.resources().tenants.create(&tenant, &info).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Update a tenant.
#[utoipa::path(post, path = "/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant name")),
    request_body = TenantInfo,
    responses(
        (status = 204, description = "Updated"),
        (status = 400, description = "Missing or invalid body", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 412, description = "No or unknown clusters, or a dropped cluster is in use", body = ErrorBody)))]
async fn update_tenant(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(info): ApiJson<TenantInfo>,
) -> Result<StatusCode, ApiError> {
    state.require_superuser(&principal)?;
    let r = state.resources();
    r.tenants.update(&tenant, &info, &r.namespaces).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete a tenant.
#[utoipa::path(delete, path = "/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant name"), ForceQuery),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 405, description = "Force delete is not allowed", body = ErrorBody),
        (status = 409, description = "The tenant still has namespaces", body = ErrorBody)))]
async fn delete_tenant(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(tenant): ApiPath<String>,
    ApiQuery(query): ApiQuery<ForceQuery>,
) -> Result<StatusCode, ApiError> {
    state.require_superuser(&principal)?;
    if query.force {
        return Err(ApiError::not_allowed(
            "Force delete of a tenant is not allowed",
        ));
    }
    let r = state.resources();
    r.tenants.delete(&tenant, &r.namespaces).await?;
    Ok(StatusCode::NO_CONTENT)
}
