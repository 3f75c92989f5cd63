//! Test harness: a one-node metadata group, the admin router served on 127.0.0.1:0, and a
//! small HTTP helper that keeps status and raw body (so error bodies can be checked).

#![allow(dead_code)]

use magnetar_admin_api::{AdminSettings, AdminState, Resources};
use magnetar_auth::keys::data_url;
use magnetar_auth::{Algorithm, AuthConfig, SignKey, TokenSettings, TokenSigner};
use magnetar_metadata::testing::LocalCluster;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

/// Auth on: HS256 with [`SECRET`], superuser `root`.
pub fn auth_on() -> AuthConfig {
    AuthConfig {
        authentication_enabled: true,
        authorization_enabled: true,
        superuser_roles: vec!["root".into()],
        token: TokenSettings {
            secret_key: Some(data_url(SECRET)),
            ..TokenSettings::default()
        },
        ..AuthConfig::default()
    }
}

/// A token for `role` signed with [`SECRET`].
pub fn token(role: &str) -> String {
    TokenSigner::new(&SignKey::Secret(SECRET.to_vec()), Algorithm::HS256)
        .expect("HS256 signer")
        .create(role, Some(3600))
        .expect("token")
}

pub struct TestServer {
    pub url: String,
    pub resources: Resources,
    pub metadata: LocalCluster,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub async fn start(auth: AuthConfig) -> anyhow::Result<TestServer> {
        let metadata = LocalCluster::start(1, Default::default()).await?;
        let resources = Resources::new(metadata.client());
        let settings = AdminSettings {
            cluster_name: "local".into(),
            default_bundles: 4,
            ..AdminSettings::default()
        };
        let state = AdminState::new(
            resources.clone(),
            auth.authenticator()?,
            auth.authorizer(),
            settings,
        );
        let app = magnetar_admin_api::router(state);
        let (listener, addr) = magnetar_admin_api::bind("127.0.0.1:0".parse()?).await?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(magnetar_admin_api::serve(listener, app, async move {
            let _ = rx.await;
        }));
        Ok(TestServer {
            url: format!("http://{addr}"),
            resources,
            metadata,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    pub fn http(&self, token: Option<&str>) -> Http {
        Http {
            client: reqwest::Client::new(),
            base: self.url.clone(),
            token: token.map(str::to_string),
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.metadata.shutdown().await;
    }
}

/// A response: status and body (parsed as JSON when it is JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
    /// The `reason` of an error body; panics if the body is not `{"reason": …}`.
    pub fn reason(&self) -> String {
        self.json()["reason"]
            .as_str()
            .unwrap_or_else(|| panic!("no reason in {} {:?}", self.status, self.body))
            .to_string()
    }
}

pub struct Http {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Http {
    pub async fn call(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        Reply {
            status,
            body: resp.text().await.expect("body"),
        }
    }
    pub async fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None).await
    }
    pub async fn put(&self, path: &str, body: &str) -> Reply {
        self.call("PUT", path, Some(body)).await
    }
    pub async fn post(&self, path: &str, body: &str) -> Reply {
        self.call("POST", path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> Reply {
        self.call("DELETE", path, None).await
    }
}

/// Asserts a status, and for errors a `{"reason"}` body.
#[track_caller]
pub fn expect(reply: &Reply, status: u16) {
    assert_eq!(reply.status, status, "body: {}", reply.body);
    if status >= 400 {
        assert!(!reply.reason().is_empty());
    }
}
