//! Applying LeaseGrant, LeaseRevoke and LeaseCheckpoint: the lessor and etcd's `lease`
//! bucket change together, in the apply loop only, so every member (and a restart
//! replaying the WAL) reaches the same set of leases.

use bytes::Bytes;
use prost::Message;

use super::rev_header;
use crate::error::{Error, Result};
use crate::lease::{bucket_key, LeaseRecord};
use crate::pb::etcdserverpb::{
    LeaseCheckpointRequest, LeaseCheckpointResponse, LeaseGrantRequest, LeaseGrantResponse,
    LeaseRevokeRequest, LeaseRevokeResponse,
};
use crate::schema::LEASE;
use crate::state::State;

/// Grants lease `g.id` (the id was chosen by the proposer).
pub(crate) fn grant(state: &State, g: LeaseGrantRequest) -> Result<LeaseGrantResponse> {
    state.check_space()?;
    let ttl = state.lessor.grant(g.id, g.ttl)?;
    let rec = LeaseRecord {
        id: g.id,
        ttl,
        remaining_ttl: 0,
    };
    state
        .store
        .backend
        .put(LEASE, bucket_key(g.id), Bytes::from(rec.encode_to_vec()));
    Ok(LeaseGrantResponse {
        header: rev_header(state.store.rev()),
        id: g.id,
        ttl,
        error: String::new(),
    })
}

/// Revokes a lease: deletes every attached key in one revision, then the lease.
pub(crate) fn revoke(state: &State, r: LeaseRevokeRequest) -> Result<LeaseRevokeResponse> {
    let keys = state.lessor.keys(r.id).ok_or(Error::LeaseNotFound)?;
    let mut t = state.store.write();
    let mut res = Ok(());
    for k in &keys {
        if let Err(e) = t.delete_range(k, &[]) {
            res = Err(e);
            break;
        }
    }
    if res.is_ok() {
        // Gone before the deletes are published: a client that sees the delete events
        // never finds the lease still there.
        state.lessor.remove(r.id);
        state.store.backend.delete(LEASE, bucket_key(r.id));
    }
    let rev = t.end();
    res?;
    Ok(LeaseRevokeResponse {
        header: rev_header(rev),
    })
}

/// Persists the remaining TTLs of a checkpoint.
pub(crate) fn checkpoint(state: &State, c: LeaseCheckpointRequest) -> LeaseCheckpointResponse {
    for cp in c.checkpoints {
        if let Some(rec) = state.lessor.checkpoint(cp.id, cp.remaining_ttl) {
            state
                .store
                .backend
                .put(LEASE, bucket_key(cp.id), Bytes::from(rec.encode_to_vec()));
        }
    }
    LeaseCheckpointResponse {
        header: rev_header(state.store.rev()),
    }
}
