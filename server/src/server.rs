//! Starting and stopping a member: open the store, replay the WAL, start the raft loop,
//! and serve gRPC and HTTP on every client listener (one port, both protocols).

use std::net::SocketAddr;
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
use crate::config::{Config, Options};
use crate::error::{Error, Result};
use crate::pb::etcdserverpb::{
    cluster_server::ClusterServer, kv_server::KvServer, lease_server::LeaseServer,
    maintenance_server::MaintenanceServer, watch_server::WatchServer,
};
use crate::raft::{self, Proposer, RaftOptions};
use crate::recover;
use crate::state::State;
use crate::status::{MemberStatus, ProbeFuture};
use crate::tasks::compactor;
use crate::transport::{Transport, TransportConfig};

/// gRPC allows this much above `--max-request-bytes` for message framing (etcd's 512 KiB).
const GRPC_OVERHEAD: usize = 512 * 1024;

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
        let dirs = recover::Dirs::of(&opts.data_dir);
        let disk = recover::open_backend(&dirs).await?;

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
        let recover::Recovered {
            store,
            backend,
            member,
            cluster,
            conf,
        } = recover::member(disk, &opts, client_urls).await?;
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
        recover::finish_compaction(&state, &backend)?;
        let transport = Arc::new(Transport::start(
            TransportConfig {
                local_id: state.member.id,
                cluster_id: state.member.cluster_id,
                snap_dir: dirs.snap.clone(),
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
            snap_dir: dirs.snap.clone(),
        };
        let (s2, p2, t2) = (state.clone(), proposer.clone(), transport.clone());
        let raft_thread = tokio::task::spawn_blocking(move || {
            let log = recover::raft_log(&dirs, &backend, conf)?;
            raft::start(s2, p2, ropts, log, t2)
        })
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
