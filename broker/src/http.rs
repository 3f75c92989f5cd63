//! The broker's HTTP service (default 8080, HTTPS 8443): the admin REST API v2 with the broker's
//! topic, subscription, broker and lookup routes (all behind token authentication), and the
//! Prometheus metrics at `/metrics` (open, as in Pulsar).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admin::BrokerAdmin;
use crate::service::BrokerService;
use crate::tls::TlsListener;

/// Where the metrics are served.
pub const METRICS_PATH: &str = "/metrics";

/// The whole HTTP application of a broker.
pub fn router(service: Arc<BrokerService>) -> Router {
    let state = service
        .admin
        .clone()
        .with_topic_admin(Arc::new(BrokerAdmin::new(service.clone())));
    let metrics = Router::new()
        .route(METRICS_PATH, get(metrics))
        .with_state(service);
    magnetar_admin_api::router_with(state, magnetar_admin_api::broker_routes()).merge(metrics)
}

async fn metrics(State(service): State<Arc<BrokerService>>) -> impl IntoResponse {
    let text = service.metrics.render(&service.loaded_topics().await).await;
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
}

/// Serves `app` over plain HTTP until `cancel` fires.
pub async fn serve(listener: TcpListener, app: Router, cancel: CancellationToken) {
    let addr = listener.local_addr().ok();
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await
    {
        tracing::error!(?addr, error = %e, "the HTTP service stopped");
    }
}

/// Serves `app` over HTTPS until `cancel` fires.
pub async fn serve_tls(listener: TlsListener, app: Router, cancel: CancellationToken) {
    let addr = listener.local_addr();
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await
    {
        tracing::error!(%addr, error = %e, "the HTTPS service stopped");
    }
}
