//! A topic's producers and Pulsar's producer access modes (PIP-68), without I/O.
//!
//! - `Shared` (the default): any number of producers, refused with `ProducerBusy` while an
//!   exclusive producer holds the topic or one is waiting for it.
//! - `Exclusive`: the only producer, or refused at once with `ProducerFenced`.
//! - `WaitForExclusive`: queued (the client hears `producer_ready = false`) until every other
//!   producer is gone, then it becomes the exclusive one.
//! - `ExclusiveWithFencing`: closes every other producer and fails every queued one, then takes
//!   the topic.
//!
//! Each exclusive takeover moves the topic epoch forward; the epoch goes back to the client in
//! PRODUCER_SUCCESS and comes again on its reconnection, so a producer that was replaced while
//! disconnected is fenced instead of writing over its successor (Java keeps the epoch in the
//! managed ledger's properties, so does the topic). Java promotes a waiting producer only when
//! an exclusive one leaves; here it is promoted whenever the topic has no producer left, so a
//! WaitForExclusive producer queued behind shared producers is not stranded.

use std::collections::{HashMap, VecDeque};

use tokio::sync::oneshot;

use crate::error::BrokerError;
use crate::topic_context::Outbound;

/// The managed ledger property holding the topic epoch (Java's name).
pub const EPOCH_PROPERTY: &str = "pulsar.topic.epoch";

/// Who holds a producer name on this topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerOwner {
    pub connection: u64,
    pub producer_id: u64,
}

/// How the topic closes a producer from the broker's side (on unload): the connection forgets
/// the producer id first, then the client gets CLOSE_PRODUCER and looks the topic up again.
#[derive(Debug, Clone)]
pub struct ProducerCloser {
    pub out: Outbound,
    pub evicted: tokio::sync::mpsc::UnboundedSender<u64>,
}

impl ProducerCloser {
    /// The connection forgets the producer, then the client gets CLOSE_PRODUCER (dropped if the
    /// connection is too full to take it: its write timeout closes it anyway).
    pub fn close(&self, producer_id: u64) {
        let _ = self.evicted.send(producer_id);
        let close = magnetar_protocol::pulsar::CommandCloseProducer {
            producer_id,
            request_id: u64::MAX,
            ..Default::default()
        };
        let _ = self.out.try_send(Box::new(close.into()));
    }
}

/// `CommandProducer.producer_access_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessMode {
    Shared,
    Exclusive,
    WaitForExclusive,
    ExclusiveWithFencing,
}

impl AccessMode {
    /// From the wire value (absent is Shared); `None` for a value Pulsar does not define.
    pub fn from_wire(value: Option<i32>) -> Option<Self> {
        match value.unwrap_or(0) {
            0 => Some(Self::Shared),
            1 => Some(Self::Exclusive),
            2 => Some(Self::WaitForExclusive),
            3 => Some(Self::ExclusiveWithFencing),
            _ => None,
        }
    }
}

/// A producer asking to join.
#[derive(Debug)]
pub struct Join {
    pub name: String,
    pub owner: ProducerOwner,
    pub closer: Option<ProducerCloser>,
    pub mode: AccessMode,
    /// The epoch the client had (on reconnection), from `CommandProducer.topic_epoch`.
    pub epoch: Option<u64>,
}

/// What a join came to.
#[derive(Debug)]
pub enum Joined {
    /// Registered. `epoch` is set for an exclusive producer whose takeover moved the topic
    /// epoch: the caller persists it before answering the client.
    Ready { epoch: Option<u64> },
    /// WaitForExclusive behind other producers: the receiver answers once it is promoted
    /// (registered by then, with the new epoch) or fenced.
    Queued(oneshot::Receiver<Result<u64, BrokerError>>),
}

#[derive(Debug)]
struct Entry {
    owner: ProducerOwner,
    closer: Option<ProducerCloser>,
}

#[derive(Debug)]
struct Waiter {
    name: String,
    owner: ProducerOwner,
    closer: Option<ProducerCloser>,
    reply: oneshot::Sender<Result<u64, BrokerError>>,
}

/// The producers of one topic.
#[derive(Debug, Default)]
pub struct Producers {
    by_name: HashMap<String, Entry>,
    /// The name of the exclusive producer, while one holds the topic.
    exclusive: Option<String>,
    waiting: VecDeque<Waiter>,
    epoch: u64,
}

impl Producers {
    /// Starts at the epoch the managed ledger recorded.
    pub fn with_epoch(epoch: u64) -> Self {
        Self {
            epoch,
            ..Default::default()
        }
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.by_name.keys().cloned().collect();
        names.sort();
        names
    }

    /// Whether `name` is held by a producer other than `owner`.
    pub fn held_by_other(&self, name: &str, owner: ProducerOwner) -> bool {
        self.by_name.get(name).is_some_and(|e| e.owner != owner)
    }

    fn existing_exclusive(&self) -> String {
        match &self.exclusive {
            Some(name) => format!("the topic has an exclusive producer: {name}"),
            None => "the topic has a producer waiting for exclusive access".to_string(),
        }
    }

    fn check_epoch(&self, epoch: Option<u64>) -> Result<(), BrokerError> {
        match epoch {
            Some(e) if e < self.epoch => Err(BrokerError::ProducerFenced(format!(
                "the topic epoch moved on to {} (this producer had {e}): another exclusive \
                 producer took the topic",
                self.epoch
            ))),
            _ => Ok(()),
        }
    }

    /// Takes the topic for an exclusive producer: the epoch moves past both the topic's and the
    /// client's.
    fn take_exclusive(&mut self, name: &str, client_epoch: Option<u64>) -> u64 {
        self.exclusive = Some(name.to_string());
        self.epoch = self.epoch.max(client_epoch.unwrap_or(0)) + 1;
        self.epoch
    }

    /// Registers `join` as its access mode allows. `fits` says whether one more producer is
    /// within the topic's limit (checked only for a name not registered yet).
    pub fn join(
        &mut self,
        join: Join,
        fits: impl Fn(usize) -> bool,
    ) -> Result<Joined, BrokerError> {
        if let Some(existing) = self.by_name.get(&join.name) {
            if existing.owner != join.owner {
                return Err(BrokerError::ProducerBusy(format!(
                    "producer with name '{}' is already connected to the topic",
                    join.name
                )));
            }
            // The same producer asking again (a retried PRODUCER): already registered.
            return Ok(Joined::Ready { epoch: None });
        }
        // Waiters whose client closed them or went away hold nothing.
        self.waiting.retain(|w| !w.reply.is_closed());
        if !fits(self.by_name.len()) {
            return Err(BrokerError::ProducerBusy(
                "the topic reached its maximum number of producers (limits.max_producers_per_topic or the topic's maxProducers policy)"
                    .to_string(),
            ));
        }
        let exclusive_held = self.exclusive.is_some() || !self.waiting.is_empty();
        let epoch = match join.mode {
            AccessMode::Shared => {
                if exclusive_held {
                    return Err(BrokerError::ProducerBusy(self.existing_exclusive()));
                }
                None
            }
            AccessMode::Exclusive => {
                if exclusive_held {
                    return Err(BrokerError::ProducerFenced(self.existing_exclusive()));
                }
                if !self.by_name.is_empty() {
                    return Err(BrokerError::ProducerFenced(
                        "the topic has shared producers".to_string(),
                    ));
                }
                self.check_epoch(join.epoch)?;
                Some(self.take_exclusive(&join.name, join.epoch))
            }
            AccessMode::WaitForExclusive => {
                if exclusive_held || !self.by_name.is_empty() {
                    let (reply, answer) = oneshot::channel();
                    self.waiting.push_back(Waiter {
                        name: join.name,
                        owner: join.owner,
                        closer: join.closer,
                        reply,
                    });
                    return Ok(Joined::Queued(answer));
                }
                self.check_epoch(join.epoch)?;
                Some(self.take_exclusive(&join.name, join.epoch))
            }
            AccessMode::ExclusiveWithFencing => {
                self.check_epoch(join.epoch)?;
                for waiter in self.waiting.drain(..) {
                    let _ = waiter.reply.send(Err(BrokerError::ProducerFenced(
                        "fenced by an ExclusiveWithFencing producer".to_string(),
                    )));
                }
                for (_, entry) in self.by_name.drain() {
                    if let Some(closer) = entry.closer {
                        closer.close(entry.owner.producer_id);
                    }
                }
                Some(self.take_exclusive(&join.name, join.epoch))
            }
        };
        self.by_name.insert(
            join.name,
            Entry {
                owner: join.owner,
                closer: join.closer,
            },
        );
        Ok(Joined::Ready { epoch })
    }

    /// The producer left (closed, or its connection dropped). When the topic has no producer
    /// left, the first waiting producer still waiting is promoted; returns its new epoch.
    pub fn leave(&mut self, name: &str, owner: ProducerOwner) -> Option<u64> {
        if self.by_name.get(name).map(|e| e.owner) != Some(owner) {
            return None;
        }
        self.by_name.remove(name);
        if self.exclusive.as_deref() == Some(name) {
            self.exclusive = None;
        }
        self.promote()
    }

    fn promote(&mut self) -> Option<u64> {
        if !self.by_name.is_empty() {
            return None;
        }
        while let Some(waiter) = self.waiting.pop_front() {
            if waiter.reply.is_closed() {
                continue; // its client closed it or went away while it waited
            }
            let epoch = self.take_exclusive(&waiter.name, None);
            self.by_name.insert(
                waiter.name.clone(),
                Entry {
                    owner: waiter.owner,
                    closer: waiter.closer,
                },
            );
            if waiter.reply.send(Ok(epoch)).is_ok() {
                return Some(epoch);
            }
            self.by_name.remove(&waiter.name);
            self.exclusive = None;
        }
        None
    }

    /// Unload or delete: every producer is closed from the broker's side and every waiting one
    /// fails (its client looks the topic up again).
    pub fn disconnect_all(&mut self, why: &BrokerError) {
        for waiter in self.waiting.drain(..) {
            let _ = waiter.reply.send(Err(why.clone()));
        }
        self.exclusive = None;
        for (_, entry) in self.by_name.drain() {
            if let Some(closer) = entry.closer {
                closer.close(entry.owner.producer_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(name: &str, id: u64, mode: AccessMode) -> Join {
        Join {
            name: name.into(),
            owner: ProducerOwner {
                connection: 1,
                producer_id: id,
            },
            closer: None,
            mode,
            epoch: None,
        }
    }

    fn owner(id: u64) -> ProducerOwner {
        ProducerOwner {
            connection: 1,
            producer_id: id,
        }
    }

    fn any(_: usize) -> bool {
        true
    }

    #[test]
    fn an_exclusive_producer_keeps_the_topic_to_itself() {
        let mut p = Producers::default();
        let Ok(Joined::Ready { epoch: Some(1) }) = p.join(join("a", 1, AccessMode::Exclusive), any)
        else {
            panic!("the first exclusive producer takes the topic at epoch 1");
        };
        assert!(matches!(
            p.join(join("b", 2, AccessMode::Shared), any),
            Err(BrokerError::ProducerBusy(_))
        ));
        assert!(matches!(
            p.join(join("c", 3, AccessMode::Exclusive), any),
            Err(BrokerError::ProducerFenced(_))
        ));
        assert_eq!(p.leave("a", owner(1)), None);
        assert!(matches!(
            p.join(join("b", 2, AccessMode::Shared), any),
            Ok(Joined::Ready { epoch: None })
        ));
        // Shared producers keep an exclusive one out.
        assert!(matches!(
            p.join(join("c", 3, AccessMode::Exclusive), any),
            Err(BrokerError::ProducerFenced(_))
        ));
    }

    #[test]
    fn a_waiting_producer_is_promoted_when_the_topic_empties() {
        let mut p = Producers::default();
        assert!(p.join(join("s1", 1, AccessMode::Shared), any).is_ok());
        let Ok(Joined::Queued(mut first)) =
            p.join(join("w1", 2, AccessMode::WaitForExclusive), any)
        else {
            panic!("queued behind a shared producer");
        };
        let Ok(Joined::Queued(mut second)) =
            p.join(join("w2", 3, AccessMode::WaitForExclusive), any)
        else {
            panic!("queued behind the first waiter");
        };
        // A waiting producer keeps shared ones out, like an exclusive one.
        assert!(matches!(
            p.join(join("s2", 4, AccessMode::Shared), any),
            Err(BrokerError::ProducerBusy(_))
        ));
        assert_eq!(p.leave("s1", owner(1)), Some(1));
        assert!(matches!(first.try_recv(), Ok(Ok(1))));
        assert!(second.try_recv().is_err());
        assert_eq!(p.names(), vec!["w1".to_string()]);
        assert_eq!(p.leave("w1", owner(2)), Some(2));
        assert!(matches!(second.try_recv(), Ok(Ok(2))));
    }

    #[test]
    fn a_waiter_that_went_away_is_skipped() {
        let mut p = Producers::default();
        assert!(p.join(join("x", 1, AccessMode::Exclusive), any).is_ok());
        let Ok(Joined::Queued(gone)) = p.join(join("w1", 2, AccessMode::WaitForExclusive), any)
        else {
            panic!("queued");
        };
        drop(gone);
        let Ok(Joined::Queued(mut next)) = p.join(join("w2", 3, AccessMode::WaitForExclusive), any)
        else {
            panic!("queued");
        };
        assert_eq!(p.leave("x", owner(1)), Some(2));
        assert!(matches!(next.try_recv(), Ok(Ok(2))));
        assert_eq!(p.names(), vec!["w2".to_string()]);
    }

    #[test]
    fn fencing_takes_the_topic_and_fails_the_waiters() {
        let mut p = Producers::default();
        assert!(p.join(join("s1", 1, AccessMode::Shared), any).is_ok());
        assert!(p.join(join("s2", 2, AccessMode::Shared), any).is_ok());
        let Ok(Joined::Queued(mut waiter)) =
            p.join(join("w", 3, AccessMode::WaitForExclusive), any)
        else {
            panic!("queued");
        };
        let Ok(Joined::Ready { epoch: Some(1) }) =
            p.join(join("f", 4, AccessMode::ExclusiveWithFencing), any)
        else {
            panic!("the fencing producer takes the topic");
        };
        assert!(matches!(
            waiter.try_recv(),
            Ok(Err(BrokerError::ProducerFenced(_)))
        ));
        assert_eq!(p.names(), vec!["f".to_string()]);
        // The fenced producers' late close changes nothing.
        assert_eq!(p.leave("s1", owner(1)), None);
        assert_eq!(p.names(), vec!["f".to_string()]);
    }

    #[test]
    fn a_producer_from_an_older_epoch_is_fenced() {
        let mut p = Producers::with_epoch(5);
        let mut stale = join("old", 1, AccessMode::Exclusive);
        stale.epoch = Some(4);
        assert!(matches!(
            p.join(stale, any),
            Err(BrokerError::ProducerFenced(_))
        ));
        let mut current = join("old", 1, AccessMode::Exclusive);
        current.epoch = Some(5);
        assert!(matches!(
            p.join(current, any),
            Ok(Joined::Ready { epoch: Some(6) })
        ));
        assert_eq!(p.epoch(), 6);
    }

    #[test]
    fn names_stay_unique_and_limits_hold() {
        let mut p = Producers::default();
        assert!(p.join(join("a", 1, AccessMode::Shared), any).is_ok());
        assert!(matches!(
            p.join(join("a", 2, AccessMode::Shared), any),
            Err(BrokerError::ProducerBusy(_))
        ));
        assert!(matches!(
            p.join(join("b", 2, AccessMode::Shared), |n| n < 1),
            Err(BrokerError::ProducerBusy(_))
        ));
        assert!(p.held_by_other("a", owner(2)) && !p.held_by_other("a", owner(1)));
    }
}
