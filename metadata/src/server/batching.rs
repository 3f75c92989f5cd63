//! Group commit for the metadata service. Writes that arrive together are proposed as one log
//! entry (one append, one fsync on each node), and linearizable reads that arrive together share
//! one leadership check — this is what lets many concurrent clients get high throughput.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::raft_errors;
use crate::error::MetadataError;
use crate::types::{Command, CommandResult, Op, Proposal, Raft};

/// Most commands in one proposal.
const MAX_BATCH_COMMANDS: usize = 512;
/// Rough byte budget of one proposal.
const MAX_BATCH_BYTES: usize = 2 * 1024 * 1024;
/// Proposals in flight at once. Without a bound every write was proposed the moment it arrived,
/// alone, and paid its own log append and replication round; with one, writes that arrive while
/// a proposal is being committed wait and go together in the next.
const MAX_IN_FLIGHT: usize = 2;

type Reply = oneshot::Sender<Result<CommandResult, MetadataError>>;

#[derive(Debug, Clone)]
pub(crate) struct Proposer {
    tx: mpsc::Sender<(Command, Reply)>,
}

fn approx_size(command: &Command) -> usize {
    match command {
        Command::Txn { compares, ops } => {
            compares.iter().map(|(k, _)| k.len() + 16).sum::<usize>()
                + ops
                    .iter()
                    .map(|op| match op {
                        Op::Put { key, value, .. } => key.len() + value.len() + 32,
                        Op::Delete { key, .. } => key.len() + 16,
                    })
                    .sum::<usize>()
        }
        _ => 16,
    }
}

impl Proposer {
    pub(crate) fn start(raft: Raft, cancel: CancellationToken, tasks: &TaskTracker) -> Proposer {
        let (tx, mut rx) = mpsc::channel::<(Command, Reply)>(4096);
        let spawner = tasks.clone();
        let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        tasks.spawn(async move {
            loop {
                let permit = tokio::select! {
                    _ = cancel.cancelled() => break,
                    permit = in_flight.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                };
                let first = tokio::select! {
                    _ = cancel.cancelled() => break,
                    first = rx.recv() => match first { Some(first) => first, None => break },
                };
                let mut size = approx_size(&first.0);
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH_COMMANDS && size < MAX_BATCH_BYTES {
                    match rx.try_recv() {
                        Ok(next) => {
                            size += approx_size(&next.0);
                            batch.push(next);
                        }
                        Err(_) => break,
                    }
                }
                let (commands, replies): (Vec<Command>, Vec<Reply>) = batch.into_iter().unzip();
                match raft.client_write_ff(Proposal { commands }).await {
                    Ok(pending) => {
                        // Wait for the outcome elsewhere, so the next batch can be proposed now.
                        spawner.spawn(async move {
                            let outcome = pending.await;
                            drop(permit);
                            let outcome = match outcome {
                                Ok(Ok(response)) => Ok(response.data.results),
                                Ok(Err(e)) => Err(raft_errors::from_write_api(e)),
                                Err(_) => {
                                    Err(MetadataError::Unavailable("raft is shutting down".into()))
                                }
                            };
                            match outcome {
                                Ok(results) => {
                                    for (reply, result) in replies.into_iter().zip(results) {
                                        let _ = reply.send(Ok(result));
                                    }
                                }
                                Err(e) => {
                                    for reply in replies {
                                        let _ = reply.send(Err(e.clone()));
                                    }
                                }
                            }
                        });
                    }
                    Err(fatal) => {
                        for reply in replies {
                            let _ = reply.send(Err(MetadataError::Unavailable(fatal.to_string())));
                        }
                    }
                }
            }
        });
        Proposer { tx }
    }

    /// Proposes one command and waits until it is committed and applied.
    pub(crate) async fn propose(&self, command: Command) -> Result<CommandResult, MetadataError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((command, reply))
            .await
            .map_err(|_| MetadataError::Unavailable("node is shutting down".into()))?;
        rx.await
            .map_err(|_| MetadataError::Unavailable("node is shutting down".into()))?
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Linearizer {
    tx: mpsc::Sender<oneshot::Sender<Result<(), MetadataError>>>,
}

impl Linearizer {
    pub(crate) fn start(raft: Raft, cancel: CancellationToken, tasks: &TaskTracker) -> Linearizer {
        let (tx, mut rx) = mpsc::channel::<oneshot::Sender<Result<(), MetadataError>>>(4096);
        tasks.spawn(async move {
            loop {
                let first = tokio::select! {
                    _ = cancel.cancelled() => break,
                    first = rx.recv() => match first { Some(first) => first, None => break },
                };
                let mut waiters = vec![first];
                while let Ok(next) = rx.try_recv() {
                    waiters.push(next);
                }
                // Every waiter arrived before this check began, so the read index it establishes
                // is at least as new as each of their requests.
                let result = raft
                    .ensure_linearizable()
                    .await
                    .map(|_| ())
                    .map_err(raft_errors::from_read);
                for waiter in waiters {
                    let _ = waiter.send(result.clone());
                }
            }
        });
        Linearizer { tx }
    }

    /// Returns once this node is the leader and has applied everything committed before the
    /// call: a read of local state after this is linearizable.
    pub(crate) async fn barrier(&self) -> Result<(), MetadataError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(reply)
            .await
            .map_err(|_| MetadataError::Unavailable("node is shutting down".into()))?;
        rx.await
            .map_err(|_| MetadataError::Unavailable("node is shutting down".into()))?
    }
}
