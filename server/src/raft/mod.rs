//! The raft loop: one thread drives a raft-rs `RawNode` for this member. Each round it
//! takes every queued proposal and read request, persists the Ready's entries and hard
//! state to the WAL in one group commit, applies committed entries (see `apply`), answers
//! batched ReadIndex requests once the applied index reaches them, and commits the backend
//! batch every 100 ms or 10 000 changes together with the applied index.
//!
//! In a cluster the leader hands its appends to the transport before its own WAL fsync
//! (raft-rs's `Ready::messages`), while votes and follower responses leave only after the
//! fsync (`persisted_messages`). Followers forward proposals and ReadIndex requests to the
//! leader through raft itself. Membership changes are raft conf changes whose context
//! carries the member record; a follower that fell behind the compacted log gets the
//! leader's backend file (see `storage::RaftStore` and `crate::snapshot`).

//!
//! Files: `proposer` (the handle the services use: typed proposals, reads, tasks),
//! `ready` (one round: send, persist, apply, publish), `forward` (proposals to the leader,
//! parked proposals, leader loss, transfers), `read` (ReadIndex batches), `conf`
//! (membership conf changes), `snapshots` (install, log compaction, snapshots for
//! followers), `commit` (backend batch commits and maintenance), `peer` (what the
//! transport delivers), `guard` (what a peer's message must pass before raft-rs sees it),
//! `storage` (raft-rs storage over the WAL).

mod commit;
mod conf;
mod forward;
mod guard;
mod logger;
mod peer;
pub(crate) mod proposer;
mod read;
mod ready;
mod snapshots;
pub(crate) mod storage;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use prost::Message as _;
use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType, ConfState, EntryType, MessageType, Snapshot};
use raft::prelude::{Entry, Message as RaftMessage};
use raft::{RawNode, SnapshotStatus, StateRole};
use tokio::sync::oneshot;

use crate::apply::{self, InternalRequest, Members, Response};
use crate::error::{Error, Fatal, Result};
use crate::membership::{self, Membership};
use crate::recover::RaftLog;
use crate::schema::{ConfStateRecord as MemberConf, MemberRecord};

use crate::state::State;
use crate::transport::{SnapshotSource, Transport};
use commit::meta;
pub(crate) use peer::PeerHandler;
pub(crate) use proposer::{Proposer, REQUEST_TIMEOUT};
use snapshots::{SharedSource, SourceRef};
use storage::RaftStore;

/// Commit the backend batch after this long...
const BATCH_INTERVAL: Duration = Duration::from_millis(100);
/// ...or after this many staged changes.
const BATCH_LIMIT: usize = 10_000;
/// Most messages taken from the queue per round.
const MAX_MSGS_PER_ROUND: usize = 8192;
/// A ReadIndex batch unanswered for this long is asked again (the request or its answer
/// may have been lost with a leader change or a dropped connection).
const READ_RETRY: Duration = Duration::from_millis(500);
/// The data of the raft snapshots this member produces: the backend file travels beside
/// the message.
const SNAPSHOT_DATA: &[u8] = b"cairn-backend-v1";
/// How long a proposal waits for a leader before failing with "no leader".
const PARK_LIMIT: Duration = Duration::from_secs(3);

/// A proposal made while no leader was known.
enum Parked {
    Entry(u64, Vec<u8>),
    Conf(u64, ConfChange),
}

impl Parked {
    /// The request id its waiter is registered under.
    fn id(&self) -> u64 {
        match self {
            Parked::Entry(id, _) | Parked::Conf(id, _) => *id,
        }
    }
}

/// Learners at most (etcd's --max-learners default).
pub(crate) const MAX_LEARNERS: usize = 1;

/// Maintenance run by the loop between two rounds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LoopTask {
    /// Commit the staged backend batch now.
    Commit,
    /// Commit, then rewrite the backend file compactly.
    Defragment,
}

/// The leader's view of replication, for membership checks.
#[derive(Debug, Default, Clone)]
pub(crate) struct ProgressView {
    pub(crate) is_leader: bool,
    pub(crate) last_index: u64,
    /// (member, matched index, recently active) for every member the leader tracks.
    pub(crate) peers: Vec<(u64, u64, bool)>,
    pub(crate) voters: Vec<u64>,
}

/// The context of a membership conf change entry: the waiting request and the member.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct ConfChangeContext {
    pub(crate) request_id: u64,
    pub(crate) member: MemberRecord,
}

/// What the rest of the server sends to the raft loop.
pub(crate) enum Msg {
    Propose {
        id: u64,
        data: Vec<u8>,
    },
    /// A membership change; the waiter is the context's request id.
    ConfChange {
        id: u64,
        cc: ConfChange,
    },
    ReadIndex(oneshot::Sender<Result<()>>),
    Task(LoopTask, oneshot::Sender<Result<()>>),
    Stop(oneshot::Sender<()>),
    /// A raft message from a peer.
    Raft(RaftMessage),
    /// A snapshot message whose backend file arrived at the path.
    Snapshot(RaftMessage, PathBuf),
    Unreachable(u64),
    /// The peer closed our stream to it: its process went away.
    PeerClosed(u64),
    SnapshotStatus(u64, bool),
    TransferLeader(u64, oneshot::Sender<Result<()>>),
    Progress(oneshot::Sender<ProgressView>),
}

/// Raft settings from the configuration.
#[derive(Clone, Debug)]
pub(crate) struct RaftOptions {
    pub(crate) tick: Duration,
    pub(crate) election_ticks: usize,
    pub(crate) snapshot_count: u64,
    pub(crate) snap_dir: PathBuf,
}

/// Starts the raft loop thread on the replayed log (see `crate::recover::raft_log`).
pub(crate) fn start(
    state: Arc<State>,
    proposer: Arc<Proposer>,
    opts: RaftOptions,
    log: RaftLog,
    transport: Arc<Transport>,
) -> Result<std::thread::JoinHandle<()>> {
    let applied_term = log.applied_term;
    let boot = storage::open(log)?;
    let snap_cell = boot.storage.snap.clone();
    let cfg = raft::Config {
        id: state.member.id,
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
    let voters: Vec<u64> = node.raft.prs().conf().voters().ids().iter().collect();
    if voters == [state.member.id] {
        let _ = node.campaign();
    }
    let (tx, rx) = mpsc::channel();
    proposer.set_sender(tx);
    let mut lp = Loop {
        id: state.member.id,
        state,
        proposer,
        node,
        wal: boot.wal,
        rx,
        opts,
        transport,
        snap_cell,
        conf: boot.conf,
        applied_index: boot.applied,
        applied_term,
        committed_ci: boot.applied,
        last_snapshot: boot.snapshot_index,
        last_commit: Instant::now(),
        read_seq: 0,
        pending_reads: HashMap::new(),
        waiting_reads: Vec::new(),
        deferred_reads: Vec::new(),
        snapshot_files: HashMap::new(),
        prepared_source: None,
        transfers: Vec::new(),
        parked: Vec::new(),
        forwarded: std::collections::VecDeque::new(),
        removed: false,
        last_leader: 0,
    };
    lp.publish();
    std::thread::Builder::new()
        .name("raft".into())
        .spawn(move || lp.run())
        .map_err(|e| Error::Internal(format!("spawn raft thread: {e}")))
}

/// Callers waiting for a linearizable read.
type ReadWaiters = Vec<oneshot::Sender<Result<()>>>;

/// The raft loop's own state (raft loop thread only).
struct Loop {
    /// This member's id.
    id: u64,
    state: Arc<State>,
    proposer: Arc<Proposer>,
    node: RawNode<RaftStore>,
    wal: cairn_wal::Wal,
    rx: mpsc::Receiver<Msg>,
    opts: RaftOptions,
    transport: Arc<Transport>,
    snap_cell: Arc<parking_lot::Mutex<storage::SnapCell>>,
    conf: ConfState,
    applied_index: u64,
    applied_term: u64,
    /// Applied index recorded in the last backend commit.
    committed_ci: u64,
    last_snapshot: u64,
    last_commit: Instant,
    read_seq: u64,
    pending_reads: HashMap<u64, (Instant, ReadWaiters)>,
    waiting_reads: Vec<(u64, ReadWaiters)>,
    deferred_reads: ReadWaiters,
    /// Received backend files by snapshot index.
    snapshot_files: HashMap<u64, PathBuf>,
    /// The backend view behind the prepared snapshot (index, source).
    prepared_source: Option<(u64, SharedSource, u64)>,
    transfers: Vec<(u64, Instant, oneshot::Sender<Result<()>>)>,
    /// Proposals waiting for a leader to be elected.
    parked: Vec<(Instant, Parked)>,
    /// Proposals this follower forwarded to a leader, oldest first: (sent, request id,
    /// leader). Entries older than the request timeout are dropped.
    forwarded: std::collections::VecDeque<(Instant, u64, u64)>,
    /// This member applied its own removal.
    removed: bool,
    last_leader: u64,
}

/// Records the received file for snapshot `index`; returns an earlier file for the same
/// index to delete. A snapshot delivered again for the same index lands at the same path:
/// that path is the file just stored, never deleted.
fn keep_snapshot_file(
    files: &mut HashMap<u64, PathBuf>,
    index: u64,
    path: PathBuf,
) -> Option<PathBuf> {
    let old = files.insert(index, path.clone())?;
    (old != path).then_some(old)
}

/// Logs a peer's raft message the guard refused.
fn drop_message(m: &RaftMessage, why: &str) {
    tracing::warn!(
        from = %format_args!("{:x}", m.from),
        msg = ?m.get_msg_type(),
        term = m.term,
        reason = why,
        "dropping a raft message from a peer"
    );
}

impl Loop {
    /// A snapshot message whose backend file arrived at `path`: checked, the file kept
    /// for the install (replacing an earlier file for the same index), then stepped.
    fn on_snapshot_message(&mut self, m: RaftMessage, path: PathBuf) {
        let v = guard::RaftView::of(&self.node);
        if let Err(why) = guard::check_snapshot(&m, &v) {
            drop_message(&m, &why);
            let _ = std::fs::remove_file(&path);
            return;
        }
        let index = m.get_snapshot().get_metadata().index;
        if index <= v.committed {
            // raft ignores it (already committed that far): the file is not needed.
            tracing::info!(index, committed = v.committed, "ignoring an older snapshot");
            if self.snapshot_files.get(&index) != Some(&path) {
                let _ = std::fs::remove_file(&path);
            }
            let _ = self.node.step(m);
            return;
        }
        if let Some(old) = keep_snapshot_file(&mut self.snapshot_files, index, path) {
            let _ = std::fs::remove_file(old);
        }
        let _ = self.node.step(m);
    }

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
                self.retry_reads();
                self.check_transfers();
            }
            if !self.parked.is_empty() {
                self.unpark();
            }
            if !self.deferred_reads.is_empty() {
                let mut d = std::mem::take(&mut self.deferred_reads);
                d.append(&mut reads);
                reads = d;
            }
            if !reads.is_empty()
                && (self.node.raft.leader_id == 0 || !self.node.raft.commit_to_current_term())
            {
                // raft-rs drops a ReadIndex while no leader is known, or until the leader
                // has committed an entry in its term: keep the reads for a later round.
                self.deferred_reads = std::mem::take(&mut reads);
            }
            if !reads.is_empty() {
                self.request_read(reads);
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
            if let Err(e) = self.maybe_prepare_snapshot() {
                break Err(e);
            }
            if stop.is_some() {
                break Ok(());
            }
            if self.removed {
                tracing::warn!("this member was removed from the cluster: it stops serving");
                break Err(Error::MemberRemoved);
            }
        };
        let outcome = match &result {
            Ok(()) => Ok(()),
            Err(Error::MemberRemoved) => Ok(()),
            Err(e) => Err(e.clone()),
        };
        match result {
            Ok(()) | Err(Error::MemberRemoved) => {
                if let Err(e) = self.maybe_commit(true) {
                    tracing::error!(error = %e, "final backend commit failed");
                }
                tracing::info!(applied = self.applied_index, "raft loop stopped");
            }
            Err(e) => tracing::error!(error = %e, "fatal storage error: member stops serving"),
        }
        self.proposer.stop();
        for (_, (_, ws)) in self.pending_reads.drain() {
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
        for (_, _, w) in self.transfers.drain(..) {
            let _ = w.send(Err(Error::Stopped));
        }
        for (_, p) in self.parked.drain(..) {
            self.proposer.complete(p.id(), Err(Error::Stopped));
        }
        self.proposer.terminate(outcome);
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
                // A follower forwards the proposal to the leader. While no leader is known
                // (an election), proposals wait for one, as etcd's do.
                if self.node.raft.leader_id == 0 {
                    self.parked
                        .push((Instant::now() + PARK_LIMIT, Parked::Entry(id, data)));
                } else {
                    self.propose(Parked::Entry(id, data));
                }
            }
            Msg::ConfChange { id, cc } => {
                if self.node.raft.leader_id == 0 {
                    self.parked
                        .push((Instant::now() + PARK_LIMIT, Parked::Conf(id, cc)));
                } else {
                    self.propose(Parked::Conf(id, cc));
                }
            }
            Msg::ReadIndex(w) => reads.push(w),
            Msg::Task(t, w) => tasks.push((t, w)),
            Msg::Stop(s) => *stop = Some(s),
            Msg::Raft(m) => {
                if let Err(why) = guard::check(&m, &guard::RaftView::of(&self.node)) {
                    drop_message(&m, &why);
                    return;
                }
                let _ = self.node.step(m);
            }
            Msg::Snapshot(m, path) => self.on_snapshot_message(m, path),
            Msg::Unreachable(id) => self.node.report_unreachable(id),
            Msg::PeerClosed(id) => self.on_peer_closed(id),
            Msg::SnapshotStatus(id, ok) => {
                let st = if ok {
                    SnapshotStatus::Finish
                } else {
                    SnapshotStatus::Failure
                };
                self.node.report_snapshot(id, st);
            }
            Msg::TransferLeader(target, w) => {
                if self.node.raft.state != StateRole::Leader {
                    let _ = w.send(Err(Error::NotLeader));
                } else if !self.conf.voters.contains(&target) {
                    let _ = w.send(Err(Error::BadLeaderTransferee));
                } else if target == self.id {
                    let _ = w.send(Ok(()));
                } else {
                    self.node.transfer_leader(target);
                    let limit = self.opts.tick * (self.opts.election_ticks as u32).max(2) * 2;
                    self.transfers.push((target, Instant::now() + limit, w));
                }
            }
            Msg::Progress(w) => {
                let r = &self.node.raft;
                let mut v = ProgressView {
                    is_leader: r.state == StateRole::Leader,
                    last_index: r.raft_log.last_index(),
                    peers: Vec::new(),
                    voters: self.conf.voters.clone(),
                };
                if v.is_leader {
                    for (id, pr) in r.prs().iter() {
                        v.peers.push((*id, pr.matched, pr.recent_active));
                    }
                }
                let _ = w.send(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_delivered_again_keeps_its_file() {
        let mut files = HashMap::new();
        let p = PathBuf::from("snap/2-9.snap.db");
        assert_eq!(keep_snapshot_file(&mut files, 9, p.clone()), None);
        // The same index, the same path: nothing to delete, the file stays recorded.
        assert_eq!(keep_snapshot_file(&mut files, 9, p.clone()), None);
        assert_eq!(files.get(&9), Some(&p));
        // Another file for that index replaces (and deletes) the first.
        let q = PathBuf::from("elsewhere/2-9.snap.db");
        assert_eq!(keep_snapshot_file(&mut files, 9, q.clone()), Some(p));
        assert_eq!(files.get(&9), Some(&q));
    }
}
