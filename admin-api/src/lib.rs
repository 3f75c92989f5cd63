//! Magnetar's admin REST API v2, served by every broker (HTTP 8080): Pulsar's paths, JSON
//! bodies and status codes, so `pulsar-admin`, `curl` scripts and `magnetar admin` all work.
//!
//! - [`models`]: the JSON bodies (Pulsar's field names), shared with the admin client;
//! - [`resources`]: typed, compare-and-set access to clusters, tenants, namespace policies and
//!   partitioned topic metadata in the metadata service; the broker reads policies through it;
//! - [`routes`]: the axum router (`/admin/v2/...`) with bearer-token authentication and
//!   per-route authorization, and its OpenAPI document at `/admin/v2/openapi.json`;
//!   [`broker_routes`] adds the topic, subscription, broker and lookup routes a broker serves;
//! - [`TopicAdmin`]: the trait through which broker-backed routes (topics, subscriptions,
//!   lookup, brokers) reach the broker, attached with [`AdminState::with_topic_admin`].
//!
//! ```text
//! let state = AdminState::new(Resources::new(metadata), authn, authz, AdminSettings::default())
//!     .with_topic_admin(broker_topics);
//! let app = magnetar_admin_api::router_with(state, broker_routes())      // OpenApiRouter
//!     .merge(metrics_router);                                               // unauthenticated
//! axum::serve(listener, app).await?;
//! ```

pub mod error;
pub mod extract;
pub mod keys;
pub mod models;
pub mod names;
pub mod resources;
pub mod routes;
pub mod state;
pub mod topic_admin;

pub use error::ApiError;
pub use extract::{ApiJson, ApiPath, ApiQuery, OptionalJson, Principal};
pub use names::{NameError, NamespaceName};
pub use resources::{ResourceError, Resources};
pub use routes::{OPENAPI_PATH, admin_routes, broker_routes, openapi, router, router_with};
pub use state::{AdminSettings, AdminState};
pub use topic_admin::{CursorPosition, PeekFrom, PeekedEntry, TopicAdmin};
pub use utoipa_axum::router::OpenApiRouter;

use std::net::SocketAddr;

use tokio::net::TcpListener;

/// Serves `app` on `listener` until `shutdown` resolves; for tests and embedding.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds `addr` and reports the bound address (port 0 picks one).
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}
