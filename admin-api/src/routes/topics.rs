//! Persistent topics: `/admin/v2/persistent/{tenant}/{namespace}[/{topic}]` — list, create and
//! delete (plain and partitioned), partitioned metadata, stats and internal stats. Superuser or
//! tenant admin. Partitioned topic metadata lives in the resources layer; everything that needs
//! live broker state goes through the [`TopicAdmin`](crate::TopicAdmin).

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use magnetar_protocol::topic::{TopicDomain, TopicName};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::namespaces::authorized;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Principal};
use crate::models::{ErrorBody, PartitionedTopicMetadata};
use crate::names::NamespaceName;
use crate::state::AdminState;
use crate::topic_admin::CursorPosition;

use super::stats_merge::merge_stats;

/// Most partitions a partitioned topic may have (Pulsar's `maxNumPartitionsPerPartitionedTopic`).
pub const MAX_PARTITIONS: u32 = 10_000;

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_topics))
        .routes(routes!(list_partitioned_topics))
        .routes(routes!(namespace_topics))
        .routes(routes!(create_topic, delete_topic))
        .routes(routes!(
            get_partitions,
            create_partitioned_topic,
            update_partitioned_topic,
            delete_partitioned_topic
        ))
        .routes(routes!(unload_topic))
        .routes(routes!(topic_stats))
        .routes(routes!(partitioned_stats))
        .routes(routes!(internal_stats))
}

/// `?force=true`: delete even while producers, consumers or subscriptions are active.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ForceDelete {
    #[serde(default)]
    pub force: bool,
}

pub(super) type TopicPath = ApiPath<(String, String, String)>;

/// Checks the names and the caller's right (superuser or tenant admin), and that the namespace
/// exists (404); gives the topic's full name.
pub(super) async fn topic_name(
    state: &AdminState,
    principal: &Principal,
    path: (String, String, String),
) -> Result<TopicName, ApiError> {
    topic_name_in(state, principal, path, TopicDomain::Persistent).await
}

/// [`topic_name`] in either domain.
pub(super) async fn topic_name_in(
    state: &AdminState,
    principal: &Principal,
    (tenant, namespace, topic): (String, String, String),
    domain: TopicDomain,
) -> Result<TopicName, ApiError> {
    let ns = existing_namespace(state, principal, tenant, namespace).await?;
    if topic.is_empty() || topic.contains('/') {
        return Err(ApiError::precondition_failed(format!(
            "invalid topic name {topic:?}"
        )));
    }
    TopicName::parse(&format!("{}://{ns}/{topic}", domain.as_str()))
        .map_err(|e| ApiError::precondition_failed(e.to_string()))
}

async fn existing_namespace(
    state: &AdminState,
    principal: &Principal,
    tenant: String,
    namespace: String,
) -> Result<NamespaceName, ApiError> {
    let ns = authorized(state, principal, &tenant, &namespace).await?;
    state.resources().namespaces.require(&ns).await?;
    Ok(ns)
}

/// The partition count when `topic` is a partitioned topic (not one of its partitions).
pub(super) async fn partitions_of(
    state: &AdminState,
    topic: &TopicName,
) -> Result<Option<u32>, ApiError> {
    if topic.partition().is_some() {
        return Ok(None);
    }
    Ok(state
        .resources()
        .topics
        .get_partitioned(topic)
        .await?
        .map(|m| m.partitions)
        .filter(|n| *n > 0))
}

/// Every topic of a namespace in `domain` with partitions listed one by one, sorted.
async fn all_topics(
    state: &AdminState,
    ns: &NamespaceName,
    domain: TopicDomain,
) -> Result<Vec<String>, ApiError> {
    let admin = state.topic_admin()?;
    let listed = match domain {
        TopicDomain::Persistent => admin.list_topics(ns).await?,
        TopicDomain::NonPersistent => admin.list_non_persistent_topics(ns).await?,
    };
    let mut names: BTreeSet<String> = listed.into_iter().collect();
    for partitioned in state
        .resources()
        .topics
        .list_partitioned(ns, domain.as_str())
        .await?
    {
        let Ok(topic) = TopicName::parse(&partitioned) else {
            continue;
        };
        if let Some(n) = partitions_of(state, &topic).await? {
            names.extend((0..n).map(|i| topic.with_partition(i).to_string()));
        }
    }
    Ok(names.into_iter().collect())
}

/// List the persistent topics of a namespace (partitions one by one).
#[utoipa::path(get, path = "/persistent/{tenant}/{namespace}", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses(
        (status = 200, description = "Full topic names", body = Vec<String>),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn list_topics(
    a0: State<AdminState>,
    a1: Principal,
    a2: ApiPath<(String, String)>,
) -> Result<Json<Vec<String>>, ApiError> {
    list_topics_in(a0, a1, a2, TopicDomain::Persistent).await
}

pub(super) async fn list_topics_in(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath((tenant, ns)): ApiPath<(String, String)>,
    domain: TopicDomain,
) -> Result<Json<Vec<String>>, ApiError> {
    let ns = existing_namespace(&state, &principal, tenant, ns).await?;
    Ok(Json(all_topics(&state, &ns, domain).await?))
}

/// List the topics of a namespace (as `GET /persistent/{tenant}/{namespace}`).
#[utoipa::path(get, path = "/namespaces/{tenant}/{namespace}/topics", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses(
        (status = 200, description = "Full topic names", body = Vec<String>),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn namespace_topics(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath((tenant, ns)): ApiPath<(String, String)>,
) -> Result<Json<Vec<String>>, ApiError> {
    let ns = existing_namespace(&state, &principal, tenant, ns).await?;
    Ok(Json(
        all_topics(&state, &ns, TopicDomain::Persistent).await?,
    ))
}

/// List the partitioned topics of a namespace.
#[utoipa::path(get, path = "/persistent/{tenant}/{namespace}/partitioned", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses(
        (status = 200, description = "Full names of partitioned topics", body = Vec<String>),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn list_partitioned_topics(
    a0: State<AdminState>,
    a1: Principal,
    a2: ApiPath<(String, String)>,
) -> Result<Json<Vec<String>>, ApiError> {
    list_partitioned_topics_in(a0, a1, a2, TopicDomain::Persistent).await
}

pub(super) async fn list_partitioned_topics_in(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath((tenant, ns)): ApiPath<(String, String)>,
    domain: TopicDomain,
) -> Result<Json<Vec<String>>, ApiError> {
    let ns = existing_namespace(&state, &principal, tenant, ns).await?;
    let mut names = state
        .resources()
        .topics
        .list_partitioned(&ns, domain.as_str())
        .await?;
    names.sort();
    Ok(Json(names))
}

/// Create a non-partitioned topic.
#[utoipa::path(put, path = "/persistent/{tenant}/{namespace}/{topic}", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    responses(
        (status = 204, description = "Created"),
        (status = 404, description = "No such namespace", body = ErrorBody),
        (status = 409, description = "The topic exists", body = ErrorBody),
        (status = 412, description = "Invalid name", body = ErrorBody)))]
async fn create_topic(
    a0: State<AdminState>,
    a1: Principal,
    a2: TopicPath,
) -> Result<StatusCode, ApiError> {
    create_topic_in(a0, a1, a2, TopicDomain::Persistent).await
}

pub(super) async fn create_topic_in(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
    domain: TopicDomain,
) -> Result<StatusCode, ApiError> {
    let topic = topic_name_in(&state, &principal, path, domain).await?;
    if partitions_of(&state, &topic).await?.is_some() {
        return Err(ApiError::conflict(format!(
            "{topic} already exists as a partitioned topic"
        )));
    }
    state.topic_admin()?.create_topic(&topic).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete a non-partitioned topic (or one partition).
#[utoipa::path(delete, path = "/persistent/{tenant}/{namespace}/{topic}", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path), ForceDelete),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such topic", body = ErrorBody),
        (status = 409, description = "A partitioned topic: delete it with DELETE …/partitions", body = ErrorBody),
        (status = 412, description = "Producers, consumers or subscriptions are active", body = ErrorBody)))]
async fn delete_topic(
    a0: State<AdminState>,
    a1: Principal,
    a2: TopicPath,
    a3: ApiQuery<ForceDelete>,
) -> Result<StatusCode, ApiError> {
    delete_topic_in(a0, a1, a2, a3, TopicDomain::Persistent).await
}

pub(super) async fn delete_topic_in(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
    ApiQuery(query): ApiQuery<ForceDelete>,
    domain: TopicDomain,
) -> Result<StatusCode, ApiError> {
    let topic = topic_name_in(&state, &principal, path, domain).await?;
    if partitions_of(&state, &topic).await?.is_some() {
        return Err(ApiError::conflict(format!(
            "{topic} is a partitioned topic: delete it with DELETE …/partitions"
        )));
    }
    state
        .topic_admin()?
        .delete_topic(&topic, query.force)
        .await?;
    forget_policies(&state, &topic).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A deleted topic's own policies go with it (a partition's are its partitioned topic's).
async fn forget_policies(state: &AdminState, topic: &TopicName) -> Result<(), ApiError> {
    if topic.partition().is_none() {
        state
            .resources()
            .topics
            .update_policies(topic, |p| {
                *p = Default::default();
                Ok(())
            })
            .await?;
    }
    Ok(())
}

/// Partitions of a topic; 0 for a non-partitioned topic.
#[utoipa::path(get, path = "/persistent/{tenant}/{namespace}/{topic}/partitions", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    responses(
        (status = 200, description = "The partition count", body = PartitionedTopicMetadata),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn get_partitions(
    a0: State<AdminState>,
    a1: Principal,
    a2: TopicPath,
) -> Result<Json<PartitionedTopicMetadata>, ApiError> {
    get_partitions_in(a0, a1, a2, TopicDomain::Persistent).await
}

pub(super) async fn get_partitions_in(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
    domain: TopicDomain,
) -> Result<Json<PartitionedTopicMetadata>, ApiError> {
    let topic = topic_name_in(&state, &principal, path, domain).await?;
    Ok(Json(
        state
            .resources()
            .topics
            .get_partitioned(&topic)
            .await?
            .unwrap_or_default(),
    ))
}

/// Create a partitioned topic with N partitions (the body is the bare number).
#[utoipa::path(put, path = "/persistent/{tenant}/{namespace}/{topic}/partitions", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    request_body(content = u32, content_type = "application/json", description = "Number of partitions"),
    responses(
        (status = 204, description = "Created"),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such namespace", body = ErrorBody),
        (status = 409, description = "The topic exists", body = ErrorBody),
        (status = 412, description = "Invalid name or partition count", body = ErrorBody)))]
async fn create_partitioned_topic(
    a0: State<AdminState>,
    a1: Principal,
    a2: TopicPath,
    a3: ApiJson<u32>,
) -> Result<StatusCode, ApiError> {
    create_partitioned_topic_in(a0, a1, a2, a3, TopicDomain::Persistent).await
}

pub(super) async fn create_partitioned_topic_in(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
    ApiJson(partitions): ApiJson<u32>,
    domain: TopicDomain,
) -> Result<StatusCode, ApiError> {
    let topic = topic_name_in(&state, &principal, path, domain).await?;
    if topic.partition().is_some() {
        return Err(ApiError::precondition_failed(format!(
            "{topic} names a partition; a partitioned topic cannot end in -partition-N"
        )));
    }
    if partitions == 0 || partitions > MAX_PARTITIONS {
        return Err(ApiError::precondition_failed(format!(
            "the number of partitions must be between 1 and {MAX_PARTITIONS}"
        )));
    }
    let ns = NamespaceName {
        tenant: topic.tenant().into(),
        namespace: topic.namespace_local().into(),
    };
    let name = topic.to_string();
    if all_topics(&state, &ns, domain).await?.contains(&name) {
        return Err(ApiError::conflict(format!(
            "{topic} already exists as a non-partitioned topic"
        )));
    }
    let metadata = PartitionedTopicMetadata {
        partitions,
        properties: None,
    };
    state
        .resources()
        .topics
        .create_partitioned(&topic, &metadata)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add partitions to a partitioned topic (the body is the new, larger count). The new
/// partitions get the subscriptions the first partition has, at their start, so no message
/// published to them is missed before consumers discover them (as Pulsar does).
#[utoipa::path(post, path = "/persistent/{tenant}/{namespace}/{topic}/partitions", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    request_body(content = u32, content_type = "application/json", description = "The new number of partitions"),
    responses(
        (status = 204, description = "Updated"),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such partitioned topic", body = ErrorBody),
        (status = 409, description = "Not more partitions than now", body = ErrorBody),
        (status = 412, description = "More than the maximum", body = ErrorBody)))]
async fn update_partitioned_topic(
    a0: State<AdminState>,
    a1: Principal,
    a2: TopicPath,
    a3: ApiJson<u32>,
) -> Result<StatusCode, ApiError> {
    update_partitioned_topic_in(a0, a1, a2, a3, TopicDomain::Persistent).await
}

pub(super) async fn update_partitioned_topic_in(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
    ApiJson(partitions): ApiJson<u32>,
    domain: TopicDomain,
) -> Result<StatusCode, ApiError> {
    let topic = topic_name_in(&state, &principal, path, domain).await?;
    if partitions > MAX_PARTITIONS {
        return Err(ApiError::precondition_failed(format!(
            "the number of partitions must be between 1 and {MAX_PARTITIONS}"
        )));
    }
    let Some(before) = partitions_of(&state, &topic).await? else {
        return Err(ApiError::not_found(format!(
            "Partitioned topic {topic} does not exist"
        )));
    };
    if partitions <= before {
        return Err(ApiError::conflict(format!(
            "{topic} has {before} partitions: the number can only grow (asked for {partitions})"
        )));
    }
    let admin = state.topic_admin()?;
    let first = topic.with_partition(0);
    // A non-persistent topic's subscriptions live only with their consumers: none to copy.
    let listed = match domain {
        TopicDomain::NonPersistent => Ok(Vec::new()),
        TopicDomain::Persistent => admin.list_subscriptions(&first).await,
    };
    let subscriptions = match listed {
        Ok(names) => names,
        Err(e) if e.status == StatusCode::NOT_FOUND => Vec::new(),
        Err(e) => return Err(e),
    };
    for i in before..partitions {
        let partition = topic.with_partition(i);
        if subscriptions.is_empty() {
            continue;
        }
        match admin.create_topic(&partition).await {
            Err(e) if e.status != StatusCode::CONFLICT => return Err(e),
            _ => {}
        }
        for subscription in &subscriptions {
            match admin
                .create_subscription(&partition, subscription, CursorPosition::Earliest)
                .await
            {
                Err(e) if e.status != StatusCode::CONFLICT => return Err(e),
                _ => {}
            }
        }
    }
    state
        .resources()
        .topics
        .update_partitioned(&topic, |metadata| {
            if partitions <= metadata.partitions {
                return Err(crate::resources::ResourceError::Conflict(format!(
                    "{topic} has {} partitions: the number can only grow",
                    metadata.partitions
                )));
            }
            metadata.partitions = partitions;
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Unload a topic from the broker that serves it: its ledger is sealed, its cursors flushed,
/// and its clients reconnect (to the same broker, which loads it again, unless the bundle
/// moved). 307 to the owner.
#[utoipa::path(put, path = "/persistent/{tenant}/{namespace}/{topic}/unload", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    responses(
        (status = 204, description = "Unloaded"),
        (status = 307, description = "Another broker serves the topic"),
        (status = 404, description = "No such topic", body = ErrorBody)))]
async fn unload_topic(
    a0: State<AdminState>,
    a1: Principal,
    a2: TopicPath,
) -> Result<StatusCode, ApiError> {
    unload_topic_in(a0, a1, a2, TopicDomain::Persistent).await
}

pub(super) async fn unload_topic_in(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
    domain: TopicDomain,
) -> Result<StatusCode, ApiError> {
    let topic = topic_name_in(&state, &principal, path, domain).await?;
    let admin = state.topic_admin()?;
    match partitions_of(&state, &topic).await? {
        Some(n) => {
            for i in 0..n {
                match admin.unload_topic(&topic.with_partition(i)).await {
                    Err(e) if e.status != StatusCode::NOT_FOUND => return Err(e),
                    _ => {}
                }
            }
        }
        None => admin.unload_topic(&topic).await?,
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Delete a partitioned topic and all its partitions.
#[utoipa::path(delete, path = "/persistent/{tenant}/{namespace}/{topic}/partitions", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path), ForceDelete),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such partitioned topic", body = ErrorBody),
        (status = 412, description = "A partition is in use", body = ErrorBody)))]
async fn delete_partitioned_topic(
    a0: State<AdminState>,
    a1: Principal,
    a2: TopicPath,
    a3: ApiQuery<ForceDelete>,
) -> Result<StatusCode, ApiError> {
    delete_partitioned_topic_in(a0, a1, a2, a3, TopicDomain::Persistent).await
}

pub(super) async fn delete_partitioned_topic_in(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
    ApiQuery(query): ApiQuery<ForceDelete>,
    domain: TopicDomain,
) -> Result<StatusCode, ApiError> {
    let topic = topic_name_in(&state, &principal, path, domain).await?;
    let Some(partitions) = partitions_of(&state, &topic).await? else {
        return Err(ApiError::not_found(format!(
            "Partitioned topic {topic} does not exist"
        )));
    };
    let admin = state.topic_admin()?;
    for i in 0..partitions {
        match admin
            .delete_topic(&topic.with_partition(i), query.force)
            .await
        {
            Err(e) if e.status != StatusCode::NOT_FOUND => return Err(e),
            _ => {}
        }
    }
    state.resources().topics.delete_partitioned(&topic).await?;
    forget_policies(&state, &topic).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stats of a topic or partition: rates, counters, storage, publishers, subscriptions.
#[utoipa::path(get, path = "/persistent/{tenant}/{namespace}/{topic}/stats", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    responses(
        (status = 200, description = "Pulsar's TopicStats", body = Object),
        (status = 404, description = "No such topic", body = ErrorBody)))]
async fn topic_stats(
    a0: State<AdminState>,
    a1: Principal,
    a2: TopicPath,
) -> Result<Json<Value>, ApiError> {
    topic_stats_in(a0, a1, a2, TopicDomain::Persistent).await
}

pub(super) async fn topic_stats_in(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
    domain: TopicDomain,
) -> Result<Json<Value>, ApiError> {
    let topic = topic_name_in(&state, &principal, path, domain).await?;
    Ok(Json(state.topic_admin()?.topic_stats(&topic).await?))
}

/// Counters summed over the partitions of a partitioned topic, and each partition's stats.
#[utoipa::path(get, path = "/persistent/{tenant}/{namespace}/{topic}/partitioned-stats", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    responses(
        (status = 200, description = "Pulsar's PartitionedTopicStats", body = Object),
        (status = 404, description = "No such partitioned topic", body = ErrorBody)))]
async fn partitioned_stats(
    a0: State<AdminState>,
    a1: Principal,
    a2: TopicPath,
) -> Result<Json<Value>, ApiError> {
    partitioned_stats_in(a0, a1, a2, TopicDomain::Persistent).await
}

pub(super) async fn partitioned_stats_in(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
    domain: TopicDomain,
) -> Result<Json<Value>, ApiError> {
    let topic = topic_name_in(&state, &principal, path, domain).await?;
    let Some(partitions) = partitions_of(&state, &topic).await? else {
        return Err(ApiError::not_found(format!(
            "Partitioned topic {topic} does not exist"
        )));
    };
    let admin = state.topic_admin()?;
    let mut total = Value::Object(Map::new());
    let mut per_partition = Map::new();
    for i in 0..partitions {
        let partition = topic.with_partition(i);
        let stats = admin.topic_stats(&partition).await?;
        merge_stats(&mut total, &stats);
        per_partition.insert(partition.to_string(), stats);
    }
    let Value::Object(mut total) = total else {
        unreachable!("stats merge into an object");
    };
    total.insert(
        "metadata".into(),
        serde_json::json!({ "partitions": partitions }),
    );
    total.insert("partitions".into(), Value::Object(per_partition));
    Ok(Json(Value::Object(total)))
}

/// Internal stats of a topic: its ledgers and cursors.
#[utoipa::path(get, path = "/persistent/{tenant}/{namespace}/{topic}/internalStats", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    responses(
        (status = 200, description = "Pulsar's PersistentTopicInternalStats", body = Object),
        (status = 404, description = "No such topic", body = ErrorBody)))]
async fn internal_stats(
    a0: State<AdminState>,
    a1: Principal,
    a2: TopicPath,
) -> Result<Json<Value>, ApiError> {
    internal_stats_in(a0, a1, a2, TopicDomain::Persistent).await
}

pub(super) async fn internal_stats_in(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
    domain: TopicDomain,
) -> Result<Json<Value>, ApiError> {
    let topic = topic_name_in(&state, &principal, path, domain).await?;
    Ok(Json(state.topic_admin()?.internal_stats(&topic).await?))
}
