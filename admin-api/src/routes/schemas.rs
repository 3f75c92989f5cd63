//! The schema registry over REST (`/admin/v2/schemas/{tenant}/{namespace}/{topic}/…`) and the
//! namespace's schema policies (`schemaCompatibilityStrategy`, `isAllowAutoUpdateSchema`,
//! `schemaValidationEnforced`). Superuser or tenant admin. Uploads through this API are checked
//! against the namespace's strategy but not held back by `isAllowAutoUpdateSchema`, which only
//! concerns producers.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use magnetar_protocol::TopicName;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::namespace_policies::{NsPath, read, update};
use super::topics::{TopicPath, topic_name};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, Principal};
use crate::models::{
    DeleteSchemaResponse, ErrorBody, GetAllVersionsSchemaResponse, GetSchemaResponse,
    IsCompatibilityResponse, LongSchemaVersion, PostSchemaPayload, PostSchemaResponse,
    SchemaCompatibilityStrategy, schema_type_name, schema_type_number,
};
use crate::names::NamespaceName;
use crate::resources::schema_compat::SchemaError;
use crate::resources::{SchemaRegistryError, StoredSchema};
use crate::state::AdminState;

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(get_schema, post_schema, delete_schema))
        .routes(routes!(get_schema_version))
        .routes(routes!(get_all_schemas))
        .routes(routes!(check_compatibility))
        .routes(routes!(schema_version_of))
        .routes(routes!(get_strategy, put_strategy))
        .routes(routes!(get_auto_update, set_auto_update))
        .routes(routes!(get_validation_enforced, set_validation_enforced))
}

impl From<SchemaRegistryError> for ApiError {
    fn from(e: SchemaRegistryError) -> ApiError {
        match e {
            SchemaRegistryError::Schema(SchemaError::Incompatible(m)) => {
                ApiError::conflict(format!("incompatible schema: {m}"))
            }
            SchemaRegistryError::Schema(SchemaError::Invalid(m)) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("invalid schema definition: {m}"),
            ),
            SchemaRegistryError::TooLarge(m) => ApiError::precondition_failed(m),
            SchemaRegistryError::Resource(e) => e.into(),
        }
    }
}

/// The namespace's strategy, as the registry applies it.
async fn namespace_strategy(
    state: &AdminState,
    topic: &TopicName,
) -> Result<SchemaCompatibilityStrategy, ApiError> {
    let ns = NamespaceName {
        tenant: topic.tenant().into(),
        namespace: topic.namespace_local().into(),
    };
    Ok(state
        .resources()
        .namespaces
        .require(&ns)
        .await?
        .schema_compatibility_strategy)
}

fn from_payload(payload: PostSchemaPayload) -> Result<StoredSchema, ApiError> {
    let kind = schema_type_number(&payload.kind).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("unknown schema type {:?}", payload.kind),
        )
    })?;
    if kind == 15 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "KEY_VALUE schemas are registered by producers, not uploaded",
        ));
    }
    Ok(StoredSchema {
        name: String::new(),
        kind,
        data: payload.schema.into_bytes(),
        properties: payload.properties.into_iter().collect(),
        ..StoredSchema::default()
    })
}

fn response(version: u64, schema: StoredSchema) -> GetSchemaResponse {
    GetSchemaResponse {
        version,
        kind: schema_type_name(schema.kind).into(),
        timestamp: schema.timestamp,
        data: String::from_utf8_lossy(&schema.data).into_owned(),
        properties: schema.properties_map(),
    }
}

/// The latest schema of the topic; 404 when it has none (or it was deleted).
#[utoipa::path(get, path = "/schemas/{tenant}/{namespace}/{topic}/schema", tag = "schemas",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    responses(
        (status = 200, description = "The latest version", body = GetSchemaResponse),
        (status = 404, description = "No schema, or no such namespace", body = ErrorBody)))]
async fn get_schema(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
) -> Result<Json<GetSchemaResponse>, ApiError> {
    let topic = topic_name(&state, &principal, path).await?;
    match state.resources().schemas.latest(&topic).await? {
        Some((version, schema)) => Ok(Json(response(version, schema))),
        None => Err(ApiError::not_found("Schema not found")),
    }
}

/// One version of the topic's schema.
#[utoipa::path(get, path = "/schemas/{tenant}/{namespace}/{topic}/schema/{version}", tag = "schemas",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path),
        ("version" = u64, Path)),
    responses(
        (status = 200, description = "That version", body = GetSchemaResponse),
        (status = 404, description = "No such version", body = ErrorBody)))]
async fn get_schema_version(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath((tenant, namespace, topic, version)): ApiPath<(String, String, String, u64)>,
) -> Result<Json<GetSchemaResponse>, ApiError> {
    let topic = topic_name(&state, &principal, (tenant, namespace, topic)).await?;
    match state.resources().schemas.version(&topic, version).await? {
        Some(schema) => Ok(Json(response(version, schema))),
        None => Err(ApiError::not_found(format!(
            "Schema version {version} not found"
        ))),
    }
}

/// Every live version of the topic's schema (those since the last deletion), oldest first.
#[utoipa::path(get, path = "/schemas/{tenant}/{namespace}/{topic}/schemas", tag = "schemas",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    responses(
        (status = 200, description = "The versions", body = GetAllVersionsSchemaResponse),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn get_all_schemas(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
) -> Result<Json<GetAllVersionsSchemaResponse>, ApiError> {
    let topic = topic_name(&state, &principal, path).await?;
    let live = state.resources().schemas.live(&topic).await?;
    Ok(Json(GetAllVersionsSchemaResponse {
        get_schema_responses: live.into_iter().map(|(v, s)| response(v, s)).collect(),
    }))
}

/// Upload a schema: its version if an equal one exists, else a new version if it is compatible
/// with the existing ones under the namespace's strategy.
#[utoipa::path(post, path = "/schemas/{tenant}/{namespace}/{topic}/schema", tag = "schemas",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    request_body = PostSchemaPayload,
    responses(
        (status = 200, description = "The schema's version", body = PostSchemaResponse),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such namespace", body = ErrorBody),
        (status = 409, description = "Incompatible with the existing versions", body = ErrorBody),
        (status = 412, description = "Over the size or version limit", body = ErrorBody),
        (status = 422, description = "Invalid schema definition or type", body = ErrorBody)))]
async fn post_schema(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
    ApiJson(payload): ApiJson<PostSchemaPayload>,
) -> Result<Json<PostSchemaResponse>, ApiError> {
    let topic = topic_name(&state, &principal, path).await?;
    let schema = from_payload(payload)?;
    let strategy = namespace_strategy(&state, &topic).await?;
    let version = state
        .resources()
        .schemas
        .put_if_absent(&topic, &schema, strategy, state.settings().schema_limits)
        .await?;
    Ok(Json(PostSchemaResponse {
        version: LongSchemaVersion { version },
    }))
}

/// Delete the topic's schema: a deletion marker is added, and the next schema starts afresh.
#[utoipa::path(delete, path = "/schemas/{tenant}/{namespace}/{topic}/schema", tag = "schemas",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    responses(
        (status = 200, description = "The version of the deletion marker", body = DeleteSchemaResponse),
        (status = 404, description = "No schema", body = ErrorBody)))]
async fn delete_schema(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
) -> Result<Json<DeleteSchemaResponse>, ApiError> {
    let topic = topic_name(&state, &principal, path).await?;
    match state.resources().schemas.delete(&topic).await? {
        Some(version) => Ok(Json(DeleteSchemaResponse { version })),
        None => Err(ApiError::not_found("Schema not found")),
    }
}

/// Whether a schema could be uploaded now, under the namespace's strategy.
#[utoipa::path(post, path = "/schemas/{tenant}/{namespace}/{topic}/compatibility", tag = "schemas",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    request_body = PostSchemaPayload,
    responses(
        (status = 200, description = "The answer and the strategy", body = IsCompatibilityResponse),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such namespace", body = ErrorBody),
        (status = 422, description = "Invalid schema definition or type", body = ErrorBody)))]
async fn check_compatibility(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
    ApiJson(payload): ApiJson<PostSchemaPayload>,
) -> Result<Json<IsCompatibilityResponse>, ApiError> {
    let topic = topic_name(&state, &principal, path).await?;
    let schema = from_payload(payload)?;
    let strategy = namespace_strategy(&state, &topic).await?;
    let compatibility = match state
        .resources()
        .schemas
        .check(&topic, &schema, strategy)
        .await
    {
        Ok(()) => true,
        Err(SchemaRegistryError::Schema(SchemaError::Incompatible(_))) => false,
        Err(e) => return Err(e.into()),
    };
    Ok(Json(IsCompatibilityResponse {
        compatibility,
        schema_compatibility_strategy: strategy.effective(),
    }))
}

/// The version number of an existing schema; 404 if no live version equals it.
#[utoipa::path(post, path = "/schemas/{tenant}/{namespace}/{topic}/version", tag = "schemas",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    request_body = PostSchemaPayload,
    responses(
        (status = 200, description = "Its version", body = LongSchemaVersion),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "Not registered, or no such namespace", body = ErrorBody),
        (status = 422, description = "Invalid schema type", body = ErrorBody)))]
async fn schema_version_of(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
    ApiJson(payload): ApiJson<PostSchemaPayload>,
) -> Result<Json<LongSchemaVersion>, ApiError> {
    let topic = topic_name(&state, &principal, path).await?;
    let schema = from_payload(payload)?;
    match state.resources().schemas.find(&topic, &schema).await? {
        Some(version) => Ok(Json(LongSchemaVersion { version })),
        None => Err(ApiError::not_found("Schema not found")),
    }
}

/// The namespace's schema compatibility strategy (`UNDEFINED`: the broker's default, `FULL`).
#[utoipa::path(get, path = "/namespaces/{tenant}/{namespace}/schemaCompatibilityStrategy", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses(
        (status = 200, description = "The strategy", body = SchemaCompatibilityStrategy),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn get_strategy(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): NsPath,
) -> Result<Json<SchemaCompatibilityStrategy>, ApiError> {
    Ok(Json(
        read(&state, &principal, path)
            .await?
            .schema_compatibility_strategy,
    ))
}

/// Set the namespace's schema compatibility strategy (a JSON string such as `"BACKWARD"`).
#[utoipa::path(put, path = "/namespaces/{tenant}/{namespace}/schemaCompatibilityStrategy", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    request_body = SchemaCompatibilityStrategy,
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "Not a strategy", body = ErrorBody),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn put_strategy(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): NsPath,
    ApiJson(strategy): ApiJson<SchemaCompatibilityStrategy>,
) -> Result<StatusCode, ApiError> {
    update(&state, &principal, path, |p| {
        p.schema_compatibility_strategy = strategy;
        Ok(())
    })
    .await
}

/// Whether producers may add schema versions (true unless turned off).
#[utoipa::path(get, path = "/namespaces/{tenant}/{namespace}/isAllowAutoUpdateSchema", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses(
        (status = 200, description = "The setting", body = bool),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn get_auto_update(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): NsPath,
) -> Result<Json<bool>, ApiError> {
    let policies = read(&state, &principal, path).await?;
    Ok(Json(policies.is_allow_auto_update_schema.unwrap_or(true)))
}

/// Allow or forbid producers to add schema versions (a JSON boolean).
#[utoipa::path(post, path = "/namespaces/{tenant}/{namespace}/isAllowAutoUpdateSchema", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    request_body(content = bool, content_type = "application/json"),
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "Not a boolean", body = ErrorBody),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn set_auto_update(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): NsPath,
    ApiJson(allow): ApiJson<bool>,
) -> Result<StatusCode, ApiError> {
    update(&state, &principal, path, |p| {
        p.is_allow_auto_update_schema = Some(allow);
        Ok(())
    })
    .await
}

/// Whether producers without a schema are refused on topics that have one (false by default).
#[utoipa::path(get, path = "/namespaces/{tenant}/{namespace}/schemaValidationEnforced", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    responses(
        (status = 200, description = "The setting", body = bool),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn get_validation_enforced(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): NsPath,
) -> Result<Json<bool>, ApiError> {
    let policies = read(&state, &principal, path).await?;
    Ok(Json(policies.schema_validation_enforced))
}

/// Refuse (true) or accept (false) producers without a schema on topics that have one.
#[utoipa::path(post, path = "/namespaces/{tenant}/{namespace}/schemaValidationEnforced", tag = "namespaces",
    params(("tenant" = String, Path), ("namespace" = String, Path)),
    request_body(content = bool, content_type = "application/json"),
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "Not a boolean", body = ErrorBody),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn set_validation_enforced(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): NsPath,
    ApiJson(enforced): ApiJson<bool>,
) -> Result<StatusCode, ApiError> {
    update(&state, &principal, path, |p| {
        p.schema_validation_enforced = enforced;
        Ok(())
    })
    .await
}
