//! The [`Proposer`]: how the rest of the member talks to the raft loop. It proposes typed
//! requests and waits for their applied responses, batches linearizable reads, runs
//! maintenance between rounds, and publishes raft's view (leader, term, indexes).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prost::Message;
use raft::eraftpb::{ConfChange, ConfChangeType};
use tokio::sync::oneshot;

use super::{ConfChangeContext, LoopTask, Msg, ProgressView};
use crate::apply::{InternalRequest, Members, Proposal, Response};
use crate::error::{Error, Result};
use crate::schema::MemberRecord;

/// How long a proposal may wait for its entry to be applied (etcd: 5 s + 2 × election).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(7);

/// Raft's view, published by the raft loop after every round.
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
    pub(crate) leader_elected: Mutex<Option<(Instant, Duration)>>,
}

type Waiter = oneshot::Sender<Result<Response>>;

/// The handle on the raft loop shared by the services and background tasks.
pub(crate) struct Proposer {
    /// This member's id.
    id: u64,
    /// Largest entry a client request may become (`--max-request-bytes`).
    max_request_bytes: usize,
    pub(crate) view: RaftView,
    /// Set once the member has stopped for good (fatal error or removal).
    terminated: tokio::sync::watch::Sender<Option<Result<()>>>,
    waiters: Mutex<HashMap<u64, Waiter>>,
    tx: Mutex<Option<mpsc::Sender<Msg>>>,
    next_id: AtomicU64,
    stopped: AtomicBool,
}

impl Proposer {
    pub(crate) fn new(member_id: u64, max_request_bytes: usize) -> Proposer {
        // Request ids are unique cluster-wide like etcd's: the member id's low 16 bits, then
        // a counter started from the clock.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(1);
        let seed = ((member_id & 0xffff) << 48) | ((now & 0xff_ffff_ffff) << 8);
        Proposer {
            id: member_id,
            max_request_bytes,
            view: RaftView::default(),
            terminated: tokio::sync::watch::channel(None).0,
            waiters: Mutex::new(HashMap::new()),
            tx: Mutex::new(None),
            next_id: AtomicU64::new(seed),
            stopped: AtomicBool::new(false),
        }
    }

    pub(super) fn set_sender(&self, tx: mpsc::Sender<Msg>) {
        *self.tx.lock() = Some(tx);
    }

    /// Sends a message to the raft loop.
    pub(super) fn send(&self, m: Msg) -> Result<()> {
        match &*self.tx.lock() {
            Some(tx) if !self.stopped.load(Ordering::Acquire) => {
                tx.send(m).map_err(|_| Error::Stopped)
            }
            _ => Err(Error::Stopped),
        }
    }

    /// Marks the member stopped and fails every waiting request.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        *self.tx.lock() = None;
        for (_, w) in self.waiters.lock().drain() {
            let _ = w.send(Err(Error::Stopped));
        }
    }

    /// Records how the member ended (the raft loop, or a peer saying it was removed).
    pub(super) fn terminate(&self, outcome: Result<()>) {
        let _ = self.terminated.send(Some(outcome));
    }

    /// Watches for the member's end: `Some(outcome)` once it stopped for good.
    pub(crate) fn terminated(&self) -> tokio::sync::watch::Receiver<Option<Result<()>>> {
        self.terminated.subscribe()
    }

    /// Proposals waiting for their entry to be applied.
    pub(crate) fn pending_proposals(&self) -> usize {
        self.waiters.lock().len()
    }

    pub(crate) fn has_leader(&self) -> bool {
        self.leader_id() != 0
    }

    pub(crate) fn is_leader(&self) -> bool {
        self.leader_id() == self.id
    }

    /// The current leader's id (0 = none known).
    pub(crate) fn leader_id(&self) -> u64 {
        self.view.leader.load(Ordering::Acquire)
    }

    pub(crate) fn term(&self) -> u64 {
        self.view.term.load(Ordering::Acquire)
    }

    pub(crate) fn committed(&self) -> u64 {
        self.view.committed.load(Ordering::Acquire)
    }

    pub(crate) fn applied(&self) -> u64 {
        self.view.applied.load(Ordering::Acquire)
    }

    /// A new request id, unique across the cluster.
    fn next_request_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Proposes a request through raft and waits until it is applied: exactly the
    /// response its entry produced, or an error.
    pub(crate) async fn propose<P: Proposal>(&self, req: P) -> Result<P::Response> {
        let id = self.next_request_id();
        let data = InternalRequest {
            id,
            op: Some(req.into_op()),
        }
        .encode_to_vec();
        if data.len() > self.max_request_bytes {
            return Err(Error::RequestTooLarge);
        }
        let res = self.wait_applied(id, Msg::Propose { id, data }).await?;
        P::response(res).ok_or_else(|| {
            debug_assert!(
                false,
                "apply answered request {id} with another response type"
            );
            Error::Internal("apply answered with another response type".into())
        })
    }

    /// Proposes a membership conf change for `member` (its record travels in the context)
    /// and waits until it is applied.
    pub(crate) async fn propose_conf_change(
        &self,
        change_type: ConfChangeType,
        member: MemberRecord,
    ) -> Result<Members> {
        let request_id = self.next_request_id();
        let mut cc = ConfChange::default();
        cc.set_change_type(change_type);
        cc.node_id = member.id;
        cc.context = serde_json::to_vec(&ConfChangeContext { request_id, member })
            .map_err(|e| Error::Internal(format!("conf change context: {e}")))?
            .into();
        match self
            .wait_applied(request_id, Msg::ConfChange { id: request_id, cc })
            .await?
        {
            Response::Members(m) => Ok(m),
            other => {
                debug_assert!(false, "conf change answered with {other:?}");
                Err(Error::Internal(
                    "conf change answered with another response type".into(),
                ))
            }
        }
    }

    /// Registers a waiter for request `id`, sends `m` to the raft loop and waits until the
    /// entry carrying `id` is applied.
    async fn wait_applied(&self, id: u64, m: Msg) -> Result<Response> {
        let (tx, rx) = oneshot::channel();
        let start = Instant::now();
        self.waiters.lock().insert(id, tx);
        if let Err(e) = self.send(m) {
            self.waiters.lock().remove(&id);
            crate::metrics::METRICS.proposals_failed.inc();
            return Err(e);
        }
        match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
            Ok(Ok(res)) => res,
            Ok(Err(_)) => {
                crate::metrics::METRICS.proposals_failed.inc();
                Err(Error::Stopped)
            }
            Err(_) => {
                self.waiters.lock().remove(&id);
                crate::metrics::METRICS.proposals_failed.inc();
                // As etcd: a proposal made shortly before a new leader was elected most
                // likely went down with the previous one, and the error says so.
                let elected = *self.view.leader_elected.lock();
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
    pub(super) fn complete(&self, id: u64, res: Result<Response>) -> bool {
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

    /// Asks the raft loop to run a maintenance task between two rounds.
    pub(crate) async fn run_in_loop(&self, task: LoopTask) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::Task(task, tx))?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// The leader's view of replication (membership checks).
    pub(crate) async fn progress(&self) -> Result<ProgressView> {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::Progress(tx))?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Hands leadership to `target` and waits until it leads (or the transfer fails).
    pub(crate) async fn transfer_leader(&self, target: u64) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::TransferLeader(target, tx))?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Asks the loop to stop and waits for it.
    pub(crate) async fn stop_loop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.send(Msg::Stop(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}
