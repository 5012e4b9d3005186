//! The etcd gRPC services, one module each. They check requests (`validate`), propose
//! writes through raft ([`Proposer`]) or read the [`State`] directly, and fill response
//! headers.

pub(crate) mod cluster;
pub(crate) mod kv;
pub(crate) mod lease;
pub(crate) mod maintenance;
pub(crate) mod validate;
pub(crate) mod watch;

use std::sync::Arc;

use tonic::{Request, Status};

use crate::error::{Error, Result};
use crate::pb::etcdserverpb::ResponseHeader;
use crate::raft::Proposer;
use crate::state::State;

/// Limits from the configuration that the services enforce.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    pub(crate) max_request_bytes: usize,
    pub(crate) max_txn_ops: usize,
    /// 0 = no quota.
    pub(crate) quota_backend_bytes: u64,
}

/// What every service works with: the applied state, the way to raft, the limits.
pub(crate) struct Node {
    pub(crate) state: Arc<State>,
    pub(crate) raft: Arc<Proposer>,
    pub(crate) limits: Limits,
}

impl Node {
    /// A full response header at the given revision.
    pub(crate) fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.state.member.cluster_id,
            member_id: self.state.member.id,
            revision,
            raft_term: self.raft.term(),
        }
    }

    /// Fills cluster, member and term into a header that carries the revision.
    pub(crate) fn fill(&self, h: &mut Option<ResponseHeader>) {
        let rev = h
            .as_ref()
            .map(|h| h.revision)
            .unwrap_or_else(|| self.state.store.rev());
        *h = Some(self.header(rev));
    }

    /// A header at the current revision.
    pub(crate) fn current_header(&self) -> ResponseHeader {
        self.header(self.state.store.rev())
    }

    /// Learners serve only Status and serializable reads (etcd's rule).
    pub(crate) fn check_not_learner(&self) -> Result<()> {
        if self.state.is_learner() {
            return Err(Error::NotSupportedForLearner);
        }
        Ok(())
    }

    /// The client URLs the current leader advertises (empty when no leader is known or it
    /// has not published them yet). Used to forward calls to the leader.
    pub(crate) fn leader_client_urls(&self) -> Vec<String> {
        if self.raft.is_leader() {
            return self.state.member.client_urls.clone();
        }
        let leader = self.raft.leader_id();
        self.state
            .cluster
            .read()
            .members
            .get(&leader)
            .map(|m| m.client_urls.clone())
            .unwrap_or_default()
    }

    /// Whether this member leads, promoting or demoting its lessor as leadership changes
    /// (see `Lessor::ensure_primary`).
    pub(crate) fn lessor_is_primary(&self) -> bool {
        self.state.lessor.ensure_primary(
            self.state.member.id,
            self.raft.leader_id(),
            self.raft.term(),
        )
    }
}

/// Honours the `hasleader` metadata (clientv3 `WithRequireLeader`).
pub(crate) fn check_leader<T>(node: &Node, req: &Request<T>) -> Result<(), Status> {
    if let Some(v) = req.metadata().get("hasleader") {
        if v.as_bytes() == b"true" && !node.raft.has_leader() {
            return Err(Error::NoLeader.into());
        }
    }
    Ok(())
}
