//! The raft loop: one thread drives a raft-rs `RawNode` for this member. Each round it
//! takes every queued proposal and read request, persists the Ready's entries and hard
//! state to the WAL in one group commit, applies committed entries (see `apply`), answers
//! batched ReadIndex requests once the applied index reaches them, and commits the backend
//! batch every 100 ms or 10 000 changes together with the applied index.
//!
//! One voter today; messages for peers are where a transport will plug in.

mod logger;
mod storage;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use prost::Message as _;
use raft::eraftpb::EntryType;
use raft::prelude::{Entry, Message as RaftMessage};
use raft::storage::MemStorage;
use raft::{RawNode, StateRole};
use tokio::sync::oneshot;

use crate::apply::{self, InternalRequest};
use crate::core::Core;
use crate::error::{Error, Result};
use crate::mvcc::backend::{META_CONSISTENT_INDEX, META_TERM};
use crate::mvcc::store::Recovered;

/// Commit the backend batch after this long...
const BATCH_INTERVAL: Duration = Duration::from_millis(100);
/// ...or after this many staged changes.
const BATCH_LIMIT: usize = 10_000;
/// Most messages taken from the queue per round.
const MAX_MSGS_PER_ROUND: usize = 8192;

/// Maintenance run by the loop between two rounds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LoopTask {
    /// Commit the staged backend batch now.
    Commit,
    /// Commit, then rewrite the backend file compactly.
    Defragment,
}

/// What the rest of the server sends to the raft loop.
pub(crate) enum Msg {
    Propose { id: u64, data: Vec<u8> },
    ReadIndex(oneshot::Sender<Result<()>>),
    Task(LoopTask, oneshot::Sender<Result<()>>),
    Stop(oneshot::Sender<()>),
}

/// Raft settings from the configuration.
#[derive(Clone, Debug)]
pub(crate) struct RaftOptions {
    pub(crate) tick: Duration,
    pub(crate) election_ticks: usize,
    pub(crate) snapshot_count: u64,
    pub(crate) wal_dir: PathBuf,
    pub(crate) snap_dir: PathBuf,
}

/// Starts the raft loop thread.
pub(crate) fn start(
    core: Arc<Core>,
    opts: RaftOptions,
    rec: &Recovered,
) -> Result<std::thread::JoinHandle<()>> {
    let boot = storage::open(&opts, core.member.id, rec)?;
    let cfg = raft::Config {
        id: core.member.id,
        election_tick: opts.election_ticks.max(2),
        heartbeat_tick: 1,
        applied: boot.applied,
        max_size_per_msg: 1024 * 1024,
        max_inflight_msgs: 256,
        check_quorum: true,
        pre_vote: true,
        ..Default::default()
    };
    cfg.validate()
        .map_err(|e| Error::Internal(format!("raft config: {e}")))?;
    let mut node = RawNode::new(&cfg, boot.storage, &logger::logger())
        .map_err(|e| Error::Internal(format!("raft: {e}")))?;
    // A single voter elects itself at once instead of waiting for an election timeout.
    if node.raft.prs().conf().voters().ids().len() == 1 {
        let _ = node.campaign();
    }
    let (tx, rx) = mpsc::channel();
    core.set_raft_sender(tx);
    let mut lp = Loop {
        core,
        node,
        wal: boot.wal,
        rx,
        opts,
        applied_index: boot.applied,
        applied_term: rec.term,
        committed_ci: boot.applied,
        last_snapshot: boot.snapshot_index,
        last_commit: Instant::now(),
        read_seq: 0,
        pending_reads: HashMap::new(),
        waiting_reads: Vec::new(),
        deferred_reads: Vec::new(),
    };
    lp.publish();
    std::thread::Builder::new()
        .name("raft".into())
        .spawn(move || lp.run())
        .map_err(|e| Error::Internal(format!("spawn raft thread: {e}")))
}

type ReadWaiters = Vec<oneshot::Sender<Result<()>>>;

struct Loop {
    core: Arc<Core>,
    node: RawNode<MemStorage>,
    wal: cairn_wal::Wal,
    rx: mpsc::Receiver<Msg>,
    opts: RaftOptions,
    applied_index: u64,
    applied_term: u64,
    /// Applied index recorded in the last backend commit.
    committed_ci: u64,
    last_snapshot: u64,
    last_commit: Instant,
    read_seq: u64,
    pending_reads: HashMap<u64, ReadWaiters>,
    waiting_reads: Vec<(u64, ReadWaiters)>,
    deferred_reads: ReadWaiters,
}

fn meta(ci: u64, term: u64) -> Vec<(&'static [u8], Vec<u8>)> {
    vec![
        (META_CONSISTENT_INDEX, ci.to_be_bytes().to_vec()),
        (META_TERM, term.to_be_bytes().to_vec()),
    ]
}

impl Loop {
    fn run(&mut self) {
        let mut next_tick = Instant::now() + self.opts.tick;
        let mut stop: Option<oneshot::Sender<()>> = None;
        let result = loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            let mut reads: ReadWaiters = Vec::new();
            let mut tasks = Vec::new();
            match self.rx.recv_timeout(wait) {
                Ok(m) => self.handle(m, &mut reads, &mut tasks, &mut stop),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break Ok(()),
            }
            for _ in 0..MAX_MSGS_PER_ROUND {
                match self.rx.try_recv() {
                    Ok(m) => self.handle(m, &mut reads, &mut tasks, &mut stop),
                    Err(_) => break,
                }
            }
            if Instant::now() >= next_tick {
                self.node.tick();
                next_tick = Instant::now() + self.opts.tick;
            }
            if !self.deferred_reads.is_empty() {
                let mut d = std::mem::take(&mut self.deferred_reads);
                d.append(&mut reads);
                reads = d;
            }
            if !reads.is_empty() && !self.node.raft.commit_to_current_term() {
                // raft-rs drops a ReadIndex until the leader has committed an entry in its
                // term: keep the reads for a later round.
                self.deferred_reads = std::mem::take(&mut reads);
            }
            if !reads.is_empty() {
                self.read_seq += 1;
                self.pending_reads.insert(self.read_seq, reads);
                self.node.read_index(self.read_seq.to_be_bytes().to_vec());
            }
            if let Err(e) = self.on_ready() {
                break Err(e);
            }
            self.publish();
            for (task, done) in tasks {
                let _ = done.send(self.run_task(task));
            }
            if let Err(e) = self.maybe_commit(false) {
                break Err(e);
            }
            if let Err(e) = self.maybe_snapshot() {
                break Err(e);
            }
            if stop.is_some() {
                break Ok(());
            }
        };
        match result {
            Ok(()) => {
                if let Err(e) = self.maybe_commit(true) {
                    tracing::error!(error = %e, "final backend commit failed");
                }
                tracing::info!(applied = self.applied_index, "raft loop stopped");
            }
            Err(e) => tracing::error!(error = %e, "fatal storage error: member stops serving"),
        }
        self.core.stop();
        for (_, ws) in self.pending_reads.drain() {
            for w in ws {
                let _ = w.send(Err(Error::Stopped));
            }
        }
        for w in self.deferred_reads.drain(..) {
            let _ = w.send(Err(Error::Stopped));
        }
        for (_, ws) in self.waiting_reads.drain(..) {
            for w in ws {
                let _ = w.send(Err(Error::Stopped));
            }
        }
        if let Some(s) = stop {
            let _ = s.send(());
        }
    }

    fn handle(
        &mut self,
        m: Msg,
        reads: &mut ReadWaiters,
        tasks: &mut Vec<(LoopTask, oneshot::Sender<Result<()>>)>,
        stop: &mut Option<oneshot::Sender<()>>,
    ) {
        match m {
            Msg::Propose { id, data } => {
                if self.node.raft.state != StateRole::Leader
                    || self.node.propose(Vec::new(), data).is_err()
                {
                    self.core.complete(id, Err(Error::NoLeader));
                }
            }
            Msg::ReadIndex(w) => reads.push(w),
            Msg::Task(t, w) => tasks.push((t, w)),
            Msg::Stop(s) => *stop = Some(s),
        }
    }

    fn publish(&self) {
        let r = &self.core.raft;
        r.leader.store(self.node.raft.leader_id, Ordering::Release);
        r.term.store(self.node.raft.term, Ordering::Release);
        r.committed
            .store(self.node.raft.raft_log.committed, Ordering::Release);
        r.applied.store(self.applied_index, Ordering::Release);
    }

    fn on_ready(&mut self) -> Result<()> {
        if !self.node.has_ready() {
            return Ok(());
        }
        let mut rd = self.node.ready();
        // A single member has no peers to send to (the transport plugs in here).
        let _peer_msgs: Vec<RaftMessage> = rd.take_messages();
        self.apply_entries(rd.take_committed_entries())?;
        let entries = rd.take_entries();
        let hs = rd.hs().cloned();
        if !entries.is_empty() || hs.is_some() {
            storage::persist(&self.wal, &entries, hs.as_ref())?;
            let mut s = self.node.mut_store().wl();
            s.append(&entries)
                .map_err(|e| Error::Internal(format!("raft log: {e}")))?;
            if let Some(hs) = hs {
                s.set_hardstate(hs);
            }
        }
        let _persisted_msgs: Vec<RaftMessage> = rd.take_persisted_messages();
        for rs in rd.take_read_states() {
            let seq = rs
                .request_ctx
                .get(..8)
                .map(|b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
                .unwrap_or(0);
            if let Some(ws) = self.pending_reads.remove(&seq) {
                self.waiting_reads.push((rs.index, ws));
            }
        }
        let mut light = self.node.advance(rd);
        if let Some(c) = light.commit_index() {
            self.node.mut_store().wl().mut_hard_state().set_commit(c);
        }
        let _ = light.take_messages();
        self.apply_entries(light.take_committed_entries())?;
        self.node.advance_apply();
        // Reads whose index is applied can go.
        let applied = self.applied_index;
        self.core.raft.applied.store(applied, Ordering::Release);
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

    fn apply_entries(&mut self, entries: Vec<Entry>) -> Result<()> {
        for e in entries {
            let prev_ci = self.applied_index;
            let prev_term = self.applied_term;
            if !e.data.is_empty() {
                match e.get_entry_type() {
                    EntryType::EntryNormal => {
                        let core = self.core.clone();
                        match InternalRequest::decode(e.data.clone()) {
                            Ok(InternalRequest { id, op: Some(op) }) => {
                                let mut fatal: Option<Error> = None;
                                let mut commit = || -> Result<()> {
                                    core.store
                                        .backend
                                        .commit(&meta(prev_ci, prev_term))
                                        .inspect_err(|e| fatal = Some(e.clone()))
                                };
                                let res = apply::apply(&core, op, &mut commit);
                                if let Some(f) = fatal {
                                    core.complete(id, Err(f.clone()));
                                    return Err(f);
                                }
                                core.complete(id, res);
                            }
                            Ok(_) => {}
                            Err(err) => {
                                tracing::warn!(index = e.index, error = %err, "undecodable entry skipped")
                            }
                        }
                    }
                    EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                        tracing::warn!(
                            index = e.index,
                            "conf change entries are not supported yet"
                        );
                    }
                }
            }
            self.applied_index = e.index;
            self.applied_term = e.term;
        }
        Ok(())
    }

    fn run_task(&mut self, t: LoopTask) -> Result<()> {
        self.maybe_commit(true)?;
        match t {
            LoopTask::Commit => Ok(()),
            LoopTask::Defragment => {
                let started = Instant::now();
                let before = self.core.store.backend.size();
                self.core.store.backend.defragment()?;
                tracing::info!(
                    before,
                    after = self.core.store.backend.size(),
                    took = ?started.elapsed(),
                    "defragmented backend"
                );
                Ok(())
            }
        }
    }

    /// Commits the backend batch when it is due (in the background), or now and durably
    /// when `force`.
    fn maybe_commit(&mut self, force: bool) -> Result<()> {
        let be = &self.core.store.backend;
        let pending = be.pending();
        let dirty = pending > 0 || self.committed_ci != self.applied_index;
        if dirty
            && (force || pending >= BATCH_LIMIT || self.last_commit.elapsed() >= BATCH_INTERVAL)
        {
            be.commit_async(meta(self.applied_index, self.applied_term))?;
            self.committed_ci = self.applied_index;
            self.last_commit = Instant::now();
        }
        if force {
            be.wait_committed()?;
        }
        Ok(())
    }

    fn maybe_snapshot(&mut self) -> Result<()> {
        if self.applied_index <= self.last_snapshot + self.opts.snapshot_count {
            return Ok(());
        }
        self.maybe_commit(true)?;
        let (index, term) = (self.applied_index, self.applied_term);
        storage::snapshot(
            &self.wal,
            &self.opts.snap_dir,
            self.core.member.id,
            index,
            term,
        )?;
        self.node
            .mut_store()
            .wl()
            .compact(index)
            .map_err(|e| Error::Internal(format!("raft log compact: {e}")))?;
        self.last_snapshot = index;
        tracing::info!(index, term, "raft snapshot: log compacted");
        Ok(())
    }
}

/// Asks the loop to stop and waits for it.
pub(crate) async fn stop(core: &Core) {
    let (tx, rx) = oneshot::channel();
    if core.send(Msg::Stop(tx)).is_ok() {
        let _ = rx.await;
    }
}
