//! What the transport delivers, handed to the raft loop, and what it asks of the member
//! (the members list for a joining member, whether a peer was removed).

use std::sync::Weak;

use super::*;

/// The transport's handler: weak references, so a stopped member is not kept alive.
pub(crate) struct PeerHandler {
    state: Weak<State>,
    proposer: Weak<Proposer>,
}

impl PeerHandler {
    pub(crate) fn new(state: &Arc<State>, proposer: &Arc<Proposer>) -> PeerHandler {
        PeerHandler {
            state: Arc::downgrade(state),
            proposer: Arc::downgrade(proposer),
        }
    }

    fn send(&self, m: Msg) {
        if let Some(p) = self.proposer.upgrade() {
            let _ = p.send(m);
        }
    }
}

impl crate::transport::Handler for PeerHandler {
    fn on_message(&self, m: RaftMessage) {
        self.send(Msg::Raft(m));
    }

    fn on_snapshot(&self, m: RaftMessage, db: PathBuf) -> std::result::Result<(), String> {
        crate::snapshot::verify(&db)?;
        self.send(Msg::Snapshot(m, db));
        Ok(())
    }

    fn on_unreachable(&self, id: u64) {
        self.send(Msg::Unreachable(id));
    }

    fn on_peer_closed(&self, id: u64) {
        self.send(Msg::PeerClosed(id));
    }

    fn on_snapshot_status(&self, to: u64, ok: bool) {
        self.send(Msg::SnapshotStatus(to, ok));
    }

    /// Answered only to a member that was added (MemberAdd) with these peer URLs and has
    /// not started yet (it has published no name): what it needs to join.
    fn members(&self, peer_urls: &[String]) -> Option<Vec<u8>> {
        let c = self.state.upgrade()?;
        let cluster = c.cluster.read();
        let joining = cluster.members.values().any(|m| {
            m.id != c.member.id
                && m.name.is_empty()
                && !peer_urls.is_empty()
                && m.peer_urls.iter().any(|u| peer_urls.contains(u))
        });
        if !joining {
            return None;
        }
        let info = crate::membership::ClusterInfo {
            cluster_id: c.member.cluster_id,
            members: cluster.members.values().cloned().collect(),
        };
        serde_json::to_vec(&info).ok()
    }

    fn peer_urls(&self, id: u64) -> Vec<String> {
        self.state
            .upgrade()
            .and_then(|c| {
                c.cluster
                    .read()
                    .members
                    .get(&id)
                    .map(|m| m.peer_urls.clone())
            })
            .unwrap_or_default()
    }

    fn is_removed(&self, id: u64) -> bool {
        self.state
            .upgrade()
            .is_some_and(|c| c.cluster.read().removed.contains(&id))
    }

    fn is_member(&self, id: u64) -> bool {
        self.state
            .upgrade()
            .is_some_and(|c| id != c.member.id && c.cluster.read().members.contains_key(&id))
    }

    fn on_removed(&self) {
        if let Some(p) = self.proposer.upgrade() {
            tracing::warn!("a peer says this member was removed from the cluster: stopping");
            p.stop();
            p.terminate(Ok(()));
        }
    }
}
