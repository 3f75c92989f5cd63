//! A running broker: the Pulsar protocol listener (and its TLS twin) over a [`BrokerService`],
//! and the HTTP service (admin API, lookup, metrics) on HTTP and HTTPS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use magnetar_admin_api::{AdminSettings, AdminState, Resources};
use magnetar_bookie::ledger::{LedgerClient, LedgerOptions};
use magnetar_metadata::MetadataClient;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::{BrokerData, ClusterSettings, NamespaceService, shedding};
use crate::config::BrokerConfig;
use crate::context::{BrokerContext, ServiceUrls};
use crate::http;
use crate::managed_ledger::ManagedLedgerConfig;
use crate::metrics::BrokerMetrics;
use crate::replication::Replication;
use crate::server;
use crate::service::BrokerService;
use crate::tls::TlsListener;

const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The sockets a broker serves; the TLS ones are used only when `config.tls` is on.
#[derive(Debug)]
pub struct BrokerListeners {
    /// `pulsar://` (default 6650).
    pub pulsar: TcpListener,
    /// `pulsar+ssl://` (default 6651).
    pub pulsar_tls: Option<TcpListener>,
    /// Admin API, lookup and metrics over HTTP (default 8080).
    pub http: Option<TcpListener>,
    /// The same over HTTPS (default 8443).
    pub https: Option<TcpListener>,
}

impl From<TcpListener> for BrokerListeners {
    fn from(pulsar: TcpListener) -> BrokerListeners {
        BrokerListeners {
            pulsar,
            pulsar_tls: None,
            http: None,
            https: None,
        }
    }
}

/// Where a running broker listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerAddrs {
    pub pulsar: SocketAddr,
    pub pulsar_tls: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
}

impl Broker {
    /// `quic://host:port` of the geo-replication endpoint, when it receives.
    pub fn replication_url(&self) -> Option<&str> {
        self.replication.url()
    }
}

#[derive(Debug)]
pub struct Broker {
    addrs: BrokerAddrs,
    service: Arc<BrokerService>,
    replication: Arc<Replication>,
    cancel: CancellationToken,
    /// A child of `cancel` for the loops that look after loaded topics.
    maintenance: CancellationToken,
    tasks: TaskTracker,
}

impl Broker {
    /// Serves the Pulsar protocol (and, with the listeners for them, TLS and HTTP), storing
    /// topics through `metadata`'s bookies. Refuses to start with broken auth or TLS settings.
    /// `before_serving` runs once the service exists (its URLs known) and before the first
    /// connection is accepted — e.g. to create the namespaces clients expect to find.
    pub async fn start(
        config: BrokerConfig,
        ml_config: ManagedLedgerConfig,
        metadata: MetadataClient,
        listeners: impl Into<BrokerListeners>,
        before_serving: impl AsyncFnOnce(&BrokerService) -> anyhow::Result<()>,
    ) -> anyhow::Result<Broker> {
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid broker config: {e}"))?;
        let listeners = listeners.into();
        let authenticator = config
            .auth
            .authenticator()
            .map_err(|e| anyhow::anyhow!("invalid auth config: {e}"))?;
        let acceptor = match config.tls.is_enabled() {
            true => Some(config.tls.acceptor()?),
            false => None,
        };
        let host = config.advertised_address.clone();
        let local = |l: &Option<TcpListener>| l.as_ref().and_then(|l| l.local_addr().ok());
        let addrs = BrokerAddrs {
            pulsar: listeners.pulsar.local_addr()?,
            pulsar_tls: local(&listeners.pulsar_tls).filter(|_| acceptor.is_some()),
            http: local(&listeners.http),
            https: local(&listeners.https).filter(|_| acceptor.is_some()),
        };
        let urls = ServiceUrls {
            service_url: server::service_url(&host, addrs.pulsar),
            service_url_tls: addrs
                .pulsar_tls
                .map(|a| format!("pulsar+ssl://{host}:{}", a.port())),
            web_url: addrs.http.map(|a| format!("http://{host}:{}", a.port())),
            web_url_tls: addrs.https.map(|a| format!("https://{host}:{}", a.port())),
        };
        let admin = AdminState::new(
            Resources::new(metadata.clone()),
            authenticator,
            config.auth.authorizer(),
            AdminSettings {
                cluster_name: config.cluster.clone(),
                schema_limits: config.limits.schema_limits(),
                ..AdminSettings::default()
            },
        );
        let metrics = BrokerMetrics::new(&config.cluster)?;
        let ledgers = LedgerClient::new(
            metadata.clone(),
            LedgerOptions {
                cluster_token: config.cluster_token.clone(),
                ..LedgerOptions::default()
            },
        );
        let replication = Replication::start(
            config.replication.clone(),
            config
                .tls
                .cert_file
                .clone()
                .zip(config.tls.key_file.clone()),
            &config.cluster,
            &host,
            Resources::new(metadata.clone()),
            config.max_message_size,
        )?;
        let me = BrokerData {
            replication_url: replication.url().map(str::to_string),
            broker_id: broker_id(&host, &addrs),
            cluster: config.cluster.clone(),
            pulsar_service_url: urls.service_url.clone(),
            pulsar_service_url_tls: urls.service_url_tls.clone(),
            web_service_url: urls.web_url.clone(),
            web_service_url_tls: urls.web_url_tls.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
        };
        let settings = ClusterSettings {
            session_ttl: config.session_ttl(),
        };
        let (namespaces, mut lost) = NamespaceService::start(metadata.clone(), me, settings)
            .await
            .map_err(|e| anyhow::anyhow!("joining the cluster: {e}"))?;
        let (service, fenced) = BrokerService::new(BrokerContext::new(
            config, ml_config, metadata, ledgers, urls, admin, metrics, namespaces,
        ));
        let service = Arc::new(service);
        service.set_replication(replication.clone());
        before_serving(&service).await?;
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        let reaper = service.clone();
        let reaper_cancel = cancel.clone();
        tasks.spawn(async move { reaper.unload_fenced(fenced, reaper_cancel).await });
        let lost_service = service.clone();
        let lost_cancel = cancel.clone();
        tasks.spawn(async move {
            loop {
                let bundles = tokio::select! {
                    _ = lost_cancel.cancelled() => return,
                    bundles = lost.recv() => match bundles { Some(b) => b, None => return },
                };
                lost_service.drop_lost_bundles(&bundles).await;
            }
        });
        // Upkeep of loaded topics (policies, idle unloads, shedding) stops first at shutdown:
        // with 100,000 topics it would spend the cores the bundle unload needs.
        let maintenance = cancel.child_token();
        let (policies, policies_cancel) = (service.clone(), maintenance.clone());
        let every = service.ctx().config.policy_check_interval();
        let quota_every = service.ctx().config.backlog_quota_check_interval();
        tasks.spawn(async move {
            policies
                .enforce_policies(every, quota_every, policies_cancel)
                .await
        });
        if let Some(idle) = service.ctx().config.limits.topic_idle_unload() {
            let (idle_service, idle_cancel) = (service.clone(), maintenance.clone());
            tasks.spawn(async move { idle_service.unload_idle(idle, idle_cancel).await });
        }
        if let Some(shedding) = service.ctx().config.shedding() {
            tasks.spawn(shed_loop(service.clone(), shedding, maintenance.clone()));
        }
        tasks.spawn(replication.clone().serve(service.clone(), cancel.clone()));
        let counter = server::ConnectionCounter::new(
            &service.ctx().config.limits,
            service.ctx().metrics.guards.clone(),
        );
        tasks.spawn(server::serve(
            listeners.pulsar,
            service.clone(),
            counter.clone(),
            cancel.clone(),
            tasks.clone(),
        ));
        if let (Some(listener), Some(acceptor)) = (listeners.pulsar_tls, &acceptor) {
            let tls = TlsListener::new(listener, acceptor.clone(), cancel.clone());
            tasks.spawn(server::serve_tls(
                tls,
                service.clone(),
                counter.clone(),
                cancel.clone(),
                tasks.clone(),
            ));
        }
        let app = http::router(service.clone());
        let limits = service.ctx().config.limits.clone();
        let guards = service.ctx().metrics.guards.clone();
        if let Some(listener) = listeners.http {
            let (app, limits, guards, cancel) =
                (app.clone(), limits.clone(), guards.clone(), cancel.clone());
            tasks.spawn(async move { http::serve(listener, app, &limits, guards, cancel).await });
        }
        if let (Some(listener), Some(acceptor)) = (listeners.https, acceptor) {
            let tls = TlsListener::new(listener, acceptor, cancel.clone());
            let cancel = cancel.clone();
            tasks.spawn(async move { http::serve(tls, app, &limits, guards, cancel).await });
        }
        tracing::info!(
            ?addrs,
            url = service.ctx().urls.service_url,
            "broker serving"
        );
        Ok(Broker {
            addrs,
            service,
            replication,
            cancel,
            maintenance,
            tasks,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addrs.pulsar
    }

    pub fn addrs(&self) -> BrokerAddrs {
        self.addrs
    }

    pub fn service_url(&self) -> &str {
        &self.service.ctx().urls.service_url
    }

    pub fn service(&self) -> &Arc<BrokerService> {
        &self.service
    }

    /// Hands every bundle over (clients move to other brokers without errors), stops
    /// accepting, closes connections, flushes what is left and leaves the cluster.
    pub async fn shutdown(self) {
        self.maintenance.cancel();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.service.unload_all())
            .await
            .is_err()
        {
            tracing::warn!("unloading bundles did not finish in time");
        }
        self.cancel.cancel();
        self.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("broker connections did not close in time");
        }
        self.service.close_all().await;
        self.replication.close();
        self.service.ctx().namespaces.close().await;
    }

    /// Stops at once, as a crash would look to the cluster: nothing is handed over or
    /// flushed, and the session is left to expire (for failover tests in one process).
    pub fn abort(self) {
        self.service.ctx().namespaces.abandon();
        self.replication.close();
        self.cancel.cancel();
        self.tasks.close();
    }
}

/// Pulsar's broker id: the advertised host and the HTTP port (the Pulsar port without HTTP).
fn broker_id(host: &str, addrs: &BrokerAddrs) -> String {
    let port = addrs.http.or(addrs.https).unwrap_or(addrs.pulsar).port();
    format!("{host}:{port}")
}

/// Every `settings.interval`, unloads the bundles [`shedding::to_shed`] picks.
async fn shed_loop(
    service: Arc<BrokerService>,
    settings: shedding::SheddingSettings,
    cancel: CancellationToken,
) {
    let mut ticker = tokio::time::interval(settings.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // the first tick is immediate
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let namespaces = &service.ctx().namespaces;
        let counts = namespaces.bundle_counts();
        let mine = namespaces.held_since();
        let shed = shedding::to_shed(
            namespaces.broker_id(),
            &counts,
            &mine,
            std::time::Instant::now(),
            &settings,
        );
        if shed.is_empty() {
            continue;
        }
        tracing::info!(
            bundles = shed.len(),
            held = mine.len(),
            ?counts,
            "load shedding: unloading bundles to less loaded brokers"
        );
        for bundle in shed {
            if cancel.is_cancelled() {
                return;
            }
            service.unload_bundle(&bundle).await;
        }
        // Give clients time to reconnect, so lookups place the bundles before counting again.
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(settings.grace) => {}
        }
    }
}
