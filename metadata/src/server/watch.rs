//! Serving one watch: first the recorded history from the requested revision, then live events,
//! each revision exactly once and in order. The first message acknowledges the watch with the
//! revision it starts after, so a client that reconnects knows where to resume.

use magnetar_protocol::metadata::{self as pb, Response, WatchEvents, response};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::error::MetadataError;
use crate::store::StateReader;
use crate::types::{EventKind, RevisionEvents, StoredValue};

const HISTORY_PAGE: usize = 256;

pub(crate) fn to_kv(key: &str, value: &StoredValue, with_value: bool) -> pb::KeyValue {
    pb::KeyValue {
        key: key.to_string(),
        value: if with_value {
            value.value.clone()
        } else {
            Vec::new()
        },
        version: value.version,
        create_revision: value.create_revision,
        mod_revision: value.mod_revision,
        session: value.session.unwrap_or(0),
    }
}

fn filtered(record: &RevisionEvents, prefix: &str) -> Option<WatchEvents> {
    let events: Vec<pb::Event> = record
        .events
        .iter()
        .filter(|event| event.key.starts_with(prefix))
        .map(|event| pb::Event {
            r#type: match event.kind {
                EventKind::Put => pb::EventType::Put,
                EventKind::Delete => pb::EventType::Delete,
            } as i32,
            kv: Some(to_kv(
                &event.key,
                &event.value,
                event.kind == EventKind::Put,
            )),
        })
        .collect();
    (!events.is_empty()).then_some(WatchEvents {
        revision: record.revision,
        events,
    })
}

/// Streams the watch until the client cancels it, the connection closes, or history it needs is
/// gone (then it ends with a COMPACTED error).
pub(crate) async fn serve(
    reader: StateReader,
    id: u64,
    prefix: String,
    from_revision: u64,
    out: mpsc::Sender<Response>,
    cancel: CancellationToken,
) {
    let send = |body: Option<response::Body>, error: Option<pb::Error>| {
        let out = out.clone();
        async move { out.send(Response { id, error, body }).await.is_ok() }
    };
    // Subscribe before reading history: anything applied in between is seen at least once,
    // and duplicates are dropped by revision.
    let mut live = reader.subscribe();
    let mut next = if from_revision == 0 {
        reader.revision() + 1
    } else {
        from_revision
    };
    if next <= reader.compacted() {
        let error = MetadataError::Compacted {
            requested: next,
            oldest: reader.compacted() + 1,
        };
        send(None, Some(error.to_proto())).await;
        return;
    }
    let ack = WatchEvents {
        revision: next - 1,
        events: Vec::new(),
    };
    if !send(Some(response::Body::Watch(ack)), None).await {
        return;
    }
    'catch_up: loop {
        loop {
            let page = match reader.history(next, HISTORY_PAGE) {
                Ok(page) => page,
                Err(e) => {
                    send(None, Some(e.to_proto())).await;
                    return;
                }
            };
            let Some(first) = page.first() else { break };
            if first.revision > next && next <= reader.compacted() {
                let error = MetadataError::Compacted {
                    requested: next,
                    oldest: reader.compacted() + 1,
                };
                send(None, Some(error.to_proto())).await;
                return;
            }
            for record in &page {
                if let Some(events) = filtered(record, &prefix)
                    && !send(Some(response::Body::Watch(events)), None).await
                {
                    return;
                }
                next = record.revision + 1;
            }
            if page.len() < HISTORY_PAGE {
                break;
            }
        }
        loop {
            let record = tokio::select! {
                _ = cancel.cancelled() => return,
                _ = out.closed() => return,
                record = live.recv() => record,
            };
            match record {
                Ok(record) if record.revision < next => {}
                Ok(record) if record.revision == next => {
                    if let Some(events) = filtered(&record, &prefix)
                        && !send(Some(response::Body::Watch(events)), None).await
                    {
                        return;
                    }
                    next += 1;
                }
                // A gap (a snapshot was installed, or we fell behind): go back to the history.
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue 'catch_up,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}
