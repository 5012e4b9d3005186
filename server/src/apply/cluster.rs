//! Applying membership attributes: a member's name and client URLs, and peer URL updates.
//! (Adding, removing and promoting members are raft conf changes, applied by the raft loop.)

use super::Members;
use crate::error::{Error, Result};
use crate::pb::etcdserverpb::{Member, MemberUpdateRequest};
use crate::state::State;

/// A member publishes its name and client URLs (etcd's ClusterMemberAttrSet).
pub(crate) fn member_attr(state: &State, m: Member) -> Result<Members> {
    let mut c = state.cluster.write();
    let Some(mut rec) = c.members.get(&m.id).cloned() else {
        return Err(Error::MemberNotFound);
    };
    rec.name = m.name;
    rec.client_urls = m.client_ur_ls;
    c.put(&state.store.backend, rec);
    Ok(Members {
        member: None,
        members: c.list(),
    })
}

/// New peer URLs for a member (MemberUpdate). The raft loop tells the transport.
pub(crate) fn member_update(state: &State, u: MemberUpdateRequest) -> Result<Members> {
    let mut c = state.cluster.write();
    let Some(mut rec) = c.members.get(&u.id).cloned() else {
        return Err(Error::MemberNotFound);
    };
    if let Some(other) = c.by_peer_url(&u.peer_ur_ls) {
        if other.id != u.id {
            return Err(Error::PeerUrlExists);
        }
    }
    rec.peer_urls = u.peer_ur_ls;
    tracing::info!(member = %format!("{:x}", rec.id), peer_urls = ?rec.peer_urls, "member updated");
    c.put(&state.store.backend, rec.clone());
    Ok(Members {
        member: Some(rec.to_pb()),
        members: c.list(),
    })
}
