//! Namespace bundles (`/admin/v2/namespaces/{tenant}/{namespace}/...`): the boundaries, who owns
//! each bundle, unload and split. Unload and split act on the owning broker: another broker
//! answers 307 to it. Superuser or tenant admin.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::brokers::AuthoritativeQuery;
use super::namespaces::authorized;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery, Principal};
use crate::models::{BundlesData, ErrorBody, Policies};
use crate::state::AdminState;

/// Routes relative to `/admin/v2` (served by brokers: they need the owners).
pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(get_bundles))
        .routes(routes!(bundle_owners))
        .routes(routes!(unload_namespace))
        .routes(routes!(unload_bundle))
        .routes(routes!(split_bundle))
}

/// The namespace's bundle boundaries.
#[utoipa::path(get, path = "/namespaces/{tenant}/{namespace}/bundles", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses(
        (status = 200, description = "The boundaries", body = BundlesData),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn get_bundles(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath((tenant, namespace)): ApiPath<(String, String)>,
) -> Result<Json<BundlesData>, ApiError> {
    let ns = authorized(&state, &principal, &tenant, &namespace).await?;
    let policies: Policies = state.resources().namespaces.require(&ns).await?;
    Ok(Json(
        policies.bundles.unwrap_or_else(|| BundlesData::even(1)),
    ))
}

/// Which broker owns each bundle now (a Magnetar addition; unowned bundles are absent).
#[utoipa::path(get, path = "/namespaces/{tenant}/{namespace}/owners", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses(
        (status = 200, description = "Bundle range → owner's broker id", body = BTreeMap<String, String>),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn bundle_owners(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath((tenant, namespace)): ApiPath<(String, String)>,
) -> Result<Json<BTreeMap<String, String>>, ApiError> {
    let ns = authorized(&state, &principal, &tenant, &namespace).await?;
    state.resources().namespaces.require(&ns).await?;
    Ok(Json(state.topic_admin()?.bundle_owners(&ns).await?))
}

/// Unloads every bundle of the namespace this broker owns.
#[utoipa::path(put, path = "/namespaces/{tenant}/{namespace}/unload", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses(
        (status = 204, description = "Unloaded"),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn unload_namespace(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath((tenant, namespace)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let ns = authorized(&state, &principal, &tenant, &namespace).await?;
    state.resources().namespaces.require(&ns).await?;
    state.topic_admin()?.unload_bundle(&ns, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Unloads one bundle: its topics close (clients reconnect to the next owner) and ownership is
/// released; 307 to the owner when another broker holds it.
#[utoipa::path(put, path = "/namespaces/{tenant}/{namespace}/{bundle}/unload", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("bundle" = String, Path, description = "0x…_0x…"), AuthoritativeQuery),
    responses(
        (status = 204, description = "Unloaded"),
        (status = 307, description = "Another broker owns the bundle"),
        (status = 404, description = "No such namespace", body = ErrorBody),
        (status = 412, description = "Not a bundle of this namespace", body = ErrorBody)))]
async fn unload_bundle(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath((tenant, namespace, bundle)): ApiPath<(String, String, String)>,
    ApiQuery(_query): ApiQuery<AuthoritativeQuery>,
) -> Result<StatusCode, ApiError> {
    let ns = authorized(&state, &principal, &tenant, &namespace).await?;
    state.resources().namespaces.require(&ns).await?;
    state
        .topic_admin()?
        .unload_bundle(&ns, Some(&bundle))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Splits a bundle at its midpoint (`range_equally_divide`) and unloads it, so its two halves
/// can go to different brokers; 307 to the owner when another broker holds it.
#[utoipa::path(put, path = "/namespaces/{tenant}/{namespace}/{bundle}/split", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("bundle" = String, Path, description = "0x…_0x…"), AuthoritativeQuery),
    responses(
        (status = 204, description = "Split"),
        (status = 307, description = "Another broker owns the bundle"),
        (status = 404, description = "No such namespace", body = ErrorBody),
        (status = 412, description = "Not a bundle of this namespace, or too small", body = ErrorBody)))]
async fn split_bundle(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath((tenant, namespace, bundle)): ApiPath<(String, String, String)>,
    ApiQuery(_query): ApiQuery<AuthoritativeQuery>,
) -> Result<StatusCode, ApiError> {
    let ns = authorized(&state, &principal, &tenant, &namespace).await?;
    state.resources().namespaces.require(&ns).await?;
    state.topic_admin()?.split_bundle(&ns, &bundle).await?;
    Ok(StatusCode::NO_CONTENT)
}
