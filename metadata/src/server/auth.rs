//! The cluster token check at the start of every connection (`AuthRequest` in
//! `metadata.proto`): on a node that has a token, nothing a connection sends is served — no
//! key-value call, no Raft RPC, no membership change — until it has presented that token as its
//! first request. A wrong token or any other first request is answered UNAUTHENTICATED and the
//! connection closed without reading further.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use magnetar_protocol::ClusterToken;
use magnetar_protocol::metadata::{Request, Response, request, response};
use prost::Message;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

use crate::error::MetadataError;

/// How long a new connection may take to present the token (and to take the answer).
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest first frame read (an `AuthRequest` is a few dozen bytes): a stranger holds no
/// more memory than this.
const FIRST_FRAME_LIMIT: usize = 4096;

/// Whether `presented` opens this node: always when it has no token.
pub(super) fn check(token: Option<&ClusterToken>, presented: &[u8]) -> Result<(), MetadataError> {
    match token {
        Some(token) if !token.matches(presented) => {
            Err(MetadataError::Unauthenticated("wrong cluster token".into()))
        }
        _ => Ok(()),
    }
}

/// The answer to an `AuthRequest`.
pub(super) fn answer(id: u64, outcome: Result<(), MetadataError>) -> Response {
    match outcome {
        Ok(()) => Response {
            id,
            error: None,
            body: Some(response::Body::Empty(Default::default())),
        },
        Err(e) => Response {
            id,
            error: Some(e.to_proto()),
            body: None,
        },
    }
}

/// Reads the connection's first request and answers it. `true`: it presented `token`, serve
/// the connection. `false`: it did not (the refusal has been sent) or went away; close it.
pub(super) async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    wire: &mut Framed<S, LengthDelimitedCodec>,
    token: &ClusterToken,
    peer: SocketAddr,
    cancel: &CancellationToken,
) -> bool {
    let max_frame = wire.codec().max_frame_length();
    wire.codec_mut()
        .set_max_frame_length(FIRST_FRAME_LIMIT.min(max_frame));
    let first = tokio::select! {
        _ = cancel.cancelled() => return false,
        first = tokio::time::timeout(AUTH_TIMEOUT, wire.next()) => first,
    };
    wire.codec_mut().set_max_frame_length(max_frame);
    let frame = match first {
        Ok(Some(Ok(frame))) => frame,
        Ok(None | Some(Err(_))) => return false,
        Err(_) => {
            tracing::debug!(%peer, "closing connection: no cluster token presented in time");
            return false;
        }
    };
    let (id, outcome) = match Request::decode(frame) {
        Ok(Request {
            id,
            body: Some(request::Body::Auth(auth)),
        }) => (id, check(Some(token), &auth.token)),
        Ok(Request { id, .. }) => (
            id,
            Err(MetadataError::Unauthenticated(
                "this node serves only connections that present the cluster token first".into(),
            )),
        ),
        Err(_) => (
            0,
            Err(MetadataError::Unauthenticated(
                "undecodable first request (the cluster token must come first)".into(),
            )),
        ),
    };
    let accepted = outcome.is_ok();
    if let Err(e) = &outcome {
        tracing::warn!(%peer, error = %e, "refused a metadata connection");
    }
    let reply = Bytes::from(answer(id, outcome).encode_to_vec());
    let sent = tokio::time::timeout(AUTH_TIMEOUT, wire.send(reply)).await;
    accepted && matches!(sent, Ok(Ok(())))
}
