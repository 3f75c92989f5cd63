//! One pipelined connection per bookie, shared by every ledger of a client, re-opened after it
//! breaks.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Mutex;

use super::LedgerError;
use crate::client::{BookieClient, ConnectOptions};

#[derive(Debug)]
pub struct BookiePool {
    options: ConnectOptions,
    conns: Mutex<HashMap<String, Arc<BookieClient>>>,
}

impl BookiePool {
    pub fn new(options: ConnectOptions) -> BookiePool {
        BookiePool {
            options,
            conns: Mutex::default(),
        }
    }

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
        let timeout = self.options.connect_timeout;
        let addr = tokio::time::timeout(timeout, tokio::net::lookup_host(address))
            .await
            .map_err(|_| unreachable("address lookup timed out".into()))?
            .map_err(|e| unreachable(e.to_string()))?
            .next()
            .ok_or_else(|| unreachable("address resolves to nothing".into()))?;
        let conn = BookieClient::connect_with(addr, &self.options)
            .await
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
