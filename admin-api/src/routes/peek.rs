//! Reading stored messages without consuming them, as Pulsar's admin API does:
//! `GET …/subscription/{sub}/position/{n}` (the n-th entry of a subscription's backlog, what
//! `pulsar-admin topics peek-messages` reads) and `GET …/examinemessage?initialPosition=
//! earliest|latest&messagePosition=n`. The body is the entry's payload, decompressed; the
//! message's metadata travels in `X-Pulsar-*` headers. Superuser or tenant admin.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use magnetar_protocol::topic::TopicName;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::topics::{TopicPath, partitions_of, topic_name};
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery, Principal};
use crate::models::ErrorBody;
use crate::state::AdminState;
use crate::topic_admin::{PeekFrom, PeekedEntry};

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(peek))
        .routes(routes!(examine))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(super) struct ExamineQuery {
    /// `earliest` (count from the first message) or `latest` (back from the last).
    #[serde(default = "latest")]
    initial_position: String,
    /// 1 for the first (or last) message.
    #[serde(default = "one")]
    message_position: u64,
}

fn latest() -> String {
    "latest".into()
}

fn one() -> u64 {
    1
}

/// The n-th message (from 1) of a subscription's backlog, without consuming it.
#[utoipa::path(get, path = "/persistent/{tenant}/{namespace}/{topic}/subscription/{subscription}/position/{messagePosition}", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path),
        ("subscription" = String, Path), ("messagePosition" = u64, Path)),
    responses(
        (status = 200, description = "The payload; metadata in X-Pulsar-* headers", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, description = "No such topic or subscription, or no message there", body = ErrorBody),
        (status = 405, description = "Not on a partitioned topic (peek a partition)", body = ErrorBody),
        (status = 412, description = "A position below 1", body = ErrorBody)))]
async fn peek(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath((tenant, namespace, topic, subscription, n)): ApiPath<(
        String,
        String,
        String,
        String,
        u64,
    )>,
) -> Result<Response, ApiError> {
    let topic = topic_name(&state, &principal, (tenant, namespace, topic)).await?;
    refuse_partitioned(&state, &topic, "Peek messages").await?;
    if n == 0 {
        return Err(ApiError::precondition_failed("messagePosition starts at 1"));
    }
    let entry = state
        .topic_admin()?
        .peek_entry(&topic, PeekFrom::Subscription(subscription), n)
        .await?;
    Ok(response(entry))
}

/// A message counted from the first (`earliest`) or back from the last (`latest`) one.
#[utoipa::path(get, path = "/persistent/{tenant}/{namespace}/{topic}/examinemessage", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path), ExamineQuery),
    responses(
        (status = 200, description = "The payload; metadata in X-Pulsar-* headers", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, description = "No such topic, or no message there", body = ErrorBody),
        (status = 405, description = "Not on a partitioned topic", body = ErrorBody),
        (status = 412, description = "A position below 1 or an unknown initialPosition", body = ErrorBody)))]
async fn examine(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
    ApiQuery(query): ApiQuery<ExamineQuery>,
) -> Result<Response, ApiError> {
    let topic = topic_name(&state, &principal, path).await?;
    refuse_partitioned(&state, &topic, "Examine message").await?;
    let from = match query.initial_position.to_ascii_lowercase().as_str() {
        "earliest" => PeekFrom::Earliest,
        "latest" => PeekFrom::Latest,
        other => {
            return Err(ApiError::precondition_failed(format!(
                "initialPosition is earliest or latest, not {other:?}"
            )));
        }
    };
    if query.message_position == 0 {
        return Err(ApiError::precondition_failed("messagePosition starts at 1"));
    }
    let entry = state
        .topic_admin()?
        .peek_entry(&topic, from, query.message_position)
        .await?;
    Ok(response(entry))
}

/// 405 on a partitioned topic: one of its partitions is to be named.
async fn refuse_partitioned(
    state: &AdminState,
    topic: &TopicName,
    what: &str,
) -> Result<(), ApiError> {
    match partitions_of(state, topic).await? {
        Some(_) => Err(ApiError::not_allowed(format!(
            "{what} on a partitioned topic is not allowed: name one of its partitions"
        ))),
        None => Ok(()),
    }
}

/// The payload with Pulsar's `X-Pulsar-*` headers.
pub(super) fn response(entry: PeekedEntry) -> Response {
    let m = &entry.metadata;
    let mut headers: Vec<(String, String)> = vec![
        (
            "X-Pulsar-Message-ID".into(),
            format!("{}:{}", entry.ledger_id, entry.entry_id),
        ),
        ("X-Pulsar-publish-time".into(), m.publish_time.to_string()),
        ("X-Pulsar-producer-name".into(), m.producer_name.clone()),
        ("X-Pulsar-sequence-id".into(), m.sequence_id.to_string()),
    ];
    let mut optional = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            headers.push((name.to_string(), value));
        }
    };
    optional(
        "X-Pulsar-event-time",
        m.event_time.filter(|t| *t > 0).map(|t| t.to_string()),
    );
    optional(
        "X-Pulsar-deliver-at-time",
        m.deliver_at_time.map(|t| t.to_string()),
    );
    optional("X-Pulsar-partition-key", m.partition_key.clone());
    optional(
        "X-Pulsar-num-batch-message",
        m.num_messages_in_batch.map(|n| n.to_string()),
    );
    optional(
        "X-Pulsar-batch-size",
        m.num_messages_in_batch
            .map(|_| entry.payload.len().to_string()),
    );
    optional("X-Pulsar-null-value", m.null_value.map(|v| v.to_string()));
    optional("X-Pulsar-replicated-from", m.replicated_from.clone());
    optional("X-Pulsar-uuid", m.uuid.clone());
    optional("X-Pulsar-chunk-id", m.chunk_id.map(|v| v.to_string()));
    optional(
        "X-Pulsar-num-chunks-from-msg",
        m.num_chunks_from_msg.map(|v| v.to_string()),
    );
    optional(
        "X-Pulsar-schema-version",
        m.schema_version.as_ref().map(|v| {
            <[u8; 8]>::try_from(v.as_slice())
                .map_or_else(|_| format!("{v:?}"), |b| u64::from_be_bytes(b).to_string())
        }),
    );
    optional(
        "X-Pulsar-Is-Encrypted",
        (!m.encryption_keys.is_empty()).then(|| "true".to_string()),
    );
    for kv in &m.properties {
        headers.push((format!("X-Pulsar-PROPERTY-{}", kv.key), kv.value.clone()));
    }
    let mut response = Response::new(Body::from(entry.payload));
    let map = response.headers_mut();
    map.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    for (name, value) in headers {
        // A property whose name or value cannot be a header is left out rather than failing.
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            map.append(name, value);
        }
    }
    *response.status_mut() = StatusCode::OK;
    response
}
