//! etcd's client-visible errors: exact texts (after the `etcdserver: ` prefix) and gRPC codes
//! (etcd-api.md §2). Every failure a client can see is one of these.

use std::sync::Arc;

use tonic::{Code, Status};

/// One enum for every error the server reports to clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    #[error("etcdserver: key not found")]
    KeyNotFound,
    #[error("etcdserver: value is provided")]
    ValueProvided,
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// Txns nested deeper than a raft entry can carry (etcd has no such limit; Cairn's
    /// protobuf decoder stops at 100 message levels).
    #[error("etcdserver: txn request nested too deeply")]
    TxnTooDeep,
    #[error("etcdserver: invalid sort option")]
    InvalidSortOption,
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRev,
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    #[error("etcdserver: lease already exists")]
    LeaseExists,
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    #[error("etcdserver: too many requests")]
    TooManyRequests,
    #[error("etcdserver: no leader")]
    NoLeader,
    #[error("etcdserver: not leader")]
    NotLeader,
    #[error("etcdserver: bad leader transferee")]
    BadLeaderTransferee,
    #[error("etcdserver: server stopped")]
    Stopped,
    #[error("etcdserver: request timed out")]
    Timeout,
    /// A proposal timed out and the leader changed (or was lost) while it waited: the
    /// entry most likely went down with the old leader, but it may still be applied.
    #[error("etcdserver: request timed out, possibly due to previous leader failure")]
    TimeoutLeaderFail,
    #[error("etcdserver: member not found")]
    MemberNotFound,
    #[error("etcdserver: request canceled")]
    Canceled,
    #[error("etcdserver: leader changed")]
    LeaderChanged,
    #[error("etcdserver: given member URLs are invalid")]
    InvalidPeerUrls,
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExists,
    #[error("etcdserver: member ID already exist")]
    MemberExists,
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    #[error("etcdserver: can only promote a learner member")]
    MemberNotLearner,
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    NotEnoughStartedMembers,
    #[error("etcdserver: rpc not supported for learner")]
    NotSupportedForLearner,
    #[error("etcdserver: the member has been permanently removed from the cluster")]
    MemberRemoved,
    /// A failure after which the member must stop (storage, an undecodable entry), with
    /// the failing layer's error kept typed.
    #[error("etcdserver: {0}")]
    Fatal(Fatal),
    /// Any other internal failure (start-up, a broken invariant).
    #[error("etcdserver: {0}")]
    Internal(String),
    /// A feature this server does not implement yet.
    #[error("{0}")]
    Unimplemented(String),
    /// This member's data differs from its peers' (start-up check; etcd's text, e.g.
    /// `<member id> found data inconsistency with peers`).
    #[error("{0}")]
    Inconsistent(String),
}

impl Error {
    /// etcd's gRPC status code for this error.
    pub fn code(&self) -> Code {
        use Error::*;
        match self {
            EmptyKey | KeyNotFound | ValueProvided | LeaseProvided | TooManyOps | DuplicateKey
            | TxnTooDeep | InvalidSortOption | RequestTooLarge => Code::InvalidArgument,
            Compacted | FutureRev | LeaseTtlTooLarge => Code::OutOfRange,
            NoSpace | TooManyRequests => Code::ResourceExhausted,
            LeaseNotFound | MemberNotFound => Code::NotFound,
            NoLeader
            | Stopped
            | Timeout
            | TimeoutLeaderFail
            | LeaderChanged
            | NotSupportedForLearner
            | MemberRemoved => Code::Unavailable,
            NotLeader
            | BadLeaderTransferee
            | LeaseExists
            | PeerUrlExists
            | MemberExists
            | TooManyLearners
            | MemberNotLearner
            | LearnerNotReady
            | NotEnoughStartedMembers => Code::FailedPrecondition,
            InvalidPeerUrls => Code::InvalidArgument,
            Canceled => Code::Cancelled,
            Fatal(_) | Internal(_) => Code::Unknown,
            Unimplemented(_) => Code::Unimplemented,
            Inconsistent(_) => Code::DataLoss,
        }
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        Status::new(e.code(), e.to_string())
    }
}

/// Why a member had to stop.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Fatal {
    /// The backend (page store) failed: a failed fsync or write, or a corrupt page.
    #[error("backend: {0}")]
    Engine(Arc<cairn_engine::Error>),
    /// The write-ahead log failed.
    #[error("wal: {0}")]
    Wal(Arc<cairn_wal::Error>),
    /// A committed raft entry that cannot be decoded: applying anything after it would
    /// fork this member's state from the others'.
    #[error("committed entry {index} cannot be applied: {reason}")]
    BadEntry { index: u64, reason: String },
}

impl PartialEq for Fatal {
    /// The same failure: the same error object for storage errors, the same entry for
    /// undecodable ones.
    fn eq(&self, other: &Fatal) -> bool {
        match (self, other) {
            (Fatal::Engine(a), Fatal::Engine(b)) => Arc::ptr_eq(a, b),
            (Fatal::Wal(a), Fatal::Wal(b)) => Arc::ptr_eq(a, b),
            (
                Fatal::BadEntry {
                    index: a,
                    reason: r,
                },
                Fatal::BadEntry {
                    index: b,
                    reason: s,
                },
            ) => a == b && r == s,
            _ => false,
        }
    }
}

impl Eq for Fatal {}

impl From<cairn_engine::Error> for Error {
    fn from(e: cairn_engine::Error) -> Error {
        Error::Fatal(Fatal::Engine(Arc::new(e)))
    }
}

impl From<cairn_wal::Error> for Error {
    fn from(e: cairn_wal::Error) -> Error {
        Error::Fatal(Fatal::Wal(Arc::new(e)))
    }
}

/// Result alias used across the server.
pub type Result<T, E = Error> = std::result::Result<T, E>;
