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

mod logger;
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

use crate::apply::{self, ApplyResult, InternalRequest};
use crate::core::Core;
use crate::error::{Error, Result};
use crate::membership::{self, MemberRecord, Membership};
use crate::mvcc::backend::{META_CONSISTENT_INDEX, META_TERM};
use crate::mvcc::store::Recovered;
use crate::transport::{SnapshotSource, Transport};
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
    pub(crate) wal_dir: PathBuf,
    pub(crate) snap_dir: PathBuf,
}

/// Starts the raft loop thread. `conf` is raft's configuration at the backend's consistent
/// index.
pub(crate) fn start(
    core: Arc<Core>,
    opts: RaftOptions,
    rec: &Recovered,
    conf: ConfState,
    transport: Arc<Transport>,
) -> Result<std::thread::JoinHandle<()>> {
    let boot = storage::open(&opts, rec, conf)?;
    let snap_cell = boot.storage.snap.clone();
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
    let voters: Vec<u64> = node.raft.prs().conf().voters().ids().iter().collect();
    if voters == [core.member.id] {
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
        transport,
        snap_cell,
        conf: boot.conf,
        applied_index: boot.applied,
        applied_term: rec.term,
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

type ReadWaiters = Vec<oneshot::Sender<Result<()>>>;

/// One pinned backend view shared by every follower the snapshot goes to (sends to several
/// followers take turns reading it).
type SharedSource = Arc<parking_lot::Mutex<Box<dyn SnapshotSource>>>;

struct SourceRef(SharedSource, u64);

impl SnapshotSource for SourceRef {
    fn size(&self) -> u64 {
        self.1
    }
    fn write_to(&self, w: &mut dyn std::io::Write) -> std::io::Result<u64> {
        self.0.lock().write_to(w)
    }
}

struct Loop {
    core: Arc<Core>,
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
        self.core.stop();
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
            self.core.complete(p.id(), Err(Error::Stopped));
        }
        let _ = self.core.terminated.send(Some(outcome));
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
                let _ = self.node.step(m);
            }
            Msg::Snapshot(m, path) => {
                let index = m.get_snapshot().get_metadata().index;
                if let Some(old) = self.snapshot_files.insert(index, path) {
                    let _ = std::fs::remove_file(old);
                }
                let _ = self.node.step(m);
            }
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
                } else if target == self.core.member.id {
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

    /// Peer `id` closed our stream. When it is our leader, its process is gone (a network
    /// cut is silent instead): waiting out the election timeout while honouring its lease
    /// only delays the next leader. This follower drops the lease, so it grants votes at
    /// once, and the voter with the lowest id among the others campaigns at the next tick;
    /// the rest keep an election timer at least three ticks away, so they do not split the
    /// vote, and take over if that campaign fails. Campaigns start with a pre-vote, so a
    /// leader that is in fact alive and heard by a majority keeps its term. Only the timing
    /// of elections changes, never their safety (reads use ReadIndex, not the lease).
    fn on_peer_closed(&mut self, id: u64) {
        let me = self.core.member.id;
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
                failed += self.core.complete(req, Err(Error::TimeoutLeaderFail)) as usize;
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
    fn propose(&mut self, p: Parked) {
        let id = p.id();
        let res = match p {
            Parked::Entry(_, data) => self.node.propose(Vec::new(), data),
            Parked::Conf(_, cc) => self.node.propose_conf_change(Vec::new(), cc),
        };
        if res.is_err() {
            self.core.complete(id, Err(Error::NoLeader));
            return;
        }
        let leader = self.node.raft.leader_id;
        if leader != self.core.member.id && leader != 0 {
            let now = Instant::now();
            while self
                .forwarded
                .front()
                .is_some_and(|(t, _, _)| now.duration_since(*t) > crate::core::REQUEST_TIMEOUT)
            {
                self.forwarded.pop_front();
            }
            self.forwarded.push_back((now, id, leader));
        }
    }

    /// Proposes parked proposals once a leader is known; fails those that waited too long.
    fn unpark(&mut self) {
        let now = Instant::now();
        let has_leader = self.node.raft.leader_id != 0;
        let parked = std::mem::take(&mut self.parked);
        for (deadline, p) in parked {
            if has_leader {
                self.propose(p);
            } else if now >= deadline {
                self.core.complete(p.id(), Err(Error::NoLeader));
            } else {
                self.parked.push((deadline, p));
            }
        }
    }

    fn request_read(&mut self, reads: ReadWaiters) {
        self.read_seq += 1;
        self.pending_reads
            .insert(self.read_seq, (Instant::now(), reads));
        // The leader keys pending ReadIndex requests by their context, so the context
        // carries this member's id next to its sequence number: two members' requests
        // must never look alike (raft-rs drops a duplicate silently).
        let mut ctx = Vec::with_capacity(16);
        ctx.extend_from_slice(&self.read_seq.to_be_bytes());
        ctx.extend_from_slice(&self.core.member.id.to_be_bytes());
        self.node.read_index(ctx);
    }

    /// Asks again for ReadIndex batches that got no answer.
    fn retry_reads(&mut self) {
        let now = Instant::now();
        let stale: Vec<u64> = self
            .pending_reads
            .iter()
            .filter(|(_, (at, _))| now.duration_since(*at) >= READ_RETRY)
            .map(|(k, _)| *k)
            .collect();
        for k in stale {
            if let Some((_, ws)) = self.pending_reads.remove(&k) {
                self.deferred_reads.extend(ws);
            }
        }
    }

    fn check_transfers(&mut self) {
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

    fn publish(&mut self) {
        let r = &self.core.raft;
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
        }
        r.leader.store(leader, Ordering::Release);
        r.term.store(self.node.raft.term, Ordering::Release);
        r.committed
            .store(self.node.raft.raft_log.committed, Ordering::Release);
        r.applied.store(self.applied_index, Ordering::Release);
    }

    /// Hands messages to the transport; snapshots go with a view of the backend.
    fn send(&mut self, msgs: Vec<RaftMessage>) {
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

    fn on_ready(&mut self) -> Result<()> {
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

    /// Replaces this member's state with the leader's backend file.
    fn install_snapshot(&mut self, snap: Snapshot) -> Result<()> {
        let md = snap.get_metadata();
        let (index, term) = (md.index, md.term);
        let Some(path) = self.snapshot_files.remove(&index) else {
            return Err(Error::Internal(format!(
                "raft snapshot at index {index} arrived without its backend file"
            )));
        };
        tracing::info!(index, term, "installing snapshot from the leader");
        // Anything staged is older than the snapshot.
        let rec = crate::snapshot::install(&self.core, &path)?;
        if rec.consistent_index != index {
            tracing::warn!(
                file_index = rec.consistent_index,
                index,
                "snapshot file's consistent index differs from the raft snapshot"
            );
        }
        let conf = md.get_conf_state().clone();
        self.node
            .mut_store()
            .mem
            .wl()
            .apply_snapshot(snap.clone())
            .map_err(|e| Error::Internal(format!("raft snapshot: {e}")))?;
        storage::snapshot(&self.wal, &self.opts.snap_dir, index, term, &conf)?;
        self.applied_index = index;
        self.applied_term = term;
        self.committed_ci = index;
        self.last_snapshot = index;
        self.conf = conf;
        let m = Membership::load(&self.core.store.backend)?;
        self.set_membership(m);
        for (_, old) in self.snapshot_files.drain() {
            let _ = std::fs::remove_file(old);
        }
        tracing::info!(index, "snapshot installed");
        Ok(())
    }

    /// Makes `m` the member's view of the cluster and tells the transport.
    fn set_membership(&mut self, m: Membership) {
        let me = self.core.member.id;
        {
            let old = self.core.cluster.read();
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
        let learner = m.members.get(&me).is_some_and(|r| r.is_learner);
        self.core.learner.store(learner, Ordering::Release);
        if m.removed.contains(&me) {
            self.removed = true;
        }
        *self.core.cluster.write() = m;
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

    /// Applies a membership change (the same checks on every member, so all agree).
    fn apply_conf_change(&mut self, e: &Entry) -> Result<()> {
        let cc = match ConfChange::parse_from_bytes(&e.data) {
            Ok(cc) => cc,
            Err(err) => {
                tracing::warn!(index = e.index, error = %err, "undecodable conf change skipped");
                return Ok(());
            }
        };
        let ctx: Option<ConfChangeContext> = serde_json::from_slice(&cc.context).ok();
        let request_id = ctx.as_ref().map(|c| c.request_id).unwrap_or(0);
        let mut m = self.core.cluster.read().clone();
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
            self.core.complete(request_id, Err(err));
            return Ok(());
        }
        let removes_me =
            cc.get_change_type() == ConfChangeType::RemoveNode && id == self.core.member.id;
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
        let be = &self.core.store.backend;
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
        membership::stage_conf_state(be, &storage::to_record(&cs));
        if !removes_me {
            self.node.mut_store().mem.wl().set_conf_state(cs.clone());
        }
        self.conf = cs;
        let members = m.list();
        self.set_membership(m);
        self.core.complete(
            request_id,
            Ok(ApplyResult::Members {
                member: changed.map(|r| r.to_pb()),
                members,
            }),
        );
        Ok(())
    }

    fn run_task(&mut self, t: LoopTask) -> Result<()> {
        self.maybe_commit(true)?;
        match t {
            LoopTask::Commit => Ok(()),
            LoopTask::Defragment => {
                let started = Instant::now();
                let before = self.core.store.backend.size();
                // The pinned snapshot view would keep the old file alive.
                self.prepared_source = None;
                self.snap_cell.lock().prepared = None;
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
        storage::snapshot(&self.wal, &self.opts.snap_dir, index, term, &self.conf)?;
        // Keep some entries so a follower slightly behind catches up from the log (etcd
        // keeps 5000 by default).
        let keep = (self.opts.snapshot_count / 10).clamp(1, 5000);
        let compact_to = index.saturating_sub(keep).max(1);
        let first = self.node.raft.raft_log.first_index();
        if compact_to > first {
            self.node
                .mut_store()
                .mem
                .wl()
                .compact(compact_to)
                .map_err(|e| Error::Internal(format!("raft log compact: {e}")))?;
        }
        self.last_snapshot = index;
        tracing::info!(
            index,
            term,
            compacted_to = compact_to,
            "raft snapshot: log compacted"
        );
        Ok(())
    }

    /// Prepares the snapshot raft asked for: the backend committed at the applied index
    /// and a pinned view of it.
    fn maybe_prepare_snapshot(&mut self) -> Result<()> {
        if !std::mem::take(&mut self.snap_cell.lock().wanted) {
            return Ok(());
        }
        if let Some((i, _, _)) = &self.prepared_source {
            if *i == self.applied_index {
                return Ok(());
            }
        }
        self.maybe_commit(true)?;
        let src = crate::snapshot::source(&self.core)?;
        let mut snap = Snapshot::default();
        snap.set_data(SNAPSHOT_DATA.to_vec().into());
        let md = snap.mut_metadata();
        md.index = self.applied_index;
        md.term = self.applied_term;
        md.set_conf_state(self.conf.clone());
        tracing::info!(
            index = self.applied_index,
            bytes = src.size(),
            "prepared a snapshot for a follower behind the log"
        );
        let size = src.size();
        self.prepared_source = Some((
            self.applied_index,
            Arc::new(parking_lot::Mutex::new(src)),
            size,
        ));
        self.snap_cell.lock().prepared = Some(snap);
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

/// What the transport delivers, handed to the raft loop.
pub(crate) struct PeerHandler {
    core: std::sync::Weak<Core>,
}

impl PeerHandler {
    pub(crate) fn new(core: &Arc<Core>) -> PeerHandler {
        PeerHandler {
            core: Arc::downgrade(core),
        }
    }

    fn send(&self, m: Msg) {
        if let Some(c) = self.core.upgrade() {
            let _ = c.send(m);
        }
    }
}

impl crate::transport::Handler for PeerHandler {
    fn on_message(&self, m: RaftMessage) {
        self.send(Msg::Raft(m));
    }

    fn on_snapshot(&self, m: RaftMessage, db: PathBuf) {
        self.send(Msg::Snapshot(m, db));
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

    fn members(&self) -> Vec<u8> {
        let Some(c) = self.core.upgrade() else {
            return Vec::new();
        };
        let info = crate::membership::ClusterInfo {
            cluster_id: c.member.cluster_id,
            members: c.cluster.read().members.values().cloned().collect(),
        };
        serde_json::to_vec(&info).unwrap_or_default()
    }

    fn is_removed(&self, id: u64) -> bool {
        self.core
            .upgrade()
            .is_some_and(|c| c.cluster.read().removed.contains(&id))
    }

    fn on_removed(&self) {
        if let Some(c) = self.core.upgrade() {
            tracing::warn!("a peer says this member was removed from the cluster: stopping");
            c.stop();
            let _ = c.terminated.send(Some(Ok(())));
        }
    }
}
