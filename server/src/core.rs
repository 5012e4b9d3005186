//! The member's shared state: what the gRPC services, the HTTP handlers and the raft loop
//! all see.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use prost::Message;
use tokio::sync::oneshot;

use crate::apply::{ApplyResult, InternalRequest, Op};
use crate::error::{Error, Result};
use crate::lease::Lessor;
use crate::membership::{MemberInfo, Membership};
use crate::mvcc::Store;
use crate::pb::etcdserverpb::{AlarmMember, AlarmType, ResponseHeader};
use crate::raft::Msg;
use crate::watch::WatchHub;

/// How long a proposal may wait for its entry to be applied (etcd: 5 s + 2 × election).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(7);

/// Limits from the configuration that the services enforce.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    pub(crate) max_request_bytes: usize,
    pub(crate) max_txn_ops: usize,
    /// 0 = no quota.
    pub(crate) quota_backend_bytes: u64,
}

/// Raft's view, published by the raft loop.
#[derive(Default)]
pub(crate) struct RaftView {
    pub(crate) leader: AtomicU64,
    pub(crate) term: AtomicU64,
    pub(crate) committed: AtomicU64,
    pub(crate) applied: AtomicU64,
    /// Leader changes seen (etcd_server_leader_changes_seen_total).
    pub(crate) leader_changes: AtomicU64,
    /// When this member last learned of a new leader, and the election timeout: a
    /// proposal that started within two election timeouts before that and then timed out
    /// most likely went down with the previous leader (etcd's heuristic).
    pub(crate) leader_elected: Mutex<Option<(std::time::Instant, Duration)>>,
}

/// Active alarms (mirrors the `alarm` bucket).
#[derive(Default)]
pub(crate) struct Alarms(RwLock<Vec<AlarmMember>>);

impl Alarms {
    pub(crate) fn has(&self, t: AlarmType) -> bool {
        self.0.read().iter().any(|a| a.alarm == t as i32)
    }
    pub(crate) fn list(&self) -> Vec<AlarmMember> {
        self.0.read().clone()
    }
    pub(crate) fn activate(&self, m: AlarmMember) -> bool {
        let mut v = self.0.write();
        if v.contains(&m) {
            return false;
        }
        v.push(m);
        true
    }
    pub(crate) fn deactivate(&self, m: &AlarmMember) -> bool {
        let mut v = self.0.write();
        let before = v.len();
        v.retain(|a| a != m);
        v.len() != before
    }
    pub(crate) fn load(&self, ms: Vec<AlarmMember>) {
        *self.0.write() = ms;
    }
}

type Waiter = oneshot::Sender<Result<ApplyResult>>;

/// Shared member state.
pub(crate) struct Core {
    pub(crate) store: Store,
    pub(crate) member: MemberInfo,
    pub(crate) limits: Limits,
    pub(crate) raft: RaftView,
    pub(crate) alarms: Alarms,
    pub(crate) lessor: Arc<Lessor>,
    pub(crate) watch: Arc<WatchHub>,
    /// The cluster's members as of the applied index.
    pub(crate) cluster: RwLock<Membership>,
    /// Whether this member is a raft learner (published by the raft loop).
    pub(crate) learner: AtomicBool,
    /// The peer transport (set once at start).
    pub(crate) transport: std::sync::OnceLock<Arc<crate::transport::Transport>>,
    /// Set once the member has stopped for good (fatal storage error or removal).
    pub(crate) terminated: tokio::sync::watch::Sender<Option<Result<()>>>,
    waiters: Mutex<HashMap<u64, Waiter>>,
    raft_tx: Mutex<Option<mpsc::Sender<Msg>>>,
    next_id: AtomicU64,
    stopped: AtomicBool,
}

impl Core {
    pub(crate) fn new(
        store: Store,
        member: MemberInfo,
        cluster: Membership,
        limits: Limits,
    ) -> Core {
        // Request ids are unique cluster-wide like etcd's: the member id's low 16 bits, then
        // a counter started from the clock.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(1);
        let seed = ((member.id & 0xffff) << 48) | ((now & 0xff_ffff_ffff) << 8);
        let learner = cluster
            .members
            .get(&member.id)
            .is_some_and(|m| m.is_learner);
        let lessor = Arc::new(Lessor::default());
        let watch = Arc::new(WatchHub::new(store.rev()));
        store.set_observer(Arc::new(crate::watch::Observer::new(
            lessor.clone(),
            watch.clone(),
        )));
        Core {
            store,
            member,
            limits,
            raft: RaftView::default(),
            alarms: Alarms::default(),
            lessor,
            watch,
            cluster: RwLock::new(cluster),
            learner: AtomicBool::new(learner),
            terminated: tokio::sync::watch::channel(None).0,
            transport: std::sync::OnceLock::new(),
            waiters: Mutex::new(HashMap::new()),
            raft_tx: Mutex::new(None),
            next_id: AtomicU64::new(seed),
            stopped: AtomicBool::new(false),
        }
    }

    pub(crate) fn set_raft_sender(&self, tx: mpsc::Sender<Msg>) {
        *self.raft_tx.lock() = Some(tx);
    }

    /// Sends a message to the raft loop.
    pub(crate) fn send(&self, m: Msg) -> Result<()> {
        match &*self.raft_tx.lock() {
            Some(tx) if !self.stopped.load(Ordering::Acquire) => {
                tx.send(m).map_err(|_| Error::Stopped)
            }
            _ => Err(Error::Stopped),
        }
    }

    /// Marks the member stopped and fails every waiting request.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        *self.raft_tx.lock() = None;
        for (_, w) in self.waiters.lock().drain() {
            let _ = w.send(Err(Error::Stopped));
        }
    }

    pub(crate) fn has_leader(&self) -> bool {
        self.raft.leader.load(Ordering::Acquire) != 0
    }

    pub(crate) fn is_leader(&self) -> bool {
        self.raft.leader.load(Ordering::Acquire) == self.member.id
    }

    /// The current leader's id (0 = none known).
    pub(crate) fn leader_id(&self) -> u64 {
        self.raft.leader.load(Ordering::Acquire)
    }

    /// The client URLs the current leader advertises (empty when no leader is known or it
    /// has not published them yet). Used to forward lease keep-alives to the leader.
    pub(crate) fn leader_client_urls(&self) -> Vec<String> {
        if self.is_leader() {
            return self.member.client_urls.clone();
        }
        let leader = self.leader_id();
        self.cluster
            .read()
            .members
            .get(&leader)
            .map(|m| m.client_urls.clone())
            .unwrap_or_default()
    }

    pub(crate) fn is_learner(&self) -> bool {
        self.learner.load(Ordering::Acquire)
    }

    /// Learners serve only Status and serializable reads (etcd's rule).
    pub(crate) fn check_not_learner(&self) -> Result<()> {
        if self.is_learner() {
            return Err(Error::NotSupportedForLearner);
        }
        Ok(())
    }

    /// A new request id, unique across the cluster.
    pub(crate) fn next_request_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A full response header at the given revision.
    pub(crate) fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.member.cluster_id,
            member_id: self.member.id,
            revision,
            raft_term: self.raft.term.load(Ordering::Acquire),
        }
    }

    /// Fills cluster, member and term into a header that carries the revision.
    pub(crate) fn fill(&self, h: &mut Option<ResponseHeader>) {
        let rev = h
            .as_ref()
            .map(|h| h.revision)
            .unwrap_or_else(|| self.store.rev());
        *h = Some(self.header(rev));
    }

    /// Proposes a write through raft and waits until it is applied.
    pub(crate) async fn propose(&self, op: Op) -> Result<ApplyResult> {
        let id = self.next_request_id();
        let data = InternalRequest { id, op: Some(op) }.encode_to_vec();
        if data.len() > self.limits.max_request_bytes {
            return Err(Error::RequestTooLarge);
        }
        self.propose_raw(id, Msg::Propose { id, data }).await
    }

    /// Registers a waiter for request `id`, sends `m` to the raft loop and waits until the
    /// entry carrying `id` is applied.
    pub(crate) async fn propose_raw(&self, id: u64, m: Msg) -> Result<ApplyResult> {
        let (tx, rx) = oneshot::channel();
        let start = std::time::Instant::now();
        self.waiters.lock().insert(id, tx);
        if let Err(e) = self.send(m) {
            self.waiters.lock().remove(&id);
            return Err(e);
        }
        match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
            Ok(Ok(res)) => res,
            Ok(Err(_)) => Err(Error::Stopped),
            Err(_) => {
                self.waiters.lock().remove(&id);
                // As etcd: a proposal made shortly before a new leader was elected most
                // likely went down with the previous one, and the error says so.
                let elected = *self.raft.leader_elected.lock();
                match elected {
                    Some((at, election)) if start < at && start + 2 * election > at => {
                        Err(Error::TimeoutLeaderFail)
                    }
                    _ => Err(Error::Timeout),
                }
            }
        }
    }

    /// Completes the waiter of request `id` (raft loop); whether one was still waiting.
    pub(crate) fn complete(&self, id: u64, res: Result<ApplyResult>) -> bool {
        match self.waiters.lock().remove(&id) {
            Some(w) => {
                let _ = w.send(res);
                true
            }
            None => false,
        }
    }

    /// Waits until this member may serve a linearizable read (raft ReadIndex, batched by
    /// the raft loop).
    pub(crate) async fn read_index(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::ReadIndex(tx))?;
        match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Error::Stopped),
            Err(_) => Err(Error::Timeout),
        }
    }

    /// Asks the raft loop to run `f` between two Ready rounds (backend maintenance).
    pub(crate) async fn run_in_loop(&self, task: crate::raft::LoopTask) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::Task(task, tx))?;
        rx.await.map_err(|_| Error::Stopped)?
    }
}
