//! One raft round: hand messages to the transport (the leader's appends before its own
//! fsync), persist entries and hard state to the WAL, apply committed entries, send the
//! messages that must follow the fsync, and publish raft's view.

use super::*;

/// etcd's warnApplyDuration: an entry applied slower than this is a slow apply.
const SLOW_APPLY: Duration = Duration::from_millis(100);

impl Loop {
    pub(super) fn publish(&mut self) {
        let r = &self.proposer.view;
        let leader = self.node.raft.leader_id;
        if leader != self.last_leader {
            if leader != 0 {
                let election = self.opts.tick * (self.opts.election_ticks as u32).max(2);
                *r.leader_elected.lock() = Some((Instant::now(), election));
                tracing::info!(
                    leader = %format!("{leader:x}"),
                    term = self.node.raft.term,
                    "raft leader elected"
                );
            } else {
                tracing::warn!(term = self.node.raft.term, "raft leader lost");
            }
            self.last_leader = leader;
            r.leader_changes.fetch_add(1, Ordering::Relaxed);
            if leader != 0 {
                crate::metrics::METRICS.leader_changes.inc();
            }
        }
        r.leader.store(leader, Ordering::Release);
        r.term.store(self.node.raft.term, Ordering::Release);
        r.committed
            .store(self.node.raft.raft_log.committed, Ordering::Release);
        r.applied.store(self.applied_index, Ordering::Release);
    }

    /// Hands messages to the transport; snapshots go with a view of the backend.
    pub(super) fn send(&mut self, msgs: Vec<RaftMessage>) {
        if msgs.is_empty() {
            return;
        }
        let mut plain = Vec::with_capacity(msgs.len());
        for m in msgs {
            if m.get_msg_type() == MessageType::MsgSnapshot {
                let index = m.get_snapshot().get_metadata().index;
                match &self.prepared_source {
                    Some((i, src, size)) if *i == index => {
                        tracing::info!(
                            to = %format!("{:x}", m.to),
                            index,
                            bytes = size,
                            "sending snapshot"
                        );
                        self.transport
                            .send_snapshot(m, Box::new(SourceRef(src.clone(), *size)));
                    }
                    _ => {
                        tracing::warn!(index, "no backend view for snapshot: not sent");
                        self.node.report_snapshot(m.to, SnapshotStatus::Failure);
                    }
                }
            } else {
                plain.push(m);
            }
        }
        self.transport.send(plain);
    }

    pub(super) fn on_ready(&mut self) -> Result<()> {
        if !self.node.has_ready() {
            return Ok(());
        }
        let mut rd = self.node.ready();
        // The leader's appends leave before its own fsync.
        let msgs = rd.take_messages();
        self.send(msgs);
        if !rd.snapshot().is_empty() {
            let snap = rd.snapshot().clone();
            self.install_snapshot(snap)?;
        }
        self.apply_entries(rd.take_committed_entries())?;
        let entries = rd.take_entries();
        let hs = rd.hs().cloned();
        if !entries.is_empty() || hs.is_some() {
            storage::persist(&self.wal, &entries, hs.as_ref())?;
            let mut s = self.node.mut_store().mem.wl();
            s.append(&entries)
                .map_err(|e| Error::Internal(format!("raft log: {e}")))?;
            if let Some(hs) = hs {
                s.set_hardstate(hs);
            }
        }
        // Votes and follower answers only after the fsync.
        let persisted = rd.take_persisted_messages();
        self.send(persisted);
        for rs in rd.take_read_states() {
            let seq = rs
                .request_ctx
                .get(..8)
                .map(|b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
                .unwrap_or(0);
            if let Some((_, ws)) = self.pending_reads.remove(&seq) {
                self.waiting_reads.push((rs.index, ws));
            }
        }
        let mut light = self.node.advance(rd);
        if let Some(c) = light.commit_index() {
            self.node
                .mut_store()
                .mem
                .wl()
                .mut_hard_state()
                .set_commit(c);
        }
        let msgs = light.take_messages();
        self.send(msgs);
        self.apply_entries(light.take_committed_entries())?;
        self.node.advance_apply();
        // Reads whose index is applied can go.
        let applied = self.applied_index;
        self.proposer.view.applied.store(applied, Ordering::Release);
        let mut i = 0;
        while i < self.waiting_reads.len() {
            if self.waiting_reads[i].0 <= applied {
                let (_, ws) = self.waiting_reads.swap_remove(i);
                for w in ws {
                    let _ = w.send(Ok(()));
                }
            } else {
                i += 1;
            }
        }
        Ok(())
    }

    pub(super) fn apply_entries(&mut self, entries: Vec<Entry>) -> Result<()> {
        for e in entries {
            let prev_ci = self.applied_index;
            let prev_term = self.applied_term;
            if !e.data.is_empty() {
                match e.get_entry_type() {
                    EntryType::EntryNormal => {
                        let start = Instant::now();
                        self.apply_normal(&e, prev_ci, prev_term)?;
                        // etcd's warnApplyDuration: an apply over 100 ms is slow.
                        if start.elapsed() > SLOW_APPLY {
                            crate::metrics::METRICS.slow_apply.inc();
                        }
                    }
                    EntryType::EntryConfChange => self.apply_conf_change(&e)?,
                    EntryType::EntryConfChangeV2 => {
                        tracing::warn!(
                            index = e.index,
                            "conf change v2 entries are not used by cairn: skipped"
                        );
                    }
                }
            }
            self.applied_index = e.index;
            self.applied_term = e.term;
        }
        Ok(())
    }

    /// Applies one normal entry and answers its waiter. An entry that does not decode, or
    /// carries no operation, stops the member: every member must apply the same entries,
    /// and skipping one would fork the state machines.
    pub(super) fn apply_normal(&mut self, e: &Entry, prev_ci: u64, prev_term: u64) -> Result<()> {
        let (id, op) = match InternalRequest::decode(e.data.clone()) {
            Ok(InternalRequest { id, op: Some(op) }) => (id, op),
            Ok(InternalRequest { op: None, .. }) => {
                return Err(Error::Fatal(Fatal::BadEntry {
                    index: e.index,
                    reason: "no operation".into(),
                }))
            }
            Err(err) => {
                return Err(Error::Fatal(Fatal::BadEntry {
                    index: e.index,
                    reason: err.to_string(),
                }))
            }
        };
        let refreshes_peers = matches!(op, apply::Op::MemberUpdate(_));
        let state = self.state.clone();
        let mut fatal: Option<Error> = None;
        let mut commit = || -> Result<()> {
            state
                .store
                .backend
                .commit(&meta(prev_ci, prev_term))
                .inspect_err(|e| fatal = Some(e.clone()))
        };
        let res = apply::apply(&state, op, &mut commit);
        if let Some(f) = fatal {
            self.proposer.complete(id, Err(f.clone()));
            return Err(f);
        }
        if refreshes_peers && res.is_ok() {
            self.refresh_peers();
        }
        self.proposer.complete(id, res);
        Ok(())
    }
}
