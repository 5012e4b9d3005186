//! Member and cluster identity, derived like etcd's (so a default single member has the
//! same ids as a default etcd), and the `members`/`cluster` bucket records.

use sha1::{Digest, Sha1};

use crate::pb::etcdserverpb::Member;

/// This member's identity and addresses.
#[derive(Clone, Debug)]
pub(crate) struct MemberInfo {
    pub(crate) id: u64,
    pub(crate) cluster_id: u64,
    pub(crate) name: String,
    pub(crate) peer_urls: Vec<String>,
    pub(crate) client_urls: Vec<String>,
}

/// etcd's computeMemberID without a time: the first 8 bytes (big-endian) of the SHA-1 of
/// the sorted peer URLs joined together, followed by the cluster token.
pub fn member_id(peer_urls: &[String], token: &str) -> u64 {
    let mut urls: Vec<&str> = peer_urls.iter().map(String::as_str).collect();
    urls.sort_unstable();
    let mut h = Sha1::new();
    for u in urls {
        h.update(u.as_bytes());
    }
    h.update(token.as_bytes());
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

impl MemberInfo {
    /// The member as the Cluster service reports it.
    pub(crate) fn to_pb(&self) -> Member {
        Member {
            id: self.id,
            name: self.name.clone(),
            peer_ur_ls: self.peer_urls.clone(),
            client_ur_ls: self.client_urls.clone(),
            is_learner: false,
        }
    }

    /// The `members` bucket key: the id in lower-case hex (etcd's types.ID.String()).
    pub(crate) fn backend_key(&self) -> String {
        format!("{:x}", self.id)
    }

    /// The `members` bucket value: etcd's JSON encoding of a member.
    pub(crate) fn backend_value(&self) -> String {
        let mut v = serde_json::json!({ "id": self.id, "peerURLs": self.peer_urls });
        if !self.name.is_empty() {
            v["name"] = serde_json::Value::from(self.name.clone());
        }
        if !self.client_urls.is_empty() {
            v["clientURLs"] = serde_json::Value::from(self.client_urls.clone());
        }
        v.to_string()
    }
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
