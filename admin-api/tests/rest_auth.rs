//! The admin API with authentication and authorization on: 401 without or with a bad token,
//! 403 for a role without the right, superusers everywhere, tenant admins in their tenant,
//! and namespace permission grants (which need authorization on).

use crate::common;

use common::{TestServer, auth_on, expect, token};
use magnetar_auth::TopicOperation;
use magnetar_protocol::topic::TopicName;
use serde_json::json;

/// Steps: no token / garbage / wrong-key / expired token → 401 (with a reason); non-superuser
/// on clusters and tenant creation → 403; superuser sets up a tenant; the OpenAPI document is
/// readable without a token.
#[tokio::test]
async fn authentication_and_superuser() -> anyhow::Result<()> {
    let server = TestServer::start(auth_on()).await?;
    let anonymous = server.http(None);
    for path in [
        "/admin/v2/clusters",
        "/admin/v2/tenants",
        "/admin/v2/namespaces/acme",
    ] {
        let reply = anonymous.get(path).await;
        expect(&reply, 401);
    }
    expect(
        &server
            .http(Some("not-a-jwt"))
            .get("/admin/v2/tenants")
            .await,
        401,
    );
    let wrong_key = magnetar_auth::TokenSigner::new(
        &magnetar_auth::SignKey::Secret(b"another secret, same algorithm!!".to_vec()),
        magnetar_auth::Algorithm::HS256,
    )?
    .create("root", None)?;
    expect(
        &server.http(Some(&wrong_key)).get("/admin/v2/tenants").await,
        401,
    );
    let mut expired = serde_json::Map::new();
    expired.insert("sub".into(), json!("root"));
    expired.insert("exp".into(), json!(1));
    let expired = magnetar_auth::TokenSigner::new(
        &magnetar_auth::SignKey::Secret(common::SECRET.to_vec()),
        magnetar_auth::Algorithm::HS256,
    )?
    .sign(&expired)?;
    let reply = server.http(Some(&expired)).get("/admin/v2/tenants").await;
    expect(&reply, 401);
    assert!(reply.reason().contains("expired"), "{}", reply.body);

    let user = server.http(Some(&token("alice")));
    let root = server.http(Some(&token("root")));
    expect(&user.put("/admin/v2/clusters/local", "{}").await, 403);
    expect(&root.put("/admin/v2/clusters/local", "{}").await, 204);
    expect(&user.get("/admin/v2/clusters/local").await, 403);
    assert_eq!(
        user.get("/admin/v2/clusters").await.json(),
        json!(["local"])
    );
    expect(
        &user
            .put("/admin/v2/tenants/acme", r#"{"allowedClusters":["local"]}"#)
            .await,
        403,
    );
    expect(&user.get("/admin/v2/tenants").await, 403);
    expect(
        &root
            .put(
                "/admin/v2/tenants/acme",
                r#"{"adminRoles":["boss"],"allowedClusters":["local"]}"#,
            )
            .await,
        204,
    );
    expect(&root.get("/admin/v2/tenants").await, 200);

    expect(&anonymous.get(magnetar_admin_api::OPENAPI_PATH).await, 200);
    server.stop().await;
    Ok(())
}

/// Steps: a tenant admin manages namespaces of its tenant but not of another tenant (403) nor
/// the tenant itself (403 on update/delete); grants and revokes permissions; the grants then
/// drive `authorize_topic` for produce/consume/lookup.
#[tokio::test]
async fn tenant_admin_and_permissions() -> anyhow::Result<()> {
    let server = TestServer::start(auth_on()).await?;
    let root = server.http(Some(&token("root")));
    let boss = server.http(Some(&token("boss")));
    let app = server.http(Some(&token("app")));
    expect(&root.put("/admin/v2/clusters/local", "{}").await, 204);
    expect(
        &root
            .put(
                "/admin/v2/tenants/acme",
                r#"{"adminRoles":["boss"],"allowedClusters":["local"]}"#,
            )
            .await,
        204,
    );
    expect(
        &root
            .put(
                "/admin/v2/tenants/other",
                r#"{"adminRoles":["someone"],"allowedClusters":["local"]}"#,
            )
            .await,
        204,
    );

    expect(&boss.get("/admin/v2/tenants/acme").await, 200);
    expect(&boss.get("/admin/v2/tenants/other").await, 403);
    expect(
        &boss
            .post("/admin/v2/tenants/acme", r#"{"allowedClusters":["local"]}"#)
            .await,
        403,
    );
    expect(&boss.delete("/admin/v2/tenants/acme").await, 403);
    expect(
        &boss.call("PUT", "/admin/v2/namespaces/acme/ns", None).await,
        204,
    );
    expect(
        &boss
            .call("PUT", "/admin/v2/namespaces/other/ns", None)
            .await,
        403,
    );
    expect(&boss.get("/admin/v2/namespaces/acme").await, 200);
    expect(&boss.get("/admin/v2/namespaces/nope").await, 404);
    expect(&app.get("/admin/v2/namespaces/acme").await, 403);
    expect(&app.get("/admin/v2/namespaces/acme/ns").await, 403);
    expect(
        &app.post("/admin/v2/namespaces/acme/ns/messageTTL", "10")
            .await,
        403,
    );
    expect(
        &app.post(
            "/admin/v2/namespaces/acme/ns/permissions/app",
            r#"["produce"]"#,
        )
        .await,
        403,
    );

    let ns = "/admin/v2/namespaces/acme/ns";
    expect(
        &boss
            .post(&format!("{ns}/permissions/app"), r#"["produce","consume"]"#)
            .await,
        204,
    );
    expect(
        &boss
            .post(&format!("{ns}/permissions/reader"), r#"["consume"]"#)
            .await,
        204,
    );
    expect(
        &boss
            .post(&format!("{ns}/permissions/x"), r#"["fly"]"#)
            .await,
        400,
    );
    assert_eq!(
        boss.get(&format!("{ns}/permissions")).await.json(),
        json!({"app": ["produce", "consume"], "reader": ["consume"]})
    );

    // The broker's view of the same grants.
    let state = magnetar_admin_api::AdminState::new(
        server.resources.clone(),
        auth_on().authenticator()?,
        auth_on().authorizer(),
        Default::default(),
    );
    let topic = TopicName::parse("persistent://acme/ns/orders")?;
    let consume = TopicOperation::Consume { subscription: "s" };
    assert!(
        state
            .authorize_topic(Some("app"), &topic, TopicOperation::Produce)
            .await
            .is_ok()
    );
    assert!(
        state
            .authorize_topic(Some("reader"), &topic, consume)
            .await
            .is_ok()
    );
    assert_eq!(
        state
            .authorize_topic(Some("reader"), &topic, TopicOperation::Produce)
            .await
            .map_err(|e| e.status.as_u16()),
        Err(403)
    );
    assert!(
        state
            .authorize_topic(Some("reader"), &topic, TopicOperation::Lookup)
            .await
            .is_ok()
    );
    assert!(
        state
            .authorize_topic(Some("boss"), &topic, TopicOperation::Produce)
            .await
            .is_ok()
    );
    assert!(
        state
            .authorize_topic(Some("stranger"), &topic, TopicOperation::Lookup)
            .await
            .is_err()
    );
    assert!(
        state
            .authorize_topic(None, &topic, TopicOperation::Lookup)
            .await
            .is_err()
    );

    // Subscription roles: once set, only those roles (and admins) may use the subscription.
    expect(
        &boss
            .post(
                &format!("{ns}/permissions/subscription/locked"),
                r#"["reader"]"#,
            )
            .await,
        204,
    );
    assert_eq!(
        boss.get(&format!("{ns}/permissions/subscription"))
            .await
            .json(),
        json!({"locked": ["reader"]})
    );
    let locked = TopicOperation::Consume {
        subscription: "locked",
    };
    assert!(
        state
            .authorize_topic(Some("reader"), &topic, locked)
            .await
            .is_ok()
    );
    assert_eq!(
        state
            .authorize_topic(Some("app"), &topic, locked)
            .await
            .map_err(|e| e.status.as_u16()),
        Err(403)
    );
    expect(
        &boss
            .delete(&format!("{ns}/permissions/locked/reader"))
            .await,
        204,
    );
    assert_eq!(
        boss.get(&format!("{ns}/permissions/subscription"))
            .await
            .json(),
        json!({})
    );
    assert!(
        state
            .authorize_topic(Some("app"), &topic, locked)
            .await
            .is_ok()
    );

    // Topic-level grants, stored by the resources layer for the broker's topic routes.
    let other = TopicName::parse("persistent://acme/ns/other")?;
    let consume_only = [magnetar_auth::AuthAction::Consume].into();
    server
        .resources
        .namespaces
        .grant_topic_permission(&other, "stranger", &consume_only)
        .await?;
    let partition = TopicName::parse("persistent://acme/ns/other-partition-1")?;
    assert!(
        state
            .authorize_topic(Some("stranger"), &partition, consume)
            .await
            .is_ok()
    );
    assert!(
        state
            .authorize_topic(Some("stranger"), &topic, consume)
            .await
            .is_err()
    );
    server
        .resources
        .namespaces
        .revoke_topic_permission(&other, "stranger")
        .await?;
    assert!(
        state
            .authorize_topic(Some("stranger"), &other, consume)
            .await
            .is_err()
    );

    expect(&boss.delete(&format!("{ns}/permissions/app")).await, 204);
    assert_eq!(
        boss.get(&format!("{ns}/permissions")).await.json(),
        json!({"reader": ["consume"]})
    );
    assert!(
        state
            .authorize_topic(Some("app"), &topic, TopicOperation::Produce)
            .await
            .is_err()
    );
    expect(&boss.delete(ns).await, 204);
    server.stop().await;
    Ok(())
}
