//! The router: Pulsar's admin REST v2 paths under `/admin/v2`, each route documented with
//! utoipa so that the OpenAPI document (served at `/admin/v2/openapi.json`) is built from the
//! very handlers that serve the requests.
//!
//! Composition: [`router`] serves the routes of this crate; [`router_with`] also takes an
//! [`OpenApiRouter`] of extra routes (the broker's topic, lookup and broker routes, with
//! absolute paths) which then share the state, the authentication middleware and the document.
//! Routes that must stay outside authentication (`/metrics`) are merged by the caller into the
//! returned `axum::Router` with `Router::merge`. No fallback is set, so merging never clashes.

mod brokers;
mod bundles;
mod clusters;
mod compaction;
mod namespace_policies;
mod namespaces;
mod non_persistent;
mod offload;
mod peek;
mod permissions;
mod schemas;
mod stats_merge;
mod subscriptions;
mod tenants;
mod topic_policies;
mod topics;

use axum::Router;
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as OpenApiDoc, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::state::{AdminState, authenticate};

/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/admin/v2/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Magnetar admin REST API",
        description = "Pulsar-compatible admin API v2: clusters, tenants, namespaces and their policies."
    ),
    security(("token" = [])),
    tags(
        (name = "clusters", description = "Clusters (superuser only)"),
        (name = "tenants", description = "Tenants (superuser; tenant admins may read their own)"),
        (name = "namespaces", description = "Namespaces and their policies (superuser or tenant admin)"),
        (name = "topics", description = "Persistent topics and their subscriptions (superuser or tenant admin; served by brokers)"),
        (name = "lookup", description = "Which broker serves a topic (roles that may produce or consume)"),
        (name = "brokers", description = "Active brokers and the health check (superuser)"),
    )
)]
struct ApiDoc;

/// Adds the bearer-token scheme and the 400/401/403 answers every route can give.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        let error = |description: &str| -> RefOr<Response> {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
                .into()
        };
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                op.responses
                    .responses
                    .entry("401".into())
                    .or_insert_with(|| error("No or invalid token"));
                op.responses
                    .responses
                    .entry("403".into())
                    .or_insert_with(|| error("The role may not do this"));
            }
        }
    }
}

/// This crate's routes, relative to `/admin/v2`.
pub fn admin_routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .merge(clusters::routes())
        .merge(tenants::routes())
        .merge(namespaces::routes())
        .merge(namespace_policies::routes())
        .merge(offload::namespace_routes())
        .merge(permissions::routes())
        .merge(schemas::routes())
}

/// The routes that need a broker behind the [`TopicAdmin`](crate::TopicAdmin), with absolute
/// paths: topics and subscriptions (`/admin/v2/persistent/...`, `/admin/v2/namespaces/{t}/{ns}/topics`),
/// brokers (`/admin/v2/brokers/...`) and the HTTP lookup (`/lookup/v2/...`). A broker passes
/// them (plus any of its own) to [`router_with`].
pub fn broker_routes() -> OpenApiRouter<AdminState> {
    let admin = OpenApiRouter::new()
        .merge(topics::routes())
        .merge(non_persistent::routes())
        .merge(subscriptions::routes())
        .merge(peek::routes())
        .merge(compaction::routes())
        .merge(offload::topic_routes())
        .merge(topic_policies::routes())
        .merge(bundles::routes())
        .merge(brokers::admin_routes());
    OpenApiRouter::new()
        .nest("/admin/v2", admin)
        .merge(brokers::lookup_routes())
}

fn build(extra: OpenApiRouter<AdminState>) -> (Router<AdminState>, OpenApiDoc) {
    let (routes, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/admin/v2", admin_routes())
        .merge(extra)
        .split_for_parts();
    // After the merge, so that every route gets the security answers.
    Security.modify(&mut doc);
    (routes, doc)
}

/// The OpenAPI document of this crate's routes.
pub fn openapi() -> OpenApiDoc {
    build(OpenApiRouter::new()).1
}

/// The admin API with this crate's routes.
pub fn router(state: AdminState) -> Router {
    router_with(state, OpenApiRouter::new())
}

/// The admin API plus `extra` routes (absolute paths), all behind authentication and all in the
/// OpenAPI document. The document itself is served without authentication.
pub fn router_with(state: AdminState, extra: OpenApiRouter<AdminState>) -> Router {
    let (routes, doc) = build(extra);
    let json = doc
        .to_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    routes
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ))
        .layer(axum::middleware::from_fn(complete_redirect))
        .route(
            OPENAPI_PATH,
            get(move || {
                let json = json.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        json,
                    )
                }
            }),
        )
        .with_state(state)
}

/// Turns a handler's [`ApiError::redirect`] into a `Location` on the other broker: the same
/// path and query, with `authoritative=true` (the target must serve, never redirect again).
async fn complete_redirect(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let path = request.uri().path().to_string();
    let query = request.uri().query().map(str::to_string);
    let mut response = next.run(request).await;
    let Some(base) = response
        .headers_mut()
        .remove(crate::error::REDIRECT_BASE_HEADER)
    else {
        return response;
    };
    let base = base.to_str().unwrap_or_default().trim_end_matches('/');
    let mut pairs: Vec<String> = query
        .iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty() && !p.starts_with("authoritative="))
        .map(str::to_string)
        .collect();
    pairs.push("authoritative=true".into());
    let location = format!("{base}{path}?{}", pairs.join("&"));
    if let Ok(value) = axum::http::HeaderValue::from_str(&location) {
        response
            .headers_mut()
            .insert(axum::http::header::LOCATION, value);
    }
    response
}
