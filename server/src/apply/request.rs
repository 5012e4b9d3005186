//! The payload of a raft entry: one client write request with its request id.

use crate::pb::etcdserverpb::{
    AlarmRequest, AlarmResponse, CompactionRequest, CompactionResponse, DeleteRangeRequest,
    DeleteRangeResponse, LeaseCheckpointRequest, LeaseGrantRequest, LeaseGrantResponse,
    LeaseRevokeRequest, LeaseRevokeResponse, Member, MemberUpdateRequest, PutRequest, PutResponse,
    TxnRequest, TxnResponse,
};

/// A request proposed through raft (Cairn's own entry format; etcd's
/// `InternalRaftRequest` plays the same role).
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

/// The result of applying one request (headers carry only the revision; the API layer
/// fills in the rest).
#[derive(Debug)]
pub(crate) enum ApplyResult {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compaction(CompactionResponse),
    Alarm(AlarmResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    LeaseCheckpoint,
    /// A membership change: the member concerned and the members afterwards.
    Members {
        member: Option<Member>,
        members: Vec<Member>,
    },
}
