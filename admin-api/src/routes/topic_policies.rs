//! Topic-level policies (`/admin/v2/persistent/{tenant}/{namespace}/{topic}/…`): retention,
//! message TTL, backlog quotas, deduplication, the most producers and consumers, and the
//! replication clusters of one topic, each overriding its namespace's. A partitioned topic's
//! apply to every partition. Superuser or tenant admin.
//!
//! A GET answers the topic's own value, 204 when it has none; with `?applied=true` it answers
//! what governs the topic (its own value, else the namespace's).

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use magnetar_protocol::topic::TopicName;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::namespace_policies::{
    QuotaQuery, check_retention, check_retention_vs_quotas, quota_type,
};
use super::topics::{TopicPath, partitions_of, topic_name};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Principal};
use crate::models::{
    BacklogQuota, BacklogQuotaType, ErrorBody, Policies, RetentionPolicies, TopicPolicies,
};
use crate::names::NamespaceName;
use crate::resources::ResourceError;
use crate::state::AdminState;

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(get_retention, set_retention, remove_retention))
        .routes(routes!(
            get_message_ttl,
            set_message_ttl,
            remove_message_ttl
        ))
        .routes(routes!(get_backlog_quota_map))
        .routes(routes!(set_backlog_quota, remove_backlog_quota))
        .routes(routes!(
            get_deduplication,
            set_deduplication,
            remove_deduplication
        ))
        .routes(routes!(
            get_max_producers,
            set_max_producers,
            remove_max_producers
        ))
        .routes(routes!(
            get_max_consumers,
            set_max_consumers,
            remove_max_consumers
        ))
        .routes(routes!(
            get_replication,
            set_replication,
            remove_replication
        ))
}

/// `?applied=true`: what governs the topic, not only its own setting.
#[derive(Debug, Default, Deserialize, IntoParams)]
struct Applied {
    applied: Option<bool>,
}

/// The topic, after checking the caller's right and that the topic exists (404).
async fn existing_topic(
    state: &AdminState,
    principal: &Principal,
    path: (String, String, String),
) -> Result<TopicName, ApiError> {
    let topic = topic_name(state, principal, path).await?;
    if partitions_of(state, &topic).await?.is_some() {
        return Ok(topic);
    }
    let ns = NamespaceName {
        tenant: topic.tenant().into(),
        namespace: topic.namespace_local().into(),
    };
    let name = topic.to_string();
    if state.topic_admin()?.list_topics(&ns).await?.contains(&name) {
        Ok(topic)
    } else {
        Err(ApiError::not_found(format!("Topic {topic} does not exist")))
    }
}

/// The topic's own policies, and the namespace's when `applied`.
async fn read(
    state: &AdminState,
    principal: &Principal,
    path: (String, String, String),
    applied: bool,
) -> Result<(TopicPolicies, Option<Policies>), ApiError> {
    let topic = existing_topic(state, principal, path).await?;
    let own = state.resources().topics.policies(&topic).await?;
    let namespace = if applied {
        let ns = NamespaceName {
            tenant: topic.tenant().into(),
            namespace: topic.namespace_local().into(),
        };
        Some(state.resources().namespaces.require(&ns).await?)
    } else {
        None
    };
    Ok((own, namespace))
}

/// Changes the topic's own policies with compare-and-set.
async fn change(
    state: &AdminState,
    principal: &Principal,
    path: (String, String, String),
    change: impl Fn(&mut TopicPolicies) -> Result<(), ResourceError>,
) -> Result<StatusCode, ApiError> {
    let topic = existing_topic(state, principal, path).await?;
    state
        .resources()
        .topics
        .update_policies(&topic, change)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// JSON if set, else 204 (as Pulsar answers an unset policy).
fn optional<T: serde::Serialize>(value: Option<T>) -> Response {
    match value {
        Some(v) => Json(v).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// Which limit a producer or consumer route is about.
type Limit = fn(&mut TopicPolicies) -> &mut Option<i32>;

fn producers(p: &mut TopicPolicies) -> &mut Option<i32> {
    &mut p.max_producer_per_topic
}

fn consumers(p: &mut TopicPolicies) -> &mut Option<i32> {
    &mut p.max_consumer_per_topic
}

async fn get_limit(
    state: &AdminState,
    principal: &Principal,
    path: (String, String, String),
    limit: Limit,
) -> Result<Response, ApiError> {
    let (mut own, _) = read(state, principal, path, false).await?;
    Ok(optional(*limit(&mut own)))
}

/// Sets a limit of producers or consumers: 0 (none) or more.
async fn set_limit(
    state: &AdminState,
    principal: &Principal,
    path: (String, String, String),
    (what, limit): (&str, Limit),
    n: Option<i32>,
) -> Result<StatusCode, ApiError> {
    if let Some(n) = n.filter(|n| *n < 0) {
        return Err(ApiError::precondition_failed(format!(
            "{what} must be 0 (no limit) or more, not {n}"
        )));
    }
    change(state, principal, path, |p| {
        *limit(p) = n;
        Ok(())
    })
    .await
}

/// The topic's retention (its own; with `applied`, the namespace's when it has none).
#[utoipa::path(get, path = "/persistent/{tenant}/{namespace}/{topic}/retention", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path), Applied),
    responses(
        (status = 200, description = "The retention policy", body = RetentionPolicies),
        (status = 204, description = "Not set"),
        (status = 404, description = "No such topic", body = ErrorBody)))]
async fn get_retention(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
    ApiQuery(query): ApiQuery<Applied>,
) -> Result<Response, ApiError> {
    let (own, ns) = read(&state, &principal, path, query.applied.unwrap_or(false)).await?;
    Ok(optional(
        own.retention_policies
            .or_else(|| ns.and_then(|p| p.retention_policies)),
    ))
}

/// Set the topic's retention: -1 unlimited, 0 none.
#[utoipa::path(post, path = "/persistent/{tenant}/{namespace}/{topic}/retention", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    request_body = RetentionPolicies,
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such topic", body = ErrorBody),
        (status = 412, description = "Invalid values, or not above a backlog quota", body = ErrorBody)))]
async fn set_retention(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
    ApiJson(retention): ApiJson<RetentionPolicies>,
) -> Result<StatusCode, ApiError> {
    check_retention(&retention)?;
    change(&state, &principal, path, |p| {
        check_retention_vs_quotas(&retention, &p.back_log_quota_map)?;
        p.retention_policies = Some(retention);
        Ok(())
    })
    .await
}

/// Remove the topic's retention (the namespace's applies again).
#[utoipa::path(delete, path = "/persistent/{tenant}/{namespace}/{topic}/retention", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such topic", body = ErrorBody)))]
async fn remove_retention(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
) -> Result<StatusCode, ApiError> {
    change(&state, &principal, path, |p| {
        p.retention_policies = None;
        Ok(())
    })
    .await
}

/// The topic's message TTL in seconds.
#[utoipa::path(get, path = "/persistent/{tenant}/{namespace}/{topic}/messageTTL", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path), Applied),
    responses(
        (status = 200, description = "Seconds", body = i32),
        (status = 204, description = "Not set"),
        (status = 404, description = "No such topic", body = ErrorBody)))]
async fn get_message_ttl(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
    ApiQuery(query): ApiQuery<Applied>,
) -> Result<Response, ApiError> {
    let (own, ns) = read(&state, &principal, path, query.applied.unwrap_or(false)).await?;
    Ok(optional(
        own.message_ttl_in_seconds
            .or_else(|| ns.and_then(|p| p.message_ttl_in_seconds)),
    ))
}

/// `?messageTTL=N` (Pulsar's form) or a bare number as the body.
#[derive(Debug, Default, Deserialize, IntoParams)]
struct TtlQuery {
    #[serde(rename = "messageTTL")]
    message_ttl: Option<i32>,
}

/// Set the topic's message TTL: unacknowledged messages older than this many seconds are
/// acknowledged by the broker (0: never).
#[utoipa::path(post, path = "/persistent/{tenant}/{namespace}/{topic}/messageTTL", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path), TtlQuery),
    request_body(content = Option<i32>, content_type = "application/json", description = "Seconds, when not in the query"),
    responses(
        (status = 204, description = "Set"),
        (status = 404, description = "No such topic", body = ErrorBody),
        (status = 412, description = "No or a negative TTL", body = ErrorBody)))]
async fn set_message_ttl(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
    ApiQuery(query): ApiQuery<TtlQuery>,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(
            serde_json::from_slice::<i32>(&body)
                .map_err(|e| ApiError::bad_request(format!("the body is not a number: {e}")))?,
        )
    };
    let ttl = query.message_ttl.or(from_body);
    let topic = existing_topic(&state, &principal, path.clone()).await?;
    let Some(ttl) = ttl.filter(|t| *t >= 0) else {
        return Err(ApiError::precondition_failed(format!(
            "{topic}: messageTTL must be given (?messageTTL=seconds) and 0 or more"
        )));
    };
    change(&state, &principal, path, |p| {
        p.message_ttl_in_seconds = Some(ttl);
        Ok(())
    })
    .await
}

/// Remove the topic's message TTL.
#[utoipa::path(delete, path = "/persistent/{tenant}/{namespace}/{topic}/messageTTL", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such topic", body = ErrorBody)))]
async fn remove_message_ttl(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
) -> Result<StatusCode, ApiError> {
    change(&state, &principal, path, |p| {
        p.message_ttl_in_seconds = None;
        Ok(())
    })
    .await
}

/// The topic's backlog quotas by type (with `applied`, the namespace's where it sets none).
#[utoipa::path(get, path = "/persistent/{tenant}/{namespace}/{topic}/backlogQuotaMap", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path), Applied),
    responses(
        (status = 200, description = "Quota per type", body = BTreeMap<String, BacklogQuota>),
        (status = 404, description = "No such topic", body = ErrorBody)))]
async fn get_backlog_quota_map(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
    ApiQuery(query): ApiQuery<Applied>,
) -> Result<Json<BTreeMap<BacklogQuotaType, BacklogQuota>>, ApiError> {
    let (own, ns) = read(&state, &principal, path, query.applied.unwrap_or(false)).await?;
    let mut map = ns.map(|p| p.backlog_quota_map).unwrap_or_default();
    map.extend(own.back_log_quota_map);
    Ok(Json(map))
}

/// Set one of the topic's backlog quotas (`?backlogQuotaType=`, `destination_storage` by
/// default).
#[utoipa::path(post, path = "/persistent/{tenant}/{namespace}/{topic}/backlogQuota", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path), QuotaQuery),
    request_body = BacklogQuota,
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such topic", body = ErrorBody),
        (status = 412, description = "Not below the topic's retention", body = ErrorBody)))]
async fn set_backlog_quota(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
    ApiQuery(query): ApiQuery<QuotaQuery>,
    ApiJson(quota): ApiJson<BacklogQuota>,
) -> Result<StatusCode, ApiError> {
    let kind = quota_type(&query)?;
    change(&state, &principal, path, |p| {
        let mut quotas = p.back_log_quota_map.clone();
        quotas.insert(kind, quota);
        if let Some(retention) = &p.retention_policies {
            check_retention_vs_quotas(retention, &quotas)?;
        }
        p.back_log_quota_map = quotas;
        Ok(())
    })
    .await
}

/// Remove one of the topic's backlog quotas.
#[utoipa::path(delete, path = "/persistent/{tenant}/{namespace}/{topic}/backlogQuota", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path), QuotaQuery),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such topic", body = ErrorBody)))]
async fn remove_backlog_quota(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
    ApiQuery(query): ApiQuery<QuotaQuery>,
) -> Result<StatusCode, ApiError> {
    let kind = quota_type(&query)?;
    change(&state, &principal, path, |p| {
        p.back_log_quota_map.remove(&kind);
        Ok(())
    })
    .await
}

/// Whether the topic deduplicates messages (with `applied`: the namespace's setting, else the
/// broker's is not known here and the answer is 204).
#[utoipa::path(get, path = "/persistent/{tenant}/{namespace}/{topic}/deduplicationEnabled", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path), Applied),
    responses(
        (status = 200, description = "On or off", body = bool),
        (status = 204, description = "Not set"),
        (status = 404, description = "No such topic", body = ErrorBody)))]
async fn get_deduplication(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
    ApiQuery(query): ApiQuery<Applied>,
) -> Result<Response, ApiError> {
    let (own, ns) = read(&state, &principal, path, query.applied.unwrap_or(false)).await?;
    Ok(optional(
        own.deduplication_enabled
            .or_else(|| ns.and_then(|p| p.deduplication_enabled)),
    ))
}

/// Turn deduplication on or off for the topic.
#[utoipa::path(post, path = "/persistent/{tenant}/{namespace}/{topic}/deduplicationEnabled", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    request_body = bool,
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such topic", body = ErrorBody)))]
async fn set_deduplication(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
    ApiJson(enabled): ApiJson<bool>,
) -> Result<StatusCode, ApiError> {
    change(&state, &principal, path, |p| {
        p.deduplication_enabled = Some(enabled);
        Ok(())
    })
    .await
}

/// Remove the topic's deduplication setting.
#[utoipa::path(delete, path = "/persistent/{tenant}/{namespace}/{topic}/deduplicationEnabled", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such topic", body = ErrorBody)))]
async fn remove_deduplication(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
) -> Result<StatusCode, ApiError> {
    change(&state, &principal, path, |p| {
        p.deduplication_enabled = None;
        Ok(())
    })
    .await
}

/// The most producers the topic accepts at once.
#[utoipa::path(get, path = "/persistent/{tenant}/{namespace}/{topic}/maxProducers", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path), Applied),
    responses(
        (status = 200, description = "The limit (0: none)", body = i32),
        (status = 204, description = "Not set"),
        (status = 404, description = "No such topic", body = ErrorBody)))]
async fn get_max_producers(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
    // Applied or not, the answer is the topic's: no namespace policy sets this limit.
    ApiQuery(_applied): ApiQuery<Applied>,
) -> Result<Response, ApiError> {
    get_limit(&state, &principal, path, producers).await
}

/// Limit the producers the topic accepts at once (0: no limit but the broker's); more are
/// refused with `ProducerBusy`.
#[utoipa::path(post, path = "/persistent/{tenant}/{namespace}/{topic}/maxProducers", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    request_body = i32,
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such topic", body = ErrorBody),
        (status = 412, description = "Negative", body = ErrorBody)))]
async fn set_max_producers(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
    ApiJson(max): ApiJson<i32>,
) -> Result<StatusCode, ApiError> {
    set_limit(
        &state,
        &principal,
        path,
        ("maxProducers", producers),
        Some(max),
    )
    .await
}

/// Remove the topic's producer limit.
#[utoipa::path(delete, path = "/persistent/{tenant}/{namespace}/{topic}/maxProducers", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such topic", body = ErrorBody)))]
async fn remove_max_producers(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
) -> Result<StatusCode, ApiError> {
    set_limit(&state, &principal, path, ("maxProducers", producers), None).await
}

/// The most consumers the topic accepts at once, over all its subscriptions.
#[utoipa::path(get, path = "/persistent/{tenant}/{namespace}/{topic}/maxConsumers", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path), Applied),
    responses(
        (status = 200, description = "The limit (0: none)", body = i32),
        (status = 204, description = "Not set"),
        (status = 404, description = "No such topic", body = ErrorBody)))]
async fn get_max_consumers(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
    // Applied or not, the answer is the topic's: no namespace policy sets this limit.
    ApiQuery(_applied): ApiQuery<Applied>,
) -> Result<Response, ApiError> {
    get_limit(&state, &principal, path, consumers).await
}

/// Limit the consumers the topic accepts at once (0: no limit but the broker's); more are
/// refused with `ConsumerBusy`.
#[utoipa::path(post, path = "/persistent/{tenant}/{namespace}/{topic}/maxConsumers", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    request_body = i32,
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such topic", body = ErrorBody),
        (status = 412, description = "Negative", body = ErrorBody)))]
async fn set_max_consumers(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
    ApiJson(max): ApiJson<i32>,
) -> Result<StatusCode, ApiError> {
    set_limit(
        &state,
        &principal,
        path,
        ("maxConsumers", consumers),
        Some(max),
    )
    .await
}

/// Remove the topic's consumer limit.
#[utoipa::path(delete, path = "/persistent/{tenant}/{namespace}/{topic}/maxConsumers", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such topic", body = ErrorBody)))]
async fn remove_max_consumers(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
) -> Result<StatusCode, ApiError> {
    set_limit(&state, &principal, path, ("maxConsumers", consumers), None).await
}

/// The clusters the topic replicates to (its own; with `applied`, the namespace's otherwise).
#[utoipa::path(get, path = "/persistent/{tenant}/{namespace}/{topic}/replication", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path), Applied),
    responses(
        (status = 200, description = "Cluster names", body = Vec<String>),
        (status = 204, description = "Not set"),
        (status = 404, description = "No such topic", body = ErrorBody)))]
async fn get_replication(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
    ApiQuery(query): ApiQuery<Applied>,
) -> Result<Response, ApiError> {
    let (own, ns) = read(&state, &principal, path, query.applied.unwrap_or(false)).await?;
    Ok(optional(
        own.replication_clusters
            .or_else(|| ns.map(|p| p.replication_clusters)),
    ))
}

/// Replicate this topic to these clusters instead of the namespace's. Each must exist and be
/// allowed for the tenant.
#[utoipa::path(post, path = "/persistent/{tenant}/{namespace}/{topic}/replication", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    request_body = Vec<String>,
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such topic", body = ErrorBody),
        (status = 412, description = "Empty, or an unknown or disallowed cluster", body = ErrorBody)))]
async fn set_replication(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
    ApiJson(clusters): ApiJson<Vec<String>>,
) -> Result<StatusCode, ApiError> {
    let clusters: BTreeSet<String> = clusters.into_iter().collect();
    let topic = existing_topic(&state, &principal, path.clone()).await?;
    if clusters.is_empty() {
        return Err(ApiError::precondition_failed(
            "Replication clusters must not be empty",
        ));
    }
    let info = state.resources().tenants.require(topic.tenant()).await?;
    super::namespaces::check_clusters(
        &state,
        topic.tenant(),
        &info,
        &clusters,
        StatusCode::PRECONDITION_FAILED,
    )
    .await?;
    change(&state, &principal, path, |p| {
        p.replication_clusters = Some(clusters.clone());
        Ok(())
    })
    .await
}

/// Remove the topic's replication clusters (the namespace's apply again).
#[utoipa::path(delete, path = "/persistent/{tenant}/{namespace}/{topic}/replication", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such topic", body = ErrorBody)))]
async fn remove_replication(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
) -> Result<StatusCode, ApiError> {
    change(&state, &principal, path, |p| {
        p.replication_clusters = None;
        Ok(())
    })
    .await
}
