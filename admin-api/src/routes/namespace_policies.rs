//! Per-namespace policies with their own routes: retention, persistence, message TTL,
//! deduplication, delayed delivery, the compaction threshold and backlog quotas. Superuser or tenant admin; every change is a compare-and-set of the policies.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::namespaces::authorized;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Principal};
use crate::models::{
    BacklogQuota, BacklogQuotaType, DelayedDeliveryPolicies, ErrorBody, PersistencePolicies,
    Policies, RetentionPolicies,
};
use crate::resources::ResourceError;
use crate::state::AdminState;

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(get_retention, set_retention, remove_retention))
        .routes(routes!(
            get_persistence,
            set_persistence,
            remove_persistence
        ))
        .routes(routes!(
            get_message_ttl,
            set_message_ttl,
            remove_message_ttl
        ))
        .routes(routes!(
            get_deduplication,
            set_deduplication,
            remove_deduplication
        ))
        .routes(routes!(
            get_delayed_delivery,
            set_delayed_delivery,
            remove_delayed_delivery
        ))
        .routes(routes!(
            get_compaction_threshold,
            set_compaction_threshold,
            post_compaction_threshold,
            remove_compaction_threshold
        ))
        .routes(routes!(set_backlog_quota, remove_backlog_quota))
        .routes(routes!(get_backlog_quota_map))
}

pub(super) type NsPath = ApiPath<(String, String)>;

pub(super) async fn update(
    state: &AdminState,
    principal: &Principal,
    (tenant, namespace): (String, String),
    change: impl FnMut(&mut Policies) -> Result<(), ResourceError>,
) -> Result<StatusCode, ApiError> {
    let ns = authorized(state, principal, &tenant, &namespace).await?;
    state.resources().namespaces.update(&ns, change).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn read(
    state: &AdminState,
    principal: &Principal,
    (tenant, namespace): (String, String),
) -> Result<Policies, ApiError> {
    let ns = authorized(state, principal, &tenant, &namespace).await?;
    Ok(state.resources().namespaces.require(&ns).await?)
}

/// JSON if set, else 204 (as Pulsar answers an unset policy).
pub(super) fn optional<T: serde::Serialize>(value: Option<T>) -> Response {
    match value {
        Some(v) => Json(v).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// Retention of acknowledged messages; 204 when unset.
#[utoipa::path(get, path = "/namespaces/{tenant}/{namespace}/retention", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses(
        (status = 200, description = "The retention policy", body = RetentionPolicies),
        (status = 204, description = "Not set"),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn get_retention(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): NsPath,
) -> Result<Response, ApiError> {
    Ok(optional(
        read(&state, &principal, path).await?.retention_policies,
    ))
}

/// Retention values: -1 or more, and 0 in both or neither.
pub(super) fn check_retention(retention: &RetentionPolicies) -> Result<(), ApiError> {
    let (time, size) = (
        retention.retention_time_in_minutes,
        retention.retention_size_in_mb,
    );
    if time < -1 || size < -1 || ((time == 0) != (size == 0)) {
        return Err(ApiError::precondition_failed(format!(
            "Invalid retention policy {retention:?}: values must be -1 or more, and 0 in both or neither"
        )));
    }
    Ok(())
}

/// Whether retention `r` and the backlog quotas can hold together (Pulsar's rule: a quota
/// must be below the retention it would otherwise outlive).
pub(super) fn check_retention_vs_quotas(
    r: &RetentionPolicies,
    quotas: &BTreeMap<BacklogQuotaType, BacklogQuota>,
) -> Result<(), ResourceError> {
    let size_bytes = r.retention_size_in_mb.saturating_mul(1024 * 1024);
    let time_secs = i64::from(r.retention_time_in_minutes).saturating_mul(60);
    for (kind, quota) in quotas {
        let conflict = match kind {
            BacklogQuotaType::DestinationStorage => {
                r.retention_size_in_mb >= 0
                    && quota.limit_size >= 0
                    && quota.limit_size >= size_bytes
            }
            BacklogQuotaType::MessageAge => {
                r.retention_time_in_minutes >= 0
                    && quota.limit_time >= 0
                    && quota.limit_time >= time_secs
            }
        };
        if conflict {
            return Err(ResourceError::PreconditionFailed(format!(
                "Retention {r:?} is not larger than the {} backlog quota {quota:?}",
                kind.as_str()
            )));
        }
    }
    Ok(())
}

/// Set retention: -1 unlimited, 0 none; both fields -1 or greater, and 0 in both or neither.
#[utoipa::path(post, path = "/namespaces/{tenant}/{namespace}/retention", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    request_body = RetentionPolicies,
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such namespace", body = ErrorBody),
        (status = 412, description = "Invalid values, or in conflict with the backlog quota", body = ErrorBody)))]
async fn set_retention(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): NsPath,
    ApiJson(retention): ApiJson<RetentionPolicies>,
) -> Result<StatusCode, ApiError> {
    check_retention(&retention)?;
    update(&state, &principal, path, |p| {
        check_retention_vs_quotas(&retention, &p.backlog_quota_map)?;
        p.retention_policies = Some(retention);
        Ok(())
    })
    .await
}

/// Remove the retention policy (back to the broker default).
#[utoipa::path(delete, path = "/namespaces/{tenant}/{namespace}/retention", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn remove_retention(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): NsPath,
) -> Result<StatusCode, ApiError> {
    update(&state, &principal, path, |p| {
        p.retention_policies = None;
        Ok(())
    })
    .await
}

/// Message TTL in seconds; 204 when unset.
#[utoipa::path(get, path = "/namespaces/{tenant}/{namespace}/messageTTL", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses(
        (status = 200, description = "TTL in seconds", body = i32),
        (status = 204, description = "Not set"),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn get_message_ttl(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): NsPath,
) -> Result<Response, ApiError> {
    Ok(optional(
        read(&state, &principal, path).await?.message_ttl_in_seconds,
    ))
}

/// Set the message TTL (a bare integer of seconds, 0 or more).
#[utoipa::path(post, path = "/namespaces/{tenant}/{namespace}/messageTTL", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    request_body(content = i32, content_type = "application/json", description = "Seconds"),
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such namespace", body = ErrorBody),
        (status = 412, description = "Negative TTL", body = ErrorBody)))]
async fn set_message_ttl(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): NsPath,
    ApiJson(ttl): ApiJson<i32>,
) -> Result<StatusCode, ApiError> {
    if ttl < 0 {
        return Err(ApiError::precondition_failed(format!(
            "Invalid value for message TTL: {ttl}"
        )));
    }
    update(&state, &principal, path, |p| {
        p.message_ttl_in_seconds = Some(ttl);
        Ok(())
    })
    .await
}

/// Remove the message TTL.
#[utoipa::path(delete, path = "/namespaces/{tenant}/{namespace}/messageTTL", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn remove_message_ttl(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): NsPath,
) -> Result<StatusCode, ApiError> {
    update(&state, &principal, path, |p| {
        p.message_ttl_in_seconds = None;
        Ok(())
    })
    .await
}

/// Whether the namespace deduplicates messages; 204 when unset (the broker's default applies).
#[utoipa::path(get, path = "/namespaces/{tenant}/{namespace}/deduplication", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses(
        (status = 200, description = "Enabled or not", body = bool),
        (status = 204, description = "Not set"),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn get_deduplication(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): NsPath,
) -> Result<Response, ApiError> {
    Ok(optional(
        read(&state, &principal, path).await?.deduplication_enabled,
    ))
}

/// Turn message deduplication on or off for the namespace (a bare `true` or `false`).
#[utoipa::path(post, path = "/namespaces/{tenant}/{namespace}/deduplication", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    request_body(content = bool, content_type = "application/json", description = "Enabled"),
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn set_deduplication(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): NsPath,
    ApiJson(enabled): ApiJson<bool>,
) -> Result<StatusCode, ApiError> {
    update(&state, &principal, path, |p| {
        p.deduplication_enabled = Some(enabled);
        Ok(())
    })
    .await
}

/// Remove the namespace's deduplication setting (the broker's default applies again).
#[utoipa::path(delete, path = "/namespaces/{tenant}/{namespace}/deduplication", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn remove_deduplication(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): NsPath,
) -> Result<StatusCode, ApiError> {
    update(&state, &principal, path, |p| {
        p.deduplication_enabled = None;
        Ok(())
    })
    .await
}

/// The namespace's delayed-delivery policy; 204 when unset (delayed delivery is on).
#[utoipa::path(get, path = "/namespaces/{tenant}/{namespace}/delayedDelivery", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses(
        (status = 200, description = "The policy", body = DelayedDeliveryPolicies),
        (status = 204, description = "Not set"),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn get_delayed_delivery(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): NsPath,
) -> Result<Response, ApiError> {
    Ok(optional(
        read(&state, &principal, path)
            .await?
            .delayed_delivery_policies,
    ))
}

/// Turn delayed delivery on or off for the namespace's Shared and Key_Shared subscriptions.
#[utoipa::path(post, path = "/namespaces/{tenant}/{namespace}/delayedDelivery", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    request_body = DelayedDeliveryPolicies,
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such namespace", body = ErrorBody),
        (status = 412, description = "A negative tick time or maximum delay", body = ErrorBody)))]
async fn set_delayed_delivery(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): NsPath,
    ApiJson(policy): ApiJson<DelayedDeliveryPolicies>,
) -> Result<StatusCode, ApiError> {
    if policy.tick_time < 0 || policy.max_delivery_delay_in_millis < 0 {
        return Err(ApiError::precondition_failed(
            "tickTime and maxDeliveryDelayInMillis must not be negative",
        ));
    }
    update(&state, &principal, path, |p| {
        p.delayed_delivery_policies = Some(policy);
        Ok(())
    })
    .await
}

/// Remove the namespace's delayed-delivery policy (delayed delivery is on again).
#[utoipa::path(delete, path = "/namespaces/{tenant}/{namespace}/delayedDelivery", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn remove_delayed_delivery(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): NsPath,
) -> Result<StatusCode, ApiError> {
    update(&state, &principal, path, |p| {
        p.delayed_delivery_policies = None;
        Ok(())
    })
    .await
}

/// Backlog size (bytes not yet compacted) above which topics compact themselves; 204 when unset
/// (never automatically).
#[utoipa::path(get, path = "/namespaces/{tenant}/{namespace}/compactionThreshold", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses(
        (status = 200, description = "Threshold in bytes", body = i64),
        (status = 204, description = "Not set"),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn get_compaction_threshold(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): NsPath,
) -> Result<Response, ApiError> {
    Ok(optional(
        read(&state, &principal, path).await?.compaction_threshold,
    ))
}

async fn store_compaction_threshold(
    state: &AdminState,
    principal: &Principal,
    path: (String, String),
    bytes: i64,
) -> Result<StatusCode, ApiError> {
    if bytes < 0 {
        return Err(ApiError::precondition_failed(format!(
            "compactionThreshold must be 0 or more, not {bytes}"
        )));
    }
    update(state, principal, path, |p| {
        p.compaction_threshold = Some(bytes);
        Ok(())
    })
    .await
}

/// Set the compaction threshold (a bare integer of bytes; 0 turns automatic compaction off).
#[utoipa::path(put, path = "/namespaces/{tenant}/{namespace}/compactionThreshold", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    request_body(content = i64, content_type = "application/json", description = "Bytes"),
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such namespace", body = ErrorBody),
        (status = 412, description = "Negative threshold", body = ErrorBody)))]
async fn set_compaction_threshold(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): NsPath,
    ApiJson(bytes): ApiJson<i64>,
) -> Result<StatusCode, ApiError> {
    store_compaction_threshold(&state, &principal, path, bytes).await
}

/// Set the compaction threshold (POST, as the other namespace policy setters).
#[utoipa::path(post, path = "/namespaces/{tenant}/{namespace}/compactionThreshold", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    request_body(content = i64, content_type = "application/json", description = "Bytes"),
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such namespace", body = ErrorBody),
        (status = 412, description = "Negative threshold", body = ErrorBody)))]
async fn post_compaction_threshold(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): NsPath,
    ApiJson(bytes): ApiJson<i64>,
) -> Result<StatusCode, ApiError> {
    store_compaction_threshold(&state, &principal, path, bytes).await
}

/// Remove the compaction threshold (no automatic compaction).
#[utoipa::path(delete, path = "/namespaces/{tenant}/{namespace}/compactionThreshold", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn remove_compaction_threshold(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): NsPath,
) -> Result<StatusCode, ApiError> {
    update(&state, &principal, path, |p| {
        p.compaction_threshold = None;
        Ok(())
    })
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct QuotaQuery {
    /// `destination_storage` (default) or `message_age`.
    #[serde(rename = "backlogQuotaType")]
    #[param(rename = "backlogQuotaType")]
    backlog_quota_type: Option<String>,
}

pub(super) fn quota_type(query: &QuotaQuery) -> Result<BacklogQuotaType, ApiError> {
    match &query.backlog_quota_type {
        None => Ok(BacklogQuotaType::DestinationStorage),
        Some(t) => t.parse().map_err(ApiError::bad_request),
    }
}

/// Backlog quotas by type.
#[utoipa::path(get, path = "/namespaces/{tenant}/{namespace}/backlogQuotaMap", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses(
        (status = 200, description = "type → quota", body = BTreeMap<String, BacklogQuota>),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn get_backlog_quota_map(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): NsPath,
) -> Result<Json<BTreeMap<BacklogQuotaType, BacklogQuota>>, ApiError> {
    Ok(Json(
        read(&state, &principal, path).await?.backlog_quota_map,
    ))
}

/// Set a backlog quota.
#[utoipa::path(post, path = "/namespaces/{tenant}/{namespace}/backlogQuota", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path), QuotaQuery),
    request_body = BacklogQuota,
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "Invalid body or quota type", body = ErrorBody),
        (status = 404, description = "No such namespace", body = ErrorBody),
        (status = 412, description = "The quota exceeds the retention", body = ErrorBody)))]
async fn set_backlog_quota(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): NsPath,
    ApiQuery(query): ApiQuery<QuotaQuery>,
    ApiJson(quota): ApiJson<BacklogQuota>,
) -> Result<StatusCode, ApiError> {
    let kind = quota_type(&query)?;
    update(&state, &principal, path, |p| {
        let mut quotas = p.backlog_quota_map.clone();
        quotas.insert(kind, quota);
        if let Some(retention) = &p.retention_policies {
            check_retention_vs_quotas(retention, &quotas)?;
        }
        p.backlog_quota_map = quotas;
        Ok(())
    })
    .await
}

/// Remove a backlog quota.
#[utoipa::path(delete, path = "/namespaces/{tenant}/{namespace}/backlogQuota", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path), QuotaQuery),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "Invalid quota type", body = ErrorBody),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn remove_backlog_quota(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): NsPath,
    ApiQuery(query): ApiQuery<QuotaQuery>,
) -> Result<StatusCode, ApiError> {
    let kind = quota_type(&query)?;
    update(&state, &principal, path, |p| {
        p.backlog_quota_map.remove(&kind);
        Ok(())
    })
    .await
}

/// Most bookies or copies a namespace may ask for (`managedLedgerMax{EnsembleSize,…}`).
pub const MAX_PERSISTENCE: i32 = 5;

/// Bookies and copies of the namespace's ledgers; 204 when unset (the broker's defaults).
#[utoipa::path(get, path = "/namespaces/{tenant}/{namespace}/persistence", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses(
        (status = 200, description = "The persistence policy", body = PersistencePolicies),
        (status = 204, description = "Not set"),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn get_persistence(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): NsPath,
) -> Result<Response, ApiError> {
    Ok(optional(read(&state, &principal, path).await?.persistence))
}

/// Set E, Qw, Qa (each 1–5, E >= Qw >= Qa) and the cursor write rate; applies to ledgers
/// created afterwards (the next rollover or topic load).
#[utoipa::path(post, path = "/namespaces/{tenant}/{namespace}/persistence", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    request_body = PersistencePolicies,
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such namespace", body = ErrorBody),
        (status = 412, description = "Invalid values", body = ErrorBody)))]
async fn set_persistence(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): NsPath,
    ApiJson(persistence): ApiJson<PersistencePolicies>,
) -> Result<StatusCode, ApiError> {
    persistence
        .validate(MAX_PERSISTENCE)
        .map_err(ApiError::precondition_failed)?;
    update(&state, &principal, path, |p| {
        p.persistence = Some(persistence.clone());
        Ok(())
    })
    .await
}

/// Remove the persistence policy (back to the broker's defaults).
#[utoipa::path(delete, path = "/namespaces/{tenant}/{namespace}/persistence", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn remove_persistence(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): NsPath,
) -> Result<StatusCode, ApiError> {
    update(&state, &principal, path, |p| {
        p.persistence = None;
        Ok(())
    })
    .await
}
