//! Client watches that survive reconnects: the stream resumes from the revision after the last
//! one delivered, so no event is missed or repeated.

use std::time::Duration;

use magnetar_protocol::metadata::{self as pb, request, response};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{MetadataClient, Record, event_kind};
use crate::error::MetadataError;
use crate::types::EventKind;

/// How long a stopped watch waits to tell the node.
const CANCEL_TIMEOUT: Duration = Duration::from_millis(200);

/// One change to one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: EventKind,
    /// For a delete: the key and its last version; the value is empty.
    pub record: Record,
}

/// The changes of one revision under the watched prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub revision: u64,
    pub changes: Vec<Change>,
}

#[derive(Debug)]
pub struct Watch {
    events: mpsc::Receiver<Result<WatchEvent, MetadataError>>,
    start_revision: u64,
    stop: CancellationToken,
}

impl Watch {
    /// The next revision's changes; `None` once the watch has ended. An error (e.g. compacted
    /// history) ends the watch.
    pub async fn next(&mut self) -> Option<Result<WatchEvent, MetadataError>> {
        self.events.recv().await
    }

    /// The watch delivers revisions after this one.
    pub fn start_revision(&self) -> u64 {
        self.start_revision
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub(super) async fn start(
    client: MetadataClient,
    prefix: String,
    from_revision: u64,
) -> Result<Watch, MetadataError> {
    crate::keys::validate_prefix(&prefix)?;
    let (tx, events) = mpsc::channel(1024);
    let stop = CancellationToken::new();
    let (started, started_rx) = oneshot::channel();
    let timeout = client.inner.options.request_timeout;
    tokio::spawn(run(
        client,
        prefix,
        from_revision,
        tx,
        stop.clone(),
        started,
    ));
    let started = tokio::time::timeout(timeout, started_rx).await;
    let start_revision = match started {
        Ok(Ok(result)) => result?,
        Ok(Err(_)) => {
            return Err(MetadataError::Unavailable(
                "watch could not be established".into(),
            ));
        }
        Err(_) => {
            stop.cancel();
            return Err(MetadataError::Unavailable(
                "timed out establishing the watch".into(),
            ));
        }
    };
    Ok(Watch {
        events,
        start_revision,
        stop,
    })
}

async fn run(
    client: MetadataClient,
    prefix: String,
    from_revision: u64,
    tx: mpsc::Sender<Result<WatchEvent, MetadataError>>,
    stop: CancellationToken,
    started: oneshot::Sender<Result<u64, MetadataError>>,
) {
    let mut started = Some(started);
    let mut next = from_revision;
    let mut failures = 0u32;
    loop {
        if stop.is_cancelled() {
            return;
        }
        let conn = match client.connection().await {
            Ok(conn) => conn,
            Err(_) => {
                let target = client.target().await;
                client.retarget(None, &target).await;
                failures += 1;
                backoff(failures, &stop).await;
                continue;
            }
        };
        let watch = request::Body::Watch(pb::WatchRequest {
            prefix: prefix.clone(),
            from_revision: next,
        });
        let Ok((id, mut responses)) = conn.stream(watch).await else {
            client.retarget(None, conn.addr()).await;
            continue;
        };
        // A node answers a watch at once (its first message is the acknowledgement); one that
        // stays silent is left for another. Once acknowledged, a watch may rightly be silent
        // for hours: TCP keepalive finds a dead peer then.
        let ack_by = Instant::now() + client.inner.options.attempt_timeout;
        let mut acknowledged = false;
        loop {
            let incoming = async {
                if acknowledged {
                    responses.recv().await
                } else {
                    tokio::time::timeout_at(ack_by, responses.recv())
                        .await
                        .ok()
                        .flatten()
                }
            };
            let response = tokio::select! {
                _ = stop.cancelled() => {
                    conn.forget(id);
                    let cancel = request::Body::CancelWatch(pb::CancelWatchRequest { watch_id: id });
                    let _ = conn.call(cancel, Instant::now() + CANCEL_TIMEOUT).await;
                    return;
                }
                response = incoming => response,
            };
            let Some(response) = response else {
                conn.forget(id);
                break;
            };
            acknowledged = true;
            if let Some(error) = response.error {
                let error = MetadataError::from_proto(error);
                if matches!(error, MetadataError::Compacted { .. }) {
                    match started.take() {
                        Some(started) => {
                            let _ = started.send(Err(error));
                        }
                        None => {
                            let _ = tx.send(Err(error)).await;
                        }
                    }
                    return;
                }
                break;
            }
            let Some(response::Body::Watch(batch)) = response.body else {
                continue;
            };
            failures = 0;
            if batch.events.is_empty() {
                // The acknowledgement: the watch delivers revisions after this one.
                next = next.max(batch.revision + 1);
                if let Some(started) = started.take() {
                    let _ = started.send(Ok(batch.revision));
                }
                continue;
            }
            if batch.revision < next {
                continue;
            }
            next = batch.revision + 1;
            let changes = batch
                .events
                .into_iter()
                .filter_map(|e| {
                    e.kv.map(|kv| Change {
                        kind: event_kind(e.r#type),
                        record: Record::from(kv),
                    })
                })
                .collect();
            if tx
                .send(Ok(WatchEvent {
                    revision: batch.revision,
                    changes,
                }))
                .await
                .is_err()
            {
                return;
            }
        }
        // The connection broke (node down, leader change): resume elsewhere from `next`.
        client.retarget(None, conn.addr()).await;
        failures += 1;
        backoff(failures, &stop).await;
    }
}

async fn backoff(failures: u32, stop: &CancellationToken) {
    let delay = Duration::from_millis(20u64.saturating_mul(1 << failures.min(5)))
        .min(Duration::from_millis(500));
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = tokio::time::sleep(delay) => {}
    }
}
