//! Applies committed requests to the member's [`State`], in raft order: each write request
//! gets one new revision (a whole txn shares it; a request that changes nothing does not
//! bump it).
//!
//! [`apply`] is a plain function of the state and one decoded operation: no raft, threads
//! or sockets. The raft loop calls it for every committed entry and hands the result to
//! the waiting client call; the tests below call it directly.
//!
//! - `kv`: Put, DeleteRange, Txn (etcd's apply.go and txn.go semantics);
//! - `lease`: LeaseGrant, LeaseRevoke, LeaseCheckpoint;
//! - `maintenance`: Compaction and Alarm;
//! - `cluster`: member attributes and peer URL updates (conf changes are applied by the
//!   raft loop, which must tell raft-rs);
//! - `request`: the raft entry format and the typed request/response pairs.

pub(crate) mod cluster;
pub(crate) mod kv;
pub(crate) mod lease;
pub(crate) mod maintenance;
pub(crate) mod request;
#[cfg(test)]
mod tests;

use crate::error::Result;
use crate::pb::etcdserverpb::ResponseHeader;
use crate::state::State;
pub(crate) use request::{InternalRequest, Members, Op, Proposal, Response};

/// Executes one decoded request. `commit` commits the staged backend batch (called between
/// compaction batches).
pub(crate) fn apply(
    state: &State,
    req: Op,
    commit: &mut dyn FnMut() -> Result<()>,
) -> Result<Response> {
    Ok(match req {
        Op::Put(p) => Response::Put(kv::put(state, p)?),
        Op::DeleteRange(d) => Response::DeleteRange(kv::delete(state, d)?),
        Op::Txn(x) => Response::Txn(kv::txn(state, x)?),
        Op::Compaction(c) => Response::Compaction(maintenance::compaction(state, c, commit)?),
        Op::Alarm(a) => Response::Alarm(maintenance::alarm(state, a)),
        Op::LeaseGrant(g) => Response::LeaseGrant(lease::grant(state, g)?),
        Op::LeaseRevoke(r) => Response::LeaseRevoke(lease::revoke(state, r)?),
        Op::LeaseCheckpoint(c) => Response::LeaseCheckpoint(lease::checkpoint(state, c)),
        Op::MemberAttr(m) => Response::MemberAttr(cluster::member_attr(state, m)?),
        Op::MemberUpdate(u) => Response::MemberUpdate(cluster::member_update(state, u)?),
    })
}

/// A header carrying only the revision (the API layer fills in the rest).
fn rev_header(rev: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision: rev,
        ..Default::default()
    })
}
