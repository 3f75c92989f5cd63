//! The client: a pool with one connection per broker URL, topic lookup (following redirects)
//! and partitioned-topic metadata. Producers, consumers and readers are built from it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use magnetar_protocol::TopicName;
use magnetar_protocol::pulsar::command_lookup_topic_response::LookupType;
use magnetar_protocol::pulsar::command_partitioned_topic_metadata_response::LookupType as MetadataResult;
use magnetar_protocol::pulsar::{CommandLookupTopic, CommandPartitionedTopicMetadata};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::connection::{ConnectParams, Connection};
use super::consumer::ConsumerBuilder;
use super::error::{ClientError, Result};
use super::producer::ProducerBuilder;
use super::reader::ReaderBuilder;

/// Redirects followed by one lookup, as the C++ client allows.
const MAX_REDIRECTS: usize = 20;

/// Connection settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// JWT sent with auth method `token`.
    pub auth_token: Option<String>,
    /// How `pulsar+ssl://` connections check the broker (required for such URLs).
    pub tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    /// TCP connect plus the CONNECTED reply.
    pub connection_timeout: Duration,
    /// Any request: lookup, producer and consumer creation, seek, close.
    pub operation_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            auth_token: None,
            tls: None,
            connection_timeout: Duration::from_secs(10),
            operation_timeout: Duration::from_secs(30),
        }
    }
}

/// A Pulsar client. Cheap to clone; every clone shares the connections.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

#[derive(Debug)]
struct ClientInner {
    service_url: String,
    params: ConnectParams,
    pool: tokio::sync::Mutex<HashMap<String, Connection>>,
    next_id: AtomicU64,
    tasks: TaskTracker,
    stop: CancellationToken,
}

impl Drop for ClientInner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Client {
    /// Connects to `pulsar://host:port` (or `pulsar+ssl://host:port` with [`ClientOptions::tls`]).
    pub async fn connect(url: &str) -> Result<Client> {
        Client::connect_with(url, ClientOptions::default()).await
    }

    pub async fn connect_with(url: &str, options: ClientOptions) -> Result<Client> {
        let service_url = url.trim_end_matches('/').to_string();
        address_of(&service_url)?;
        let client = Client {
            inner: Arc::new(ClientInner {
                service_url: service_url.clone(),
                params: ConnectParams {
                    auth_token: options.auth_token,
                    tls: options.tls,
                    connection_timeout: options.connection_timeout,
                    operation_timeout: options.operation_timeout,
                },
                pool: tokio::sync::Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
                tasks: TaskTracker::new(),
                stop: CancellationToken::new(),
            }),
        };
        client.connection(&service_url).await?;
        Ok(client)
    }

    pub fn service_url(&self) -> &str {
        &self.inner.service_url
    }

    /// A producer for `topic` (`x`, `tenant/ns/x` or a full name).
    pub fn producer(&self, topic: &str) -> ProducerBuilder {
        ProducerBuilder::new(self.clone(), topic)
    }

    /// A consumer of `topic` on `subscription`.
    pub fn consumer(&self, topic: &str, subscription: &str) -> ConsumerBuilder {
        ConsumerBuilder::new(self.clone(), topic, subscription)
    }

    /// A reader: a non-durable subscription from a message id.
    pub fn reader(&self, topic: &str) -> ReaderBuilder {
        ReaderBuilder::new(self.clone(), topic)
    }

    /// Partitions of `topic`, 0 if it is not partitioned.
    pub async fn partitions(&self, topic: &str) -> Result<u32> {
        let topic = TopicName::parse(topic)?.to_string();
        let conn = self.connection(&self.inner.service_url).await?;
        let reply = conn
            .request("partitioned metadata", |request_id| {
                CommandPartitionedTopicMetadata {
                    topic: topic.clone(),
                    request_id,
                    ..Default::default()
                }
                .into()
            })
            .await?;
        let kind = reply.kind_name();
        let response = reply
            .partition_metadata_response
            .ok_or(ClientError::Unexpected(kind))?;
        if response.response == Some(MetadataResult::Failed as i32) {
            return Err(ClientError::server(
                response.error.unwrap_or_default(),
                response.message.unwrap_or_default(),
            ));
        }
        Ok(response.partitions.unwrap_or(0))
    }

    /// The connection to the broker that owns `topic` (a full name).
    pub(crate) async fn lookup(&self, topic: &str) -> Result<Connection> {
        let mut conn = self.connection(&self.inner.service_url).await?;
        let mut authoritative = false;
        for _ in 0..MAX_REDIRECTS {
            let reply = conn
                .request("lookup", |request_id| {
                    CommandLookupTopic {
                        topic: topic.to_string(),
                        request_id,
                        authoritative: Some(authoritative),
                        ..Default::default()
                    }
                    .into()
                })
                .await?;
            let kind = reply.kind_name();
            let response = reply
                .lookup_topic_response
                .ok_or(ClientError::Unexpected(kind))?;
            // Over TLS, the broker's TLS URL (Pulsar's lookup carries both).
            let url = match self.inner.service_url.starts_with("pulsar+ssl://") {
                true => response.broker_service_url_tls.clone(),
                false => response.broker_service_url.clone(),
            }
            .unwrap_or_default();
            match LookupType::try_from(response.response.unwrap_or(-1)) {
                Ok(LookupType::Connect) if response.proxy_through_service_url() => {
                    return self.connection(&self.inner.service_url).await;
                }
                Ok(LookupType::Connect) => return self.connection(&url).await,
                Ok(LookupType::Redirect) => {
                    authoritative = response.authoritative();
                    conn = self.connection(&url).await?;
                }
                Ok(LookupType::Failed) | Err(_) => {
                    return Err(ClientError::server(
                        response.error.unwrap_or_default(),
                        response.message.unwrap_or_else(|| "lookup failed".into()),
                    ));
                }
            }
        }
        Err(ClientError::TooManyRedirects {
            topic: topic.to_string(),
        })
    }

    /// The pooled connection to `url`, opened if there is none or it was lost.
    pub(crate) async fn connection(&self, url: &str) -> Result<Connection> {
        let mut pool = self.inner.pool.lock().await;
        if let Some(conn) = pool.get(url).filter(|c| !c.is_closed()) {
            return Ok(conn.clone());
        }
        let addr = address_of(url)?;
        let conn = Connection::open(
            url,
            &addr,
            &self.inner.params,
            &self.inner.tasks,
            self.inner.stop.child_token(),
        )
        .await?;
        pool.insert(url.to_string(), conn.clone());
        Ok(conn)
    }

    /// A producer or consumer id, unique in this client.
    pub(crate) fn next_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn tasks(&self) -> &TaskTracker {
        &self.inner.tasks
    }

    pub(crate) fn stop_token(&self) -> CancellationToken {
        self.inner.stop.child_token()
    }

    pub(crate) fn operation_timeout(&self) -> Duration {
        self.inner.params.operation_timeout
    }

    /// Closes every connection and waits (briefly) for the client's tasks to end.
    pub async fn close(&self) {
        self.inner.stop.cancel();
        self.inner.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.inner.tasks.wait()).await;
    }
}

/// `pulsar://host:port[/]` → `host:port` (port 6650 by default; 6651 for `pulsar+ssl://`).
fn address_of(url: &str) -> Result<String> {
    let invalid = |reason| ClientError::InvalidUrl {
        url: url.to_string(),
        reason,
    };
    let (rest, default_port) = match (
        url.strip_prefix("pulsar://"),
        url.strip_prefix("pulsar+ssl://"),
    ) {
        (Some(rest), _) => (rest, 6650),
        (_, Some(rest)) => (rest, 6651),
        _ => {
            return Err(invalid(
                "only pulsar:// and pulsar+ssl:// URLs are supported",
            ));
        }
    };
    let host_port = rest
        .split([',', '/'])
        .next()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| invalid("no host"))?;
    if host_port
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        Ok(host_port.to_string())
    } else if host_port.contains(':') && !host_port.starts_with('[') {
        Err(invalid("bad port"))
    } else {
        Ok(format!("{host_port}:{default_port}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_urls() {
        assert_eq!(
            address_of("pulsar://localhost:6650").ok().as_deref(),
            Some("localhost:6650")
        );
        assert_eq!(
            address_of("pulsar://broker/").ok().as_deref(),
            Some("broker:6650")
        );
        assert_eq!(address_of("pulsar://a:1,b:2").ok().as_deref(), Some("a:1"));
        assert_eq!(
            address_of("pulsar+ssl://broker").ok().as_deref(),
            Some("broker:6651")
        );
        assert!(address_of("http://localhost:8080").is_err());
        assert!(address_of("pulsar://").is_err());
        assert!(address_of("pulsar://h:x").is_err());
    }
}
