//! Token authentication and authorization on the Pulsar protocol, with the admin API as the
//! way grants are made. Steps: start a standalone with auth on (HS256, superuser `admin`, token
//! checks every second); CONNECT without a token, with an expired one, with one signed by the
//! wrong algorithm: each gets `ERROR{-1, AuthenticationError}` and a closed connection; over
//! REST, no token is 401 and a plain role is 403; the superuser creates a tenant with an admin
//! role, a namespace, and grants `produce` to one role; then LOOKUP, PRODUCER and SUBSCRIBE are
//! refused (AuthorizationError) or allowed per role; finally a token expiring on a live
//! connection is challenged and renewed, or the connection is closed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use magnetar_auth::keys::data_url;
use magnetar_auth::{Algorithm, AuthConfig, SignKey, TokenSettings, TokenSigner};
use magnetar_broker::standalone::{Standalone, StandaloneConfig};
use magnetar_protocol::pulsar::base_command::Type;
use magnetar_protocol::pulsar::command_lookup_topic_response::LookupType;
use magnetar_protocol::pulsar::{AuthData, CommandAuthResponse, ServerError};
use magnetar_testkit::raw::{self, Hello, RawClient};
use serde_json::{Map, Value, json};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn signer(alg: Algorithm) -> TokenSigner {
    TokenSigner::new(&SignKey::Secret(SECRET.to_vec()), alg).expect("signer")
}

fn token(role: &str) -> String {
    signer(Algorithm::HS256)
        .create(role, Some(3600))
        .expect("token")
}

fn token_expiring(role: &str, exp_offset: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(role));
    claims.insert("exp".into(), json!(now + exp_offset));
    signer(Algorithm::HS256).sign(&claims).expect("token")
}

async fn start() -> (Standalone, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StandaloneConfig {
        auth: AuthConfig {
            authentication_enabled: true,
            authorization_enabled: true,
            superuser_roles: vec!["admin".into()],
            token: TokenSettings {
                secret_key: Some(data_url(SECRET)),
                ..TokenSettings::default()
            },
            ..AuthConfig::default()
        },
        auth_refresh_check_secs: 1,
        ..StandaloneConfig::ephemeral(dir.path())
    };
    (Standalone::start(config).await.expect("standalone"), dir)
}

async fn refused(standalone: &Standalone, token: Option<&str>) {
    match RawClient::connect(standalone.broker.addr(), token).await {
        Hello::Refused(Some(frame)) => {
            let error = frame.command.error.expect("ERROR");
            assert_eq!(error.request_id, u64::MAX);
            assert_eq!(
                error.error,
                ServerError::AuthenticationError as i32,
                "{error:?}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

struct Rest {
    http: reqwest::Client,
    base: String,
}

impl Rest {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> u16 {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.expect("request").status().as_u16()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_grants_on_the_binary_protocol() {
    let (standalone, _dir) = start().await;
    let addr = standalone.broker.addr();

    // Authentication.
    refused(&standalone, None).await;
    refused(&standalone, Some(&token_expiring("admin", -60))).await;
    let hs384 = signer(Algorithm::HS384)
        .create("admin", None)
        .expect("token");
    refused(&standalone, Some(&hs384)).await;
    refused(&standalone, Some("not-a-jwt")).await;

    // REST: 401 without a token, 403 for a plain role; the superuser sets up a tenant.
    let rest = Rest {
        http: reqwest::Client::new(),
        base: format!("http://{}", standalone.broker.addrs().http.expect("http")),
    };
    use reqwest::Method as M;
    assert_eq!(
        rest.call(M::GET, "/admin/v2/tenants", None, None).await,
        401
    );
    assert_eq!(
        rest.call(M::GET, "/admin/v2/tenants", Some(&token("writer")), None)
            .await,
        403
    );
    let admin = token("admin");
    let tenant = json!({"adminRoles": ["acme-admin"], "allowedClusters": ["standalone"]});
    assert_eq!(
        rest.call(M::PUT, "/admin/v2/tenants/acme", Some(&admin), Some(tenant))
            .await,
        204
    );
    assert_eq!(
        rest.call(
            M::PUT,
            "/admin/v2/namespaces/acme/orders",
            Some(&admin),
            None
        )
        .await,
        204
    );
    let grant = "/admin/v2/namespaces/acme/orders/permissions/writer";
    assert_eq!(
        rest.call(M::POST, grant, Some(&admin), Some(json!(["produce"])))
            .await,
        204
    );
    // Topic routes follow the tenant's rules too.
    let topics = "/admin/v2/persistent/acme/orders";
    assert_eq!(
        rest.call(M::GET, topics, Some(&token("writer")), None)
            .await,
        403
    );
    assert_eq!(
        rest.call(M::GET, topics, Some(&token("acme-admin")), None)
            .await,
        200
    );
    assert_eq!(
        rest.call(
            M::GET,
            "/lookup/v2/topic/persistent/acme/orders/t",
            Some(&token("reader")),
            None
        )
        .await,
        403
    );
    assert_eq!(
        rest.call(
            M::GET,
            "/lookup/v2/topic/persistent/acme/orders/t",
            Some(&token("writer")),
            None
        )
        .await,
        200
    );

    let topic = "persistent://acme/orders/t";
    // A role without a grant: authenticated, but refused everything on the topic.
    let mut reader = RawClient::connect(addr, Some(&token("reader")))
        .await
        .expect_connected();
    let lookup = reader.lookup(topic).await;
    assert_eq!(lookup.response, Some(LookupType::Failed as i32));
    assert_eq!(lookup.error, Some(ServerError::AuthorizationError as i32));
    let error = reader
        .producer(topic, 1)
        .await
        .expect_err("no produce grant");
    assert_eq!(error.error, ServerError::AuthorizationError as i32);
    let error = reader
        .subscribe(topic, "s", 1, 10)
        .await
        .expect_err("no consume grant");
    assert_eq!(error.error, ServerError::AuthorizationError as i32);

    // `produce` granted: lookup and produce, not consume.
    let mut writer = RawClient::connect(addr, Some(&token("writer")))
        .await
        .expect_connected();
    assert_eq!(
        writer.lookup(topic).await.response,
        Some(LookupType::Connect as i32)
    );
    let name = writer.producer(topic, 1).await.expect("producer");
    writer.publish(1, &name, b"hello").await;
    let error = writer
        .subscribe(topic, "s", 2, 10)
        .await
        .expect_err("no consume grant");
    assert_eq!(error.error, ServerError::AuthorizationError as i32);

    // The tenant's admin may do everything on its topics.
    let mut owner = RawClient::connect(addr, Some(&token("acme-admin")))
        .await
        .expect_connected();
    owner.subscribe(topic, "s", 1, 10).await.expect("subscribe");
    assert_eq!(owner.receive().await, b"hello");

    // A token that expires on a live connection: a client that supports refresh is challenged
    // and stays with a fresh token; without an answer, or without refresh support, it is closed.
    let tcp = |a| async move {
        Box::new(tokio::net::TcpStream::connect(a).await.expect("tcp")) as Box<dyn raw::Io>
    };
    let mut renewing =
        RawClient::handshake(tcp(addr).await, Some(&token_expiring("writer", 2)), true)
            .await
            .expect_connected();
    let mut silent =
        RawClient::handshake(tcp(addr).await, Some(&token_expiring("writer", 2)), true)
            .await
            .expect_connected();
    let mut old = RawClient::handshake(tcp(addr).await, Some(&token_expiring("writer", 2)), false)
        .await
        .expect_connected();
    let challenge = renewing.next().await;
    assert_eq!(challenge.command.kind(), Some(Type::AuthChallenge));
    renewing
        .send(CommandAuthResponse {
            client_version: Some("raw-test".into()),
            response: Some(AuthData {
                auth_method_name: Some("token".into()),
                auth_data: Some(token("writer").into_bytes()),
            }),
            protocol_version: None,
        })
        .await;
    assert!(
        old.closed_within(Duration::from_secs(10)).await,
        "no refresh support: closed"
    );
    assert!(
        silent.closed_within(Duration::from_secs(10)).await,
        "unanswered challenge: closed"
    );
    // The renewed connection outlives several more checks.
    assert!(
        !renewing.closed_within(Duration::from_secs(3)).await,
        "renewed: stays open"
    );
    assert_eq!(
        renewing.lookup(topic).await.response,
        Some(LookupType::Connect as i32)
    );

    standalone.shutdown().await;
}
