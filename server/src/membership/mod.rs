//! Member and cluster identity, derived like etcd's (so a default single member has the
//! same ids as a default etcd), and the cluster's membership: the `members` and
//! `members_removed` bucket records, plus raft's `ConfState` in the `meta` bucket (key
//! `confState`), all changed only by applied raft entries. The records' layout (etcd's
//! JSON) is in [`crate::schema`].

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use crate::error::{Error, Result};
use crate::mvcc::backend::Backend;
use crate::pb::etcdserverpb::Member;
use crate::schema::{
    member_key, MEMBERS, MEMBERS_REMOVED, MEMBER_REMOVED_VALUE, META, META_CONF_STATE,
};
use crate::schema::{ConfStateRecord, MemberRecord};

/// This member's identity and addresses.
#[derive(Clone, Debug)]
pub(crate) struct MemberInfo {
    pub(crate) id: u64,
    pub(crate) cluster_id: u64,
    pub(crate) name: String,
    pub(crate) client_urls: Vec<String>,
}

/// etcd's computeMemberID without a time: the first 8 bytes (big-endian) of the SHA-1 of
/// the sorted peer URLs joined together, followed by the cluster token.
pub fn member_id(peer_urls: &[String], token: &str) -> u64 {
    url_hash(peer_urls, token.as_bytes())
}

/// The first 8 bytes (big-endian) of the SHA-1 of the sorted peer URLs followed by `tail`.
fn url_hash(peer_urls: &[String], tail: &[u8]) -> u64 {
    let mut urls: Vec<&str> = peer_urls.iter().map(String::as_str).collect();
    urls.sort_unstable();
    let mut h = Sha1::new();
    for u in urls {
        h.update(u.as_bytes());
    }
    h.update(tail);
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().expect("sha1 has 20 bytes"))
}

/// etcd's genID: the first 8 bytes of the SHA-1 of the sorted member ids (big-endian).
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut h = Sha1::new();
    for id in ids {
        h.update(id.to_be_bytes());
    }
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().expect("sha1 has 20 bytes"))
}

/// The cluster as this member knows it (changed only by the apply loop).
#[derive(Clone, Debug, Default)]
pub(crate) struct Membership {
    pub(crate) members: BTreeMap<u64, MemberRecord>,
    pub(crate) removed: BTreeSet<u64>,
}

/// What a members query (peer transport, kind 3) answers: how a joining member learns the
/// cluster id and its own id.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ClusterInfo {
    pub(crate) cluster_id: u64,
    pub(crate) members: Vec<MemberRecord>,
}

impl Membership {
    /// Reads the `members` and `members_removed` buckets (committed state).
    pub(crate) fn load(be: &Backend) -> Result<Membership> {
        let mut m = Membership::default();
        for (k, v) in be.scan_committed(MEMBERS)? {
            match MemberRecord::from_json(&v) {
                Ok(r) => {
                    m.members.insert(r.id, r);
                }
                Err(e) => tracing::warn!(
                    key = %String::from_utf8_lossy(&k),
                    error = %e,
                    "unreadable member record skipped"
                ),
            }
        }
        for (k, _) in be.scan_committed(MEMBERS_REMOVED)? {
            if let Ok(id) = u64::from_str_radix(&String::from_utf8_lossy(&k), 16) {
                m.removed.insert(id);
            }
        }
        Ok(m)
    }

    /// Stages `r` in the backend and in memory.
    pub(crate) fn put(&mut self, be: &Backend, r: MemberRecord) {
        be.put(
            MEMBERS,
            Bytes::from(member_key(r.id)),
            Bytes::from(r.to_json()),
        );
        self.members.insert(r.id, r);
    }

    /// Removes member `id` for good (it may never rejoin).
    pub(crate) fn remove(&mut self, be: &Backend, id: u64) {
        be.delete(MEMBERS, Bytes::from(member_key(id)));
        be.put(
            MEMBERS_REMOVED,
            Bytes::from(member_key(id)),
            Bytes::from_static(MEMBER_REMOVED_VALUE),
        );
        self.members.remove(&id);
        self.removed.insert(id);
    }

    pub(crate) fn list(&self) -> Vec<Member> {
        self.members.values().map(MemberRecord::to_pb).collect()
    }

    /// The member that has one of `urls` as a peer URL.
    pub(crate) fn by_peer_url(&self, urls: &[String]) -> Option<&MemberRecord> {
        self.members
            .values()
            .find(|m| m.peer_urls.iter().any(|u| urls.contains(u)))
    }

    pub(crate) fn learners(&self) -> usize {
        self.members.values().filter(|m| m.is_learner).count()
    }
}

/// Stages raft's configuration in the `meta` bucket.
pub(crate) fn stage_conf_state(be: &Backend, cs: &ConfStateRecord) {
    let v = serde_json::to_vec(cs).unwrap_or_default();
    be.put(META, Bytes::from_static(META_CONF_STATE), Bytes::from(v));
}

/// The committed raft configuration, if one was recorded.
pub(crate) fn load_conf_state(be: &Backend) -> Result<Option<ConfStateRecord>> {
    match be.get_committed(META, META_CONF_STATE)? {
        Some(v) => serde_json::from_slice(&v)
            .map(Some)
            .map_err(|e| Error::Internal(format!("unreadable confState: {e}"))),
        None => Ok(None),
    }
}

/// An id for a member added at run time: the SHA-1 of its peer URLs and the time (like
/// etcd's MemberAdd, which mixes the current time in so a re-added URL gets a new id).
pub(crate) fn new_member_id(peer_urls: &[String]) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    url_hash(peer_urls, &now.to_be_bytes())
}

/// Peer URLs must be `http://host:port` or `https://host:port`.
pub(crate) fn check_peer_urls(urls: &[String]) -> Result<()> {
    if urls.is_empty() {
        return Err(Error::InvalidPeerUrls);
    }
    for u in urls {
        let rest = u
            .strip_prefix("http://")
            .or_else(|| u.strip_prefix("https://"));
        let ok = rest.is_some_and(|r| {
            let r = r.trim_end_matches('/');
            r.rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
        });
        if !ok {
            return Err(Error::InvalidPeerUrls);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_etcd_ids() {
        // A default etcd (peer URL http://localhost:2380, token etcd-cluster) has member
        // id 8e9e05c52164694d and cluster id cdf818194e3a8c32.
        let id = member_id(&["http://localhost:2380".to_string()], "etcd-cluster");
        assert_eq!(format!("{id:x}"), "8e9e05c52164694d");
        assert_eq!(format!("{:x}", cluster_id(&[id])), "cdf818194e3a8c32");
    }
}
