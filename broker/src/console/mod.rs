//! The web console at `/console`: a small static application (HTML, one script, one style
//! sheet, embedded in the binary, nothing fetched from the internet) that drives the admin REST
//! API.
//!
//! The console adds no authority of its own. Every figure it shows and every action it takes
//! is an admin API request made with the token the user pasted, so the console shows and
//! changes exactly what that role may through the API. Those requests go to
//! `/console/api/admin/v2/…`, which this broker serves by running them through its own admin
//! router. When the router answers 307 (another broker owns the topic or bundle), the console
//! follows the redirect here on the server, with the same token. The browser then never talks
//! to a second origin, and a browser would drop the token on a cross-origin redirect anyway.
//!
//! `/console/peek/…` returns the first messages of a subscription's backlog as JSON, split out
//! of their batches. It reads them through the same admin route (`…/position/{n}`), so the
//! same authorization applies.

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tower::ServiceExt;

use crate::tls::TlsConfig;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// Scripts and styles from this origin only; requests only to this origin; never framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// At most this many redirects are followed for one request.
const MAX_HOPS: usize = 3;
/// How long a forwarded request to another broker may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(20);
/// At most this many backlog positions are read for one peek.
const MAX_PEEK: u32 = 100;

#[derive(Clone)]
struct Console {
    /// The broker's admin router (without the console), for requests made in-process.
    admin: Router,
    /// For redirects to the broker that owns a topic or bundle.
    http: reqwest::Client,
}

/// The console's routes. `admin` is the broker's admin router, which the console's requests
/// run through.
pub fn routes(admin: Router, tls: &TlsConfig) -> Router {
    let console = Console {
        admin,
        http: http_client(tls),
    };
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route(
            "/console/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/console/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/console/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .route("/console/api/{*path}", any(api))
        .route(
            "/console/peek/{tenant}/{namespace}/{topic}/{subscription}",
            get(peek),
        )
        .with_state(console)
}

/// A client for following redirects to other brokers: it trusts the `[tls]` trust file as
/// well as the system's roots, and never follows redirects itself.
fn http_client(tls: &TlsConfig) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(FORWARD_TIMEOUT);
    if let Some(file) = &tls.trust_certs_file {
        match std::fs::read(file)
            .map_err(|e| e.to_string())
            .and_then(|pem| reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| e.to_string()))
        {
            Ok(certs) => {
                for cert in certs {
                    builder = builder.add_root_certificate(cert);
                }
            }
            Err(e) => tracing::warn!(
                file = %file.display(),
                error = %e,
                "the console cannot read the TLS trust file; redirects to brokers it signs will fail"
            ),
        }
    }
    builder.build().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "console HTTP client with defaults");
        reqwest::Client::new()
    })
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, content_type),
            (CONTENT_SECURITY_POLICY, CSP),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (X_FRAME_OPTIONS, "DENY"),
            (CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// One admin API request: what is forwarded of the browser's request.
struct Forward {
    method: Method,
    /// `/admin/v2/…?…`
    path_and_query: String,
    authorization: Option<HeaderValue>,
    content_type: Option<HeaderValue>,
    body: Bytes,
}

/// `ANY /console/api/admin/v2/…`: the request as the admin API answers it.
async fn api(
    State(console): State<Console>,
    Path(path): Path<String>,
    request: Request,
) -> Response {
    if !path.starts_with("admin/v2/") {
        return error(
            StatusCode::NOT_FOUND,
            "the console forwards /admin/v2/ only",
        );
    }
    let path_and_query = match request.uri().query() {
        Some(query) => format!("/{path}?{query}"),
        None => format!("/{path}"),
    };
    let (parts, body) = request.into_parts();
    // The body limit of the outer router already applies.
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("request body: {e}")),
    };
    let forward = Forward {
        method: parts.method,
        path_and_query,
        authorization: parts.headers.get(AUTHORIZATION).cloned(),
        content_type: parts.headers.get(CONTENT_TYPE).cloned(),
        body,
    };
    console.send(forward).await
}

impl Console {
    /// Runs `forward` through this broker's admin router and follows redirects to the owner.
    async fn send(&self, forward: Forward) -> Response {
        let mut builder = Request::builder()
            .method(forward.method.clone())
            .uri(&forward.path_and_query);
        for (name, value) in [
            (AUTHORIZATION, &forward.authorization),
            (CONTENT_TYPE, &forward.content_type),
        ] {
            if let Some(value) = value {
                builder = builder.header(name, value);
            }
        }
        let request = match builder.body(Body::from(forward.body.clone())) {
            Ok(request) => request,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("request: {e}")),
        };
        let Ok(mut response) = self.admin.clone().oneshot(request).await;
        for _ in 0..MAX_HOPS {
            let Some(location) = redirect_target(&response) else {
                return response;
            };
            response = self.remote(&forward, &location).await;
        }
        if redirect_target(&response).is_some() {
            return error(
                StatusCode::BAD_GATEWAY,
                "too many redirects between brokers",
            );
        }
        response
    }

    /// `forward` sent to another broker at `url`.
    async fn remote(&self, forward: &Forward, url: &str) -> Response {
        let mut request = self
            .http
            .request(forward.method.clone(), url)
            .body(forward.body.clone());
        if let Some(value) = &forward.authorization {
            request = request.header(AUTHORIZATION, value.clone());
        }
        if let Some(value) = &forward.content_type {
            request = request.header(CONTENT_TYPE, value.clone());
        }
        let answer = match request.send().await {
            Ok(answer) => answer,
            Err(e) => {
                return error(
                    StatusCode::BAD_GATEWAY,
                    &format!("the owning broker at {url} did not answer: {e}"),
                );
            }
        };
        let status = answer.status();
        let mut headers = HeaderMap::new();
        for (name, value) in answer.headers() {
            let name_str = name.as_str();
            if name == CONTENT_TYPE || name == LOCATION || name_str.starts_with("x-pulsar-") {
                headers.insert(name.clone(), value.clone());
            }
        }
        match answer.bytes().await {
            Ok(body) => (status, headers, body).into_response(),
            Err(e) => error(
                StatusCode::BAD_GATEWAY,
                &format!("the owning broker at {url} broke off its answer: {e}"),
            ),
        }
    }
}

/// Where a 307/308 answer points, when it does.
fn redirect_target(response: &Response) -> Option<String> {
    if !matches!(
        response.status(),
        StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT
    ) {
        return None;
    }
    response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .filter(|l| l.starts_with("http://") || l.starts_with("https://"))
        .map(str::to_string)
}

/// An error in the admin API's form (`{"reason": …}`).
fn error(status: StatusCode, reason: &str) -> Response {
    (status, axum::Json(json!({ "reason": reason }))).into_response()
}

#[derive(Deserialize)]
struct PeekQuery {
    count: Option<u32>,
}

/// `GET /console/peek/{tenant}/{namespace}/{topic}/{subscription}?count=N`: the first N
/// entries of the subscription's backlog, batches split into their messages, as
/// `[{"messageId","publishTime","key","properties","payload" (base64)}]`.
async fn peek(
    State(console): State<Console>,
    Path((tenant, namespace, topic, subscription)): Path<(String, String, String, String)>,
    Query(query): Query<PeekQuery>,
    headers: HeaderMap,
) -> Response {
    let count = query.count.unwrap_or(10).clamp(1, MAX_PEEK);
    let segment = |s: &str| percent_encode(s);
    let mut messages = Vec::new();
    for position in 1..=count {
        let forward = Forward {
            method: Method::GET,
            path_and_query: format!(
                "/admin/v2/persistent/{}/{}/{}/subscription/{}/position/{position}",
                segment(&tenant),
                segment(&namespace),
                segment(&topic),
                segment(&subscription),
            ),
            authorization: headers.get(AUTHORIZATION).cloned(),
            content_type: None,
            body: Bytes::new(),
        };
        let response = console.send(forward).await;
        let status = response.status();
        // Past the end of the backlog.
        if status == StatusCode::NOT_FOUND && position > 1 {
            break;
        }
        if !status.is_success() {
            return response;
        }
        let (parts, body) = response.into_parts();
        let body = match axum::body::to_bytes(body, usize::MAX).await {
            Ok(body) => body,
            Err(e) => return error(StatusCode::BAD_GATEWAY, &format!("peek: {e}")),
        };
        match entry_messages(&parts.headers, body) {
            Ok(found) => messages.extend(found),
            Err(reason) => return error(StatusCode::INTERNAL_SERVER_ERROR, &reason),
        }
    }
    axum::Json(Value::Array(messages)).into_response()
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The messages of one peeked entry: the entry itself, or the messages of its batch.
fn entry_messages(headers: &HeaderMap, body: Bytes) -> Result<Vec<Value>, String> {
    let id = header(headers, "X-Pulsar-Message-ID").unwrap_or_default();
    let publish_time: Option<u64> =
        header(headers, "X-Pulsar-publish-time").and_then(|t| t.parse().ok());
    let Some(count) = header(headers, "X-Pulsar-num-batch-message").and_then(|n| n.parse().ok())
    else {
        let mut properties = Map::new();
        for (name, value) in headers {
            if let Some(key) = name.as_str().strip_prefix("x-pulsar-property-") {
                properties.insert(key.to_string(), json!(value.to_str().unwrap_or("")));
            }
        }
        return Ok(vec![json!({
            "messageId": id,
            "publishTime": publish_time,
            "key": header(headers, "X-Pulsar-partition-key"),
            "properties": properties,
            "payload": STANDARD.encode(&body),
        })]);
    };
    let batch = magnetar_protocol::batch::decode_batch(&body, count)
        .map_err(|e| format!("message {id}: unreadable batch: {e}"))?;
    Ok(batch
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let properties: Map<String, Value> = m
                .metadata
                .properties
                .iter()
                .map(|kv| (kv.key.clone(), json!(kv.value)))
                .collect();
            json!({
                "messageId": format!("{id}:{i}"),
                "publishTime": publish_time,
                "key": m.metadata.partition_key,
                "properties": properties,
                "payload": STANDARD.encode(&m.payload),
            })
        })
        .collect())
}

/// A path segment as the admin API expects it (Axum decodes it again).
fn percent_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(percent_encode("my-topic_1.x"), "my-topic_1.x");
        assert_eq!(percent_encode("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }

    #[test]
    fn an_unbatched_entry_is_one_message() {
        let mut headers = HeaderMap::new();
        headers.insert("X-Pulsar-Message-ID", HeaderValue::from_static("3:7"));
        headers.insert("X-Pulsar-publish-time", HeaderValue::from_static("1700"));
        headers.insert("X-Pulsar-partition-key", HeaderValue::from_static("k"));
        headers.insert("X-Pulsar-Property-colour", HeaderValue::from_static("red"));
        let found = entry_messages(&headers, Bytes::from_static(b"hello")).expect("one message");
        assert_eq!(
            found,
            vec![json!({
                "messageId": "3:7",
                "publishTime": 1700,
                "key": "k",
                "properties": {"colour": "red"},
                "payload": "aGVsbG8=",
            })]
        );
    }

    #[test]
    fn a_garbled_batch_is_an_error_not_a_panic() {
        let mut headers = HeaderMap::new();
        headers.insert("X-Pulsar-Message-ID", HeaderValue::from_static("3:7"));
        headers.insert(
            "X-Pulsar-num-batch-message",
            HeaderValue::from_static("1000"),
        );
        let err = entry_messages(&headers, Bytes::from_static(b"\xff\xff\xff\xffxx"))
            .expect_err("a garbled batch");
        assert!(err.contains("3:7"), "{err}");
    }

    #[test]
    fn only_absolute_redirects_are_followed() {
        let response = (
            StatusCode::TEMPORARY_REDIRECT,
            [(LOCATION, "http://b2:8080/admin/v2/x?authoritative=true")],
        )
            .into_response();
        assert_eq!(
            redirect_target(&response).as_deref(),
            Some("http://b2:8080/admin/v2/x?authoritative=true")
        );
        let relative = (StatusCode::TEMPORARY_REDIRECT, [(LOCATION, "/elsewhere")]).into_response();
        assert_eq!(redirect_target(&relative), None);
        let ok = (StatusCode::OK, [(LOCATION, "http://b2")]).into_response();
        assert_eq!(redirect_target(&ok), None);
    }
}
