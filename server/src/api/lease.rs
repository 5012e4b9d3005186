//! `etcdserverpb.Lease`: LeaseGrant, LeaseRevoke, LeaseKeepAlive, LeaseTimeToLive,
//! LeaseLeases.
//!
//! Grants and revokes are proposals (raft carries them from any member). Keep-alives and
//! time-to-live answers need the leader's deadlines (only the leader's lessor is primary,
//! see `crate::lease`), so a follower forwards them over gRPC to the client URL the leader
//! advertises, as etcd forwards them to its leader:
//! - one cached channel per leader URL; a keep-alive stream on a follower keeps one
//!   upstream keep-alive stream to the leader and passes each request through it;
//! - while no leader is known the request waits, for at most the request timeout, and then
//!   fails with `etcdserver: no leader`; a leader that cannot be reached is retried until
//!   the request timeout and then the request fails with `etcdserver: request timed out`;
//! - forwarded requests carry the [`FORWARDED`] metadata: the receiver serves them only if
//!   it leads (else `etcdserver: not leader`, and the sender retries), so a request never
//!   travels in a loop while leadership moves;
//! - response headers are this member's (etcd fills them where the client is connected).
//!
//! Streams opened with `hasleader: true` (clientv3 `WithRequireLeader`) are closed with
//! `etcdserver: no leader` when this member loses its leader for a while (see
//! `super::watch::leader_lost`).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status, Streaming};

use super::check_leader;
use super::watch::{leader_lost, requires_leader, LeaderLost};
use super::Node;
use crate::error::Error;
use crate::lease::{LeaseIds, MAX_LEASE_TTL};
use crate::pb::etcdserverpb::lease_client::LeaseClient;
use crate::pb::etcdserverpb::lease_server::Lease;
use crate::pb::etcdserverpb::{
    AlarmType, LeaseCheckpoint, LeaseCheckpointRequest, LeaseGrantRequest, LeaseGrantResponse,
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseLeasesResponse,
    LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus, LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse,
};

/// Metadata key marking a request a follower forwarded to the leader.
pub(crate) const FORWARDED: &str = "cairn-lease-forwarded";
/// How long a forwarded request may wait for a leader and its answer (etcd: request
/// timeout, 5 s + 2 × election timeout).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(7);
/// Pause between two attempts to reach the leader (etcd: 50 ms).
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// How often a request waiting for a leader looks again.
const LEADER_POLL: Duration = Duration::from_millis(20);
/// Connect timeout of a channel to the leader.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the leader waits for its apply loop to catch up with its commit index before
/// answering about a lease it does not know (yet).
const APPLY_WAIT: Duration = Duration::from_secs(1);
/// Server-chosen ids tried before giving up on `lease already exists`.
const ID_ATTEMPTS: usize = 5;

/// The Lease service.
pub(crate) struct LeaseService {
    node: Arc<Node>,
    /// Source of server-chosen lease ids.
    ids: LeaseIds,
    forward: Arc<Forwarder>,
}

impl LeaseService {
    pub(crate) fn new(node: Arc<Node>) -> Self {
        LeaseService {
            ids: LeaseIds::new(node.state.member.id),
            forward: Arc::new(Forwarder {
                node: node.clone(),
                channels: Mutex::new(HashMap::new()),
            }),
            node,
        }
    }

    /// A positive int63 id not in use (etcd takes it from its request id generator).
    fn pick_id(&self) -> i64 {
        loop {
            let id = self.ids.next();
            if !self.node.state.lessor.exists(id) {
                return id;
            }
        }
    }
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

fn is_forwarded<T>(req: &Request<T>) -> bool {
    req.metadata().get(FORWARDED).is_some()
}

fn mark_forwarded<T>(req: &mut Request<T>) {
    req.metadata_mut()
        .insert(FORWARDED, MetadataValue::from_static("1"));
}

/// Waits (briefly) until this member has applied everything committed when called: a
/// lease granted through another member may be committed but not yet applied here.
async fn wait_applied(node: &Node) {
    let target = node.raft.committed();
    let deadline = Instant::now() + APPLY_WAIT;
    while node.raft.applied() < target && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Proposes a clearing checkpoint for lease `id` (after a keep-alive of a checkpointed
/// lease).
async fn clear_checkpoint(node: &Node, id: i64) {
    let req = LeaseCheckpointRequest {
        checkpoints: vec![LeaseCheckpoint {
            id,
            remaining_ttl: 0,
        }],
    };
    if let Err(e) = node.raft.propose(req).await {
        tracing::debug!(lease = id, error = %e, "clearing lease checkpoint failed");
    }
}

/// Renews lease `id` on this member if it leads; `None` if it does not.
async fn renew_here(node: &Arc<Node>, id: i64) -> Option<i64> {
    if !node.lessor_is_primary() {
        return None;
    }
    let mut renewed = node.state.lessor.renew(id)?;
    if renewed.0 == 0 && !node.state.lessor.exists(id) {
        // Perhaps granted but not applied here yet.
        wait_applied(node).await;
        renewed = node.state.lessor.renew(id)?;
    }
    let (ttl, clear) = renewed;
    if clear {
        let node = node.clone();
        tokio::spawn(async move { clear_checkpoint(&node, id).await });
    }
    Some(ttl)
}

/// This member's time-to-live answer if it leads; `None` if it does not.
async fn time_to_live_here(
    node: &Node,
    r: &LeaseTimeToLiveRequest,
) -> Option<LeaseTimeToLiveResponse> {
    if !node.lessor_is_primary() {
        return None;
    }
    if !node.state.lessor.exists(r.id) {
        wait_applied(node).await;
    }
    let header = Some(node.current_header());
    Some(match node.state.lessor.time_to_live(r.id, r.keys) {
        Some(t) => LeaseTimeToLiveResponse {
            header,
            id: r.id,
            ttl: t.ttl,
            granted_ttl: t.granted_ttl,
            keys: t.keys,
        },
        None => LeaseTimeToLiveResponse {
            header,
            id: r.id,
            ttl: -1,
            granted_ttl: 0,
            keys: Vec::new(),
        },
    })
}

/// Where a keep-alive or time-to-live is served.
enum Route {
    /// This member leads.
    Local,
    /// Member `id` leads and serves clients on these URLs.
    Leader(u64, Vec<String>),
}

/// An upstream keep-alive stream to the leader (one per client stream on a follower).
struct Upstream {
    leader: u64,
    url: String,
    tx: mpsc::Sender<LeaseKeepAliveRequest>,
    rx: Streaming<LeaseKeepAliveResponse>,
}

/// Forwards keep-alives and time-to-live requests to the leader.
struct Forwarder {
    node: Arc<Node>,
    /// One lazily connected channel per leader client URL.
    channels: Mutex<HashMap<String, Channel>>,
}

impl Forwarder {
    /// A client on the cached channel to `url` (`None` if it is not a usable URL).
    fn client(&self, url: &str) -> Option<LeaseClient<Channel>> {
        let mut chans = self.channels.lock();
        let ch = match chans.get(url) {
            Some(ch) => ch.clone(),
            None => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return None;
                }
                let ch = Endpoint::from_shared(url.to_string())
                    .ok()?
                    .connect_timeout(CONNECT_TIMEOUT)
                    .tcp_nodelay(true)
                    .connect_lazy();
                chans.insert(url.to_string(), ch.clone());
                ch
            }
        };
        Some(
            LeaseClient::new(ch)
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX),
        )
    }

    /// Waits until a leader is known (etcd's waitLeader): this member, or another with
    /// client URLs. `etcdserver: no leader` if none shows up before `deadline`.
    async fn route(&self, deadline: Instant) -> Result<Route, Status> {
        loop {
            if self.node.raft.is_leader() {
                return Ok(Route::Local);
            }
            let id = self.node.raft.leader_id();
            if id != 0 {
                let urls = self.node.leader_client_urls();
                // Leadership may have moved between the two reads.
                if !urls.is_empty() && self.node.raft.leader_id() == id {
                    return Ok(Route::Leader(id, urls));
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::NoLeader.into());
            }
            tokio::time::sleep(LEADER_POLL.min(deadline - now)).await;
        }
    }

    /// Pauses before the next attempt; `etcdserver: request timed out` once `deadline`
    /// has passed.
    async fn pause(deadline: Instant) -> Result<(), Status> {
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::Timeout.into());
        }
        tokio::time::sleep(RETRY_PAUSE.min(deadline - now)).await;
        Ok(())
    }

    /// Lease `id`'s TTL after a keep-alive, served here or by the leader.
    async fn keep_alive(&self, up: &mut Option<Upstream>, id: i64) -> Result<i64, Status> {
        let deadline = Instant::now() + FORWARD_TIMEOUT;
        loop {
            match self.route(deadline).await? {
                Route::Local => {
                    *up = None;
                    if let Some(ttl) = renew_here(&self.node, id).await {
                        return Ok(ttl);
                    }
                }
                Route::Leader(leader, urls) => {
                    match self.keep_alive_on(up, leader, &urls, id, deadline).await {
                        Ok(ttl) => return Ok(ttl),
                        Err(e) => {
                            tracing::debug!(leader, error = %e, "lease keep-alive forward failed");
                            *up = None;
                        }
                    }
                }
            }
            Self::pause(deadline).await?;
        }
    }

    /// One attempt through the upstream stream to `leader` (opened if needed).
    async fn keep_alive_on(
        &self,
        up: &mut Option<Upstream>,
        leader: u64,
        urls: &[String],
        id: i64,
        deadline: Instant,
    ) -> Result<i64, String> {
        let reusable = matches!(up, Some(u) if u.leader == leader && urls.contains(&u.url));
        if reusable {
            if let Some(u) = up.as_mut() {
                u.tx.send(LeaseKeepAliveRequest { id })
                    .await
                    .map_err(|_| "upstream closed".to_string())?;
            }
        } else {
            *up = None;
            let mut last = String::from("no usable client URL");
            for url in urls {
                match self.open_upstream(leader, url, id, deadline).await {
                    Ok(u) => {
                        *up = Some(u);
                        break;
                    }
                    Err(e) => last = e,
                }
            }
            if up.is_none() {
                return Err(last);
            }
        }
        let u = up.as_mut().ok_or("no upstream")?;
        match tokio::time::timeout_at(deadline.into(), u.rx.message()).await {
            Ok(Ok(Some(r))) => Ok(r.ttl),
            Ok(Ok(None)) => Err("upstream ended".into()),
            Ok(Err(s)) => Err(format!("{}: {}", s.code(), s.message())),
            Err(_) => Err("timed out".into()),
        }
    }

    /// Opens an upstream keep-alive stream to `leader` at `url` carrying lease `id`'s
    /// keep-alive as its first request (queued before the call: a server may send its
    /// response headers only with the first answer).
    async fn open_upstream(
        &self,
        leader: u64,
        url: &str,
        id: i64,
        deadline: Instant,
    ) -> Result<Upstream, String> {
        let mut client = self.client(url).ok_or("unusable URL")?;
        let (tx, rx) = mpsc::channel(16);
        tx.try_send(LeaseKeepAliveRequest { id })
            .map_err(|_| "upstream queue".to_string())?;
        let mut req = Request::new(ReceiverStream::new(rx));
        mark_forwarded(&mut req);
        let call = client.lease_keep_alive(req);
        match tokio::time::timeout_at(deadline.into(), call).await {
            Ok(Ok(resp)) => Ok(Upstream {
                leader,
                url: url.to_string(),
                tx,
                rx: resp.into_inner(),
            }),
            Ok(Err(s)) => Err(format!("{url}: {}: {}", s.code(), s.message())),
            Err(_) => Err(format!("{url}: timed out")),
        }
    }

    /// A time-to-live answer, served here or by the leader.
    async fn time_to_live(
        &self,
        r: LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, Status> {
        let deadline = Instant::now() + FORWARD_TIMEOUT;
        loop {
            match self.route(deadline).await? {
                Route::Local => {
                    if let Some(resp) = time_to_live_here(&self.node, &r).await {
                        return Ok(resp);
                    }
                }
                Route::Leader(leader, urls) => {
                    for url in &urls {
                        let Some(mut client) = self.client(url) else {
                            continue;
                        };
                        let mut req = Request::new(r);
                        mark_forwarded(&mut req);
                        let call = client.lease_time_to_live(req);
                        match tokio::time::timeout_at(deadline.into(), call).await {
                            Ok(Ok(resp)) => {
                                let mut resp = resp.into_inner();
                                resp.header = Some(self.node.current_header());
                                return Ok(resp);
                            }
                            Ok(Err(s)) => tracing::debug!(
                                leader,
                                url,
                                code = ?s.code(),
                                message = s.message(),
                                "lease time-to-live forward failed"
                            ),
                            Err(_) => {}
                        }
                    }
                }
            }
            Self::pause(deadline).await?;
        }
    }
}

/// Runs `f` unless the `hasleader` monitor fires first (`None` then).
async fn unless_lost<F: Future>(lost: &mut Option<LeaderLost>, f: F) -> Option<F::Output> {
    match lost.as_mut() {
        Some(l) => tokio::select! {
            out = f => Some(out),
            _ = l => None,
        },
        None => Some(f.await),
    }
}

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        req: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        self.node.check_not_learner()?;
        check_leader(&self.node, &req)?;
        let r = req.into_inner();
        if r.ttl > MAX_LEASE_TTL {
            return Err(Error::LeaseTtlTooLarge.into());
        }
        if self.node.state.alarms.has(AlarmType::Nospace) {
            return Err(Error::NoSpace.into());
        }
        let chosen = r.id == 0;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut g = r;
            if chosen {
                g.id = self.pick_id();
            }
            match self.node.raft.propose(g).await {
                Ok(mut g) => {
                    self.node.fill(&mut g.header);
                    return Ok(Response::new(g));
                }
                // Another member's id: the client did not choose it, so choose again.
                Err(Error::LeaseExists) if chosen && attempt < ID_ATTEMPTS => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn lease_revoke(
        &self,
        req: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        self.node.check_not_learner()?;
        check_leader(&self.node, &req)?;
        // No local existence check: a lease granted through another member may be
        // committed but not yet applied here. Applying the revoke decides (not found is
        // answered from the apply, as etcd).
        let r = req.into_inner();
        let mut g = self.node.raft.propose(r).await?;
        self.node.fill(&mut g.header);
        Ok(Response::new(g))
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        self.node.check_not_learner()?;
        check_leader(&self.node, &req)?;
        let forwarded = is_forwarded(&req);
        let mut lost = requires_leader(&req).then(|| leader_lost(self.node.clone()));
        let mut input = req.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let node = self.node.clone();
        let forward = self.forward.clone();
        tokio::spawn(async move {
            let mut upstream: Option<Upstream> = None;
            loop {
                let Some(msg) = unless_lost(&mut lost, input.next()).await else {
                    let _ = tx.send(Err(Error::NoLeader.into())).await;
                    break;
                };
                let Some(Ok(r)) = msg else { break };
                let answer = if forwarded {
                    // Sent here because the sender believed this member leads: serve it
                    // here or refuse, never pass it on.
                    renew_here(&node, r.id)
                        .await
                        .ok_or_else(|| Status::from(Error::NotLeader))
                } else {
                    match unless_lost(&mut lost, forward.keep_alive(&mut upstream, r.id)).await {
                        Some(a) => a,
                        None => Err(Error::NoLeader.into()),
                    }
                };
                let ttl = match answer {
                    Ok(ttl) => ttl,
                    Err(s) => {
                        let _ = tx.send(Err(s)).await;
                        break;
                    }
                };
                let resp = LeaseKeepAliveResponse {
                    header: Some(node.current_header()),
                    id: r.id,
                    ttl,
                };
                if tx.send(Ok(resp)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        self.node.check_not_learner()?;
        check_leader(&self.node, &req)?;
        let forwarded = is_forwarded(&req);
        let r = req.into_inner();
        if forwarded {
            return match time_to_live_here(&self.node, &r).await {
                Some(resp) => Ok(Response::new(resp)),
                None => Err(Error::NotLeader.into()),
            };
        }
        Ok(Response::new(self.forward.time_to_live(r).await?))
    }

    async fn lease_leases(
        &self,
        req: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        self.node.check_not_learner()?;
        check_leader(&self.node, &req)?;
        let leases = self
            .node
            .state
            .lessor
            .list()
            .into_iter()
            .map(|id| LeaseStatus { id })
            .collect();
        Ok(Response::new(LeaseLeasesResponse {
            header: Some(self.node.current_header()),
            leases,
        }))
    }
}
