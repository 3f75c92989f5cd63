//! Every binary command and every REST route, tried by a role that holds no grant: each is
//! refused (or, for commands that act on a producer or consumer id, finds none and changes
//! nothing). The tables are exhaustive — the binary one matches every command type without a
//! wildcard, the REST one walks the OpenAPI document — so a new command or route without an
//! authorization check fails here.
//!
//! Steps: a standalone with auth on; the superuser creates tenant `acme` (admin `acme-admin`),
//! namespace `acme/orders`, topic `t` with subscription `s` and one message; role `stranger`
//! then tries everything; afterwards the topic still has its message and its subscription.

use std::collections::BTreeMap;

use magnetar_auth::keys::data_url;
use magnetar_auth::{Algorithm, AuthConfig, SignKey, TokenSettings, TokenSigner};
use magnetar_broker::standalone::{Standalone, StandaloneConfig};
use magnetar_protocol::pulsar::base_command::Type;
use magnetar_protocol::pulsar::*;
use magnetar_protocol::{Frame, Payload};
use magnetar_testkit::raw::RawClient;
use serde_json::{Value, json};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const TOPIC: &str = "persistent://acme/orders/t";

fn token(role: &str) -> String {
    TokenSigner::new(&SignKey::Secret(SECRET.to_vec()), Algorithm::HS256)
        .expect("signer")
        .create(role, Some(3600))
        .expect("token")
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
        ..StandaloneConfig::ephemeral(dir.path())
    };
    (Standalone::start(config).await.expect("standalone"), dir)
}

/// What a role without grants must get for a command.
enum Expect {
    /// A topic or namespace request: refused with AuthorizationError.
    Refused(Frame),
    /// Acts on a producer or consumer id this connection never got: answered with an error or
    /// ignored; nothing changes.
    NoSuchId(Frame),
    /// Sent by brokers, or not served (transactions): ignored or refused;
    /// nothing changes.
    NotARequest,
    /// The handshake (checked by the binary-auth tests).
    Handshake,
}

fn topic_request<T: Into<Frame>>(command: T) -> Expect {
    Expect::Refused(command.into())
}

fn schema() -> Schema {
    Schema {
        name: "junk".into(),
        schema_data: vec![b'x'; 64],
        r#type: schema::Type::Json as i32,
        properties: vec![],
    }
}

/// The exhaustive table: every command type is classified here.
fn expectation(kind: Type) -> Expect {
    match kind {
        Type::Connect | Type::AuthResponse | Type::Ping | Type::Pong => Expect::Handshake,
        Type::Subscribe => topic_request(CommandSubscribe {
            topic: TOPIC.into(),
            subscription: "s".into(),
            sub_type: 1,
            consumer_id: 1,
            request_id: 1,
            ..Default::default()
        }),
        Type::Producer => topic_request(CommandProducer {
            topic: TOPIC.into(),
            producer_id: 1,
            request_id: 2,
            ..Default::default()
        }),
        Type::PartitionedMetadata => topic_request(CommandPartitionedTopicMetadata {
            topic: TOPIC.into(),
            request_id: 3,
            ..Default::default()
        }),
        Type::Lookup => topic_request(CommandLookupTopic {
            topic: TOPIC.into(),
            request_id: 4,
            ..Default::default()
        }),
        Type::GetSchema => topic_request(CommandGetSchema {
            topic: TOPIC.into(),
            request_id: 5,
            ..Default::default()
        }),
        Type::GetOrCreateSchema => topic_request(CommandGetOrCreateSchema {
            topic: TOPIC.into(),
            request_id: 6,
            schema: schema(),
        }),
        Type::GetTopicsOfNamespace => topic_request(CommandGetTopicsOfNamespace {
            namespace: "acme/orders".into(),
            request_id: 7,
            ..Default::default()
        }),
        Type::WatchTopicList => topic_request(CommandWatchTopicList {
            request_id: 20,
            watcher_id: 1,
            namespace: "acme/orders".into(),
            topics_pattern: "persistent://acme/orders/.*".into(),
            topics_hash: None,
        }),
        Type::WatchTopicListClose => Expect::NoSuchId(
            CommandWatchTopicListClose {
                request_id: 21,
                watcher_id: 1,
            }
            .into(),
        ),
        Type::Send => {
            let metadata = MessageMetadata {
                producer_name: "p".into(),
                sequence_id: 0,
                publish_time: 1,
                ..Default::default()
            };
            let send = CommandSend {
                producer_id: 1,
                sequence_id: 0,
                ..Default::default()
            };
            Expect::NoSuchId(Frame::with_payload(send, Payload::new(&metadata, b"x")))
        }
        Type::Ack => Expect::NoSuchId(
            CommandAck {
                consumer_id: 1,
                ack_type: 1,
                message_id: vec![MessageIdData {
                    ledger_id: u64::MAX - 1,
                    entry_id: 1,
                    ..Default::default()
                }],
                request_id: Some(8),
                ..Default::default()
            }
            .into(),
        ),
        Type::Flow => Expect::NoSuchId(
            CommandFlow {
                consumer_id: 1,
                message_permits: 100,
            }
            .into(),
        ),
        Type::Unsubscribe => Expect::NoSuchId(
            CommandUnsubscribe {
                consumer_id: 1,
                request_id: 9,
                force: Some(true),
            }
            .into(),
        ),
        Type::CloseProducer => Expect::NoSuchId(
            CommandCloseProducer {
                producer_id: 1,
                request_id: 10,
                ..Default::default()
            }
            .into(),
        ),
        Type::CloseConsumer => Expect::NoSuchId(
            CommandCloseConsumer {
                consumer_id: 1,
                request_id: 11,
                ..Default::default()
            }
            .into(),
        ),
        Type::RedeliverUnacknowledgedMessages => Expect::NoSuchId(
            CommandRedeliverUnacknowledgedMessages {
                consumer_id: 1,
                ..Default::default()
            }
            .into(),
        ),
        Type::ConsumerStats => Expect::NoSuchId(
            CommandConsumerStats {
                request_id: 12,
                consumer_id: 1,
            }
            .into(),
        ),
        Type::Seek => Expect::NoSuchId(
            CommandSeek {
                consumer_id: 1,
                request_id: 13,
                message_publish_time: Some(0),
                ..Default::default()
            }
            .into(),
        ),
        Type::GetLastMessageId => Expect::NoSuchId(
            CommandGetLastMessageId {
                consumer_id: 1,
                request_id: 14,
            }
            .into(),
        ),
        Type::Connected
        | Type::SendReceipt
        | Type::SendError
        | Type::Message
        | Type::Success
        | Type::Error
        | Type::ProducerSuccess
        | Type::PartitionedMetadataResponse
        | Type::LookupResponse
        | Type::ConsumerStatsResponse
        | Type::ReachedEndOfTopic
        | Type::GetLastMessageIdResponse
        | Type::ActiveConsumerChange
        | Type::GetTopicsOfNamespaceResponse
        | Type::GetSchemaResponse
        | Type::AuthChallenge
        | Type::AckResponse
        | Type::GetOrCreateSchemaResponse
        | Type::NewTxn
        | Type::NewTxnResponse
        | Type::AddPartitionToTxn
        | Type::AddPartitionToTxnResponse
        | Type::AddSubscriptionToTxn
        | Type::AddSubscriptionToTxnResponse
        | Type::EndTxn
        | Type::EndTxnResponse
        | Type::EndTxnOnPartition
        | Type::EndTxnOnPartitionResponse
        | Type::EndTxnOnSubscription
        | Type::EndTxnOnSubscriptionResponse
        | Type::TcClientConnectRequest
        | Type::TcClientConnectResponse
        | Type::WatchTopicListSuccess
        | Type::WatchTopicUpdate
        | Type::TopicMigrated => Expect::NotARequest,
    }
}

/// The error code a reply carries, whatever kind of reply it is.
fn error_code(frame: &Frame) -> Option<i32> {
    let c = &frame.command;
    c.error
        .as_ref()
        .map(|e| e.error)
        .or_else(|| c.lookup_topic_response.as_ref().and_then(|r| r.error))
        .or_else(|| c.partition_metadata_response.as_ref().and_then(|r| r.error))
        .or_else(|| c.get_schema_response.as_ref().and_then(|r| r.error_code))
        .or_else(|| {
            c.get_or_create_schema_response
                .as_ref()
                .and_then(|r| r.error_code)
        })
        .or_else(|| c.send_error.as_ref().map(|r| r.error))
        .or_else(|| c.ack_response.as_ref().and_then(|r| r.error))
        .or_else(|| {
            c.consumer_stats_response
                .as_ref()
                .and_then(|r| r.error_code)
        })
}

async fn set_up(standalone: &Standalone) {
    let http = standalone.broker.addrs().http.expect("http");
    let admin = token("admin");
    let client = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut request = client
            .request(method, format!("http://{http}/admin/v2{path}"))
            .bearer_auth(&admin);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };
    use reqwest::Method as M;
    for (method, path, body) in [
        (
            M::PUT,
            "/tenants/acme",
            Some(json!({"adminRoles": ["acme-admin"], "allowedClusters": ["standalone"]})),
        ),
        (M::PUT, "/namespaces/acme/orders", None),
        (M::PUT, "/persistent/acme/orders/t", None),
        (M::PUT, "/persistent/acme/orders/t/subscription/s", None),
    ] {
        let response = call(method, path, body).await.expect("request");
        assert!(response.status().is_success(), "{path}: {response:?}");
    }
    let mut producer = RawClient::connect(standalone.broker.addr(), Some(&admin))
        .await
        .expect_connected();
    let name = producer.producer(TOPIC, 1).await.expect("producer");
    producer.publish(1, &name, b"kept").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_refuses_a_role_without_grants() {
    let (standalone, _dir) = start().await;
    set_up(&standalone).await;
    let stranger = token("stranger");
    let mut failures = Vec::new();
    for value in 0..=100 {
        let Ok(kind) = Type::try_from(value) else {
            continue;
        };
        let mut client = RawClient::connect(standalone.broker.addr(), Some(&stranger))
            .await
            .expect_connected();
        match expectation(kind) {
            Expect::Handshake => {}
            Expect::Refused(frame) => {
                client.send(frame).await;
                let reply = client.next().await;
                if error_code(&reply) != Some(ServerError::AuthorizationError as i32) {
                    failures.push(format!("{kind:?}: {:?}", reply.command));
                }
            }
            Expect::NoSuchId(frame) => {
                client.send(frame).await;
                still_serving(&mut client, kind, &mut failures).await;
            }
            Expect::NotARequest => {
                let frame = Frame::from(BaseCommand {
                    r#type: kind as i32,
                    ..Default::default()
                });
                client.send(frame).await;
                still_serving(&mut client, kind, &mut failures).await;
            }
        }
    }
    assert!(failures.is_empty(), "not refused:\n{}", failures.join("\n"));

    // Nothing the stranger sent changed the topic.
    let admin = token("admin");
    let mut consumer = RawClient::connect(standalone.broker.addr(), Some(&admin))
        .await
        .expect_connected();
    consumer
        .subscribe(TOPIC, "s", 1, 10)
        .await
        .expect("subscription s kept");
    assert_eq!(consumer.receive().await, b"kept");
    standalone.shutdown().await;
}

/// After a command on an id the connection does not hold: whatever comes back is not a
/// success of that command, and a PING still gets its PONG (or the broker closed the
/// connection, which refuses too).
async fn still_serving(client: &mut RawClient, kind: Type, failures: &mut Vec<String>) {
    client.send(CommandPing {}).await;
    loop {
        let Some(frame) = client.try_next().await else {
            return; // closed: refused
        };
        match frame.command.kind() {
            Some(Type::Pong) => return,
            // Closing an id that is not there is answered SUCCESS (as Pulsar does): nothing
            // was closed.
            Some(Type::Success)
                if matches!(
                    kind,
                    Type::CloseProducer | Type::CloseConsumer | Type::WatchTopicListClose
                ) => {}
            Some(Type::Success | Type::SendReceipt | Type::ProducerSuccess | Type::Message) => {
                failures.push(format!("{kind:?} succeeded: {:?}", frame.command));
                return;
            }
            _ => {} // an error for the unknown id
        }
    }
}

/// A plausible body for the routes that take one, so that the answer is about authorization
/// and not about the body.
fn body_for(method: &str, path: &str) -> Option<Value> {
    let tail = path.rsplit('/').next().unwrap_or("");
    let body = match (method, tail) {
        ("put" | "post", "{cluster}") => json!({"serviceUrl": "http://127.0.0.1:8080"}),
        ("put" | "post", "{tenant}") => {
            json!({"adminRoles": [], "allowedClusters": ["standalone"]})
        }
        ("post", "backlogQuota") => json!({"limitSize": 1, "policy": "producer_request_hold"}),
        ("post", "messageTTL") => json!(60),
        ("post", "deduplication" | "deduplicationEnabled") => json!(true),
        ("post", "maxProducers" | "maxConsumers") => json!(1),
        ("post", "delayedDelivery") => json!({"active": false, "tickTime": 1000}),
        ("put" | "post", "compactionThreshold") => json!(1024),
        ("put", "offloadThreshold" | "offloadThresholdInSeconds" | "offloadDeletionLagMs") => {
            json!(0)
        }
        ("put", "offload") => json!({"ledgerId": 1, "entryId": 0}),
        ("put", "schemaCompatibilityStrategy") => json!("BACKWARD"),
        ("post", "isAllowAutoUpdateSchema" | "schemaValidationEnforced") => json!(true),
        ("post", "schema" | "compatibility" | "version") => {
            json!({"type": "STRING", "schema": "", "properties": {}})
        }
        ("post", "{role}") => json!(["produce"]),
        ("post", "{subscription}") => json!(["stranger"]),
        ("post", "persistence") => json!({
            "bookkeeperEnsemble": 1, "bookkeeperWriteQuorum": 1, "bookkeeperAckQuorum": 1,
            "managedLedgerMaxMarkDeleteRate": 0.0
        }),
        ("post", "replication") => json!(["standalone"]),
        ("post", "retention") => json!({"retentionTimeInMinutes": 1, "retentionSizeInMB": 1}),
        ("post", "resetcursor") => json!({"ledgerId": 1, "entryId": 1}),
        ("put" | "post", "partitions") => json!(4),
        _ => return None,
    };
    Some(body)
}

/// Routes any authenticated role may call (Pulsar's too).
const OPEN_TO_ANY_ROLE: &[(&str, &str)] = &[("get", "/admin/v2/clusters")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_a_role_without_grants() {
    let (standalone, _dir) = start().await;
    set_up(&standalone).await;
    let http = standalone.broker.addrs().http.expect("http");
    let client = reqwest::Client::new();
    let doc: Value = client
        .get(format!("http://{http}/admin/v2/openapi.json"))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    let params = BTreeMap::from([
        ("{cluster}", "standalone"),
        ("{tenant}", "acme"),
        ("{namespace}", "orders"),
        ("{topic}", "t"),
        ("{subscription}", "s"),
        ("{role}", "stranger"),
        ("{bundle}", "0x00000000_0xffffffff"),
        ("{domain}", "persistent"),
        ("{timestamp}", "0"),
        ("{count}", "1"),
        ("{version}", "0"),
        ("{messagePosition}", "1"),
        ("{expireTimeInSeconds}", "0"),
    ]);
    let stranger = token("stranger");
    let mut walked = 0;
    let mut failures = Vec::new();
    let paths = doc["paths"].as_object().expect("paths");
    for (template, operations) in paths {
        for method in ["get", "put", "post", "delete"] {
            if operations.get(method).is_none() {
                continue;
            }
            let full = if template.starts_with("/admin/") || template.starts_with("/lookup/") {
                template.clone()
            } else {
                format!("/admin/v2{template}")
            };
            let mut path = full.clone();
            for (name, value) in &params {
                path = path.replace(name, value);
            }
            assert!(!path.contains('{'), "no value for a parameter of {full}");
            if OPEN_TO_ANY_ROLE.contains(&(method, full.as_str())) {
                continue;
            }
            let method_value: reqwest::Method = method.to_uppercase().parse().expect("method");
            let mut request = client
                .request(method_value, format!("http://{http}{path}"))
                .bearer_auth(&stranger);
            if let Some(body) = body_for(method, &full) {
                request = request.json(&body);
            }
            let status = request.send().await.expect("request").status().as_u16();
            walked += 1;
            if status != 401 && status != 403 {
                failures.push(format!("{method} {full}: {status}"));
            }
        }
    }
    assert!(walked > 50, "walked {walked} routes");
    assert!(failures.is_empty(), "not refused:\n{}", failures.join("\n"));
    standalone.shutdown().await;
}
