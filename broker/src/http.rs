//! The broker's HTTP service (default 8080, HTTPS 8443): the admin REST API v2 with the broker's
//! topic, subscription, broker and lookup routes (all behind token authentication), the
//! Prometheus metrics at `/metrics` (open, as in Pulsar), and `/health/live` and
//! `/health/ready` for probes (open), and the web console at `/console` ([`crate::console`]:
//! its pages are open, everything it shows comes through the authenticated admin API).
//!
//! Served by hyper directly so that a slow or idle client cannot hold the service: request
//! headers must arrive within `limits.http_header_read_timeout_ms`, a request must be answered
//! within `http_request_timeout_ms` (408 otherwise), a body may hold at most
//! `http_max_request_bytes` (413), and at most `http_max_connections` connections are served at
//! once (others are closed at accept).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::admin::BrokerAdmin;
use crate::limits::{GuardMetrics, Limits};
use crate::service::BrokerService;

/// Where the metrics are served.
pub const METRICS_PATH: &str = "/metrics";

/// How long connections may take to finish their requests at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The whole HTTP application of a broker, with its body-size and request-time limits.
pub fn router(service: Arc<BrokerService>) -> Router {
    let limits = service.ctx().config.limits.clone();
    let service_tls = service.ctx().config.tls.clone();
    let state = service
        .ctx()
        .admin
        .clone()
        .with_topic_admin(Arc::new(BrokerAdmin::new(service.clone())));
    let metrics = Router::new()
        .route(METRICS_PATH, get(metrics))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(service);
    let admin = magnetar_admin_api::router_with(state, magnetar_admin_api::broker_routes());
    let console = crate::console::routes(admin.clone(), &service_tls);
    admin
        .merge(metrics)
        .merge(console)
        .layer(DefaultBodyLimit::max(limits.http_max_request_bytes))
        .layer(RequestBodyLimitLayer::new(limits.http_max_request_bytes))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(limits.http_request_timeout_ms.max(1)),
        ))
}

async fn metrics(State(service): State<Arc<BrokerService>>) -> impl IntoResponse {
    let metrics = &service.ctx().metrics;
    let non_persistent = service
        .loaded_np_topics()
        .iter()
        .map(|topic| crate::non_persistent::snapshot(topic, &metrics.rates))
        .collect();
    let text = metrics
        .render(&service.loaded_topics().await, non_persistent)
        .await;
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
}

async fn live() -> &'static str {
    "alive\n"
}

/// Ready when the broker's registration is visible and the metadata service answers a read
/// of it within 2 s: lookups and topic loads can then succeed.
async fn ready(State(service): State<Arc<BrokerService>>) -> axum::response::Response {
    let namespaces = &service.ctx().namespaces;
    let me = namespaces.broker_id();
    let check = if !namespaces.live_brokers().iter().any(|b| b.broker_id == me) {
        Err(format!(
            "broker {me} is not registered in the metadata service"
        ))
    } else {
        let key = magnetar_admin_api::keys::broker(me);
        match tokio::time::timeout(Duration::from_secs(2), service.ctx().metadata.get(&key)).await {
            Ok(Ok(Some(_))) => Ok(()),
            Ok(Ok(None)) => Err(format!("the registration of broker {me} is gone")),
            Ok(Err(e)) => Err(format!("metadata service: {e}")),
            Err(_) => Err("the metadata service did not answer within 2 s".into()),
        }
    };
    crate::role_http::ready_response(check)
}

/// Serves `app` on `listener` (plain TCP or TLS) until `cancel` fires, within `limits`.
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    limits: &Limits,
    guards: GuardMetrics,
    cancel: CancellationToken,
) where
    L: axum::serve::Listener,
    L::Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let connections = Arc::new(Semaphore::new(limits.http_max_connections));
    let header_timeout = Duration::from_millis(limits.http_header_read_timeout_ms.max(1));
    let graceful = GracefulShutdown::new();
    loop {
        let (io, _peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            guards.refused("http_max_connections");
            continue; // dropping `io` closes it
        };
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(header_timeout));
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(app.clone()))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
            drop(permit);
        });
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("HTTP connections did not finish in time");
    }
}
