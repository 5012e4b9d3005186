//! Starting and stopping a member: open the store, replay the WAL, start the raft loop,
//! and serve gRPC and HTTP on every client listener (one port, both protocols).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::cluster::ClusterService;
use crate::api::kv::KvService;
use crate::api::lease::LeaseService;
use crate::api::maintenance::MaintenanceService;
use crate::api::watch::WatchService;
use crate::api::{Limits, Node};
use crate::config::{AutoCompaction, ClusterState, Config, Scheme, Url};
use crate::error::{Error, Result};
use crate::membership::{self, ClusterInfo, MemberInfo, Membership};
use crate::mvcc::Store;
use crate::pb::etcdserverpb::{
    cluster_server::ClusterServer, kv_server::KvServer, lease_server::LeaseServer,
    maintenance_server::MaintenanceServer, watch_server::WatchServer,
};
use crate::raft::{self, Proposer, RaftOptions};
use crate::schema::{ConfStateRecord, MemberRecord};
use crate::schema::{
    CLUSTER, CLUSTER_ID_KEY, CLUSTER_VERSION_KEY, META, META_CONSISTENT_INDEX, META_TERM,
};
use crate::state::State;
use crate::status::{MemberStatus, ProbeFuture};
use crate::tasks::compactor;
use crate::transport::{Transport, TransportConfig};

/// gRPC allows this much above `--max-request-bytes` for message framing (etcd's 512 KiB).
const GRPC_OVERHEAD: usize = 512 * 1024;

/// What [`Server::start`] takes from a [`Config`], in the forms the member's parts use:
/// bind addresses, URLs as text, the quota as an option. Made only by [`Options::new`], so
/// it has no defaults of its own.
#[derive(Debug)]
pub(crate) struct Options {
    pub(crate) name: String,
    pub(crate) data_dir: PathBuf,
    /// Addresses to serve gRPC + HTTP on (port 0 = any free port).
    pub(crate) listen_client_addrs: Vec<SocketAddr>,
    /// Client URLs reported by MemberList; empty = derived from the bound addresses.
    pub(crate) advertise_client_urls: Vec<String>,
    pub(crate) initial_advertise_peer_urls: Vec<String>,
    /// Addresses the peer transport listens on (empty = none).
    pub(crate) listen_peer_addrs: Vec<SocketAddr>,
    /// `--initial-cluster` as (name, peer URL) pairs; empty = this member alone.
    pub(crate) initial_cluster: Vec<(String, String)>,
    /// `--initial-cluster-state existing`: join a running cluster (after MemberAdd).
    pub(crate) initial_cluster_existing: bool,
    pub(crate) initial_cluster_token: String,
    pub(crate) snapshot_count: u64,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) election_timeout: Duration,
    /// `None` = no quota.
    pub(crate) quota_backend_bytes: Option<u64>,
    pub(crate) max_request_bytes: usize,
    pub(crate) max_txn_ops: usize,
    pub(crate) auto_compaction: AutoCompaction,
    pub(crate) auto_compaction_check_interval: Duration,
    pub(crate) watch_progress_notify_interval: Duration,
    pub(crate) lease_checkpoint_interval: Duration,
}

impl Options {
    /// Resolves `cfg`: listen URLs become socket addresses (TLS is not supported yet).
    pub(crate) fn new(cfg: &Config) -> Result<Options> {
        let bind = |urls: &[Url], flag: &str| -> Result<Vec<SocketAddr>> {
            let mut addrs = Vec::new();
            for u in urls {
                if u.scheme == Scheme::Https {
                    return Err(Error::Internal(format!(
                        "{flag} {u}: TLS is not supported by cairn yet"
                    )));
                }
                addrs.push(
                    u.bind_addr()
                        .map_err(|e| Error::Internal(format!("{flag}: {e}")))?,
                );
            }
            Ok(addrs)
        };
        let text = |urls: &[Url]| urls.iter().map(Url::to_string).collect::<Vec<_>>();
        Ok(Options {
            name: cfg.name.clone(),
            data_dir: cfg.data_dir.clone(),
            listen_client_addrs: bind(&cfg.listen_client_urls, "--listen-client-urls")?,
            advertise_client_urls: text(&cfg.advertise_client_urls),
            initial_advertise_peer_urls: text(&cfg.initial_advertise_peer_urls),
            listen_peer_addrs: bind(&cfg.listen_peer_urls, "--listen-peer-urls")?,
            initial_cluster: cfg
                .initial_cluster
                .iter()
                .map(|(n, u)| (n.clone(), u.to_string()))
                .collect(),
            initial_cluster_existing: cfg.initial_cluster_state == ClusterState::Existing,
            initial_cluster_token: cfg.initial_cluster_token.clone(),
            snapshot_count: cfg.snapshot_count,
            heartbeat_interval: cfg.heartbeat_interval,
            election_timeout: cfg.election_timeout,
            quota_backend_bytes: cfg.quota_backend_bytes(),
            max_request_bytes: usize::try_from(cfg.max_request_bytes).unwrap_or(usize::MAX),
            max_txn_ops: usize::try_from(cfg.max_txn_ops).unwrap_or(usize::MAX),
            auto_compaction: cfg.auto_compaction,
            auto_compaction_check_interval: cfg.auto_compaction_check_interval,
            watch_progress_notify_interval: cfg.watch_progress_notify_interval,
            lease_checkpoint_interval: cfg.lease_checkpoint_interval,
        })
    }
}

/// A running member.
pub struct Server {
    node: Arc<Node>,
    transport: Arc<Transport>,
    addrs: Vec<SocketAddr>,
    shutdown: watch::Sender<bool>,
    serving: Vec<JoinHandle<()>>,
    raft_thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Opens the data directory, recovers, and starts serving.
    pub async fn start(cfg: Config) -> Result<Server> {
        let opts = Options::new(&cfg)?;
        let member_dir = opts.data_dir.join("member");
        let snap_dir = member_dir.join("snap");
        let wal_dir = member_dir.join("wal");
        let db_path = snap_dir.join("db");
        let had_wal = wal_dir.exists();
        let (store, rec) = tokio::task::spawn_blocking(move || Store::open(&db_path))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;

        // Bind first so MemberList can report the real addresses.
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for a in &opts.listen_client_addrs {
            let l = TcpListener::bind(a)
                .await
                .map_err(|e| Error::Internal(format!("listen on {a}: {e}")))?;
            addrs.push(l.local_addr().map_err(|e| Error::Internal(e.to_string()))?);
            listeners.push(l);
        }
        let mut peer_listeners = Vec::new();
        for a in &opts.listen_peer_addrs {
            let l = TcpListener::bind(a)
                .await
                .map_err(|e| Error::Internal(format!("listen on {a} (peers): {e}")))?;
            peer_listeners.push(l);
        }
        let client_urls = if opts.advertise_client_urls.is_empty() {
            addrs.iter().map(|a| format!("http://{a}")).collect()
        } else {
            opts.advertise_client_urls.clone()
        };
        let fresh = !had_wal && Membership::load(&store.backend)?.members.is_empty();
        let (member, cluster) = if fresh {
            bootstrap(&store, &opts, client_urls).await?
        } else {
            identify(&store, &opts, client_urls)?
        };
        let rec = if fresh {
            // Bootstrapping wrote the consistent index.
            crate::mvcc::store::Recovered {
                consistent_index: read_u64(
                    store.backend.get_committed(META, META_CONSISTENT_INDEX)?,
                ),
                term: read_u64(store.backend.get_committed(META, META_TERM)?),
                pending_compaction: rec.pending_compaction,
            }
        } else {
            rec
        };
        // The recorded configuration must name exactly the recorded members; a file
        // restored from a snapshot keeps the source cluster's configuration (etcd writes
        // `confState` too), so it is rebuilt from the members then.
        let recorded = membership::load_conf_state(&store.backend)?.filter(|c| {
            let mut ids: Vec<u64> = c.voters.iter().chain(c.learners.iter()).copied().collect();
            ids.sort_unstable();
            ids == cluster.members.keys().copied().collect::<Vec<u64>>()
        });
        let conf = match recorded {
            Some(c) => raft::storage::to_conf_state(&c),
            None if rec.consistent_index > 0 => {
                // A data directory restored from a snapshot file (or written before the
                // configuration was recorded): every member listed votes, learners learn.
                let mut c = ::raft::eraftpb::ConfState::default();
                for m in cluster.members.values() {
                    if m.is_learner {
                        c.learners.push(m.id);
                    } else {
                        c.voters.push(m.id);
                    }
                }
                c
            }
            // Joining an existing cluster: the leader's snapshot brings the configuration.
            None => ::raft::eraftpb::ConfState::default(),
        };
        tracing::info!(
            name = %member.name,
            member_id = %format!("{:x}", member.id),
            cluster_id = %format!("{:x}", member.cluster_id),
            data_dir = %opts.data_dir.display(),
            members = cluster.members.len(),
            "starting member"
        );
        let limits = Limits {
            max_request_bytes: opts.max_request_bytes,
            max_txn_ops: opts.max_txn_ops,
            quota_backend_bytes: opts.quota_backend_bytes.unwrap_or(0),
        };
        let peers: Vec<(u64, Vec<String>)> = cluster
            .members
            .values()
            .filter(|m| m.id != member.id)
            .map(|m| (m.id, m.peer_urls.clone()))
            .collect();
        let state = Arc::new(State::new(store, member, cluster));
        state.lessor.set_election_timeout(opts.election_timeout);
        state.reload()?;
        if !state.alarms.list().is_empty() {
            tracing::warn!(count = state.alarms.list().len(), "active alarms restored");
        }
        let proposer = Arc::new(Proposer::new(state.member.id, opts.max_request_bytes));
        let node = Arc::new(Node {
            state: state.clone(),
            raft: proposer.clone(),
            limits,
        });
        if let Some(rev) = rec.pending_compaction {
            tracing::info!(revision = rev, "resuming interrupted compaction");
            let (ci, term) = (rec.consistent_index, rec.term);
            let meta = move || {
                vec![
                    (
                        crate::schema::META_CONSISTENT_INDEX,
                        ci.to_be_bytes().to_vec(),
                    ),
                    (crate::schema::META_TERM, term.to_be_bytes().to_vec()),
                ]
            };
            state.store.compact(rev, |be| be.commit(&meta()))?;
            state.store.backend.commit(&meta())?;
        }
        let transport = Arc::new(Transport::start(
            TransportConfig {
                local_id: state.member.id,
                cluster_id: state.member.cluster_id,
                snap_dir: snap_dir.clone(),
            },
            peer_listeners,
            Arc::new(raft::PeerHandler::new(&state, &proposer)),
        ));
        for (id, urls) in peers {
            transport.add_peer(id, urls);
        }
        let tick = opts.heartbeat_interval.max(Duration::from_millis(1));
        let ropts = RaftOptions {
            tick,
            election_ticks: (opts.election_timeout.as_millis() / tick.as_millis().max(1)) as usize,
            snapshot_count: opts.snapshot_count.max(1),
            wal_dir,
            snap_dir,
        };
        let (s2, p2, t2) = (state.clone(), proposer.clone(), transport.clone());
        let raft_thread =
            tokio::task::spawn_blocking(move || raft::start(s2, p2, ropts, &rec, conf, t2))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??;

        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut serving = Vec::new();
        // Like etcd, a member serves clients only once its name and client URLs are
        // committed (MemberList then shows them everywhere). That needs a leader, so a
        // member of a cluster without quorum waits here, as etcd's does.
        let (published_tx, published_rx) = tokio::sync::oneshot::channel();
        serving.push(spawn_publish(
            node.clone(),
            shutdown_rx.clone(),
            published_tx,
        ));
        let mut terminated = proposer.terminated();
        tokio::select! {
            _ = published_rx => {}
            _ = terminated.wait_for(|t| t.is_some()) => {}
        }
        for (l, addr) in listeners.into_iter().zip(addrs.iter()) {
            let router = build_router(&node, &opts);
            let mut rx = shutdown_rx.clone();
            let addr = *addr;
            serving.push(tokio::spawn(async move {
                tracing::info!(%addr, "serving client requests (gRPC and HTTP)");
                let incoming =
                    tonic::transport::server::TcpIncoming::from(l).with_nodelay(Some(true));
                let res = tonic::transport::Server::builder()
                    .accept_http1(true)
                    .add_routes(router)
                    .serve_with_incoming_shutdown(incoming, async move {
                        let _ = rx.wait_for(|v| *v).await;
                    })
                    .await;
                if let Err(e) = res {
                    tracing::error!(%addr, error = %e, "client listener failed");
                }
            }));
        }
        serving.push(compactor::spawn(
            state.clone(),
            proposer.clone(),
            opts.auto_compaction,
            opts.auto_compaction_check_interval,
            shutdown_rx.clone(),
        ));
        serving.push(crate::tasks::lease_expiry::spawn(
            state.clone(),
            proposer.clone(),
            opts.lease_checkpoint_interval,
            shutdown_rx.clone(),
        ));
        serving.push(crate::watch::spawn_syncer(
            state.store.clone(),
            state.watch.clone(),
            opts.watch_progress_notify_interval,
            shutdown_rx.clone(),
        ));
        Ok(Server {
            node,
            transport,
            addrs,
            shutdown,
            serving,
            raft_thread: Some(raft_thread),
        })
    }

    /// The bound client addresses (useful with port 0).
    pub fn client_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// This member's id.
    pub fn member_id(&self) -> u64 {
        self.node.state.member.id
    }

    /// The cluster id.
    pub fn cluster_id(&self) -> u64 {
        self.node.state.member.cluster_id
    }

    /// What the HTTP endpoints see of this member.
    pub fn status(&self) -> Arc<dyn MemberStatus> {
        Arc::new(StatusHandle {
            node: self.node.clone(),
        })
    }

    /// Stops serving, stops the raft loop (committing the backend) and waits for both.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        for h in self.serving.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), h).await;
        }
        self.node.raft.stop_loop().await;
        if let Some(t) = self.raft_thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        self.transport.stop().await;
    }

    /// Resolves when the member stops on its own: `Ok` when it was removed from the
    /// cluster, `Err` on a fatal storage error.
    pub async fn terminated(&self) -> Result<()> {
        let mut rx = self.node.raft.terminated();
        loop {
            if let Some(r) = rx.borrow_and_update().clone() {
                return r;
            }
            if rx.changed().await.is_err() {
                return Ok(());
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        self.node.raft.stop();
    }
}

fn read_u64(v: Option<Vec<u8>>) -> u64 {
    v.and_then(|v| {
        v.get(..8)
            .map(|b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
    })
    .unwrap_or(0)
}

/// The members of `--initial-cluster` (this member alone when it is empty), with etcd's
/// ids.
fn initial_members(opts: &Options) -> Vec<MemberRecord> {
    let mut pairs = opts.initial_cluster.clone();
    if pairs.is_empty() {
        for u in &opts.initial_advertise_peer_urls {
            pairs.push((opts.name.clone(), u.clone()));
        }
    }
    let mut by_name: Vec<(String, Vec<String>)> = Vec::new();
    for (n, u) in pairs {
        match by_name.iter_mut().find(|(bn, _)| *bn == n) {
            Some((_, urls)) => urls.push(u),
            None => by_name.push((n, vec![u])),
        }
    }
    by_name
        .into_iter()
        .map(|(name, peer_urls)| MemberRecord {
            id: membership::member_id(&peer_urls, &opts.initial_cluster_token),
            peer_urls,
            is_learner: false,
            name,
            client_urls: Vec::new(),
        })
        .collect()
}

/// A member with no data yet: a new cluster from `--initial-cluster`, or a member added
/// with MemberAdd joining a running one (`--initial-cluster-state existing`).
async fn bootstrap(
    store: &Store,
    opts: &Options,
    client_urls: Vec<String>,
) -> Result<(MemberInfo, Membership)> {
    let be = &store.backend;
    let mut cluster = Membership::default();
    let (id, cluster_id) = if opts.initial_cluster_existing {
        let mine = &opts.initial_advertise_peer_urls;
        let others: Vec<String> = initial_members(opts)
            .into_iter()
            .filter(|m| !m.peer_urls.iter().any(|u| mine.contains(u)))
            .flat_map(|m| m.peer_urls)
            .collect();
        if others.is_empty() {
            return Err(Error::Internal(
                "--initial-cluster-state=existing needs the other members in --initial-cluster"
                    .into(),
            ));
        }
        let bytes = crate::transport::fetch_members(&others, Duration::from_secs(5))
            .await
            .map_err(|e| {
                Error::Internal(format!(
                    "cannot fetch cluster info from peer urls {}: {e}",
                    others.join(",")
                ))
            })?;
        let info: ClusterInfo = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Internal(format!("bad cluster info from peers: {e}")))?;
        for m in info.members {
            cluster.put(be, m);
        }
        let me = cluster.by_peer_url(mine).map(|m| m.id).ok_or_else(|| {
            Error::Internal(format!(
                "error validating peerURLs: this member's peer URLs {} are not in the cluster \
                 (add it with `etcdctl member add` first)",
                mine.join(",")
            ))
        })?;
        // Record our own name and URLs; the cluster learns them when we publish.
        tracing::info!(member_id = %format!("{me:x}"), "joining an existing cluster");
        (me, info.cluster_id)
    } else {
        let members = initial_members(opts);
        let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
        let me = membership::member_id(
            &opts.initial_advertise_peer_urls,
            &opts.initial_cluster_token,
        );
        if !ids.contains(&me) {
            return Err(Error::Internal(format!(
                "couldn't find local name {:?} in the initial cluster configuration",
                opts.name
            )));
        }
        // Client URLs become known to the cluster when each member publishes them.
        for m in members {
            cluster.put(be, m);
        }
        membership::stage_conf_state(
            be,
            &ConfStateRecord {
                voters: {
                    let mut v = ids.clone();
                    v.sort_unstable();
                    v
                },
                learners: Vec::new(),
            },
        );
        be.put(
            CLUSTER,
            Bytes::from_static(CLUSTER_VERSION_KEY),
            Bytes::from_static(crate::status::CLUSTER_VERSION.as_bytes()),
        );
        (me, membership::cluster_id(&ids))
    };
    be.put(
        CLUSTER,
        Bytes::from_static(CLUSTER_ID_KEY),
        Bytes::copy_from_slice(&cluster_id.to_be_bytes()),
    );
    // A new cluster starts with its configuration applied at index 1 of term 1 (every
    // member the same); a joiner starts empty and receives the leader's snapshot.
    let ci: u64 = if opts.initial_cluster_existing { 0 } else { 1 };
    be.commit(&[
        (META_CONSISTENT_INDEX, ci.to_be_bytes().to_vec()),
        (META_TERM, ci.to_be_bytes().to_vec()),
    ])?;
    let info = MemberInfo {
        id,
        cluster_id,
        name: opts.name.clone(),
        client_urls,
    };
    Ok((info, cluster))
}

/// A restarting member: who it is, from the recorded members (matched by peer URLs, then
/// by name).
fn identify(
    store: &Store,
    opts: &Options,
    client_urls: Vec<String>,
) -> Result<(MemberInfo, Membership)> {
    let cluster = Membership::load(&store.backend)?;
    let derived = membership::member_id(
        &opts.initial_advertise_peer_urls,
        &opts.initial_cluster_token,
    );
    let id = if cluster.members.contains_key(&derived) {
        derived
    } else if let Some(m) = cluster.by_peer_url(&opts.initial_advertise_peer_urls) {
        m.id
    } else if let Some(m) = cluster.members.values().find(|m| m.name == opts.name) {
        m.id
    } else if cluster.members.len() == 1 {
        *cluster.members.keys().next().expect("one member")
    } else {
        return Err(Error::Internal(format!(
            "cannot tell which member this is: peer URLs {} and name {:?} match none of the {} recorded members",
            opts.initial_advertise_peer_urls.join(","),
            opts.name,
            cluster.members.len()
        )));
    };
    let ids: Vec<u64> = cluster.members.keys().copied().collect();
    let cluster_id = match store.backend.get_committed(CLUSTER, CLUSTER_ID_KEY)? {
        Some(v) if v.len() == 8 => read_u64(Some(v)),
        _ => membership::cluster_id(&ids),
    };
    let info = MemberInfo {
        id,
        cluster_id,
        name: opts.name.clone(),
        client_urls,
    };
    Ok((info, cluster))
}

/// Publishes this member's name and client URLs through raft once a leader is known, as
/// etcd's members do after starting (until then others see them without).
fn spawn_publish(
    node: Arc<Node>,
    mut shutdown: watch::Receiver<bool>,
    published: tokio::sync::oneshot::Sender<()>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let _published = published;
        loop {
            let up_to_date = node
                .state
                .cluster
                .read()
                .members
                .get(&node.state.member.id)
                .map(|m| {
                    m.name == node.state.member.name
                        && m.client_urls == node.state.member.client_urls
                });
            if up_to_date == Some(true) {
                return;
            }
            if up_to_date.is_some() && node.raft.has_leader() {
                let m = crate::pb::etcdserverpb::Member {
                    id: node.state.member.id,
                    name: node.state.member.name.clone(),
                    client_ur_ls: node.state.member.client_urls.clone(),
                    ..Default::default()
                };
                match node.raft.propose(m).await {
                    Ok(_) => {
                        tracing::info!(
                            name = %node.state.member.name,
                            client_urls = ?node.state.member.client_urls,
                            "published member attributes to the cluster"
                        );
                        return;
                    }
                    Err(Error::Stopped) => return,
                    Err(e) => {
                        tracing::debug!(error = %e, "publishing member attributes failed; retrying")
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = shutdown.wait_for(|v| *v) => return,
            }
        }
    })
}

fn build_router(node: &Arc<Node>, opts: &Options) -> tonic::service::Routes {
    let max_recv = opts.max_request_bytes + GRPC_OVERHEAD;
    let kv = KvServer::new(KvService { node: node.clone() })
        .max_decoding_message_size(max_recv)
        .max_encoding_message_size(usize::MAX);
    let maint = MaintenanceServer::new(MaintenanceService { node: node.clone() })
        .max_decoding_message_size(max_recv)
        .max_encoding_message_size(usize::MAX);
    let cluster = ClusterServer::new(ClusterService { node: node.clone() })
        .max_decoding_message_size(max_recv);
    let watch = WatchServer::new(WatchService { node: node.clone() })
        .max_decoding_message_size(max_recv)
        .max_encoding_message_size(usize::MAX);
    let lease =
        LeaseServer::new(LeaseService::new(node.clone())).max_decoding_message_size(max_recv);
    let (health_reporter, health) = tonic_health::server::health_reporter();
    let reporter = health_reporter.clone();
    tokio::spawn(async move {
        reporter
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
    });
    let grpc = tonic::service::Routes::new(kv)
        .add_service(maint)
        .add_service(cluster)
        .add_service(watch)
        .add_service(lease)
        .add_service(health)
        .into_axum_router()
        .layer(axum::middleware::from_fn_with_state(
            node.clone(),
            learner_gate,
        ));
    let status: Arc<dyn MemberStatus> = Arc::new(StatusHandle { node: node.clone() });
    let http = crate::http_routes(status);
    let router = grpc.merge(http).fallback(fallback);
    tonic::service::Routes::from(router)
}

/// A learner serves only Status, serializable Range (checked by the KV service) and the
/// health service; every other call gets etcd's "rpc not supported for learner".
async fn learner_gate(
    axum::extract::State(node): axum::extract::State<Arc<Node>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    const ALLOWED: [&str; 4] = [
        "/etcdserverpb.Maintenance/Status",
        "/etcdserverpb.KV/Range",
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
    ];
    if node.state.is_learner() && !ALLOWED.contains(&req.uri().path()) {
        return tonic::Status::from(Error::NotSupportedForLearner)
            .into_http::<axum::body::Body>()
            .into_response();
    }
    next.run(req).await
}

/// Unknown paths: gRPC calls get Unimplemented (services not provided yet: Auth, Lock,
/// Election), everything else 404.
async fn fallback(req: axum::extract::Request) -> axum::response::Response {
    use axum::response::IntoResponse;
    let is_grpc = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if is_grpc {
        let msg = format!("unknown service or method {}", req.uri().path());
        tonic::Status::unimplemented(msg)
            .into_http::<axum::body::Body>()
            .into_response()
    } else {
        (axum::http::StatusCode::NOT_FOUND, "404 page not found\n").into_response()
    }
}

/// [`MemberStatus`] over the member's shared state.
struct StatusHandle {
    node: Arc<Node>,
}

impl MemberStatus for StatusHandle {
    fn has_leader(&self) -> bool {
        self.node.raft.has_leader()
    }

    fn alarms(&self) -> Vec<String> {
        self.node
            .state
            .alarms
            .list()
            .iter()
            .map(|a| match a.alarm {
                1 => "NOSPACE".to_string(),
                2 => "CORRUPT".to_string(),
                _ => "NONE".to_string(),
            })
            .collect()
    }

    fn is_learner(&self) -> bool {
        self.node.state.is_learner()
    }

    fn range_probe(&self, serializable: bool) -> ProbeFuture<'_> {
        Box::pin(async move {
            if !serializable {
                self.node
                    .raft
                    .read_index()
                    .await
                    .map_err(|e| e.to_string())?;
            }
            let r = crate::pb::etcdserverpb::RangeRequest {
                key: Bytes::from_static(b"health"),
                keys_only: true,
                limit: 1,
                serializable: true,
                ..Default::default()
            };
            self.node
                .state
                .store
                .range(&r)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}
