//! Admission of client connections: `limits.max_connections` for the broker and
//! `limits.max_connections_per_ip` for one address (Pulsar's `brokerMaxConnections` and
//! `brokerMaxConnectionsPerIp`). A refused connection is closed at once, as Pulsar does, and
//! counted in `magnetar_broker_limit_refusals_total`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use crate::limits::{GuardMetrics, Limits, reached};

#[derive(Debug)]
pub struct ConnectionCounter {
    max_total: usize,
    max_per_ip: usize,
    guards: GuardMetrics,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct ConnectionSlot {
    counter: Arc<ConnectionCounter>,
    ip: IpAddr,
}

impl ConnectionCounter {
    pub fn new(limits: &Limits, guards: GuardMetrics) -> Arc<ConnectionCounter> {
        Arc::new(ConnectionCounter {
            max_total: limits.max_connections,
            max_per_ip: limits.max_connections_per_ip,
            guards,
            counts: Mutex::default(),
        })
    }

    /// A place for a connection from `ip`, or the name of the limit that refuses it.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, &'static str> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if reached(counts.total, self.max_total) {
            self.guards.refused("max_connections");
            return Err("max_connections");
        }
        let from_ip = counts.per_ip.get(&ip).copied().unwrap_or(0);
        if reached(from_ip, self.max_per_ip) {
            self.guards.refused("max_connections_per_ip");
            return Err("max_connections_per_ip");
        }
        counts.total += 1;
        *counts.per_ip.entry(ip).or_default() += 1;
        self.guards.connections.set(counts.total as i64);
        Ok(ConnectionSlot {
            counter: self.clone(),
            ip,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self
            .counter
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
        self.counter.guards.connections.set(counts.total as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(total: usize, per_ip: usize) -> Arc<ConnectionCounter> {
        let limits = Limits {
            max_connections: total,
            max_connections_per_ip: per_ip,
            ..Limits::default()
        };
        let guards = GuardMetrics::register(&prometheus::Registry::new()).expect("metrics");
        ConnectionCounter::new(&limits, guards)
    }

    #[test]
    fn connections_are_counted_per_broker_and_per_address() {
        let (a, b): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        let c = counter(3, 2);
        let first = c.admit(a).expect("1st");
        let _second = c.admit(a).expect("2nd");
        assert_eq!(c.admit(a).err(), Some("max_connections_per_ip"));
        let _third = c.admit(b).expect("other address");
        assert_eq!(c.admit(b).err(), Some("max_connections"));
        drop(first);
        c.admit(a).expect("a place was freed");
        let unlimited = counter(0, 0);
        let slots: Vec<_> = (0..100)
            .map(|_| unlimited.admit(a).expect("0 is unlimited"))
            .collect();
        assert_eq!(slots.len(), 100);
    }
}
