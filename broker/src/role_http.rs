//! The HTTP service of the metadata and bookie roles (`--http-addr`): `/health/live` (the
//! process answers), `/health/ready` (the role can serve: the metadata node knows a Raft
//! leader, the bookie is writable) and `/metrics`. Open, like the broker's `/metrics`; bind it
//! where only the cluster's monitoring reaches.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use magnetar_metadata::RaftStatus;
use prometheus::proto::MetricFamily;
use prometheus::{Encoder, TextEncoder};
use tokio_util::sync::CancellationToken;

use crate::metrics::{Kind, Sample, samples_to_families};

/// Whether the role can serve now, and if not why.
pub type ReadyCheck = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;
/// The role's metrics as of now.
pub type MetricsSource = Arc<dyn Fn() -> Vec<MetricFamily> + Send + Sync>;

#[derive(Clone)]
struct Role {
    ready: ReadyCheck,
    metrics: MetricsSource,
}

/// `/health/live`, `/health/ready` and `/metrics` for one role.
pub fn router(ready: ReadyCheck, metrics: MetricsSource) -> Router {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready_handler))
        .route("/metrics", get(metrics_handler))
        .with_state(Role { ready, metrics })
}

/// Binds `addr` (with the same error messages as the role's other listeners) and serves
/// `app` until `cancel` fires.
pub async fn serve(
    addr: SocketAddr,
    what: &'static str,
    setting: &'static str,
    app: Router,
    cancel: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = crate::listen::bind(addr, what, setting).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "health and metrics listener failed");
        }
    });
    Ok(local)
}

async fn live() -> &'static str {
    "alive\n"
}

/// 200 "ready", or 503 with the reason.
pub fn ready_response(check: Result<(), String>) -> Response {
    match check {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

async fn ready_handler(State(role): State<Role>) -> Response {
    ready_response((role.ready)())
}

async fn metrics_handler(State(role): State<Role>) -> Response {
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&(role.metrics)(), &mut out) {
        tracing::warn!(error = %e, "encoding metrics");
    }
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        out,
    )
        .into_response()
}

/// A metadata node's Raft figures.
pub fn raft_samples(status: &RaftStatus) -> Vec<Sample> {
    let gauge = |name, help, value: f64| Sample {
        name,
        help,
        kind: Kind::Gauge,
        value,
    };
    vec![
        gauge(
            "metadata_raft_term",
            "Raft term: grows by one at each election (leader change)",
            status.term as f64,
        ),
        gauge(
            "metadata_raft_last_log_index",
            "Index of the last Raft log entry: proposals so far",
            status.last_log_index as f64,
        ),
        gauge(
            "metadata_raft_is_leader",
            "1 while this node is the Raft leader",
            f64::from(u8::from(status.leader == Some(status.id))),
        ),
        gauge(
            "metadata_raft_has_leader",
            "1 while this node knows of a Raft leader (0: no quorum, or an election running)",
            f64::from(u8::from(status.leader.is_some())),
        ),
    ]
}

/// The metadata role's readiness: a known leader.
pub fn raft_ready(status: &RaftStatus) -> Result<(), String> {
    match status.leader {
        Some(_) => Ok(()),
        None => Err(format!(
            "metadata node {} knows of no Raft leader (term {}): no quorum yet, or an election is running",
            status.id, status.term
        )),
    }
}

/// The metadata role's metrics from its status reader.
pub fn raft_families(status: &RaftStatus) -> Vec<MetricFamily> {
    samples_to_families(&raft_samples(status))
}
