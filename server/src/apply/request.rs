//! The payload of a raft entry (Cairn's own entry format) and the typed pairing of each
//! request with its response.
//!
//! # Entry format
//! A normal raft entry's data is one protobuf message, [`InternalRequest`]:
//!
//! | field | tag | type | meaning |
//! |---|---|---|---|
//! | `id` | 1 | uint64 | request id: matches the entry to the client call waiting for it (unique cluster-wide: the proposing member's id in the top 16 bits, then a counter seeded from the clock) |
//! | `put` | 2 | `etcdserverpb.PutRequest` | |
//! | `delete_range` | 3 | `etcdserverpb.DeleteRangeRequest` | |
//! | `txn` | 4 | `etcdserverpb.TxnRequest` | only txns that write; read-only txns never reach raft |
//! | `compaction` | 5 | `etcdserverpb.CompactionRequest` | |
//! | `alarm` | 6 | `etcdserverpb.AlarmRequest` | |
//! | `lease_grant` | 7 | `etcdserverpb.LeaseGrantRequest` | the id is chosen by the proposer |
//! | `lease_revoke` | 8 | `etcdserverpb.LeaseRevokeRequest` | also how expiry happens |
//! | `lease_checkpoint` | 9 | `etcdserverpb.LeaseCheckpointRequest` | remaining TTLs |
//! | `member_attr` | 10 | `etcdserverpb.Member` | a member publishes its name and client URLs |
//! | `member_update` | 11 | `etcdserverpb.MemberUpdateRequest` | new peer URLs |
//!
//! Fields 2–11 are a `oneof`: exactly one is set. An entry whose data does not decode, or
//! that carries none of them, stops the member (`Error::Fatal`): every member must apply
//! the same entries, so skipping one would fork the state machines.
//!
//! Membership changes that add or remove voters and learners are raft `ConfChange`
//! entries instead (raft-rs's own encoding); their `context` is the JSON of
//! `raft::ConfChangeContext` (the waiting request id and the member record).

use crate::pb::etcdserverpb::{
    AlarmRequest, AlarmResponse, CompactionRequest, CompactionResponse, DeleteRangeRequest,
    DeleteRangeResponse, LeaseCheckpointRequest, LeaseCheckpointResponse, LeaseGrantRequest,
    LeaseGrantResponse, LeaseRevokeRequest, LeaseRevokeResponse, Member, MemberUpdateRequest,
    PutRequest, PutResponse, TxnRequest, TxnResponse,
};

/// A request proposed through raft (etcd's `InternalRaftRequest` plays the same role).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct InternalRequest {
    /// Matches the entry to the waiting client call.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(oneof = "Op", tags = "2, 3, 4, 5, 6, 7, 8, 9, 10, 11")]
    pub op: Option<Op>,
}

/// The operations that go through raft.
#[derive(Clone, PartialEq, prost::Oneof)]
pub(crate) enum Op {
    #[prost(message, tag = "2")]
    Put(PutRequest),
    #[prost(message, tag = "3")]
    DeleteRange(DeleteRangeRequest),
    #[prost(message, tag = "4")]
    Txn(TxnRequest),
    #[prost(message, tag = "5")]
    Compaction(CompactionRequest),
    #[prost(message, tag = "6")]
    Alarm(AlarmRequest),
    #[prost(message, tag = "7")]
    LeaseGrant(LeaseGrantRequest),
    #[prost(message, tag = "8")]
    LeaseRevoke(LeaseRevokeRequest),
    #[prost(message, tag = "9")]
    LeaseCheckpoint(LeaseCheckpointRequest),
    /// A member publishes its name and client URLs (etcd's ClusterMemberAttrSet).
    #[prost(message, tag = "10")]
    MemberAttr(Member),
    /// New peer URLs for a member (MemberUpdate).
    #[prost(message, tag = "11")]
    MemberUpdate(MemberUpdateRequest),
}

/// The members after a membership change, and the member concerned.
#[derive(Debug, Default)]
pub(crate) struct Members {
    pub(crate) member: Option<Member>,
    pub(crate) members: Vec<Member>,
}

/// The result of applying one entry (headers carry only the revision; the API layer
/// fills in the rest). Each variant answers the [`Op`] variant of the same name;
/// conf change entries answer [`Response::Members`].
#[derive(Debug)]
pub(crate) enum Response {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compaction(CompactionResponse),
    Alarm(AlarmResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    LeaseCheckpoint(LeaseCheckpointResponse),
    MemberAttr(Members),
    MemberUpdate(Members),
    /// A conf change (member add, remove, promote).
    Members(Members),
}

/// A request that can be proposed, and the response its entry produces when applied.
pub(crate) trait Proposal: Sized {
    /// What applying it answers.
    type Response;
    /// The request as an entry's operation.
    fn into_op(self) -> Op;
    /// Its response out of an apply result (`None` only if apply broke the pairing,
    /// which the tests of `apply` rule out).
    fn response(r: Response) -> Option<Self::Response>;
}

/// One line per operation: request type, the variant in [`Op`] and [`Response`], the
/// response type.
macro_rules! proposals {
    ($($req:ty => $variant:ident($resp:ty);)*) => {$(
        impl Proposal for $req {
            type Response = $resp;
            fn into_op(self) -> Op {
                Op::$variant(self)
            }
            fn response(r: Response) -> Option<$resp> {
                match r {
                    Response::$variant(x) => Some(x),
                    _ => None,
                }
            }
        }
    )*};
}

proposals! {
    PutRequest => Put(PutResponse);
    DeleteRangeRequest => DeleteRange(DeleteRangeResponse);
    TxnRequest => Txn(TxnResponse);
    CompactionRequest => Compaction(CompactionResponse);
    AlarmRequest => Alarm(AlarmResponse);
    LeaseGrantRequest => LeaseGrant(LeaseGrantResponse);
    LeaseRevokeRequest => LeaseRevoke(LeaseRevokeResponse);
    LeaseCheckpointRequest => LeaseCheckpoint(LeaseCheckpointResponse);
    Member => MemberAttr(Members);
    MemberUpdateRequest => MemberUpdate(Members);
}
