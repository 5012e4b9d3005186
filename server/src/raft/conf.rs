//! Membership changes: raft conf changes whose context carries the member record, checked
//! the same way on every member so all agree, and the membership handed to the transport.

use super::*;

impl Loop {
    /// Makes `m` the member's view of the cluster and tells the transport.
    pub(super) fn set_membership(&mut self, m: Membership) {
        let me = self.id;
        {
            let old = self.state.cluster.read();
            for id in old.members.keys() {
                if !m.members.contains_key(id) && *id != me {
                    self.transport.remove_peer(*id);
                }
            }
        }
        for (id, r) in &m.members {
            if *id != me {
                self.transport.add_peer(*id, r.peer_urls.clone());
            }
        }
        if m.removed.contains(&me) {
            self.removed = true;
        }
        self.state.set_membership(m);
    }

    /// Tells the transport every member's peer URLs (after a MemberUpdate was applied).
    pub(super) fn refresh_peers(&mut self) {
        let peers: Vec<(u64, Vec<String>)> = self
            .state
            .cluster
            .read()
            .members
            .iter()
            .filter(|(id, _)| **id != self.id)
            .map(|(id, r)| (*id, r.peer_urls.clone()))
            .collect();
        for (id, urls) in peers {
            self.transport.add_peer(id, urls);
        }
    }

    /// Applies a membership change (the same checks on every member, so all agree).
    pub(super) fn apply_conf_change(&mut self, e: &Entry) -> Result<()> {
        let cc = ConfChange::parse_from_bytes(&e.data).map_err(|err| {
            Error::Fatal(Fatal::BadEntry {
                index: e.index,
                reason: format!("conf change: {err}"),
            })
        })?;
        let ctx: Option<ConfChangeContext> = serde_json::from_slice(&cc.context).ok();
        let request_id = ctx.as_ref().map(|c| c.request_id).unwrap_or(0);
        let mut m = self.state.cluster.read().clone();
        let id = cc.node_id;
        let check = match cc.get_change_type() {
            ConfChangeType::AddNode => match m.members.get(&id) {
                Some(r) if r.is_learner => Ok(()),
                Some(_) => Err(Error::MemberExists),
                None if m.removed.contains(&id) => Err(Error::MemberRemoved),
                None => match &ctx {
                    Some(c) if m.by_peer_url(&c.member.peer_urls).is_some() => {
                        Err(Error::PeerUrlExists)
                    }
                    Some(_) => Ok(()),
                    None => Err(Error::Internal("conf change without member".into())),
                },
            },
            ConfChangeType::AddLearnerNode => {
                if m.members.contains_key(&id) {
                    Err(Error::MemberExists)
                } else if m.removed.contains(&id) {
                    Err(Error::MemberRemoved)
                } else if m.learners() >= MAX_LEARNERS {
                    Err(Error::TooManyLearners)
                } else {
                    match &ctx {
                        Some(c) if m.by_peer_url(&c.member.peer_urls).is_some() => {
                            Err(Error::PeerUrlExists)
                        }
                        Some(_) => Ok(()),
                        None => Err(Error::Internal("conf change without member".into())),
                    }
                }
            }
            ConfChangeType::RemoveNode => {
                if !m.members.contains_key(&id) {
                    Err(Error::MemberNotFound)
                } else if self.conf.voters == [id] {
                    Err(Error::NotEnoughStartedMembers)
                } else {
                    Ok(())
                }
            }
        };
        if let Err(err) = check {
            tracing::warn!(index = e.index, member = %format!("{id:x}"), error = %err, "membership change refused");
            self.proposer.complete(request_id, Err(err));
            return Ok(());
        }
        let removes_me = cc.get_change_type() == ConfChangeType::RemoveNode && id == self.id;
        let cs = if removes_me {
            // This member stops after this round. raft-rs is not told: a leader without
            // its own progress entry would fail in the `advance` that ends this round.
            let mut cs = self.conf.clone();
            cs.voters.retain(|v| *v != id);
            cs.learners.retain(|v| *v != id);
            cs
        } else {
            self.node
                .apply_conf_change(&cc)
                .map_err(|err| Error::Internal(format!("raft conf change: {err}")))?
        };
        let be = &self.state.store.backend;
        let mut changed: Option<MemberRecord> = None;
        match cc.get_change_type() {
            ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
                let learner = cc.get_change_type() == ConfChangeType::AddLearnerNode;
                let rec = match m.members.get(&id) {
                    Some(r) => MemberRecord {
                        is_learner: learner,
                        ..r.clone()
                    },
                    None => {
                        let mut r = ctx.map(|c| c.member).unwrap_or(MemberRecord {
                            id,
                            peer_urls: Vec::new(),
                            is_learner: learner,
                            name: String::new(),
                            client_urls: Vec::new(),
                        });
                        r.id = id;
                        r.is_learner = learner;
                        r
                    }
                };
                tracing::info!(member = %format!("{id:x}"), peer_urls = ?rec.peer_urls, learner, "member added");
                m.put(be, rec.clone());
                changed = Some(rec);
            }
            ConfChangeType::RemoveNode => {
                tracing::info!(member = %format!("{id:x}"), "member removed");
                if let Some(r) = m.members.get(&id) {
                    changed = Some(r.clone());
                }
                m.remove(be, id);
            }
        }
        membership::stage_conf_state(be, &MemberConf::from_raft(&cs));
        if !removes_me {
            self.node.mut_store().mem.wl().set_conf_state(cs.clone());
        }
        self.conf = cs;
        let members = m.list();
        self.set_membership(m);
        self.proposer.complete(
            request_id,
            Ok(Response::Members(Members {
                member: changed.map(|r| r.to_pb()),
                members,
            })),
        );
        Ok(())
    }
}
