//! `metadata_wire`: the metadata protocol as a node and a client read it
//! (`magnetar_metadata::wire`), including the Raft RPCs one node sends another.
//!
//! Input: `[u8 read plan][u8 mode][stream]`. The stream is split into frames by `wire::codec`
//! (8 MiB limit). Mode bit 0 clear, the node's side: each frame is a `Request`, checked as the
//! node checks it before proposing anything (keys, prefixes, values, expectations, transaction
//! size), a Raft payload decoded as a `RaftRpc`. Bit 0 set, the client's side: each frame is a
//! `Response`, turned into a body or an error by `into_result`, a Raft payload decoded as the
//! reply to the RPC named by bits 1–2 (append, vote, snapshot). Decoded Raft messages must
//! re-encode to something that decodes again.

use bytes::{Bytes, BytesMut};
use magnetar_metadata::keys::{MAX_TXN_OPS, validate_key, validate_prefix};
use magnetar_metadata::types::{Command, Entry, Expected, Op, Proposal};
use magnetar_metadata::wire::{
    self, AppendResult, RaftRpc, SnapshotResult, VoteResult, decode_raft_reply, decode_raft_rpc,
};
use magnetar_protocol::metadata::{self as pb, request, response};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{
    BasicNode, CommittedLeaderId, EntryPayload, LogId, Membership, SnapshotMeta, StoredMembership,
    Vote,
};
use prost::Message;
use serde::Serialize;
use tokio_util::codec::{Decoder, Encoder};

use crate::engine::{Signal, Target, variant_name};
use crate::input::{Input, InputBuilder, chunks};
use crate::rng::Rng;
use crate::targets::bookie_wire::one_per_oneof;

#[derive(Debug)]
pub struct MetadataWire;

impl Target for MetadataWire {
    fn name(&self) -> &'static str {
        "metadata_wire"
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        let mut rng = Rng::new(0x3e7a);
        let mut seeds = Vec::new();
        let mut requests = one_per_oneof::<pb::Request>(&mut rng, 2..=15);
        for rpc in raft_rpcs() {
            requests.push(pb::Request {
                id: 9,
                body: Some(request::Body::Raft(pb::RaftRequest {
                    payload: to_postcard(&rpc),
                })),
            });
        }
        requests.push(pb::Request {
            id: 3,
            body: Some(request::Body::Txn(pb::TxnRequest {
                compares: vec![pb::Compare {
                    key: "/a".into(),
                    expected: Some(pb::Expected {
                        kind: Some(pb::expected::Kind::Version(1)),
                    }),
                }],
                ops: vec![pb::TxnOp {
                    op: Some(pb::txn_op::Op::Put(pb::PutRequest {
                        key: "/a/b".into(),
                        value: b"v".to_vec(),
                        ..Default::default()
                    })),
                }],
            })),
        });
        for request in &requests {
            seeds.push(seed(0, 0, &frame(request)));
            seeds.push(seed(rng.byte(), 0, &frame(request)));
        }
        let mut responses = one_per_oneof::<pb::Response>(&mut rng, 2..=13);
        for (kind, payload) in raft_replies() {
            let response = pb::Response {
                id: 9,
                error: None,
                body: Some(response::Body::Raft(pb::RaftResponse { payload })),
            };
            seeds.push(seed(0, 1 | (kind << 1), &frame(&response)));
            responses.push(response);
        }
        for response in &responses {
            seeds.push(seed(rng.byte(), 1, &frame(response)));
        }
        seeds
    }

    fn run(&mut self, input: &[u8]) -> Signal {
        let mut input = Input::new(input);
        let plan = input.u8();
        let mode = input.u8();
        let stream = input.rest();
        let mut codec = wire::codec();
        let mut buf = BytesMut::new();
        let mut signal = Signal::new("metadata_wire").with_num(u64::from(mode & 1));
        for chunk in chunks(stream, plan) {
            buf.extend_from_slice(chunk);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(frame)) => {
                        let frame = frame.freeze();
                        signal = signal.with(if mode & 1 == 0 {
                            check_request(frame)
                        } else {
                            check_response(frame, (mode >> 1) & 3)
                        });
                    }
                    Ok(None) => break,
                    Err(e) => return signal.with("frame-error").with(e.kind().to_string()),
                }
            }
        }
        signal
    }
}

/// What a node does with a request frame before anything is proposed or read.
fn check_request(frame: Bytes) -> String {
    let Ok(request) = pb::Request::decode(frame) else {
        return "request/undecodable".into();
    };
    let Some(body) = request.body else {
        return "request/no-body".into();
    };
    let name = variant_name(&body);
    let verdict: Result<String, magnetar_metadata::MetadataError> = match body {
        request::Body::Get(get) => validate_key(&get.key).map(|_| "ok".into()),
        request::Body::List(list) => validate_prefix(&list.prefix).map(|_| "ok".into()),
        request::Body::Watch(watch) => validate_prefix(&watch.prefix).map(|_| "ok".into()),
        request::Body::Children(children) if children.path != "/" => {
            validate_key(&children.path).map(|_| "ok".into())
        }
        request::Body::Put(put) => wire::put_op(put).map(|op| check_op(&op)),
        request::Body::Delete(delete) => wire::delete_op(delete).map(|op| check_op(&op)),
        request::Body::Txn(txn) => check_txn(txn),
        request::Body::Raft(raft) => match decode_raft_rpc(&raft.payload) {
            Ok(rpc) => Ok(check_rpc(&rpc)),
            Err(e) => Err(e),
        },
        _ => Ok("ok".into()),
    };
    match verdict {
        Ok(detail) => format!("request/{name}/{detail}"),
        Err(e) => format!("request/{name}/{}", variant_name(&e)),
    }
}

fn check_txn(txn: pb::TxnRequest) -> Result<String, magnetar_metadata::MetadataError> {
    if txn.ops.len() + txn.compares.len() > MAX_TXN_OPS {
        return Ok("too-many-ops".into());
    }
    for compare in txn.compares {
        validate_key(&compare.key)?;
        wire::expected_from_proto(compare.expected)?;
    }
    let mut detail = String::from("txn");
    for op in txn.ops {
        let op = match op.op {
            Some(pb::txn_op::Op::Put(put)) => wire::put_op(put)?,
            Some(pb::txn_op::Op::Delete(delete)) => wire::delete_op(delete)?,
            None => return Ok("op-without-body".into()),
        };
        detail = check_op(&op);
    }
    Ok(detail)
}

/// An accepted op must satisfy the rules the state machine relies on.
fn check_op(op: &Op) -> String {
    validate_key(op.key()).expect("an accepted op has a valid key");
    match op.expected() {
        Expected::Version(0) | Expected::Session(0) => panic!("accepted an impossible expectation"),
        expected => variant_name(&expected),
    }
}

/// A decoded Raft RPC must survive a postcard round trip.
fn check_rpc(rpc: &RaftRpc) -> String {
    let bytes = postcard::to_allocvec(rpc).expect("a decoded rpc encodes");
    let again = decode_raft_rpc(&bytes).expect("an encoded rpc decodes");
    assert_eq!(
        postcard::to_allocvec(&again).expect("encodes"),
        bytes,
        "a raft rpc changes on a round trip"
    );
    match rpc {
        RaftRpc::AppendEntries(_) => "append".into(),
        RaftRpc::Vote(_) => "vote".into(),
        RaftRpc::InstallSnapshot(_) => "snapshot".into(),
    }
}

/// What a client does with a response frame.
fn check_response(frame: Bytes, raft_kind: u8) -> String {
    let Ok(response) = pb::Response::decode(frame) else {
        return "response/undecodable".into();
    };
    match wire::into_result(response) {
        Ok(response::Body::Raft(raft)) => {
            let reply = match raft_kind {
                0 => reply_detail::<AppendResult>(&raft.payload),
                1 => reply_detail::<VoteResult>(&raft.payload),
                _ => reply_detail::<SnapshotResult>(&raft.payload),
            };
            format!("response/raft/{raft_kind}/{reply}")
        }
        Ok(body) => format!("response/{}", variant_name(&body)),
        Err(e) => format!("response/error/{}", variant_name(&e)),
    }
}

fn reply_detail<T: serde::de::DeserializeOwned + Serialize>(payload: &[u8]) -> String {
    match decode_raft_reply::<T>(payload) {
        Ok(reply) => {
            let bytes = postcard::to_allocvec(&reply).expect("a decoded reply encodes");
            let again = decode_raft_reply::<T>(&bytes).expect("an encoded reply decodes");
            assert_eq!(
                postcard::to_allocvec(&again).expect("encodes"),
                bytes,
                "a raft reply changes on a round trip"
            );
            "ok".into()
        }
        Err(e) => format!("bad/{}", variant_name(&e)),
    }
}

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

/// One of each Raft RPC, with entries of every payload kind.
fn raft_rpcs() -> Vec<RaftRpc> {
    let membership = Membership::new(
        vec![[1u64, 2, 3].into()],
        (1u64..=3)
            .map(|id| (id, BasicNode::new(format!("127.0.0.1:{id}"))))
            .collect::<std::collections::BTreeMap<_, _>>(),
    );
    let proposal = Proposal {
        commands: vec![
            Command::Txn {
                compares: vec![("/a".into(), Expected::Absent)],
                ops: vec![
                    Op::Put {
                        key: "/a".into(),
                        value: b"value".to_vec(),
                        expected: Expected::Any,
                        session: Some(4),
                    },
                    Op::Delete {
                        key: "/b".into(),
                        expected: Expected::Version(2),
                    },
                ],
            },
            Command::CreateSession { ttl_ms: 5000 },
            Command::ExpireSession { session: 4 },
        ],
    };
    let entries: Vec<Entry> = vec![
        Entry {
            log_id: log_id(1, 1),
            payload: EntryPayload::Blank,
        },
        Entry {
            log_id: log_id(1, 2),
            payload: EntryPayload::Normal(proposal),
        },
        Entry {
            log_id: log_id(1, 3),
            payload: EntryPayload::Membership(membership.clone()),
        },
    ];
    vec![
        RaftRpc::Vote(VoteRequest::new(Vote::new(2, 1), Some(log_id(1, 3)))),
        RaftRpc::AppendEntries(AppendEntriesRequest {
            vote: Vote::new_committed(1, 1),
            prev_log_id: None,
            entries,
            leader_commit: Some(log_id(1, 1)),
        }),
        RaftRpc::InstallSnapshot(InstallSnapshotRequest {
            vote: Vote::new_committed(1, 1),
            meta: SnapshotMeta {
                last_log_id: Some(log_id(1, 3)),
                last_membership: StoredMembership::new(Some(log_id(1, 3)), membership),
                snapshot_id: "1-3-0".into(),
            },
            offset: 0,
            data: b"{\"kv\":[]}".to_vec(),
            done: true,
        }),
    ]
}

/// Replies (kind 0 append, 1 vote, 2 snapshot) as a node sends them back.
fn raft_replies() -> Vec<(u8, Vec<u8>)> {
    let append: Vec<AppendResult> = vec![
        Ok(AppendEntriesResponse::Success),
        Ok(AppendEntriesResponse::Conflict),
        Ok(AppendEntriesResponse::PartialSuccess(Some(log_id(1, 2)))),
        Ok(AppendEntriesResponse::HigherVote(Vote::new(3, 2))),
        Err(openraft::error::RaftError::Fatal(
            openraft::error::Fatal::Stopped,
        )),
    ];
    let vote: Vec<VoteResult> = vec![Ok(VoteResponse::new(Vote::new(2, 1), None, true))];
    let snapshot: Vec<SnapshotResult> = vec![Ok(InstallSnapshotResponse {
        vote: Vote::new_committed(1, 1),
    })];
    let mut out = Vec::new();
    out.extend(append.iter().map(|r| (0, to_postcard(r))));
    out.extend(vote.iter().map(|r| (1, to_postcard(r))));
    out.extend(snapshot.iter().map(|r| (2, to_postcard(r))));
    out
}

fn to_postcard(value: &impl Serialize) -> Vec<u8> {
    postcard::to_allocvec(value).expect("plain data encodes")
}

fn frame(message: &impl Message) -> Vec<u8> {
    let mut out = BytesMut::new();
    wire::codec()
        .encode(Bytes::from(message.encode_to_vec()), &mut out)
        .expect("a small message frames");
    out.to_vec()
}

fn seed(plan: u8, mode: u8, stream: &[u8]) -> Vec<u8> {
    InputBuilder::new().u8(plan).u8(mode).raw(stream).build()
}
