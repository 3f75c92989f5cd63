//! Tiered storage: the namespace policies that offload topics automatically
//! (`/admin/v2/namespaces/{t}/{ns}/offloadThreshold`, `offloadThresholdInSeconds`,
//! `offloadDeletionLagMs`) and a topic's on-demand offload and its status
//! (`/admin/v2/persistent/{t}/{ns}/{topic}/offload`). Superuser or tenant admin. On a
//! partitioned topic the offload acts on every partition.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::namespace_policies::{NsPath, optional, read, update};
use super::topics::{TopicPath, partitions_of, topic_name};
use crate::error::ApiError;
use crate::extract::{ApiJson, Principal};
use crate::models::{ErrorBody, MessageIdBody, OffloadProcessStatus, Policies};
use crate::state::AdminState;

pub(super) fn namespace_routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(
            get_offload_threshold,
            set_offload_threshold,
            remove_offload_threshold
        ))
        .routes(routes!(
            get_offload_threshold_secs,
            set_offload_threshold_secs,
            remove_offload_threshold_secs
        ))
        .routes(routes!(
            get_offload_deletion_lag,
            set_offload_deletion_lag,
            remove_offload_deletion_lag
        ))
}

pub(super) fn topic_routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(offload_status, offload))
}

/// One of the three numeric policies: its field, its name in messages, its smallest value.
#[derive(Clone, Copy)]
struct Numeric {
    name: &'static str,
    min: i64,
    field: fn(&mut Policies) -> &mut Option<i64>,
}

const THRESHOLD: Numeric = Numeric {
    name: "offloadThreshold",
    min: -1,
    field: |p| &mut p.offload_threshold,
};
const THRESHOLD_SECS: Numeric = Numeric {
    name: "offloadThresholdInSeconds",
    min: -1,
    field: |p| &mut p.offload_threshold_in_seconds,
};
const DELETION_LAG: Numeric = Numeric {
    name: "offloadDeletionLagMs",
    min: 0,
    field: |p| &mut p.offload_deletion_lag_ms,
};

async fn get_numeric(
    state: &AdminState,
    principal: &Principal,
    path: (String, String),
    policy: Numeric,
) -> Result<Response, ApiError> {
    let mut policies = read(state, principal, path).await?;
    Ok(optional(*(policy.field)(&mut policies)))
}

async fn set_numeric(
    state: &AdminState,
    principal: &Principal,
    path: (String, String),
    policy: Numeric,
    value: Option<i64>,
) -> Result<StatusCode, ApiError> {
    if let Some(v) = value
        && v < policy.min
    {
        return Err(ApiError::precondition_failed(format!(
            "{} must be {} or more, not {v}",
            policy.name, policy.min
        )));
    }
    update(state, principal, path, |p| {
        *(policy.field)(p) = value;
        Ok(())
    })
    .await
}

/// Bytes a topic keeps on the bookies before its oldest closed ledgers go to tiered storage
/// (-1 never, 0 as soon as a ledger closes); 204 when unset (the broker's default).
#[utoipa::path(get, path = "/namespaces/{tenant}/{namespace}/offloadThreshold", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses(
        (status = 200, description = "Threshold in bytes", body = i64),
        (status = 204, description = "Not set"),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn get_offload_threshold(
    State(state): State<AdminState>,
    principal: Principal,
    path: NsPath,
) -> Result<Response, ApiError> {
    get_numeric(&state, &principal, path.0, THRESHOLD).await
}

/// Set the offload threshold: a bare integer of bytes, -1 or more.
#[utoipa::path(put, path = "/namespaces/{tenant}/{namespace}/offloadThreshold", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    request_body(content = i64, content_type = "application/json", description = "Bytes"),
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such namespace", body = ErrorBody),
        (status = 412, description = "Below -1", body = ErrorBody)))]
async fn set_offload_threshold(
    State(state): State<AdminState>,
    principal: Principal,
    path: NsPath,
    ApiJson(bytes): ApiJson<i64>,
) -> Result<StatusCode, ApiError> {
    set_numeric(&state, &principal, path.0, THRESHOLD, Some(bytes)).await
}

/// Remove the namespace's offload threshold (the broker's default applies).
#[utoipa::path(delete, path = "/namespaces/{tenant}/{namespace}/offloadThreshold", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn remove_offload_threshold(
    State(state): State<AdminState>,
    principal: Principal,
    path: NsPath,
) -> Result<StatusCode, ApiError> {
    set_numeric(&state, &principal, path.0, THRESHOLD, None).await
}

/// Seconds after a ledger closed at which it goes to tiered storage (-1 never); 204 when unset.
#[utoipa::path(get, path = "/namespaces/{tenant}/{namespace}/offloadThresholdInSeconds", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses(
        (status = 200, description = "Threshold in seconds", body = i64),
        (status = 204, description = "Not set"),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn get_offload_threshold_secs(
    State(state): State<AdminState>,
    principal: Principal,
    path: NsPath,
) -> Result<Response, ApiError> {
    get_numeric(&state, &principal, path.0, THRESHOLD_SECS).await
}

/// Set the offload age threshold: a bare integer of seconds, -1 or more.
#[utoipa::path(put, path = "/namespaces/{tenant}/{namespace}/offloadThresholdInSeconds", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    request_body(content = i64, content_type = "application/json", description = "Seconds"),
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such namespace", body = ErrorBody),
        (status = 412, description = "Below -1", body = ErrorBody)))]
async fn set_offload_threshold_secs(
    State(state): State<AdminState>,
    principal: Principal,
    path: NsPath,
    ApiJson(secs): ApiJson<i64>,
) -> Result<StatusCode, ApiError> {
    set_numeric(&state, &principal, path.0, THRESHOLD_SECS, Some(secs)).await
}

/// Remove the namespace's offload age threshold (the broker's default applies).
#[utoipa::path(delete, path = "/namespaces/{tenant}/{namespace}/offloadThresholdInSeconds", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn remove_offload_threshold_secs(
    State(state): State<AdminState>,
    principal: Principal,
    path: NsPath,
) -> Result<StatusCode, ApiError> {
    set_numeric(&state, &principal, path.0, THRESHOLD_SECS, None).await
}

/// How long an offloaded ledger also stays on the bookies (ms); 204 when unset.
#[utoipa::path(get, path = "/namespaces/{tenant}/{namespace}/offloadDeletionLagMs", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses(
        (status = 200, description = "Lag in milliseconds", body = i64),
        (status = 204, description = "Not set"),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn get_offload_deletion_lag(
    State(state): State<AdminState>,
    principal: Principal,
    path: NsPath,
) -> Result<Response, ApiError> {
    get_numeric(&state, &principal, path.0, DELETION_LAG).await
}

/// Set the deletion lag: a bare integer of milliseconds, 0 or more.
#[utoipa::path(put, path = "/namespaces/{tenant}/{namespace}/offloadDeletionLagMs", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    request_body(content = i64, content_type = "application/json", description = "Milliseconds"),
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such namespace", body = ErrorBody),
        (status = 412, description = "Negative lag", body = ErrorBody)))]
async fn set_offload_deletion_lag(
    State(state): State<AdminState>,
    principal: Principal,
    path: NsPath,
    ApiJson(ms): ApiJson<i64>,
) -> Result<StatusCode, ApiError> {
    set_numeric(&state, &principal, path.0, DELETION_LAG, Some(ms)).await
}

/// Remove the namespace's deletion lag (the broker's default applies).
#[utoipa::path(delete, path = "/namespaces/{tenant}/{namespace}/offloadDeletionLagMs", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn remove_offload_deletion_lag(
    State(state): State<AdminState>,
    principal: Principal,
    path: NsPath,
) -> Result<StatusCode, ApiError> {
    set_numeric(&state, &principal, path.0, DELETION_LAG, None).await
}

/// Offload the topic's closed ledgers before the given message's ledger to tiered storage, in
/// the background (`pulsar-admin topics offload` computes the message from a size to keep).
#[utoipa::path(put, path = "/persistent/{tenant}/{namespace}/{topic}/offload", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    request_body(content = MessageIdBody, description = "Offload the ledgers before this message's"),
    responses(
        (status = 204, description = "Offload started"),
        (status = 400, description = "Invalid body, or no offload driver on the broker", body = ErrorBody),
        (status = 404, description = "No such topic", body = ErrorBody),
        (status = 409, description = "An offload is already running", body = ErrorBody)))]
async fn offload(
    State(state): State<AdminState>,
    principal: Principal,
    path: TopicPath,
    ApiJson(until): ApiJson<MessageIdBody>,
) -> Result<StatusCode, ApiError> {
    let topic = topic_name(&state, &principal, path.0).await?;
    let admin = state.topic_admin()?;
    match partitions_of(&state, &topic).await? {
        Some(n) => {
            for i in 0..n {
                admin.offload(&topic.with_partition(i), &until).await?;
            }
        }
        None => admin.offload(&topic, &until).await?,
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The status of the topic's last offload (`NOT_RUN`, `RUNNING`, `SUCCESS`, `ERROR`) and its
/// first message not offloaded; for a partitioned topic the first partition not done.
#[utoipa::path(get, path = "/persistent/{tenant}/{namespace}/{topic}/offload", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    responses(
        (status = 200, description = "Pulsar's OffloadProcessStatus", body = OffloadProcessStatus),
        (status = 404, description = "No such topic", body = ErrorBody)))]
async fn offload_status(
    State(state): State<AdminState>,
    principal: Principal,
    path: TopicPath,
) -> Result<Response, ApiError> {
    let topic = topic_name(&state, &principal, path.0).await?;
    let admin = state.topic_admin()?;
    let Some(n) = partitions_of(&state, &topic).await? else {
        return Ok(Json(admin.offload_status(&topic).await?).into_response());
    };
    let mut last = OffloadProcessStatus::default();
    for i in 0..n {
        last = admin.offload_status(&topic.with_partition(i)).await?;
        if last.status != "SUCCESS" {
            break;
        }
    }
    Ok(Json(last).into_response())
}
