//! `/admin/v2/clusters`: list, get, create (PUT), update (POST), delete. Superuser only, except
//! listing, which any authenticated role may do.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, Principal};
use crate::models::{ClusterData, ErrorBody};
use crate::names::check_name;
use crate::state::AdminState;

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_clusters))
        .routes(routes!(
            get_cluster,
            create_cluster,
            update_cluster,
            delete_cluster
        ))
}

/// List clusters.
#[utoipa::path(get, path = "/clusters", tag = "clusters",
    responses((status = 200, description = "Cluster names", body = Vec<String>)))]
async fn list_clusters(
    State(state): State<AdminState>,
    principal: Principal,
) -> Result<Json<Vec<String>>, ApiError> {
    if state.authorizer().is_enabled() && principal.role().is_none() {
        return Err(ApiError::unauthorized("authentication required"));
    }
    Ok(Json(state.resources().clusters.list().await?))
}

/// Get a cluster's data.
#[utoipa::path(get, path = "/clusters/{cluster}", tag = "clusters",
    params(("cluster" = String, Path, description = "Cluster name")),
    responses(
        (status = 200, description = "The cluster", body = ClusterData),
        (status = 404, description = "No such cluster", body = ErrorBody)))]
async fn get_cluster(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(cluster): ApiPath<String>,
) -> Result<Json<ClusterData>, ApiError> {
    state.require_superuser(&principal)?;
    let data = state.resources().clusters.get(&cluster).await?;
    data.map(Json)
        .ok_or_else(|| ApiError::not_found(format!("Cluster {cluster} does not exist")))
}

/// Create a cluster.
#[utoipa::path(put, path = "/clusters/{cluster}", tag = "clusters",
    params(("cluster" = String, Path, description = "Cluster name")),
    request_body = ClusterData,
    responses(
        (status = 204, description = "Created"),
        (status = 400, description = "Missing or invalid body", body = ErrorBody),
        (status = 409, description = "The cluster exists", body = ErrorBody),
        (status = 412, description = "Invalid cluster name", body = ErrorBody)))]
async fn create_cluster(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(cluster): ApiPath<String>,
    ApiJson(data): ApiJson<ClusterData>,
) -> Result<StatusCode, ApiError> {
    state.require_superuser(&principal)?;
    check_name("cluster", &cluster)?;
    if cluster == "global" {
        return Err(ApiError::precondition_failed(
            "Cluster name \"global\" is reserved",
        ));
    }
    state.resources().clusters.create(&cluster, &data).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Update a cluster's data.
#[utoipa::path(post, path = "/clusters/{cluster}", tag = "clusters",
    params(("cluster" = String, Path, description = "Cluster name")),
    request_body = ClusterData,
    responses(
        (status = 204, description = "Updated"),
        (status = 400, description = "Missing or invalid body", body = ErrorBody),
        (status = 404, description = "No such cluster", body = ErrorBody)))]
async fn update_cluster(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(cluster): ApiPath<String>,
    ApiJson(data): ApiJson<ClusterData>,
) -> Result<StatusCode, ApiError> {
    state.require_superuser(&principal)?;
    state.resources().clusters.update(&cluster, &data).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete a cluster.
#[utoipa::path(delete, path = "/clusters/{cluster}", tag = "clusters",
    params(("cluster" = String, Path, description = "Cluster name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such cluster", body = ErrorBody),
        (status = 412, description = "A tenant or namespace still uses the cluster", body = ErrorBody)))]
async fn delete_cluster(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(cluster): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.require_superuser(&principal)?;
    let r = state.resources();
    r.clusters
        .delete(&cluster, &r.tenants, &r.namespaces)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
