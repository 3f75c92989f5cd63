//! Dispatcher tests, driven through a tiny in-memory topic (one ledger) like the shell would.

mod delayed;
mod key_shared;
mod proptests;
mod shared;
mod single_active;

use std::collections::BTreeMap;

use super::*;

pub(super) fn p(e: i64) -> Position {
    Position::new(1, e)
}

/// Entries of ledger 1, `1:0`, `1:1`, …
#[derive(Default)]
pub(super) struct Topic {
    entries: Vec<EntryMeta>,
}

impl Topic {
    pub(super) fn push(&mut self, num_messages: u32, key: Option<&str>) -> Position {
        let pos = p(self.entries.len() as i64);
        let mut e = EntryMeta::new(pos, num_messages);
        if let Some(k) = key {
            e = e.with_sticky_key(k.as_bytes());
        }
        self.entries.push(e);
        pos
    }

    /// An entry of one message to be delivered at `at` (ms since the epoch).
    pub(super) fn push_delayed(&mut self, at: u64) -> Position {
        let pos = self.push(1, None);
        let e = self.entries[pos.entry_id as usize].with_deliver_at(Some(at));
        self.entries[pos.entry_id as usize] = e;
        pos
    }

    pub(super) fn push_n(&mut self, n: usize, num_messages: u32) {
        for _ in 0..n {
            self.push(num_messages, None);
        }
    }

    pub(super) fn end(&self) -> Position {
        p(self.entries.len() as i64)
    }

    pub(super) fn get(&self, pos: Position) -> EntryMeta {
        self.entries[pos.entry_id as usize]
    }

    /// Serves one read request the way the shell would.
    pub(super) fn serve(&self, d: &mut Dispatcher, req: ReadRequest) -> Vec<Delivery> {
        match req {
            ReadRequest::Replay { epoch, positions } => {
                let es: Vec<EntryMeta> = positions.iter().map(|q| self.get(*q)).collect();
                d.replay_complete(epoch, &es)
            }
            ReadRequest::Read {
                epoch,
                from,
                max_entries,
            } => {
                let start = from.entry_id as usize;
                let stop = (start + max_entries as usize).min(self.entries.len());
                let es = &self.entries[start..stop];
                d.read_complete(epoch, es, p(stop as i64))
            }
        }
    }

    /// Reads until the dispatcher wants nothing more.
    pub(super) fn pump(&self, d: &mut Dispatcher) -> Vec<Delivery> {
        let mut out = Vec::new();
        for _ in 0..10_000 {
            match d.next_read(self.end()) {
                Some(req) => out.extend(self.serve(d, req)),
                None => return out,
            }
        }
        panic!("dispatcher keeps asking for reads");
    }
}

pub(super) fn dispatcher(sub_type: SubType) -> Dispatcher {
    Dispatcher::new(
        DispatcherConfig::new(sub_type, "persistent://public/default/t"),
        p(0),
    )
}

/// Delivered positions per consumer.
pub(super) fn by_consumer(ds: &[Delivery]) -> BTreeMap<ConsumerId, Vec<i64>> {
    let mut m: BTreeMap<ConsumerId, Vec<i64>> = BTreeMap::new();
    for d in ds {
        m.entry(d.consumer_id)
            .or_default()
            .push(d.position.entry_id);
    }
    m
}

pub(super) fn entry_ids(ds: &[Delivery]) -> Vec<i64> {
    ds.iter().map(|d| d.position.entry_id).collect()
}

pub(super) fn change(consumer_id: ConsumerId, is_active: bool) -> ActiveConsumerChange {
    ActiveConsumerChange {
        consumer_id,
        is_active,
    }
}
