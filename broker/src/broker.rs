//! A running broker: the Pulsar protocol listener over a [`BrokerService`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use magnetar_bookie::ledger::{LedgerClient, LedgerOptions};
use magnetar_metadata::MetadataClient;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::BrokerConfig;
use crate::managed_ledger::ManagedLedgerConfig;
use crate::server;
use crate::service::BrokerService;

const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct Broker {
    addr: SocketAddr,
    service: Arc<BrokerService>,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

impl Broker {
    /// Serves the Pulsar protocol on `listener`, storing topics through `metadata`'s bookies.
    pub async fn start(
        config: BrokerConfig,
        ml_config: ManagedLedgerConfig,
        metadata: MetadataClient,
        listener: TcpListener,
    ) -> anyhow::Result<Broker> {
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid broker config: {e}"))?;
        let addr = listener.local_addr()?;
        let service_url = server::service_url(&config.advertised_address, addr);
        let ledgers = LedgerClient::new(metadata.clone(), LedgerOptions::default());
        let service = Arc::new(BrokerService::new(
            config,
            ml_config,
            metadata,
            ledgers,
            service_url,
        ));
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(server::serve(
            listener,
            service.clone(),
            cancel.clone(),
            tasks.clone(),
        ));
        tracing::info!(%addr, url = service.service_url, "broker serving the Pulsar protocol");
        Ok(Broker {
            addr,
            service,
            cancel,
            tasks,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn service_url(&self) -> &str {
        &self.service.service_url
    }

    pub fn service(&self) -> &Arc<BrokerService> {
        &self.service
    }

    /// Stops accepting, closes connections, then flushes cursors and seals ledgers.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("broker connections did not close in time");
        }
        self.service.close_all().await;
    }
}
