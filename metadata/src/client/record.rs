//! What the client hands out and takes in besides plain keys: records, and multi-key
//! transactions built up op by op.

use magnetar_protocol::metadata as pb;

use super::Session;
use crate::types::Expected;

/// A key with its value and bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: String,
    pub value: Vec<u8>,
    /// From 1 at creation, +1 per put.
    pub version: u64,
    pub create_revision: u64,
    pub mod_revision: u64,
    /// The owning session of an ephemeral key.
    pub session: Option<u64>,
}

impl From<pb::KeyValue> for Record {
    fn from(kv: pb::KeyValue) -> Record {
        Record {
            key: kv.key,
            value: kv.value,
            version: kv.version,
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            session: (kv.session != 0).then_some(kv.session),
        }
    }
}

pub(crate) fn expected_to_proto(expected: Expected) -> pb::Expected {
    let kind = match expected {
        Expected::Any => pb::expected::Kind::Any(pb::Empty {}),
        Expected::Absent => pb::expected::Kind::Absent(pb::Empty {}),
        Expected::Version(v) => pb::expected::Kind::Version(v),
        Expected::Session(s) => pb::expected::Kind::Session(s),
    };
    pb::Expected { kind: Some(kind) }
}

/// A multi-key transaction: every compare (and every op's expectation) holds, or nothing applies.
#[derive(Debug, Clone, Default)]
pub struct Txn {
    pub(super) request: pb::TxnRequest,
}

impl Txn {
    pub fn new() -> Txn {
        Txn::default()
    }

    pub fn compare(mut self, key: impl Into<String>, expected: Expected) -> Txn {
        self.request.compares.push(pb::Compare {
            key: key.into(),
            expected: Some(expected_to_proto(expected)),
        });
        self
    }

    pub fn put(self, key: impl Into<String>, value: impl Into<Vec<u8>>, expected: Expected) -> Txn {
        self.put_in_session(key, value, expected, 0)
    }

    /// A put of a key owned by `session` (deleted when it expires).
    pub fn put_ephemeral(
        self,
        key: impl Into<String>,
        value: impl Into<Vec<u8>>,
        expected: Expected,
        session: &Session,
    ) -> Txn {
        let id = session.id();
        self.put_in_session(key, value, expected, id)
    }

    /// A put of a key owned by the session with this id.
    pub fn put_in_session(
        mut self,
        key: impl Into<String>,
        value: impl Into<Vec<u8>>,
        expected: Expected,
        session: u64,
    ) -> Txn {
        let put = pb::PutRequest {
            key: key.into(),
            value: value.into(),
            expected: Some(expected_to_proto(expected)),
            session,
        };
        self.request.ops.push(pb::TxnOp {
            op: Some(pb::txn_op::Op::Put(put)),
        });
        self
    }

    pub fn delete(mut self, key: impl Into<String>, expected: Expected) -> Txn {
        let delete = pb::DeleteRequest {
            key: key.into(),
            expected: Some(expected_to_proto(expected)),
        };
        self.request.ops.push(pb::TxnOp {
            op: Some(pb::txn_op::Op::Delete(delete)),
        });
        self
    }
}
