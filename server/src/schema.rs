//! The backend file's layout, etcd's (`server/storage/schema` in etcd 3.5): bucket names,
//! the `meta` and `cluster` bucket keys, and the JSON records of the `members` bucket and of
//! raft's configuration. The server and `cairnutl` read and write the file through these
//! names only, so a file written by one is what the other (and etcd) expects.
//!
//! A leaf module: it depends on no other part of the server but the protobuf types.

use serde::{Deserialize, Serialize};

use crate::pb::etcdserverpb::Member;

// --- buckets -------------------------------------------------------------------------

/// Revision key → `mvccpb.KeyValue`.
pub const KEY: &[u8] = b"key";
/// Raft and compaction bookkeeping (the `META_*` keys).
pub const META: &[u8] = b"meta";
/// Lease id → `leasepb.Lease`.
pub const LEASE: &[u8] = b"lease";
/// Encoded `AlarmMember` → empty value.
pub const ALARM: &[u8] = b"alarm";
/// Cluster-wide values (the `CLUSTER_*` keys).
pub const CLUSTER: &[u8] = b"cluster";
/// Member id (hex, [`member_key`]) → [`MemberRecord`] JSON.
pub const MEMBERS: &[u8] = b"members";
/// Member id (hex) → [`MEMBER_REMOVED_VALUE`]: members that may never rejoin.
pub const MEMBERS_REMOVED: &[u8] = b"members_removed";
pub const AUTH: &[u8] = b"auth";
pub const AUTH_USERS: &[u8] = b"authUsers";
pub const AUTH_ROLES: &[u8] = b"authRoles";

/// Every bucket etcd creates, in bbolt's (byte) order.
pub const BUCKETS: [&[u8]; 10] = [
    ALARM,
    AUTH,
    AUTH_ROLES,
    AUTH_USERS,
    CLUSTER,
    KEY,
    LEASE,
    MEMBERS,
    MEMBERS_REMOVED,
    META,
];

// --- `meta` bucket keys ----------------------------------------------------------------

/// The last applied raft index (8 bytes, big-endian).
pub const META_CONSISTENT_INDEX: &[u8] = b"consistent_index";
/// The term of that entry (8 bytes, big-endian).
pub const META_TERM: &[u8] = b"term";
/// Raft's voters and learners ([`ConfStateRecord`] JSON, etcd 3.5's `confState`).
pub const META_CONF_STATE: &[u8] = b"confState";
/// The storage schema version etcd 3.6 writes (not written by Cairn; left out of hashes).
pub const META_STORAGE_VERSION: &[u8] = b"storageVersion";
/// A compaction's revision, recorded before it starts.
pub const META_SCHEDULED_COMPACT: &[u8] = b"scheduledCompactRev";
/// The revision of the last finished compaction.
pub const META_FINISHED_COMPACT: &[u8] = b"finishedCompactRev";

/// The `meta` entries that record how far the backend has applied the raft log: the
/// consistent index and its term, committed in the same transaction as what they cover.
pub fn applied_meta(index: u64, term: u64) -> Vec<(&'static [u8], Vec<u8>)> {
    vec![
        (META_CONSISTENT_INDEX, index.to_be_bytes().to_vec()),
        (META_TERM, term.to_be_bytes().to_vec()),
    ]
}

// --- `cluster` bucket keys -------------------------------------------------------------

/// The cluster version (e.g. `3.5.0`).
pub const CLUSTER_VERSION_KEY: &[u8] = b"clusterVersion";
/// Where Cairn keeps the cluster id (8 bytes, big-endian): it must survive membership
/// changes, so it cannot be recomputed from the members. etcd has no such key.
pub const CLUSTER_ID_KEY: &[u8] = b"cairnClusterID";

// --- `members` and `members_removed` buckets -------------------------------------------

/// The value etcd stores for a removed member.
pub const MEMBER_REMOVED_VALUE: &[u8] = b"removed";

/// The key of member `id` in the `members` and `members_removed` buckets: the id in hex.
pub fn member_key(id: u64) -> String {
    format!("{id:x}")
}

/// A member record: etcd's JSON in the `members` bucket (`id`, `peerURLs`, `isLearner`,
/// `name`, `clientURLs`; the raft attributes first, then the attributes a member publishes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub id: u64,
    #[serde(rename = "peerURLs", default)]
    pub peer_urls: Vec<String>,
    #[serde(rename = "isLearner", default, skip_serializing_if = "is_false")]
    pub is_learner: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(rename = "clientURLs", default, skip_serializing_if = "Vec::is_empty")]
    pub client_urls: Vec<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl MemberRecord {
    /// The `members` bucket value.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a `members` bucket value.
    pub fn from_json(v: &[u8]) -> serde_json::Result<MemberRecord> {
        serde_json::from_slice(v)
    }

    /// The member as the Cluster API reports it.
    pub fn to_pb(&self) -> Member {
        Member {
            id: self.id,
            name: self.name.clone(),
            peer_ur_ls: self.peer_urls.clone(),
            client_ur_ls: self.client_urls.clone(),
            is_learner: self.is_learner,
        }
    }
}

/// raft's voters and learners, persisted as JSON like etcd's `confState`
/// ([`META_CONF_STATE`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfStateRecord {
    #[serde(default)]
    pub voters: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub learners: Vec<u64>,
}

impl ConfStateRecord {
    /// raft-rs's form of the configuration.
    pub fn to_raft(&self) -> raft::eraftpb::ConfState {
        raft::eraftpb::ConfState {
            voters: self.voters.clone(),
            learners: self.learners.clone(),
            ..Default::default()
        }
    }

    /// The record of raft-rs's configuration (ids sorted, as stored).
    pub fn from_raft(cs: &raft::eraftpb::ConfState) -> ConfStateRecord {
        let mut voters = cs.voters.clone();
        voters.sort_unstable();
        let mut learners = cs.learners.clone();
        learners.sort_unstable();
        ConfStateRecord { voters, learners }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_json_is_etcds() {
        let m = MemberRecord {
            id: 0x8e9e05c52164694d,
            peer_urls: vec!["http://localhost:2380".into()],
            is_learner: false,
            name: "default".into(),
            client_urls: Vec::new(),
        };
        assert_eq!(
            String::from_utf8(m.to_json()).unwrap(),
            r#"{"id":10276657743932975437,"peerURLs":["http://localhost:2380"],"name":"default"}"#
        );
        assert_eq!(MemberRecord::from_json(&m.to_json()).unwrap(), m);
        assert_eq!(member_key(m.id), "8e9e05c52164694d");
    }
}
