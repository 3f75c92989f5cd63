//! One pipelined connection per bookie, shared by every ledger of a client, re-opened after it
//! breaks.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use super::LedgerError;
use crate::client::BookieClient;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
pub struct BookiePool {
    conns: Mutex<HashMap<String, Arc<BookieClient>>>,
}

impl BookiePool {
    pub async fn get(&self, address: &str) -> Result<Arc<BookieClient>, LedgerError> {
        let mut conns = self.conns.lock().await;
        if let Some(conn) = conns.get(address)
            && !conn.is_closed()
        {
            return Ok(conn.clone());
        }
        let unreachable = |reason: String| LedgerError::BookieUnavailable {
            bookie: address.to_string(),
            reason,
        };
        let addr = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host(address))
            .await
            .map_err(|_| unreachable("address lookup timed out".into()))?
            .map_err(|e| unreachable(e.to_string()))?
            .next()
            .ok_or_else(|| unreachable("address resolves to nothing".into()))?;
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, BookieClient::connect(addr))
            .await
            .map_err(|_| unreachable("connect timed out".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        let conn = Arc::new(conn);
        conns.insert(address.to_string(), conn.clone());
        Ok(conn)
    }

    /// Forgets a connection that failed, so the next use reconnects.
    pub async fn forget(&self, address: &str) {
        self.conns.lock().await.remove(address);
    }
}
