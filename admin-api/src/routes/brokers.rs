//! The HTTP lookup (`/lookup/v2/topic/{domain}/{tenant}/{namespace}/{topic}`, for clients given
//! an `http://` service URL) and the broker routes (`/admin/v2/brokers/...`: active brokers and
//! the leader, the health check). Lookup is allowed to roles that may produce or consume on the topic;
//! the broker routes need a superuser.

use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use magnetar_auth::TopicOperation;
use magnetar_protocol::topic::TopicName;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery, Principal};
use crate::models::{ErrorBody, LeaderBroker, LookupData};
use crate::names::NamespaceName;
use crate::state::AdminState;

/// `?authoritative=true`: the broker was chosen to serve and must not redirect again.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuthoritativeQuery {
    pub authoritative: Option<bool>,
}

/// Routes relative to `/admin/v2`.
pub(super) fn admin_routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(active_brokers))
        .routes(routes!(health_check))
        .routes(routes!(leader_broker))
}

/// Routes with absolute paths.
pub(super) fn lookup_routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(lookup))
}

/// Where a topic is served: the owning broker's URLs.
#[utoipa::path(get, path = "/lookup/v2/topic/{domain}/{tenant}/{namespace}/{topic}", tag = "lookup",
    params(("domain" = String, Path, description = "persistent or non-persistent"), ("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path), AuthoritativeQuery),
    responses(
        (status = 200, description = "The owner's URLs", body = LookupData),
        (status = 307, description = "Look up at the broker chosen to own the topic"),
        (status = 404, description = "No such namespace", body = ErrorBody),
        (status = 412, description = "Invalid topic name", body = ErrorBody)))]
async fn lookup(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath((domain, tenant, namespace, topic)): ApiPath<(String, String, String, String)>,
    ApiQuery(query): ApiQuery<AuthoritativeQuery>,
) -> Result<Json<LookupData>, ApiError> {
    if domain != "persistent" && domain != "non-persistent" {
        return Err(ApiError::precondition_failed(format!(
            "unsupported topic domain {domain:?}: persistent or non-persistent"
        )));
    }
    let ns = NamespaceName::new(&tenant, &namespace)?;
    if topic.is_empty() || topic.contains('/') {
        return Err(ApiError::precondition_failed(format!(
            "invalid topic name {topic:?}"
        )));
    }
    let name = TopicName::parse(&format!("{domain}://{ns}/{topic}"))
        .map_err(|e| ApiError::precondition_failed(e.to_string()))?;
    state.resources().namespaces.require(&ns).await?;
    state
        .authorize_topic(principal.role(), &name, TopicOperation::Lookup)
        .await?;
    Ok(Json(
        state
            .topic_admin()?
            .lookup(&name, query.authoritative.unwrap_or(false))
            .await?,
    ))
}

/// Active brokers of a cluster (`host:port` of their HTTP service).
#[utoipa::path(get, path = "/brokers/{cluster}", tag = "brokers",
    params(("cluster" = String, Path)),
    responses(
        (status = 200, description = "host:port of each broker", body = Vec<String>),
        (status = 404, description = "No such cluster", body = ErrorBody)))]
async fn active_brokers(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(cluster): ApiPath<String>,
) -> Result<Json<Vec<String>>, ApiError> {
    state.require_superuser(&principal)?;
    if !state.resources().clusters.exists(&cluster).await? {
        return Err(ApiError::not_found(format!(
            "Cluster {cluster} does not exist"
        )));
    }
    Ok(Json(state.topic_admin()?.active_brokers(&cluster).await?))
}

/// The broker that runs the cluster's elected duties (in Magnetar, the autorecovery auditor;
/// bundle placement and shedding need no leader); a lone broker is its own leader.
#[utoipa::path(get, path = "/brokers/leaderBroker", tag = "brokers",
    responses(
        (status = 200, description = "Pulsar's LeaderBroker", body = LeaderBroker),
        (status = 404, description = "No broker is elected", body = ErrorBody)))]
async fn leader_broker(
    State(state): State<AdminState>,
    principal: Principal,
) -> Result<Json<LeaderBroker>, ApiError> {
    state.require_superuser(&principal)?;
    Ok(Json(state.topic_admin()?.leader_broker().await?))
}

/// Whether this broker can serve: answers `ok`.
#[utoipa::path(get, path = "/brokers/health", tag = "brokers",
    responses(
        (status = 200, description = "Healthy", body = String, content_type = "text/plain"),
        (status = 503, description = "Not healthy", body = ErrorBody)))]
async fn health_check(
    State(state): State<AdminState>,
    principal: Principal,
) -> Result<impl IntoResponse, ApiError> {
    state.require_superuser(&principal)?;
    state.topic_admin()?.health_check().await?;
    Ok(([(CONTENT_TYPE, "text/plain")], "ok"))
}
