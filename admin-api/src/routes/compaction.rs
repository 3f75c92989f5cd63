//! Topic compaction: trigger it and read its status
//! (`/admin/v2/persistent/{tenant}/{namespace}/{topic}/compaction`). Superuser or tenant admin.
//! On a partitioned topic both act on every partition.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::topics::{TopicPath, partitions_of, topic_name};
use crate::error::ApiError;
use crate::extract::{ApiPath, Principal};
use crate::models::{CompactionStatus, ErrorBody};
use crate::state::AdminState;

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(compaction_status, compact))
}

/// Start compacting the topic (each partition of a partitioned topic) in the background.
#[utoipa::path(put, path = "/persistent/{tenant}/{namespace}/{topic}/compaction", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    responses(
        (status = 204, description = "Compaction started"),
        (status = 404, description = "No such topic", body = ErrorBody),
        (status = 409, description = "A compaction is already running", body = ErrorBody)))]
async fn compact(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
) -> Result<StatusCode, ApiError> {
    let topic = topic_name(&state, &principal, path).await?;
    let admin = state.topic_admin()?;
    match partitions_of(&state, &topic).await? {
        Some(n) => {
            for i in 0..n {
                admin.compact(&topic.with_partition(i)).await?;
            }
        }
        None => admin.compact(&topic).await?,
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The status of the topic's last compaction (`NOT_RUN`, `RUNNING`, `SUCCESS`, `ERROR`); for a
/// partitioned topic the first partition not done, else the last one's.
#[utoipa::path(get, path = "/persistent/{tenant}/{namespace}/{topic}/compaction", tag = "topics",
    params(("tenant" = String, Path), ("namespace" = String, Path), ("topic" = String, Path)),
    responses(
        (status = 200, description = "Pulsar's LongRunningProcessStatus", body = CompactionStatus),
        (status = 404, description = "No such topic", body = ErrorBody)))]
async fn compaction_status(
    State(state): State<AdminState>,
    principal: Principal,
    ApiPath(path): TopicPath,
) -> Result<Json<CompactionStatus>, ApiError> {
    let topic = topic_name(&state, &principal, path).await?;
    let admin = state.topic_admin()?;
    let Some(n) = partitions_of(&state, &topic).await? else {
        return Ok(Json(admin.compaction_status(&topic).await?));
    };
    let mut last = CompactionStatus::default();
    for i in 0..n {
        last = admin.compaction_status(&topic.with_partition(i)).await?;
        if last.status != "SUCCESS" {
            break;
        }
    }
    Ok(Json(last))
}
