//! `rest`: the admin REST router (`magnetar_admin_api::router_with` with the broker routes)
//! called in-process with `tower::ServiceExt::oneshot`, over a one-node metadata group from
//! `magnetar_metadata::testing`, with authentication and authorization on (HS256, superuser
//! `root`, tenant `acme` administered by `boss`). The broker behind topic routes is a stub that
//! knows no topic (404), so topic routes run their extractors and access checks.
//!
//! Input: one to three requests, each
//! `[u8 method][u8 credentials][u8 prefix][u16 len][path][u16 len][query][u8 n]
//! ([u8 len][header name][u8 len][header value])×n [u16 len][body]`. The first byte of the
//! input picks how many requests (mostly one). Every answer must be below 500, whatever the
//! request; a 5xx or a panic is a finding.
//!
//! The store keeps what earlier inputs created; it is started afresh every
//! [`RESET_EVERY`] inputs (so it stays small), its basics (cluster, tenant, namespace) are
//! re-created every 200, and a crash is reproduced on a fresh store.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use magnetar_admin_api::{AdminSettings, AdminState, Resources};
use magnetar_auth::keys::data_url;
use magnetar_auth::{Algorithm, AuthConfig, SignKey, TokenSettings, TokenSigner};
use magnetar_metadata::testing::LocalCluster;
use tower::ServiceExt;

use crate::engine::{Signal, Target};
use crate::input::{Input, InputBuilder};
use crate::targets::no_broker::NoBroker;

const SECRET: &[u8] = b"magnetar-fuzz-rest-0123456789abc";
/// Inputs between two fresh stores.
pub const RESET_EVERY: u64 = 20_000;
/// Inputs between two re-creations of the cluster, tenant and namespace the seeds use (an
/// input may delete them; without them most requests would end in 404).
const REPAIR_EVERY: u64 = 200;

const METHODS: [Method; 7] = [
    Method::GET,
    Method::PUT,
    Method::POST,
    Method::DELETE,
    Method::HEAD,
    Method::PATCH,
    Method::OPTIONS,
];
/// Path prefixes by the prefix byte (modulo 8): mostly the admin API.
const PREFIXES: [&str; 8] = [
    "/admin/v2",
    "/admin/v2",
    "/admin/v2",
    "/admin/v2",
    "/admin/v2",
    "/admin/v2",
    "/lookup/v2",
    "",
];

/// The `Authorization` header of each kind of caller: none, superuser `root`, tenant admin
/// `boss`, a stranger, an expired token, a token signed with another key, Basic auth.
#[derive(Debug)]
struct Credentials([Option<String>; 7]);

/// Which caller a credentials byte (modulo 16) is: mostly `root` and `boss`, so that most
/// requests get past authentication and reach the store.
const CALLERS: [usize; 16] = [1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 0, 4, 5, 6];

impl Credentials {
    fn new() -> anyhow::Result<Credentials> {
        let signer = TokenSigner::new(&SignKey::Secret(SECRET.to_vec()), Algorithm::HS256)?;
        let other = TokenSigner::new(&SignKey::Secret(b"another key".to_vec()), Algorithm::HS256)?;
        let mut expired = serde_json::Map::new();
        expired.insert("sub".into(), "root".into());
        expired.insert("exp".into(), 1.into());
        Ok(Credentials([
            None,
            Some(format!("Bearer {}", signer.create("root", None)?)),
            Some(format!("Bearer {}", signer.create("boss", None)?)),
            Some(format!("Bearer {}", signer.create("stranger", None)?)),
            Some(format!("Bearer {}", signer.sign(&expired)?)),
            Some(format!("Bearer {}", other.create("root", None)?)),
            Some("Basic cm9vdDpyb290".into()),
        ]))
    }
}

/// A fresh store and the router over it.
struct Server {
    cluster: LocalCluster,
    router: axum::Router,
}

pub struct Rest {
    runtime: tokio::runtime::Runtime,
    server: Option<Server>,
    credentials: Credentials,
    inputs: u64,
    /// Answers by status, printed when the target is dropped if `MAGNETAR_FUZZ_REST_STATS` is
    /// set: how deep the inputs get (401s and 404s never reach the store).
    statuses: std::collections::BTreeMap<u16, u64>,
}

impl Drop for Rest {
    fn drop(&mut self) {
        if std::env::var_os("MAGNETAR_FUZZ_REST_STATS").is_some() {
            eprintln!("rest: answers by status: {:?}", self.statuses);
        }
    }
}

impl std::fmt::Debug for Rest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rest")
            .field("inputs", &self.inputs)
            .finish()
    }
}

impl Rest {
    pub fn start() -> anyhow::Result<Rest> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let credentials = Credentials::new()?;
        let server = runtime.block_on(start_server(&credentials))?;
        Ok(Rest {
            runtime,
            server: Some(server),
            credentials,
            inputs: 0,
            statuses: Default::default(),
        })
    }

    fn reset(&mut self) {
        let Rest {
            runtime,
            server,
            credentials,
            ..
        } = self;
        runtime.block_on(async {
            if let Some(old) = server.take() {
                drop(old.router);
                old.cluster.shutdown().await;
            }
            *server = Some(
                start_server(credentials)
                    .await
                    .unwrap_or_else(|e| panic!("cannot start a fresh store: {e:#}")),
            );
        });
    }
}

async fn start_server(credentials: &Credentials) -> anyhow::Result<Server> {
    let cluster = LocalCluster::start(1, Default::default()).await?;
    let auth = AuthConfig {
        authentication_enabled: true,
        authorization_enabled: true,
        superuser_roles: vec!["root".into()],
        token: TokenSettings {
            secret_key: Some(data_url(SECRET)),
            ..TokenSettings::default()
        },
        ..AuthConfig::default()
    };
    let state = AdminState::new(
        Resources::new(cluster.client()),
        auth.authenticator()?,
        auth.authorizer(),
        AdminSettings::default(),
    )
    .with_topic_admin(Arc::new(NoBroker));
    let router = magnetar_admin_api::router_with(state, magnetar_admin_api::broker_routes());
    create_basics(&router, credentials, false).await?;
    Ok(Server { cluster, router })
}

/// Creates cluster `standalone`, tenant `acme` (admin `boss`) and namespace `acme/ns`; with
/// `again`, ones that exist already (409) are fine.
async fn create_basics(
    router: &axum::Router,
    credentials: &Credentials,
    again: bool,
) -> anyhow::Result<()> {
    let root = credentials.0[1].clone();
    for (method, path, body) in [
        (
            Method::PUT,
            "/admin/v2/clusters/standalone",
            r#"{"serviceUrl":"http://127.0.0.1:8080","brokerServiceUrl":"pulsar://127.0.0.1:6650"}"#,
        ),
        (
            Method::PUT,
            "/admin/v2/tenants/acme",
            r#"{"adminRoles":["boss"],"allowedClusters":["standalone"]}"#,
        ),
        (Method::PUT, "/admin/v2/namespaces/acme/ns", ""),
    ] {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(root) = &root {
            request = request.header("authorization", root);
        }
        let response = router
            .clone()
            .oneshot(request.body(Body::from(body))?)
            .await?;
        let status = response.status();
        anyhow::ensure!(
            status.is_success() || (again && status == StatusCode::CONFLICT),
            "setting up the store: {path} answered {status}"
        );
    }
    Ok(())
}

/// One request of an input, as bytes.
struct RequestSpec<'a> {
    method: u8,
    credentials: u8,
    prefix: u8,
    path: &'a [u8],
    query: &'a [u8],
    headers: Vec<(&'a [u8], &'a [u8])>,
    body: &'a [u8],
}

impl<'a> RequestSpec<'a> {
    fn read(input: &mut Input<'a>) -> RequestSpec<'a> {
        let method = input.u8();
        let credentials = input.u8();
        let prefix = input.u8();
        let path = input.long_bytes();
        let query = input.long_bytes();
        let count = input.u8() % 4;
        let headers = (0..count)
            .map(|_| (input.short_bytes(), input.short_bytes()))
            .collect();
        let body = input.long_bytes();
        RequestSpec {
            method,
            credentials,
            prefix,
            path,
            query,
            headers,
            body,
        }
    }

    fn write(&self, builder: InputBuilder) -> InputBuilder {
        let mut builder = builder
            .u8(self.method)
            .u8(self.credentials)
            .u8(self.prefix)
            .long_bytes(self.path)
            .long_bytes(self.query)
            .u8(self.headers.len() as u8);
        for (name, value) in &self.headers {
            builder = builder.short_bytes(name).short_bytes(value);
        }
        builder.long_bytes(self.body)
    }

    fn build(&self, credentials: &Credentials) -> Option<(String, Request<Body>)> {
        let method = METHODS[self.method as usize % METHODS.len()].clone();
        let mut uri = format!(
            "{}{}",
            PREFIXES[self.prefix as usize % PREFIXES.len()],
            String::from_utf8_lossy(self.path)
        );
        if !self.query.is_empty() {
            uri.push('?');
            uri.push_str(&String::from_utf8_lossy(self.query));
        }
        let mut builder = Request::builder().method(method.clone()).uri(&uri);
        if let Some(auth) = &credentials.0[CALLERS[self.credentials as usize % CALLERS.len()]] {
            builder = builder.header("authorization", auth);
        }
        for (name, value) in &self.headers {
            if let (Ok(name), Ok(value)) =
                (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
            {
                builder = builder.header(name, value);
            }
        }
        let request = builder.body(Body::from(self.body.to_vec())).ok()?;
        Some((format!("{method} {uri}"), request))
    }
}

impl Target for Rest {
    fn name(&self) -> &'static str {
        "rest"
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        let mut seeds = Vec::new();
        let ns = "/namespaces/acme/ns";
        let topic = "/persistent/acme/ns/orders";
        let single: Vec<(u8, u8, u8, String, &str, &str)> = vec![
            (0, 1, 0, "/clusters".into(), "", ""),
            (0, 1, 0, "/clusters/standalone".into(), "", ""),
            (
                1,
                1,
                0,
                "/clusters/east".into(),
                "",
                r#"{"serviceUrl":"http://e:8080"}"#,
            ),
            (
                2,
                1,
                0,
                "/clusters/standalone".into(),
                "",
                r#"{"serviceUrl":"http://a:1"}"#,
            ),
            (3, 1, 0, "/clusters/east".into(), "", ""),
            (0, 6, 0, "/tenants".into(), "", ""),
            (
                1,
                1,
                0,
                "/tenants/beta".into(),
                "",
                r#"{"adminRoles":["boss"],"allowedClusters":["standalone"]}"#,
            ),
            (
                2,
                1,
                0,
                "/tenants/acme".into(),
                "",
                r#"{"adminRoles":["boss","deputy"],"allowedClusters":["standalone"]}"#,
            ),
            (3, 1, 0, "/tenants/beta".into(), "force=true", ""),
            (0, 6, 0, "/namespaces/acme".into(), "", ""),
            (
                1,
                2,
                0,
                "/namespaces/acme/ns2".into(),
                "",
                r#"{"bundles":{"numBundles":8}}"#,
            ),
            (0, 6, 0, ns.into(), "", ""),
            (3, 6, 0, "/namespaces/acme/ns2".into(), "force=false", ""),
            (0, 6, 0, format!("{ns}/permissions"), "", ""),
            (
                2,
                2,
                0,
                format!("{ns}/permissions/app"),
                "",
                r#"["produce","consume"]"#,
            ),
            (3, 6, 0, format!("{ns}/permissions/app"), "", ""),
            (
                2,
                2,
                0,
                format!("{ns}/permissions/subscription/s"),
                "",
                r#"["reader"]"#,
            ),
            (0, 6, 0, format!("{ns}/permissions/subscription"), "", ""),
            (
                2,
                2,
                0,
                format!("{ns}/retention"),
                "",
                r#"{"retentionTimeInMinutes":60,"retentionSizeInMB":-1}"#,
            ),
            (0, 6, 0, format!("{ns}/retention"), "", ""),
            (2, 6, 0, format!("{ns}/messageTTL"), "", "3600"),
            (3, 6, 0, format!("{ns}/messageTTL"), "", ""),
            (
                2,
                2,
                0,
                format!("{ns}/backlogQuota"),
                "backlogQuotaType=destination_storage",
                r#"{"limitSize":1024,"policy":"producer_request_hold"}"#,
            ),
            (0, 6, 0, format!("{ns}/backlogQuotaMap"), "", ""),
            (
                3,
                2,
                0,
                format!("{ns}/backlogQuota"),
                "backlogQuotaType=message_age",
                "",
            ),
            (
                2,
                2,
                0,
                format!("{ns}/persistence"),
                "",
                r#"{"bookkeeperEnsemble":2,"bookkeeperWriteQuorum":2,"bookkeeperAckQuorum":1}"#,
            ),
            (0, 6, 0, format!("{ns}/persistence"), "", ""),
            (
                2,
                2,
                0,
                format!("{ns}/replication"),
                "",
                r#"["standalone"]"#,
            ),
            (0, 6, 0, format!("{ns}/bundles"), "", ""),
            (0, 6, 0, format!("{ns}/owners"), "", ""),
            (0, 6, 0, format!("{ns}/topics"), "", ""),
            (1, 6, 0, format!("{ns}/unload"), "", ""),
            (
                1,
                2,
                0,
                format!("{ns}/0x00000000_0x40000000/unload"),
                "authoritative=true",
                "",
            ),
            (1, 6, 0, format!("{ns}/0x00000000_0x40000000/split"), "", ""),
            (0, 6, 0, "/persistent/acme/ns".into(), "", ""),
            (0, 6, 0, "/persistent/acme/ns/partitioned".into(), "", ""),
            (1, 6, 0, format!("{topic}/partitions"), "", "4"),
            (0, 6, 0, format!("{topic}/partitions"), "", ""),
            (1, 6, 0, topic.into(), "", ""),
            (3, 6, 0, topic.into(), "force=true", ""),
            (0, 6, 0, format!("{topic}/stats"), "", ""),
            (0, 6, 0, format!("{topic}/internalStats"), "", ""),
            (0, 6, 0, format!("{topic}/partitioned-stats"), "", ""),
            (0, 6, 0, format!("{topic}/subscriptions"), "", ""),
            (
                1,
                2,
                0,
                format!("{topic}/subscription/s"),
                "",
                r#"{"ledgerId":1,"entryId":2}"#,
            ),
            (3, 6, 0, format!("{topic}/subscription/s"), "force=true", ""),
            (
                2,
                2,
                0,
                format!("{topic}/subscription/s/resetcursor/1700000000000"),
                "",
                "",
            ),
            (
                2,
                2,
                0,
                format!("{topic}/subscription/s/resetcursor"),
                "",
                r#"{"ledgerId":1,"entryId":2,"partitionIndex":-1}"#,
            ),
            (2, 6, 0, format!("{topic}/subscription/s/skip/10"), "", ""),
            (2, 6, 0, format!("{topic}/subscription/s/skip_all"), "", ""),
            (
                0,
                3,
                1,
                "/topic/persistent/acme/ns/orders".into(),
                "authoritative=false",
                "",
            ),
            (0, 1, 0, "/brokers/standalone".into(), "", ""),
            (0, 1, 0, "/brokers/health".into(), "", ""),
            (0, 12, 0, "/tenants".into(), "", ""),
            (0, 13, 0, "/tenants".into(), "", ""),
            (0, 14, 0, "/tenants".into(), "", ""),
            (0, 15, 0, "/tenants".into(), "", ""),
            (0, 12, 0, "/openapi.json".into(), "", ""),
            (
                0,
                3,
                0,
                "/namespaces/acme/bad%20name/retention".into(),
                "",
                "",
            ),
            (0, 1, 0, "/namespaces/acme/%ff%fe".into(), "", ""),
        ];
        for (method, credentials, prefix, path, query, body) in &single {
            let spec = RequestSpec {
                method: *method,
                credentials: *credentials,
                prefix: *prefix,
                path: path.as_bytes(),
                query: query.as_bytes(),
                headers: if body.is_empty() {
                    Vec::new()
                } else {
                    vec![(&b"content-type"[..], &b"application/json"[..])]
                },
                body: body.as_bytes(),
            };
            seeds.push(spec.write(InputBuilder::new().u8(0)).build());
        }
        // Programs: create, then use, then remove.
        let create = RequestSpec {
            method: 1,
            credentials: 6,
            prefix: 0,
            path: b"/namespaces/acme/tmp",
            query: b"",
            headers: Vec::new(),
            body: b"",
        };
        let policy = RequestSpec {
            method: 2,
            credentials: 6,
            prefix: 0,
            path: b"/namespaces/acme/tmp/retention",
            query: b"",
            headers: Vec::new(),
            body: br#"{"retentionTimeInMinutes":1,"retentionSizeInMB":1}"#,
        };
        let remove = RequestSpec {
            method: 3,
            credentials: 1,
            prefix: 0,
            path: b"/namespaces/acme/tmp",
            query: b"",
            headers: Vec::new(),
            body: b"",
        };
        let program = remove.write(policy.write(create.write(InputBuilder::new().u8(7))));
        seeds.push(program.build());
        seeds
    }

    fn run(&mut self, input: &[u8]) -> Signal {
        self.inputs += 1;
        if self.inputs.is_multiple_of(RESET_EVERY) {
            self.reset();
        } else if self.inputs.is_multiple_of(REPAIR_EVERY)
            && let Some(server) = &self.server
        {
            let repaired =
                self.runtime
                    .block_on(create_basics(&server.router, &self.credentials, true));
            if let Err(e) = repaired {
                panic!("cannot re-create the basics: {e:#}");
            }
        }
        let mut input = Input::new(input);
        let count = match input.u8() % 8 {
            0..=5 => 1,
            6 => 2,
            _ => 3,
        };
        // Trailing requests only while bytes are left (zeros would make empty requests).
        let mut specs: Vec<RequestSpec> = Vec::with_capacity(count);
        while specs.len() < count && (specs.is_empty() || !input.is_empty()) {
            specs.push(RequestSpec::read(&mut input));
        }
        let Some(server) = &self.server else {
            panic!("no store");
        };
        let router = server.router.clone();
        let credentials = &self.credentials;
        let mut signal = Signal::new("rest");
        let statuses = &mut self.statuses;
        self.runtime.block_on(async {
            for spec in &specs {
                let Some((what, request)) = spec.build(credentials) else {
                    signal = signal.with("unbuildable");
                    continue;
                };
                let response = router
                    .clone()
                    .oneshot(request)
                    .await
                    .unwrap_or_else(|e| match e {});
                let status = response.status();
                if status.is_server_error() {
                    let body = axum::body::to_bytes(response.into_body(), 64 << 10)
                        .await
                        .unwrap_or_default();
                    panic!(
                        "{what} answered {status}: {}",
                        String::from_utf8_lossy(&body)
                    );
                }
                *statuses.entry(status.as_u16()).or_default() += 1;
                signal = signal
                    .with_num(u64::from(status.as_u16()))
                    .with([spec.method % 7, spec.credentials % 16]);
            }
        });
        signal
    }

    fn max_len(&self) -> usize {
        2048
    }

    fn time_limit(&self) -> Duration {
        // Writes go through Raft with an fsync each, on a disk other builds share.
        Duration::from_secs(5)
    }

    fn watch_allocations(&self) -> bool {
        false
    }
}
