//! Non-persistent topics: `/admin/v2/non-persistent/{tenant}/{namespace}[/{topic}]`, the same
//! operations as on persistent topics where they make sense (list, create, delete, partitions,
//! unload, stats, subscriptions), answered from the brokers' in-memory topics. Each handler is
//! the persistent one in the `non-persistent` domain.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use magnetar_protocol::topic::TopicDomain;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::subscriptions::{SubPath, delete_subscription_in, list_subscriptions_in};
use super::topics::*;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Principal};
use crate::models::{ErrorBody, PartitionedTopicMetadata};
use crate::state::AdminState;

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(np_list_topics))
        .routes(routes!(np_list_partitioned_topics))
        .routes(routes!(np_create_topic, np_delete_topic))
        .routes(routes!(
            np_get_partitions,
            np_create_partitioned_topic,
            np_update_partitioned_topic,
            np_delete_partitioned_topic
        ))
        .routes(routes!(np_unload_topic))
        .routes(routes!(np_topic_stats))
        .routes(routes!(np_partitioned_stats))
        .routes(routes!(np_internal_stats))
        .routes(routes!(np_list_subscriptions))
        .routes(routes!(np_delete_subscription))
}

/// List the non-persistent topics of a namespace loaded on the cluster's brokers (partitions one by one).
#[utoipa::path(get, path = "/non-persistent/{tenant}/{namespace}", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses(
        (status = 200, description = "Full topic names", body = Vec<String>),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn np_list_topics(
    a0: State<AdminState>,
    a1: Principal,
    a2: ApiPath<(String, String)>,
) -> Result<Json<Vec<String>>, ApiError> {
    list_topics_in(a0, a1, a2, TopicDomain::NonPersistent).await
}

/// List the partitioned non-persistent topics of a namespace.
#[utoipa::path(get, path = "/non-persistent/{tenant}/{namespace}/partitioned", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses(
        (status = 200, description = "Full names of partitioned topics", body = Vec<String>),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn np_list_partitioned_topics(
    a0: State<AdminState>,
    a1: Principal,
    a2: ApiPath<(String, String)>,
) -> Result<Json<Vec<String>>, ApiError> {
    list_partitioned_topics_in(a0, a1, a2, TopicDomain::NonPersistent).await
}

/// Create (load on its owner) a non-partitioned non-persistent topic.
#[utoipa::path(put, path = "/non-persistent/{tenant}/{namespace}/{topic}", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    responses(
        (status = 204, description = "Created"),
        (status = 404, description = "No such namespace", body = ErrorBody),
        (status = 409, description = "The topic exists", body = ErrorBody),
        (status = 412, description = "Invalid name", body = ErrorBody)))]
async fn np_create_topic(
    a0: State<AdminState>,
    a1: Principal,
    a2: TopicPath,
) -> Result<StatusCode, ApiError> {
    create_topic_in(a0, a1, a2, TopicDomain::NonPersistent).await
}

/// Delete (unload, closing its clients) a non-persistent topic.
#[utoipa::path(delete, path = "/non-persistent/{tenant}/{namespace}/{topic}", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path), ForceDelete),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such topic", body = ErrorBody),
        (status = 409, description = "A partitioned topic: delete it with DELETE …/partitions", body = ErrorBody),
        (status = 412, description = "Producers, consumers or subscriptions are active", body = ErrorBody)))]
async fn np_delete_topic(
    a0: State<AdminState>,
    a1: Principal,
    a2: TopicPath,
    a3: ApiQuery<ForceDelete>,
) -> Result<StatusCode, ApiError> {
    delete_topic_in(a0, a1, a2, a3, TopicDomain::NonPersistent).await
}

/// Partitions of a non-persistent topic; 0 for a non-partitioned one.
#[utoipa::path(get, path = "/non-persistent/{tenant}/{namespace}/{topic}/partitions", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    responses(
        (status = 200, description = "The partition count", body = PartitionedTopicMetadata),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn np_get_partitions(
    a0: State<AdminState>,
    a1: Principal,
    a2: TopicPath,
) -> Result<Json<PartitionedTopicMetadata>, ApiError> {
    get_partitions_in(a0, a1, a2, TopicDomain::NonPersistent).await
}

/// Create a partitioned non-persistent topic with N partitions.
#[utoipa::path(put, path = "/non-persistent/{tenant}/{namespace}/{topic}/partitions", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    request_body(content = u32, content_type = "application/json", description = "Number of partitions"),
    responses(
        (status = 204, description = "Created"),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such namespace", body = ErrorBody),
        (status = 409, description = "The topic exists", body = ErrorBody),
        (status = 412, description = "Invalid name or partition count", body = ErrorBody)))]
async fn np_create_partitioned_topic(
    a0: State<AdminState>,
    a1: Principal,
    a2: TopicPath,
    a3: ApiJson<u32>,
) -> Result<StatusCode, ApiError> {
    create_partitioned_topic_in(a0, a1, a2, a3, TopicDomain::NonPersistent).await
}

/// Add partitions to a partitioned non-persistent topic.
#[utoipa::path(post, path = "/non-persistent/{tenant}/{namespace}/{topic}/partitions", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    request_body(content = u32, content_type = "application/json", description = "The new number of partitions"),
    responses(
        (status = 204, description = "Updated"),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such partitioned topic", body = ErrorBody),
        (status = 409, description = "Not more partitions than now", body = ErrorBody),
        (status = 412, description = "More than the maximum", body = ErrorBody)))]
async fn np_update_partitioned_topic(
    a0: State<AdminState>,
    a1: Principal,
    a2: TopicPath,
    a3: ApiJson<u32>,
) -> Result<StatusCode, ApiError> {
    update_partitioned_topic_in(a0, a1, a2, a3, TopicDomain::NonPersistent).await
}

/// Unload a non-persistent topic: its clients reconnect (nothing is kept).
#[utoipa::path(put, path = "/non-persistent/{tenant}/{namespace}/{topic}/unload", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    responses(
        (status = 204, description = "Unloaded"),
        (status = 307, description = "Another broker serves the topic"),
        (status = 404, description = "No such topic", body = ErrorBody)))]
async fn np_unload_topic(
    a0: State<AdminState>,
    a1: Principal,
    a2: TopicPath,
) -> Result<StatusCode, ApiError> {
    unload_topic_in(a0, a1, a2, TopicDomain::NonPersistent).await
}

/// Delete a partitioned non-persistent topic.
#[utoipa::path(delete, path = "/non-persistent/{tenant}/{namespace}/{topic}/partitions", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path), ForceDelete),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such partitioned topic", body = ErrorBody),
        (status = 412, description = "A partition is in use", body = ErrorBody)))]
async fn np_delete_partitioned_topic(
    a0: State<AdminState>,
    a1: Principal,
    a2: TopicPath,
    a3: ApiQuery<ForceDelete>,
) -> Result<StatusCode, ApiError> {
    delete_partitioned_topic_in(a0, a1, a2, a3, TopicDomain::NonPersistent).await
}

/// Pulsar's NonPersistentTopicStats: rates, counters, drops, publishers, subscriptions.
#[utoipa::path(get, path = "/non-persistent/{tenant}/{namespace}/{topic}/stats", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    responses(
        (status = 200, description = "Pulsar's TopicStats", body = Object),
        (status = 404, description = "No such topic", body = ErrorBody)))]
async fn np_topic_stats(
    a0: State<AdminState>,
    a1: Principal,
    a2: TopicPath,
) -> Result<Json<Value>, ApiError> {
    topic_stats_in(a0, a1, a2, TopicDomain::NonPersistent).await
}

/// Stats summed over the partitions of a partitioned non-persistent topic.
#[utoipa::path(get, path = "/non-persistent/{tenant}/{namespace}/{topic}/partitioned-stats", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    responses(
        (status = 200, description = "Pulsar's PartitionedTopicStats", body = Object),
        (status = 404, description = "No such partitioned topic", body = ErrorBody)))]
async fn np_partitioned_stats(
    a0: State<AdminState>,
    a1: Principal,
    a2: TopicPath,
) -> Result<Json<Value>, ApiError> {
    partitioned_stats_in(a0, a1, a2, TopicDomain::NonPersistent).await
}

/// Internal stats of a non-persistent topic (no ledgers, no cursors).
#[utoipa::path(get, path = "/non-persistent/{tenant}/{namespace}/{topic}/internalStats", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    responses(
        (status = 200, description = "Pulsar's PersistentTopicInternalStats", body = Object),
        (status = 404, description = "No such topic", body = ErrorBody)))]
async fn np_internal_stats(
    a0: State<AdminState>,
    a1: Principal,
    a2: TopicPath,
) -> Result<Json<Value>, ApiError> {
    internal_stats_in(a0, a1, a2, TopicDomain::NonPersistent).await
}

/// Subscription names of a non-persistent topic.
#[utoipa::path(get, path = "/non-persistent/{tenant}/{namespace}/{topic}/subscriptions", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    responses(
        (status = 200, description = "Subscription names", body = Vec<String>),
        (status = 404, description = "No such topic", body = ErrorBody)))]
async fn np_list_subscriptions(
    a0: State<AdminState>,
    a1: Principal,
    a2: TopicPath,
) -> Result<Json<Vec<String>>, ApiError> {
    list_subscriptions_in(a0, a1, a2, TopicDomain::NonPersistent).await
}

/// Delete a subscription of a non-persistent topic, closing its consumers with `force`.
#[utoipa::path(delete, path = "/non-persistent/{tenant}/{namespace}/{topic}/subscription/{subscription}", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path), ("subscription" = String, Path), ForceDelete),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such topic or subscription", body = ErrorBody),
        (status = 412, description = "Consumers are connected", body = ErrorBody)))]
async fn np_delete_subscription(
    a0: State<AdminState>,
    a1: Principal,
    a2: SubPath,
    a3: ApiQuery<ForceDelete>,
) -> Result<StatusCode, ApiError> {
    delete_subscription_in(a0, a1, a2, a3, TopicDomain::NonPersistent).await
}
