//! One pipelined connection per bookie, shared by every ledger of a client, re-opened after it
//! breaks.
//!
//! Each address has a slot of its own: callers of a connected bookie never wait, and connecting
//! to one bookie (DNS, TCP, authentication; each bounded) holds up only the callers of that
//! bookie. Callers that queued behind a connection attempt share its outcome instead of each
//! trying again, so a dead bookie costs its callers one connect timeout, not one each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use super::LedgerError;
use crate::client::{BookieClient, ConnectOptions};

#[derive(Debug)]
pub struct BookiePool {
    options: ConnectOptions,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

#[derive(Debug, Default)]
struct Slot {
    conn: Mutex<Option<Arc<BookieClient>>>,
    /// Held while connecting; keeps the last failed attempt.
    connecting: tokio::sync::Mutex<Option<Failure>>,
}

#[derive(Debug)]
struct Failure {
    at: Instant,
    error: LedgerError,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Slot {
    fn open(&self) -> Option<Arc<BookieClient>> {
        lock(&self.conn).clone().filter(|conn| !conn.is_closed())
    }
}

impl BookiePool {
    pub fn new(options: ConnectOptions) -> BookiePool {
        BookiePool {
            options,
            slots: Mutex::default(),
        }
    }

    pub async fn get(&self, address: &str) -> Result<Arc<BookieClient>, LedgerError> {
        let slot = lock(&self.slots)
            .entry(address.to_string())
            .or_default()
            .clone();
        if let Some(conn) = slot.open() {
            return Ok(conn);
        }
        let asked = Instant::now();
        let mut last_failure = slot.connecting.lock().await;
        if let Some(conn) = slot.open() {
            return Ok(conn); // connected while we waited
        }
        if let Some(failure) = last_failure.as_ref()
            && failure.at >= asked
        {
            return Err(failure.error.clone()); // the attempt we waited for failed
        }
        match self.connect(address).await {
            Ok(conn) => {
                let conn = Arc::new(conn);
                *lock(&slot.conn) = Some(conn.clone());
                *last_failure = None;
                Ok(conn)
            }
            Err(error) => {
                *last_failure = Some(Failure {
                    at: Instant::now(),
                    error: error.clone(),
                });
                Err(error)
            }
        }
    }

    async fn connect(&self, address: &str) -> Result<BookieClient, LedgerError> {
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
        BookieClient::connect_with(addr, &self.options)
            .await
            .map_err(|e| unreachable(e.to_string()))
    }

    /// Forgets a connection that failed, so the next use reconnects.
    pub async fn forget(&self, address: &str) {
        let slot = lock(&self.slots).get(address).cloned();
        if let Some(slot) = slot {
            lock(&slot.conn).take();
        }
    }
}
