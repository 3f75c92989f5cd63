//! The Raft type configuration and the commands the replicated state machine applies.
//!
//! Commands travel in the Raft log (postcard-encoded), so their shape is an on-disk format:
//! add variants at the end, never reorder.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// Magnetar metadata's Raft types: a log entry carries a [`Proposal`], applying it yields
    /// one [`CommandResult`] per command.
    pub TypeConfig:
        D = Proposal,
        R = ProposalResult,
);

pub type NodeId = u64;
pub type Node = openraft::BasicNode;
pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;

/// What a write expects of a key before it applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expected {
    /// Whatever the key holds, or nothing.
    Any,
    /// The key must not exist.
    Absent,
    /// The key must exist with exactly this version (versions start at 1).
    Version(u64),
    /// The key must exist as an ephemeral key of this session. An ownership record re-created
    /// by a new session restarts at version 1, so only the session tells one owner's record
    /// from the next one's: brokers make their writes conditional on still owning a bundle.
    Session(u64),
}

impl Expected {
    /// Whether a key currently at `version` (0 = absent) and owned by `session` satisfies this
    /// expectation.
    pub fn holds(self, version: u64, session: Option<u64>) -> bool {
        match self {
            Expected::Any => true,
            Expected::Absent => version == 0,
            Expected::Version(v) => version == v,
            Expected::Session(s) => version != 0 && session == Some(s),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Put {
        key: String,
        value: Vec<u8>,
        expected: Expected,
        session: Option<u64>,
    },
    Delete {
        key: String,
        expected: Expected,
    },
}

impl Op {
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key, .. } => key,
        }
    }

    pub fn expected(&self) -> Expected {
        match self {
            Op::Put { expected, .. } | Op::Delete { expected, .. } => *expected,
        }
    }
}

/// One state-machine command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// All compares (and each op's own expectation) hold → all ops apply, as one revision.
    Txn {
        compares: Vec<(String, Expected)>,
        ops: Vec<Op>,
    },
    /// Opens a session; its id is the log index of the entry that created it.
    CreateSession { ttl_ms: u64 },
    /// Ends a session (expired on the leader, or closed by its owner) and deletes its keys.
    ExpireSession { session: u64 },
}

/// Many clients' commands proposed as one log entry (one append, one fsync).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub commands: Vec<Command>,
}

impl std::fmt::Display for Proposal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Proposal({} commands)", self.commands.len())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    /// Per op: new version of a put; 1 or 0 for a delete that removed / found nothing.
    Txn {
        revision: u64,
        results: Vec<u64>,
    },
    CompareFailed {
        key: String,
        actual_version: u64,
    },
    SessionExpired {
        session: u64,
    },
    Session {
        session: u64,
        ttl_ms: u64,
    },
    Done,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalResult {
    pub results: Vec<CommandResult>,
}

/// A key's stored value and bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredValue {
    pub value: Vec<u8>,
    pub version: u64,
    pub create_revision: u64,
    pub mod_revision: u64,
    /// Owning session of an ephemeral key.
    pub session: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Put,
    Delete,
}

/// One key change; every change of one revision is recorded together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    pub key: String,
    /// The new value (puts) or the last value (deletes).
    pub value: StoredValue,
}

/// All events of one revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionEvents {
    pub revision: u64,
    pub events: Vec<Event>,
}

/// A session as the state machine keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub ttl_ms: u64,
    pub keys: std::collections::BTreeSet<String>,
}
