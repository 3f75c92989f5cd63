//! Namespace permissions: grants of actions to roles (`auth_policies.namespace_auth`) and the
//! roles allowed on a subscription (`auth_policies.subscription_auth_roles`). Superuser or
//! tenant admin; changes answer 501 while authorization is off, as in Pulsar.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::namespace_policies::{read, update};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, Principal};
use crate::models::{AuthAction, ErrorBody};
use crate::state::AdminState;

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(get_permissions))
        .routes(routes!(grant_permission, revoke_permission))
        .routes(routes!(get_subscription_permissions))
        .routes(routes!(grant_subscription_permission))
        .routes(routes!(revoke_subscription_permission))
}

type NsPath = ApiPath<(String, String)>;

/// Roles and the actions granted to them on the namespace.
#[utoipa::path(get, path = "/namespaces/{tenant}/{namespace}/permissions", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses(
        (status = 200, description = "role → actions", body = BTreeMap<String, Vec<AuthAction>>),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn get_permissions(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): NsPath,
) -> Result<Json<BTreeMap<String, BTreeSet<AuthAction>>>, ApiError> {
    Ok(Json(
        read(&state, &principal, path)
            .await?
            .auth_policies
            .namespace_auth,
    ))
}

fn require_authorization(state: &AdminState) -> Result<(), ApiError> {
    if !state.authorizer().is_enabled() {
        return Err(ApiError::not_implemented("Authorization is not enabled"));
    }
    Ok(())
}

/// Grant actions on every topic of the namespace to a role (replaces its previous grant).
#[utoipa::path(post, path = "/namespaces/{tenant}/{namespace}/permissions/{role}", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("role" = String, Path)),
    request_body(content = Vec<AuthAction>, content_type = "application/json", description = "Actions, e.g. [\"produce\",\"consume\"]"),
    responses(
        (status = 204, description = "Granted"),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such namespace", body = ErrorBody),
        (status = 501, description = "Authorization is not enabled", body = ErrorBody)))]
async fn grant_permission(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath((tenant, namespace, role)): ApiPath<(String, String, String)>,
    ApiJson(actions): ApiJson<BTreeSet<AuthAction>>,
) -> Result<StatusCode, ApiError> {
    require_authorization(&state)?;
    update(&state, &principal, (tenant, namespace), |p| {
        p.auth_policies
            .namespace_auth
            .insert(role.clone(), actions.clone());
        Ok(())
    })
    .await
}

/// Revoke a role's grant on the namespace.
#[utoipa::path(delete, path = "/namespaces/{tenant}/{namespace}/permissions/{role}", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("role" = String, Path)),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such namespace", body = ErrorBody),
        (status = 501, description = "Authorization is not enabled", body = ErrorBody)))]
async fn revoke_permission(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath((tenant, namespace, role)): ApiPath<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    require_authorization(&state)?;
    update(&state, &principal, (tenant, namespace), |p| {
        p.auth_policies.namespace_auth.remove(&role);
        Ok(())
    })
    .await
}

/// Subscriptions and the roles allowed to use them.
#[utoipa::path(get, path = "/namespaces/{tenant}/{namespace}/permissions/subscription", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses(
        (status = 200, description = "subscription → roles", body = BTreeMap<String, Vec<String>>),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn get_subscription_permissions(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): NsPath,
) -> Result<Json<BTreeMap<String, BTreeSet<String>>>, ApiError> {
    Ok(Json(
        read(&state, &principal, path)
            .await?
            .auth_policies
            .subscription_auth_roles,
    ))
}

/// Allow roles to use a subscription (added to those already allowed). Once a subscription
/// has roles, other non-admin roles may not consume with it.
#[utoipa::path(post, path = "/namespaces/{tenant}/{namespace}/permissions/subscription/{subscription}", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("subscription" = String, Path)),
    request_body(content = Vec<String>, content_type = "application/json", description = "Roles"),
    responses(
        (status = 204, description = "Granted"),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such namespace", body = ErrorBody),
        (status = 501, description = "Authorization is not enabled", body = ErrorBody)))]
async fn grant_subscription_permission(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath((tenant, namespace, subscription)): ApiPath<(String, String, String)>,
    ApiJson(roles): ApiJson<BTreeSet<String>>,
) -> Result<StatusCode, ApiError> {
    require_authorization(&state)?;
    update(&state, &principal, (tenant, namespace), |p| {
        let allowed = p
            .auth_policies
            .subscription_auth_roles
            .entry(subscription.clone())
            .or_default();
        allowed.extend(roles.iter().cloned());
        Ok(())
    })
    .await
}

/// Take a role off a subscription's allowed roles.
#[utoipa::path(delete, path = "/namespaces/{tenant}/{namespace}/permissions/{subscription}/{role}", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("subscription" = String, Path), ("role" = String, Path)),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such namespace", body = ErrorBody),
        (status = 501, description = "Authorization is not enabled", body = ErrorBody)))]
async fn revoke_subscription_permission(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath((tenant, namespace, subscription, role)): ApiPath<(String, String, String, String)>,
) -> Result<StatusCode, ApiError> {
    require_authorization(&state)?;
    update(&state, &principal, (tenant, namespace), |p| {
        let roles = &mut p.auth_policies.subscription_auth_roles;
        if let Some(allowed) = roles.get_mut(&subscription) {
            allowed.remove(&role);
            if allowed.is_empty() {
                roles.remove(&subscription);
            }
        }
        Ok(())
    })
    .await
}
