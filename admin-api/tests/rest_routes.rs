//! Every admin route over real HTTP against a real metadata node, authentication off:
//! successes, then each error status (400 bad JSON, 404, 405, 409, 412, 501).

use crate::common;

use common::{TestServer, expect};
use magnetar_auth::AuthConfig;
use serde_json::json;

/// Steps: create clusters (dup 409, bad name 412, no body 400, bad JSON 400), get, update,
/// list; delete one in use (412) and one free; unknown cluster 404.
#[tokio::test]
async fn clusters() -> anyhow::Result<()> {
    let server = TestServer::start(AuthConfig::default()).await?;
    let http = server.http(None);
    let body = r#"{"serviceUrl":"http://a:8080","brokerServiceUrl":"pulsar://a:6650"}"#;
    expect(&http.put("/admin/v2/clusters/local", body).await, 204);
    expect(&http.put("/admin/v2/clusters/other", "{}").await, 204);
    expect(&http.put("/admin/v2/clusters/local", body).await, 409);
    expect(&http.put("/admin/v2/clusters/bad%20name", body).await, 412);
    expect(&http.put("/admin/v2/clusters/global", body).await, 412);
    expect(&http.call("PUT", "/admin/v2/clusters/c3", None).await, 400);
    expect(&http.put("/admin/v2/clusters/c3", "{not json").await, 400);
    expect(
        &http
            .put("/admin/v2/clusters/c3", r#"{"serviceUrl":5}"#)
            .await,
        400,
    );

    let got = http.get("/admin/v2/clusters/local").await;
    expect(&got, 200);
    assert_eq!(
        got.json(),
        json!({"serviceUrl":"http://a:8080","brokerServiceUrl":"pulsar://a:6650"})
    );
    expect(&http.get("/admin/v2/clusters/nope").await, 404);
    expect(
        &http
            .post(
                "/admin/v2/clusters/local",
                r#"{"serviceUrl":"http://b:8080"}"#,
            )
            .await,
        204,
    );
    assert_eq!(
        http.get("/admin/v2/clusters/local").await.json()["serviceUrl"],
        "http://b:8080"
    );
    expect(&http.post("/admin/v2/clusters/nope", "{}").await, 404);
    assert_eq!(
        http.get("/admin/v2/clusters").await.json(),
        json!(["local", "other"])
    );

    expect(
        &http
            .put("/admin/v2/tenants/t", r#"{"allowedClusters":["local"]}"#)
            .await,
        204,
    );
    let in_use = http.delete("/admin/v2/clusters/local").await;
    expect(&in_use, 412);
    assert!(in_use.reason().contains("not empty"), "{}", in_use.body);
    expect(&http.delete("/admin/v2/clusters/other").await, 204);
    expect(&http.delete("/admin/v2/clusters/other").await, 404);
    assert_eq!(
        http.get("/admin/v2/clusters").await.json(),
        json!(["local"])
    );
    server.stop().await;
    Ok(())
}

/// Steps: tenant create (409 dup, 412 bad name/empty/unknown clusters, 400 bad JSON), get,
/// list, update (404, 412), delete with namespaces (409), force (405), delete.
#[tokio::test]
async fn tenants() -> anyhow::Result<()> {
    let server = TestServer::start(AuthConfig::default()).await?;
    let http = server.http(None);
    expect(&http.put("/admin/v2/clusters/local", "{}").await, 204);
    expect(&http.put("/admin/v2/clusters/east", "{}").await, 204);
    let info = r#"{"adminRoles":["boss"],"allowedClusters":["local"]}"#;
    expect(&http.put("/admin/v2/tenants/acme", info).await, 204);
    let dup = http.put("/admin/v2/tenants/acme", info).await;
    expect(&dup, 409);
    assert!(dup.reason().contains("already exists"));
    expect(&http.put("/admin/v2/tenants/a%2Fb", info).await, 412);
    expect(
        &http
            .put("/admin/v2/tenants/x", r#"{"allowedClusters":[]}"#)
            .await,
        412,
    );
    expect(
        &http
            .put("/admin/v2/tenants/x", r#"{"allowedClusters":["mars"]}"#)
            .await,
        412,
    );
    expect(
        &http
            .put("/admin/v2/tenants/x", r#"{"allowedClusters":"local"}"#)
            .await,
        400,
    );
    expect(&http.put("/admin/v2/tenants/x", "").await, 400);

    assert_eq!(
        http.get("/admin/v2/tenants/acme").await.json(),
        json!({"adminRoles":["boss"],"allowedClusters":["local"]})
    );
    expect(&http.get("/admin/v2/tenants/nope").await, 404);
    expect(
        &http
            .put(
                "/admin/v2/tenants/beta",
                r#"{"allowedClusters":["local","east"]}"#,
            )
            .await,
        204,
    );
    assert_eq!(
        http.get("/admin/v2/tenants").await.json(),
        json!(["acme", "beta"])
    );

    let update = r#"{"adminRoles":["boss","deputy"],"allowedClusters":["local","east"]}"#;
    expect(&http.post("/admin/v2/tenants/acme", update).await, 204);
    assert_eq!(
        http.get("/admin/v2/tenants/acme").await.json()["adminRoles"],
        json!(["boss", "deputy"])
    );
    expect(&http.post("/admin/v2/tenants/nope", update).await, 404);
    expect(
        &http
            .post("/admin/v2/tenants/acme", r#"{"allowedClusters":["mars"]}"#)
            .await,
        412,
    );

    // A namespace replicating to east keeps east in the tenant and the tenant alive.
    expect(
        &http
            .put(
                "/admin/v2/namespaces/acme/ns",
                r#"{"replication_clusters":["east"]}"#,
            )
            .await,
        204,
    );
    expect(
        &http
            .post("/admin/v2/tenants/acme", r#"{"allowedClusters":["local"]}"#)
            .await,
        412,
    );
    let busy = http.delete("/admin/v2/tenants/acme").await;
    expect(&busy, 409);
    expect(&http.delete("/admin/v2/tenants/acme?force=true").await, 405);
    expect(&http.delete("/admin/v2/namespaces/acme/ns").await, 204);
    expect(&http.delete("/admin/v2/tenants/acme").await, 204);
    expect(&http.delete("/admin/v2/tenants/acme").await, 404);
    assert_eq!(http.get("/admin/v2/tenants").await.json(), json!(["beta"]));
    server.stop().await;
    Ok(())
}

/// Steps: namespace list (404 missing tenant), create (defaults, 409, 404 tenant/cluster,
/// 412 name/disallowed cluster), get policies, delete (404, 409 non-empty by a partitioned
/// topic and by a managed ledger key, 405 force), replication get/set (412).
#[tokio::test]
async fn namespaces() -> anyhow::Result<()> {
    let server = TestServer::start(AuthConfig::default()).await?;
    let http = server.http(None);
    for c in ["local", "east", "west"] {
        expect(
            &http.put(&format!("/admin/v2/clusters/{c}"), "{}").await,
            204,
        );
    }
    expect(
        &http
            .put(
                "/admin/v2/tenants/acme",
                r#"{"allowedClusters":["local","east"]}"#,
            )
            .await,
        204,
    );
    expect(&http.get("/admin/v2/namespaces/nope").await, 404);
    assert_eq!(
        http.get("/admin/v2/namespaces/acme").await.json(),
        json!([])
    );

    expect(
        &http
            .call("PUT", "/admin/v2/namespaces/acme/ns1", None)
            .await,
        204,
    );
    let policies = http.get("/admin/v2/namespaces/acme/ns1").await;
    expect(&policies, 200);
    let p = policies.json();
    assert_eq!(p["replication_clusters"], json!(["local"]));
    assert_eq!(p["bundles"]["numBundles"], 4);
    assert_eq!(p["auth_policies"]["namespace_auth"], json!({}));
    expect(
        &http
            .call("PUT", "/admin/v2/namespaces/acme/ns1", None)
            .await,
        409,
    );
    expect(
        &http
            .call("PUT", "/admin/v2/namespaces/nope/ns1", None)
            .await,
        404,
    );
    expect(
        &http
            .call("PUT", "/admin/v2/namespaces/acme/bad%20name", None)
            .await,
        412,
    );
    expect(
        &http
            .put(
                "/admin/v2/namespaces/acme/ns2",
                r#"{"replication_clusters":["mars"]}"#,
            )
            .await,
        404,
    );
    expect(
        &http
            .put(
                "/admin/v2/namespaces/acme/ns2",
                r#"{"replication_clusters":["west"]}"#,
            )
            .await,
        412,
    );
    expect(
        &http.put("/admin/v2/namespaces/acme/ns2", "[1,2]").await,
        400,
    );
    expect(
        &http
            .put(
                "/admin/v2/namespaces/acme/ns2",
                r#"{"message_ttl_in_seconds":60}"#,
            )
            .await,
        204,
    );
    assert_eq!(
        http.get("/admin/v2/namespaces/acme/ns2").await.json()["message_ttl_in_seconds"],
        60
    );
    assert_eq!(
        http.get("/admin/v2/namespaces/acme").await.json(),
        json!(["acme/ns1", "acme/ns2"])
    );
    expect(&http.get("/admin/v2/namespaces/acme/nope").await, 404);

    // Replication clusters.
    assert_eq!(
        http.get("/admin/v2/namespaces/acme/ns1/replication")
            .await
            .json(),
        json!(["local"])
    );
    expect(
        &http
            .post(
                "/admin/v2/namespaces/acme/ns1/replication",
                r#"["local","east"]"#,
            )
            .await,
        204,
    );
    assert_eq!(
        http.get("/admin/v2/namespaces/acme/ns1/replication")
            .await
            .json(),
        json!(["east", "local"])
    );
    expect(
        &http
            .post("/admin/v2/namespaces/acme/ns1/replication", r#"["west"]"#)
            .await,
        412,
    );
    expect(
        &http
            .post("/admin/v2/namespaces/acme/ns1/replication", r#"["mars"]"#)
            .await,
        412,
    );
    expect(
        &http
            .post("/admin/v2/namespaces/acme/ns1/replication", "[]")
            .await,
        412,
    );
    expect(
        &http
            .post("/admin/v2/namespaces/acme/ns1/replication", "{")
            .await,
        400,
    );
    expect(
        &http
            .post("/admin/v2/namespaces/acme/nope/replication", r#"["local"]"#)
            .await,
        404,
    );

    // Not empty while a topic exists, by either kind of key.
    let client = server.metadata.client();
    let any = magnetar_metadata::Expected::Any;
    client
        .put(
            "/admin/partitioned-topics/acme/ns1/persistent/orders",
            br#"{"partitions":3}"#.to_vec(),
            any,
        )
        .await?;
    let busy = http.delete("/admin/v2/namespaces/acme/ns1").await;
    expect(&busy, 409);
    assert!(busy.reason().contains("not empty"), "{}", busy.body);
    client
        .delete("/admin/partitioned-topics/acme/ns1/persistent/orders", any)
        .await?;
    client
        .put(
            "/managed-ledgers/acme/ns1/persistent/t1",
            b"{}".to_vec(),
            any,
        )
        .await?;
    expect(&http.delete("/admin/v2/namespaces/acme/ns1").await, 409);
    client
        .delete("/managed-ledgers/acme/ns1/persistent/t1", any)
        .await?;
    expect(
        &http
            .delete("/admin/v2/namespaces/acme/ns1?force=true")
            .await,
        405,
    );
    expect(&http.delete("/admin/v2/namespaces/acme/ns1").await, 204);
    expect(&http.delete("/admin/v2/namespaces/acme/ns1").await, 404);
    server.stop().await;
    Ok(())
}

/// Steps: retention, message TTL and backlog quota get/set/remove with their 412s and 400s;
/// permissions list works, grant/revoke answer 501 while authorization is off.
#[tokio::test]
async fn namespace_policies() -> anyhow::Result<()> {
    let server = TestServer::start(AuthConfig::default()).await?;
    let http = server.http(None);
    expect(&http.put("/admin/v2/clusters/local", "{}").await, 204);
    expect(
        &http
            .put("/admin/v2/tenants/acme", r#"{"allowedClusters":["local"]}"#)
            .await,
        204,
    );
    expect(
        &http.call("PUT", "/admin/v2/namespaces/acme/ns", None).await,
        204,
    );
    let ns = "/admin/v2/namespaces/acme/ns";

    // Retention.
    expect(&http.get(&format!("{ns}/retention")).await, 204);
    let retention = r#"{"retentionTimeInMinutes":60,"retentionSizeInMB":1024}"#;
    expect(&http.post(&format!("{ns}/retention"), retention).await, 204);
    assert_eq!(
        http.get(&format!("{ns}/retention")).await.json(),
        serde_json::from_str::<serde_json::Value>(retention)?
    );
    expect(
        &http
            .post(
                &format!("{ns}/retention"),
                r#"{"retentionTimeInMinutes":-2,"retentionSizeInMB":1}"#,
            )
            .await,
        412,
    );
    expect(
        &http
            .post(
                &format!("{ns}/retention"),
                r#"{"retentionTimeInMinutes":0,"retentionSizeInMB":10}"#,
            )
            .await,
        412,
    );
    expect(
        &http
            .post(
                &format!("{ns}/retention"),
                r#"{"retentionTimeInMinutes":"x"}"#,
            )
            .await,
        400,
    );
    expect(
        &http
            .post("/admin/v2/namespaces/acme/nope/retention", retention)
            .await,
        404,
    );

    // Backlog quota: must stay below retention.
    let quota = r#"{"limitSize":104857600,"limitTime":-1,"policy":"producer_exception"}"#;
    expect(&http.post(&format!("{ns}/backlogQuota"), quota).await, 204);
    let map = http.get(&format!("{ns}/backlogQuotaMap")).await.json();
    assert_eq!(map["destination_storage"]["limitSize"], 104857600);
    assert_eq!(map["destination_storage"]["policy"], "producer_exception");
    let too_big = r#"{"limitSize":2147483648,"policy":"producer_request_hold"}"#;
    expect(
        &http.post(&format!("{ns}/backlogQuota"), too_big).await,
        412,
    );
    expect(
        &http
            .post(
                &format!("{ns}/backlogQuota?backlogQuotaType=message_age"),
                r#"{"limitTime":600}"#,
            )
            .await,
        204,
    );
    expect(
        &http
            .post(&format!("{ns}/backlogQuota?backlogQuotaType=bogus"), quota)
            .await,
        400,
    );
    expect(
        &http
            .post(&format!("{ns}/backlogQuota"), r#"{"policy":"nope"}"#)
            .await,
        400,
    );
    // Retention shrinking below the quota is refused too.
    expect(
        &http
            .post(
                &format!("{ns}/retention"),
                r#"{"retentionTimeInMinutes":60,"retentionSizeInMB":10}"#,
            )
            .await,
        412,
    );
    expect(
        &http
            .delete(&format!("{ns}/backlogQuota?backlogQuotaType=message_age"))
            .await,
        204,
    );
    let map = http.get(&format!("{ns}/backlogQuotaMap")).await.json();
    assert!(
        map.get("message_age").is_none() && map.get("destination_storage").is_some(),
        "{map}"
    );
    expect(&http.delete(&format!("{ns}/retention")).await, 204);
    expect(&http.get(&format!("{ns}/retention")).await, 204);

    // Message TTL: a bare integer.
    expect(&http.get(&format!("{ns}/messageTTL")).await, 204);
    expect(&http.post(&format!("{ns}/messageTTL"), "3600").await, 204);
    assert_eq!(
        http.get(&format!("{ns}/messageTTL")).await.json(),
        json!(3600)
    );
    expect(&http.post(&format!("{ns}/messageTTL"), "-5").await, 412);
    expect(
        &http.post(&format!("{ns}/messageTTL"), "\"soon\"").await,
        400,
    );
    expect(&http.delete(&format!("{ns}/messageTTL")).await, 204);
    expect(&http.get(&format!("{ns}/messageTTL")).await, 204);

    // Permissions need authorization on.
    assert_eq!(
        http.get(&format!("{ns}/permissions")).await.json(),
        json!({})
    );
    expect(
        &http
            .post(&format!("{ns}/permissions/app"), r#"["produce"]"#)
            .await,
        501,
    );
    expect(&http.delete(&format!("{ns}/permissions/app")).await, 501);
    expect(
        &http
            .post(&format!("{ns}/permissions/subscription/s"), r#"["app"]"#)
            .await,
        501,
    );
    assert_eq!(
        http.get(&format!("{ns}/permissions/subscription"))
            .await
            .json(),
        json!({})
    );

    // Bad path encodings and query values are 400s with a reason too.
    expect(&http.get("/admin/v2/tenants/%FF").await, 400);
    expect(
        &http.delete("/admin/v2/tenants/acme?force=maybe").await,
        400,
    );
    server.stop().await;
    Ok(())
}
