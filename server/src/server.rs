//! Starting and stopping a member: open the store, replay the WAL, start the raft loop,
//! and serve gRPC and HTTP on every client listener (one port, both protocols).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::cluster::ClusterService;
use crate::api::kv::KvService;
use crate::api::lease::LeaseService;
use crate::api::maintenance::MaintenanceService;
use crate::api::watch::WatchService;
use crate::compactor;
use crate::core::{Core, Limits};
use crate::error::{Error, Result};
use crate::membership::{self, MemberInfo};
use crate::mvcc::backend::{ALARM, CLUSTER, MEMBERS};
use crate::mvcc::Store;
use crate::pb::etcdserverpb::{
    cluster_server::ClusterServer, kv_server::KvServer, lease_server::LeaseServer,
    maintenance_server::MaintenanceServer, watch_server::WatchServer, AlarmMember,
};
use crate::raft::{self, RaftOptions};
use crate::status::{MemberStatus, ProbeFuture};

/// gRPC allows this much above `--max-request-bytes` for message framing (etcd's 512 KiB).
const GRPC_OVERHEAD: usize = 512 * 1024;

/// Automatic compaction (`--auto-compaction-mode` / `--auto-compaction-retention`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoCompaction {
    Off,
    /// Keep this much history.
    Periodic(Duration),
    /// Keep this many revisions.
    Revision(u64),
}

/// Everything a member needs to start. [`Default`] gives etcd's defaults.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    pub name: String,
    pub data_dir: PathBuf,
    /// Addresses to serve gRPC + HTTP on (port 0 = any free port).
    pub listen_client_addrs: Vec<SocketAddr>,
    /// Client URLs reported by MemberList; empty = derived from the bound addresses.
    pub advertise_client_urls: Vec<String>,
    pub initial_advertise_peer_urls: Vec<String>,
    pub initial_cluster_token: String,
    pub snapshot_count: u64,
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    /// `None` = no quota.
    pub quota_backend_bytes: Option<u64>,
    pub max_request_bytes: usize,
    pub max_txn_ops: usize,
    pub auto_compaction: AutoCompaction,
    /// How often the revision-mode compactor looks (etcd: 5 minutes).
    pub auto_compaction_check_interval: Duration,
    /// Periodic watch progress notifications (`--experimental-watch-progress-notify-interval`,
    /// etcd: 10 minutes).
    pub watch_progress_notify_interval: Duration,
    /// How often the leader checkpoints remaining lease TTLs
    /// (`--experimental-lease-checkpoint-interval`, etcd: 5 minutes).
    pub lease_checkpoint_interval: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            name: "default".into(),
            data_dir: PathBuf::from("default.etcd"),
            listen_client_addrs: vec![SocketAddr::from(([127, 0, 0, 1], 2379))],
            advertise_client_urls: vec!["http://localhost:2379".into()],
            initial_advertise_peer_urls: vec!["http://localhost:2380".into()],
            initial_cluster_token: "etcd-cluster".into(),
            snapshot_count: 100_000,
            heartbeat_interval: Duration::from_millis(100),
            election_timeout: Duration::from_millis(1000),
            quota_backend_bytes: Some(2 * 1024 * 1024 * 1024),
            max_request_bytes: 1_572_864,
            max_txn_ops: 128,
            auto_compaction: AutoCompaction::Off,
            auto_compaction_check_interval: Duration::from_secs(300),
            watch_progress_notify_interval: Duration::from_secs(600),
            lease_checkpoint_interval: Duration::from_secs(300),
        }
    }
}

impl ServerOptions {
    /// Options for a test member: data in `dir`, serving on 127.0.0.1 at a free port.
    pub fn for_test(dir: impl Into<PathBuf>) -> Self {
        ServerOptions {
            data_dir: dir.into(),
            listen_client_addrs: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            advertise_client_urls: Vec::new(),
            ..Default::default()
        }
    }
}

/// A running member.
pub struct Server {
    core: Arc<Core>,
    addrs: Vec<SocketAddr>,
    shutdown: watch::Sender<bool>,
    serving: Vec<JoinHandle<()>>,
    raft_thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Opens the data directory, recovers, and starts serving.
    pub async fn start(opts: ServerOptions) -> Result<Server> {
        let member_dir = opts.data_dir.join("member");
        let snap_dir = member_dir.join("snap");
        let wal_dir = member_dir.join("wal");
        let db_path = snap_dir.join("db");
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
        let client_urls = if opts.advertise_client_urls.is_empty() {
            addrs.iter().map(|a| format!("http://{a}")).collect()
        } else {
            opts.advertise_client_urls.clone()
        };
        let member = identify(&store, &opts, client_urls)?;
        tracing::info!(
            name = %member.name,
            member_id = %format!("{:x}", member.id),
            cluster_id = %format!("{:x}", member.cluster_id),
            data_dir = %opts.data_dir.display(),
            "starting member"
        );
        let limits = Limits {
            max_request_bytes: opts.max_request_bytes,
            max_txn_ops: opts.max_txn_ops,
            quota_backend_bytes: opts.quota_backend_bytes.unwrap_or(0),
        };
        let core = Arc::new(Core::new(store, member, limits));
        load_alarms(&core)?;
        core.lessor
            .set_min_ttl(crate::lease::min_ttl_for(opts.election_timeout));
        crate::lease::restore(&core)?;
        if let Some(rev) = rec.pending_compaction {
            tracing::info!(revision = rev, "resuming interrupted compaction");
            let (ci, term) = (rec.consistent_index, rec.term);
            let meta = move || {
                vec![
                    (
                        crate::mvcc::backend::META_CONSISTENT_INDEX,
                        ci.to_be_bytes().to_vec(),
                    ),
                    (crate::mvcc::backend::META_TERM, term.to_be_bytes().to_vec()),
                ]
            };
            core.store.compact(rev, |be| be.commit(&meta()))?;
            core.store.backend.commit(&meta())?;
        }
        let tick = opts.heartbeat_interval.max(Duration::from_millis(1));
        let ropts = RaftOptions {
            tick,
            election_ticks: (opts.election_timeout.as_millis() / tick.as_millis().max(1)) as usize,
            snapshot_count: opts.snapshot_count.max(1),
            wal_dir,
            snap_dir,
        };
        let core2 = core.clone();
        let raft_thread = tokio::task::spawn_blocking(move || raft::start(core2, ropts, &rec))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;

        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut serving = Vec::new();
        for (l, addr) in listeners.into_iter().zip(addrs.iter()) {
            let router = build_router(&core, &opts);
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
        serving.push(compactor::spawn(core.clone(), &opts, shutdown_rx.clone()));
        serving.push(crate::lease::spawn_expiry(
            core.clone(),
            opts.lease_checkpoint_interval,
            shutdown_rx.clone(),
        ));
        serving.push(crate::watch::spawn_syncer(
            core.clone(),
            opts.watch_progress_notify_interval,
            shutdown_rx.clone(),
        ));
        Ok(Server {
            core,
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
        self.core.member.id
    }

    /// The cluster id.
    pub fn cluster_id(&self) -> u64 {
        self.core.member.cluster_id
    }

    /// What the HTTP endpoints see of this member.
    pub fn status(&self) -> Arc<dyn MemberStatus> {
        Arc::new(StatusHandle {
            core: self.core.clone(),
        })
    }

    /// Stops serving, stops the raft loop (committing the backend) and waits for both.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        for h in self.serving.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), h).await;
        }
        raft::stop(&self.core).await;
        if let Some(t) = self.raft_thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        self.core.stop();
    }
}

/// This member's identity: from the `members` bucket when the data directory has one,
/// otherwise derived from the peer URLs and cluster token (and recorded).
fn identify(store: &Store, opts: &ServerOptions, client_urls: Vec<String>) -> Result<MemberInfo> {
    let mut ids = Vec::new();
    for (k, _) in store.backend.scan_committed(MEMBERS)? {
        if let Ok(id) = u64::from_str_radix(&String::from_utf8_lossy(&k), 16) {
            ids.push(id);
        }
    }
    let derived = membership::member_id(
        &opts.initial_advertise_peer_urls,
        &opts.initial_cluster_token,
    );
    let id = if ids.contains(&derived) || ids.is_empty() {
        derived
    } else {
        ids[0]
    };
    if ids.is_empty() {
        ids.push(id);
    }
    let info = MemberInfo {
        id,
        cluster_id: membership::cluster_id(&ids),
        name: opts.name.clone(),
        peer_urls: opts.initial_advertise_peer_urls.clone(),
        client_urls,
    };
    store.backend.put(
        MEMBERS,
        Bytes::from(info.backend_key()),
        Bytes::from(info.backend_value()),
    );
    if store
        .backend
        .get_committed(CLUSTER, b"clusterVersion")?
        .is_none()
    {
        store.backend.put(
            CLUSTER,
            Bytes::from_static(b"clusterVersion"),
            Bytes::from_static(crate::status::CLUSTER_VERSION.as_bytes()),
        );
    }
    Ok(info)
}

fn load_alarms(core: &Core) -> Result<()> {
    let mut alarms = Vec::new();
    for (k, _) in core.store.backend.scan_committed(ALARM)? {
        if let Ok(m) = AlarmMember::decode(k.as_slice()) {
            alarms.push(m);
        }
    }
    if !alarms.is_empty() {
        tracing::warn!(count = alarms.len(), "active alarms restored");
    }
    core.alarms.load(alarms);
    Ok(())
}

fn build_router(core: &Arc<Core>, opts: &ServerOptions) -> tonic::service::Routes {
    let max_recv = opts.max_request_bytes + GRPC_OVERHEAD;
    let kv = KvServer::new(KvService { core: core.clone() })
        .max_decoding_message_size(max_recv)
        .max_encoding_message_size(usize::MAX);
    let maint = MaintenanceServer::new(MaintenanceService { core: core.clone() })
        .max_decoding_message_size(max_recv)
        .max_encoding_message_size(usize::MAX);
    let cluster = ClusterServer::new(ClusterService { core: core.clone() })
        .max_decoding_message_size(max_recv);
    let watch = WatchServer::new(WatchService { core: core.clone() })
        .max_decoding_message_size(max_recv)
        .max_encoding_message_size(usize::MAX);
    let lease =
        LeaseServer::new(LeaseService::new(core.clone())).max_decoding_message_size(max_recv);
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
        .into_axum_router();
    let status: Arc<dyn MemberStatus> = Arc::new(StatusHandle { core: core.clone() });
    let http = crate::http_routes(status);
    let router = grpc.merge(http).fallback(fallback);
    tonic::service::Routes::from(router)
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
    core: Arc<Core>,
}

impl MemberStatus for StatusHandle {
    fn has_leader(&self) -> bool {
        self.core.has_leader()
    }

    fn alarms(&self) -> Vec<String> {
        self.core
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
        false
    }

    fn range_probe(&self, serializable: bool) -> ProbeFuture<'_> {
        Box::pin(async move {
            if !serializable {
                self.core.read_index().await.map_err(|e| e.to_string())?;
            }
            let r = crate::pb::etcdserverpb::RangeRequest {
                key: Bytes::from_static(b"health"),
                keys_only: true,
                limit: 1,
                serializable: true,
                ..Default::default()
            };
            self.core
                .store
                .range(&r)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}
