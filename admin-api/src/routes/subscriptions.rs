//! Subscriptions of a persistent topic: list, create at a position, delete, skip, and reset
//! the cursor by publish time or message id
//! (`/admin/v2/persistent/{tenant}/{namespace}/{topic}/subscription…`). Superuser or tenant
//! admin. On a partitioned topic a change applies to every partition.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use magnetar_protocol::topic::{TopicDomain, TopicName};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::topics::{ForceDelete, TopicPath, partitions_of, topic_name, topic_name_in};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, OptionalJson, Principal};
use crate::models::{ErrorBody, MessageIdBody};
use crate::state::AdminState;
use crate::topic_admin::CursorPosition;

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_subscriptions))
        .routes(routes!(create_subscription, delete_subscription))
        .routes(routes!(skip_messages))
        .routes(routes!(skip_all))
        .routes(routes!(expire_messages))
        .routes(routes!(expire_all_subscriptions))
        .routes(routes!(reset_cursor_to_time))
        .routes(routes!(reset_cursor_to_message))
}

pub(super) type SubPath = ApiPath<(String, String, String, String)>;

/// The topic, the subscription, and the topics a change applies to (the partitions of a
/// partitioned topic, else the topic itself).
async fn targets(
    state: &AdminState,
    principal: &Principal,
    (tenant, namespace, topic, subscription): (String, String, String, String),
    domain: TopicDomain,
) -> Result<(TopicName, String, Vec<TopicName>, bool), ApiError> {
    let topic = topic_name_in(state, principal, (tenant, namespace, topic), domain).await?;
    if subscription.is_empty() {
        return Err(ApiError::precondition_failed("empty subscription name"));
    }
    Ok(match partitions_of(state, &topic).await? {
        Some(n) => {
            let parts = (0..n).map(|i| topic.with_partition(i)).collect();
            (topic, subscription, parts, true)
        }
        None => (topic.clone(), subscription, vec![topic], false),
    })
}

fn position(body: &MessageIdBody) -> CursorPosition {
    if body.ledger_id < 0 {
        CursorPosition::Earliest
    } else if body.ledger_id == i64::MAX {
        CursorPosition::Latest
    } else {
        CursorPosition::MessageId {
            ledger_id: body.ledger_id,
            entry_id: body.entry_id,
            partition: body.partition_index,
            batch_index: body.batch_index,
            excluded: body.is_excluded,
        }
    }
}

/// Subscription names of a topic (of all partitions for a partitioned topic).
#[utoipa::path(get, path = "/persistent/{tenant}/{namespace}/{topic}/subscriptions", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    responses(
        (status = 200, description = "Subscription names", body = Vec<String>),
        (status = 404, description = "No such topic", body = ErrorBody)))]
async fn list_subscriptions(
    a0: State<AdminState>,
    a1: Principal,
    a2: TopicPath,
) -> Result<Json<Vec<String>>, ApiError> {
    list_subscriptions_in(a0, a1, a2, TopicDomain::Persistent).await
}

pub(super) async fn list_subscriptions_in(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath((tenant, namespace, topic)): TopicPath,
    domain: TopicDomain,
) -> Result<Json<Vec<String>>, ApiError> {
    let path = (tenant, namespace, topic, "-".to_string());
    let (_, _, topics, _) = targets(&state, &principal, path, domain).await?;
    let admin = state.topic_admin()?;
    let mut names = BTreeSet::new();
    for topic in &topics {
        names.extend(admin.list_subscriptions(topic).await?);
    }
    Ok(Json(names.into_iter().collect()))
}

/// Create a durable subscription; the optional body is where its cursor starts (default: the
/// latest message).
#[utoipa::path(put, path = "/persistent/{tenant}/{namespace}/{topic}/subscription/{subscription}", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path), ("subscription" = String, Path)),
    request_body(content = Option<MessageIdBody>, content_type = "application/json", description = "Start position (optional)"),
    responses(
        (status = 204, description = "Created"),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such topic", body = ErrorBody),
        (status = 409, description = "The subscription exists", body = ErrorBody)))]
async fn create_subscription(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): SubPath,
    OptionalJson(body): OptionalJson<MessageIdBody>,
) -> Result<StatusCode, ApiError> {
    let (_, subscription, topics, _) =
        targets(&state, &principal, path, TopicDomain::Persistent).await?;
    let at = body.as_ref().map_or(CursorPosition::Latest, position);
    let admin = state.topic_admin()?;
    for topic in &topics {
        admin.create_subscription(topic, &subscription, at).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Delete a subscription and its cursor.
#[utoipa::path(delete, path = "/persistent/{tenant}/{namespace}/{topic}/subscription/{subscription}", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path), ("subscription" = String, Path), ForceDelete),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such topic or subscription", body = ErrorBody),
        (status = 412, description = "Consumers are connected", body = ErrorBody)))]
async fn delete_subscription(
    a0: State<AdminState>,
    a1: Principal,
    a2: SubPath,
    a3: ApiQuery<ForceDelete>,
) -> Result<StatusCode, ApiError> {
    delete_subscription_in(a0, a1, a2, a3, TopicDomain::Persistent).await
}

pub(super) async fn delete_subscription_in(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): SubPath,
    ApiQuery(query): ApiQuery<ForceDelete>,
    domain: TopicDomain,
) -> Result<StatusCode, ApiError> {
    let (_, subscription, topics, _) = targets(&state, &principal, path, domain).await?;
    let admin = state.topic_admin()?;
    for topic in &topics {
        admin
            .delete_subscription(topic, &subscription, query.force)
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Skip the next N messages of a subscription.
#[utoipa::path(post, path = "/persistent/{tenant}/{namespace}/{topic}/subscription/{subscription}/skip/{count}", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path), ("subscription" = String, Path), ("count" = u64, Path)),
    responses(
        (status = 204, description = "Skipped"),
        (status = 404, description = "No such topic or subscription", body = ErrorBody),
        (status = 405, description = "Not allowed on a partitioned topic", body = ErrorBody)))]
async fn skip_messages(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath((tenant, namespace, topic, subscription, count)): ApiPath<(
        String,
        String,
        String,
        String,
        u64,
    )>,
) -> Result<StatusCode, ApiError> {
    let path = (tenant, namespace, topic, subscription);
    let (topic, subscription, _, partitioned) =
        targets(&state, &principal, path, TopicDomain::Persistent).await?;
    if partitioned {
        return Err(ApiError::not_allowed(
            "Skip messages on a partitioned topic is not allowed",
        ));
    }
    state
        .topic_admin()?
        .skip_messages(&topic, &subscription, Some(count))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Skip the whole backlog of a subscription.
#[utoipa::path(post, path = "/persistent/{tenant}/{namespace}/{topic}/subscription/{subscription}/skip_all", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path), ("subscription" = String, Path)),
    responses(
        (status = 204, description = "Skipped"),
        (status = 404, description = "No such topic or subscription", body = ErrorBody)))]
async fn skip_all(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): SubPath,
) -> Result<StatusCode, ApiError> {
    let (_, subscription, topics, _) =
        targets(&state, &principal, path, TopicDomain::Persistent).await?;
    let admin = state.topic_admin()?;
    for topic in &topics {
        admin.skip_messages(topic, &subscription, None).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Expire (acknowledge) the messages of a subscription published more than N seconds ago.
#[utoipa::path(post, path = "/persistent/{tenant}/{namespace}/{topic}/subscription/{subscription}/expireMessages/{expireTimeInSeconds}", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path), ("subscription" = String, Path), ("expireTimeInSeconds" = u64, Path)),
    responses(
        (status = 204, description = "Expired"),
        (status = 404, description = "No such topic or subscription", body = ErrorBody)))]
async fn expire_messages(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath((tenant, namespace, topic, subscription, seconds)): ApiPath<(
        String,
        String,
        String,
        String,
        u64,
    )>,
) -> Result<StatusCode, ApiError> {
    let path = (tenant, namespace, topic, subscription);
    let (_, subscription, topics, _) =
        targets(&state, &principal, path, TopicDomain::Persistent).await?;
    let admin = state.topic_admin()?;
    for topic in &topics {
        admin.expire_messages(topic, &subscription, seconds).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Expire the messages published more than N seconds ago on every subscription of the topic.
#[utoipa::path(post, path = "/persistent/{tenant}/{namespace}/{topic}/all_subscription/expireMessages/{expireTimeInSeconds}", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path), ("expireTimeInSeconds" = u64, Path)),
    responses(
        (status = 204, description = "Expired"),
        (status = 404, description = "No such topic", body = ErrorBody)))]
async fn expire_all_subscriptions(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath((tenant, namespace, topic, seconds)): ApiPath<(String, String, String, u64)>,
) -> Result<StatusCode, ApiError> {
    let topic = topic_name(&state, &principal, (tenant, namespace, topic)).await?;
    let topics = match partitions_of(&state, &topic).await? {
        Some(n) => (0..n).map(|i| topic.with_partition(i)).collect(),
        None => vec![topic],
    };
    let admin = state.topic_admin()?;
    for topic in &topics {
        for subscription in admin.list_subscriptions(topic).await? {
            admin.expire_messages(topic, &subscription, seconds).await?;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Move a subscription's cursor to the first message published at or after a time (ms since
/// the epoch).
#[utoipa::path(post, path = "/persistent/{tenant}/{namespace}/{topic}/subscription/{subscription}/resetcursor/{timestamp}", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path), ("subscription" = String, Path), ("timestamp" = u64, Path)),
    responses(
        (status = 204, description = "Reset"),
        (status = 404, description = "No such topic or subscription", body = ErrorBody)))]
async fn reset_cursor_to_time(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath((tenant, namespace, topic, subscription, millis)): ApiPath<(
        String,
        String,
        String,
        String,
        u64,
    )>,
) -> Result<StatusCode, ApiError> {
    let path = (tenant, namespace, topic, subscription);
    let (_, subscription, topics, _) =
        targets(&state, &principal, path, TopicDomain::Persistent).await?;
    let admin = state.topic_admin()?;
    for topic in &topics {
        admin
            .reset_cursor(topic, &subscription, CursorPosition::PublishTime { millis })
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Move a subscription's cursor to a message id (on a partitioned topic, `partitionIndex`
/// picks the partition; −1 moves every partition).
#[utoipa::path(post, path = "/persistent/{tenant}/{namespace}/{topic}/subscription/{subscription}/resetcursor", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path), ("subscription" = String, Path)),
    request_body(content = MessageIdBody, content_type = "application/json", description = "The position"),
    responses(
        (status = 204, description = "Reset"),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such topic or subscription", body = ErrorBody)))]
async fn reset_cursor_to_message(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): SubPath,
    ApiJson(body): ApiJson<MessageIdBody>,
) -> Result<StatusCode, ApiError> {
    let (topic, subscription, mut topics, partitioned) =
        targets(&state, &principal, path, TopicDomain::Persistent).await?;
    if partitioned && body.partition_index >= 0 {
        let index = body.partition_index as u32;
        if !topics.iter().any(|t| t.partition() == Some(index)) {
            return Err(ApiError::not_found(format!(
                "{topic} has no partition {index}"
            )));
        }
        topics = vec![topic.with_partition(index)];
    }
    let admin = state.topic_admin()?;
    for topic in &topics {
        admin
            .reset_cursor(topic, &subscription, position(&body))
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
