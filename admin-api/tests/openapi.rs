//! The OpenAPI document: it parses, names exactly the routes this crate serves, and every
//! operation in it is answered by the running router (never a routing 404/405).

use crate::common;

use std::collections::BTreeSet;

use common::TestServer;
use magnetar_auth::AuthConfig;

/// Every route of this crate, as (method, path) under /admin/v2.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/clusters"),
    ("get", "/clusters/{cluster}"),
    ("put", "/clusters/{cluster}"),
    ("post", "/clusters/{cluster}"),
    ("delete", "/clusters/{cluster}"),
    ("get", "/tenants"),
    ("get", "/tenants/{tenant}"),
    ("put", "/tenants/{tenant}"),
    ("post", "/tenants/{tenant}"),
    ("delete", "/tenants/{tenant}"),
    ("get", "/namespaces/{tenant}"),
    ("get", "/namespaces/{tenant}/{namespace}"),
    ("put", "/namespaces/{tenant}/{namespace}"),
    ("delete", "/namespaces/{tenant}/{namespace}"),
    ("get", "/namespaces/{tenant}/{namespace}/replication"),
    ("post", "/namespaces/{tenant}/{namespace}/replication"),
    ("get", "/namespaces/{tenant}/{namespace}/permissions"),
    (
        "post",
        "/namespaces/{tenant}/{namespace}/permissions/{role}",
    ),
    (
        "delete",
        "/namespaces/{tenant}/{namespace}/permissions/{role}",
    ),
    (
        "get",
        "/namespaces/{tenant}/{namespace}/permissions/subscription",
    ),
    (
        "post",
        "/namespaces/{tenant}/{namespace}/permissions/subscription/{subscription}",
    ),
    (
        "delete",
        "/namespaces/{tenant}/{namespace}/permissions/{subscription}/{role}",
    ),
    ("get", "/namespaces/{tenant}/{namespace}/retention"),
    ("post", "/namespaces/{tenant}/{namespace}/retention"),
    ("delete", "/namespaces/{tenant}/{namespace}/retention"),
    ("get", "/namespaces/{tenant}/{namespace}/persistence"),
    ("post", "/namespaces/{tenant}/{namespace}/persistence"),
    ("delete", "/namespaces/{tenant}/{namespace}/persistence"),
    ("get", "/namespaces/{tenant}/{namespace}/messageTTL"),
    ("post", "/namespaces/{tenant}/{namespace}/messageTTL"),
    ("delete", "/namespaces/{tenant}/{namespace}/messageTTL"),
    ("post", "/namespaces/{tenant}/{namespace}/backlogQuota"),
    ("delete", "/namespaces/{tenant}/{namespace}/backlogQuota"),
    ("get", "/namespaces/{tenant}/{namespace}/backlogQuotaMap"),
    ("get", "/namespaces/{tenant}/{namespace}/deduplication"),
    ("post", "/namespaces/{tenant}/{namespace}/deduplication"),
    ("delete", "/namespaces/{tenant}/{namespace}/deduplication"),
    ("get", "/namespaces/{tenant}/{namespace}/delayedDelivery"),
    ("post", "/namespaces/{tenant}/{namespace}/delayedDelivery"),
    ("delete", "/namespaces/{tenant}/{namespace}/delayedDelivery"),
    (
        "get",
        "/namespaces/{tenant}/{namespace}/compactionThreshold",
    ),
    (
        "put",
        "/namespaces/{tenant}/{namespace}/compactionThreshold",
    ),
    (
        "post",
        "/namespaces/{tenant}/{namespace}/compactionThreshold",
    ),
    (
        "delete",
        "/namespaces/{tenant}/{namespace}/compactionThreshold",
    ),
    ("get", "/namespaces/{tenant}/{namespace}/offloadThreshold"),
    ("put", "/namespaces/{tenant}/{namespace}/offloadThreshold"),
    (
        "delete",
        "/namespaces/{tenant}/{namespace}/offloadThreshold",
    ),
    (
        "get",
        "/namespaces/{tenant}/{namespace}/offloadThresholdInSeconds",
    ),
    (
        "put",
        "/namespaces/{tenant}/{namespace}/offloadThresholdInSeconds",
    ),
    (
        "delete",
        "/namespaces/{tenant}/{namespace}/offloadThresholdInSeconds",
    ),
    (
        "get",
        "/namespaces/{tenant}/{namespace}/offloadDeletionLagMs",
    ),
    (
        "put",
        "/namespaces/{tenant}/{namespace}/offloadDeletionLagMs",
    ),
    (
        "delete",
        "/namespaces/{tenant}/{namespace}/offloadDeletionLagMs",
    ),
    (
        "get",
        "/namespaces/{tenant}/{namespace}/schemaCompatibilityStrategy",
    ),
    (
        "put",
        "/namespaces/{tenant}/{namespace}/schemaCompatibilityStrategy",
    ),
    (
        "get",
        "/namespaces/{tenant}/{namespace}/isAllowAutoUpdateSchema",
    ),
    (
        "post",
        "/namespaces/{tenant}/{namespace}/isAllowAutoUpdateSchema",
    ),
    (
        "get",
        "/namespaces/{tenant}/{namespace}/schemaValidationEnforced",
    ),
    (
        "post",
        "/namespaces/{tenant}/{namespace}/schemaValidationEnforced",
    ),
    ("get", "/schemas/{tenant}/{namespace}/{topic}/schema"),
    ("post", "/schemas/{tenant}/{namespace}/{topic}/schema"),
    ("delete", "/schemas/{tenant}/{namespace}/{topic}/schema"),
    (
        "get",
        "/schemas/{tenant}/{namespace}/{topic}/schema/{version}",
    ),
    ("get", "/schemas/{tenant}/{namespace}/{topic}/schemas"),
    (
        "post",
        "/schemas/{tenant}/{namespace}/{topic}/compatibility",
    ),
    ("post", "/schemas/{tenant}/{namespace}/{topic}/version"),
];

fn documented(doc: &serde_json::Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths object") {
        for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
            if item.get(method).is_some() {
                ops.insert((method.to_string(), path.clone()));
            }
        }
    }
    ops
}

/// Steps: fetch the served document; check version, paths and components; check each
/// operation lists its responses including 401/403 and an ErrorBody schema exists; then
/// call every operation with made-up names: the router answers it, with a documented status.
#[tokio::test]
async fn document_lists_and_matches_every_route() -> anyhow::Result<()> {
    let server = TestServer::start(AuthConfig::default()).await?;
    let http = server.http(None);
    let reply = http.get(magnetar_admin_api::OPENAPI_PATH).await;
    assert_eq!(reply.status, 200);
    let doc: serde_json::Value = serde_json::from_str(&reply.body)?;
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc, serde_json::to_value(magnetar_admin_api::openapi())?);

    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), format!("/admin/v2{p}")))
        .collect();
    assert_eq!(documented(&doc), expected);
    for schema in [
        "ErrorBody",
        "ClusterData",
        "TenantInfo",
        "Policies",
        "RetentionPolicies",
        "BacklogQuota",
    ] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "schema {schema} missing"
        );
    }
    assert!(doc["components"]["securitySchemes"].get("token").is_some());
    for (method, path) in &expected {
        let responses = &doc["paths"][path][method]["responses"];
        for code in ["401", "403"] {
            assert!(
                responses.get(code).is_some(),
                "{method} {path} lacks {code}"
            );
        }
        if let Some(content) = doc["paths"][path][method]["requestBody"]["content"].as_object() {
            let types: Vec<&String> = content.keys().collect();
            assert_eq!(types, ["application/json"], "{method} {path} body types");
        }
        assert!(
            responses
                .as_object()
                .is_some_and(|r| r.keys().any(|k| k.starts_with('2'))),
            "{method} {path} lacks a success response"
        );
    }

    for (method, path) in &expected {
        let concrete = path
            .replace("{cluster}", "c")
            .replace("{tenant}", "t")
            .replace("{namespace}", "ns")
            .replace("{role}", "r")
            .replace("{subscription}", "s")
            .replace("{topic}", "x")
            .replace("{version}", "0");
        let reply = http
            .call(&method.to_uppercase(), &concrete, Some("{}"))
            .await;
        assert_ne!(reply.status, 405, "{method} {concrete} not routed");
        if reply.status == 404 {
            // Our 404s carry a reason; axum's "no route" 404 has an empty body.
            assert!(!reply.reason().is_empty(), "{method} {concrete} not routed");
        }
        // Whatever the route answers is a status its documentation lists.
        let documented = &doc["paths"][path][method]["responses"];
        assert!(
            documented.get(reply.status.to_string()).is_some(),
            "{method} {concrete}: undocumented {} {}",
            reply.status,
            reply.body
        );
    }
    server.stop().await;
    Ok(())
}
