//! Where proposals go: appended by the leader, forwarded to it by a follower, parked
//! while no leader is known; what a follower does when its leader's process stops; leader
//! transfers.

use super::*;

impl Loop {
    /// Peer `id` closed our stream. When it is our leader, its process is gone (a network
    /// cut is silent instead): waiting out the election timeout while honouring its lease
    /// only delays the next leader. This follower drops the lease, so it grants votes at
    /// once, and the voter with the lowest id among the others campaigns at the next tick;
    /// the rest keep an election timer at least three ticks away, so they do not split the
    /// vote, and take over if that campaign fails. Campaigns start with a pre-vote, so a
    /// leader that is in fact alive and heard by a majority keeps its term. Only the timing
    /// of elections changes, never their safety (reads use ReadIndex, not the lease).
    pub(super) fn on_peer_closed(&mut self, id: u64) {
        let me = self.id;
        let r = &mut self.node.raft;
        if id == 0
            || r.leader_id != id
            || r.state != StateRole::Follower
            || !self.conf.voters.contains(&me)
        {
            return;
        }
        let et = r.election_timeout();
        let first = self.conf.voters.iter().copied().filter(|&v| v != id).min() == Some(me);
        if first {
            r.election_elapsed = r
                .election_elapsed
                .max(et)
                .max(r.randomized_election_timeout().saturating_sub(1));
        } else {
            for _ in 0..16 {
                if r.randomized_election_timeout() >= et + 3 {
                    break;
                }
                r.reset_randomized_election_timeout();
            }
            r.election_elapsed = r.election_elapsed.max(et);
        }
        // What this member forwarded to the gone leader and did not see applied went down
        // with it, unless the leader replicated it first (then the next leader may still
        // apply it): the clients learn now, with etcd's ambiguous error for this case,
        // instead of after the request timeout.
        let mut failed = 0usize;
        self.forwarded.retain(|&(_, req, leader)| {
            if leader == id {
                failed += self.proposer.complete(req, Err(Error::TimeoutLeaderFail)) as usize;
                false
            } else {
                true
            }
        });
        tracing::info!(
            leader = %format!("{id:x}"),
            campaign_next = first,
            forwarded_requests_failed = failed,
            "the leader closed its connection (stopped or restarted): its lease is dropped"
        );
    }

    /// Proposes a request (a leader is known): appends it as the leader, or forwards it to
    /// the leader, remembering which one.
    pub(super) fn propose(&mut self, p: Parked) {
        let id = p.id();
        let res = match p {
            Parked::Entry(_, data) => self.node.propose(Vec::new(), data),
            Parked::Conf(_, cc) => self.node.propose_conf_change(Vec::new(), cc),
        };
        if res.is_err() {
            self.proposer.complete(id, Err(Error::NoLeader));
            return;
        }
        let leader = self.node.raft.leader_id;
        if leader != self.id && leader != 0 {
            let now = Instant::now();
            while self
                .forwarded
                .front()
                .is_some_and(|(t, _, _)| now.duration_since(*t) > REQUEST_TIMEOUT)
            {
                self.forwarded.pop_front();
            }
            self.forwarded.push_back((now, id, leader));
        }
    }

    /// Proposes parked proposals once a leader is known; fails those that waited too long.
    pub(super) fn unpark(&mut self) {
        let now = Instant::now();
        let has_leader = self.node.raft.leader_id != 0;
        let parked = std::mem::take(&mut self.parked);
        for (deadline, p) in parked {
            if has_leader {
                self.propose(p);
            } else if now >= deadline {
                self.proposer.complete(p.id(), Err(Error::NoLeader));
            } else {
                self.parked.push((deadline, p));
            }
        }
    }

    pub(super) fn check_transfers(&mut self) {
        let leader = self.node.raft.leader_id;
        let now = Instant::now();
        let mut i = 0;
        while i < self.transfers.len() {
            let (target, deadline, _) = &self.transfers[i];
            if leader == *target {
                let (_, _, w) = self.transfers.swap_remove(i);
                let _ = w.send(Ok(()));
            } else if now >= *deadline {
                let (_, _, w) = self.transfers.swap_remove(i);
                let _ = w.send(Err(Error::Timeout));
            } else {
                i += 1;
            }
        }
    }
}
