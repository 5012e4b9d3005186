//! Starting and stopping a member: open the store, replay the WAL, start the raft loop,
//! and serve gRPC and HTTP on every client listener (one port, both protocols).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{Limits, Node};
use crate::config::{Config, Options};
use crate::error::{Error, Result};
use crate::raft::{self, Proposer, RaftOptions};
use crate::recover;
use crate::state::State;
use crate::status::MemberStatus;
use crate::tasks::{compactor, corrupt};

mod authority;
mod publish;
mod router;

use crate::transport::{PeerListener, PeerTls, Transport, TransportConfig};
use publish::spawn_publish;
use router::{build_router, StatusHandle};

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
        // etcd 3.5's TouchDirAll: 0700 when created; wider permissions are reported.
        crate::fileutil::touch_dir_all(&opts.data_dir).map_err(|e| {
            crate::error::Error::Internal(format!(
                "cannot access data directory {}: {e}",
                opts.data_dir.display()
            ))
        })?;
        let dirs = recover::Dirs::of(&opts.data_dir);
        let disk = recover::open_backend(&dirs).await?;
        // etcd checks only members that ran before (a new one has nothing to compare).
        let corrupt_check = opts.initial_corrupt_check && disk.initialized();

        // Bind first so MemberList can report the real addresses.
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        // TLS files are read before anything binds: a bad file fails start-up cleanly.
        let client_tls = opts.client_tls_config()?;
        let peer_tls = opts.peer_tls_config()?.map(|(server, client)| PeerTls {
            server,
            client,
            verifies_peers: opts.peer_tls_verifies_peers(),
        });
        for (a, https) in &opts.listen_client_addrs {
            let l = TcpListener::bind(a)
                .await
                .map_err(|e| Error::Internal(format!("listen on {a}: {e}")))?;
            addrs.push(l.local_addr().map_err(|e| Error::Internal(e.to_string()))?);
            listeners.push((l, *https));
        }
        let mut metrics_listeners = Vec::new();
        for (a, https) in &opts.listen_metrics_addrs {
            let l = TcpListener::bind(a)
                .await
                .map_err(|e| Error::Internal(format!("listen on {a} (metrics): {e}")))?;
            metrics_listeners.push((l, *https));
        }
        let mut peer_listeners = Vec::new();
        for (a, https) in &opts.listen_peer_addrs {
            let l = TcpListener::bind(a)
                .await
                .map_err(|e| Error::Internal(format!("listen on {a} (peers): {e}")))?;
            peer_listeners.push(PeerListener {
                tcp: l,
                https: *https,
            });
        }
        let client_urls = if opts.advertise_client_urls.is_empty() {
            addrs
                .iter()
                .zip(&listeners)
                .map(|(a, (_, https))| format!("{}://{a}", if *https { "https" } else { "http" }))
                .collect()
        } else {
            opts.advertise_client_urls.clone()
        };
        let recover::Recovered {
            store,
            backend,
            member,
            cluster,
            conf,
        } = recover::member(disk, &opts, client_urls, peer_tls.as_ref()).await?;
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
        state.finish_compaction(&backend)?;
        if corrupt_check {
            // Before the peer transport and raft start, as etcd does before Server.Start.
            corrupt::initial_check(&state, corrupt::request_timeout(opts.election_timeout)).await?;
        }
        let transport = Arc::new(Transport::start(
            TransportConfig {
                local_id: state.member.id,
                cluster_id: state.member.cluster_id,
                snap_dir: dirs.snap.clone(),
                tls: peer_tls,
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
        router::init_metrics(&node, opts.metrics_extensive);
        let client = listeners
            .into_iter()
            .zip(addrs.iter().copied())
            .map(|((l, https), addr)| (l, https, addr, build_router(&node, &opts)));
        let mut metrics_only = Vec::new();
        for (l, https) in metrics_listeners {
            let addr = l.local_addr().map_err(|e| Error::Internal(e.to_string()))?;
            let status: Arc<dyn MemberStatus> = Arc::new(StatusHandle { node: node.clone() });
            let router = tonic::service::Routes::from(
                crate::http_routes(status).merge(router::metrics_routes(&node)),
            );
            metrics_only.push((l, https, addr, router));
        }
        for (l, https, addr, router) in client.collect::<Vec<_>>().into_iter().chain(metrics_only) {
            let mut rx = shutdown_rx.clone();
            let tls = if https { client_tls.clone() } else { None };
            serving.push(tokio::spawn(async move {
                let stop = async move {
                    let _ = rx.wait_for(|v| *v).await;
                };
                let builder = tonic::transport::Server::builder()
                    .accept_http1(true)
                    .add_routes(router);
                let res = match tls {
                    Some(cfg) => {
                        tracing::info!(%addr, "serving client requests (gRPC and HTTP) over TLS");
                        let incoming = authority::fix_incoming(crate::tls::tls_incoming(
                            l,
                            cfg,
                            crate::tls::HANDSHAKE_TIMEOUT,
                        ));
                        builder.serve_with_incoming_shutdown(incoming, stop).await
                    }
                    None => {
                        tracing::info!(%addr, "serving client requests (gRPC and HTTP)");
                        let incoming = authority::fix_incoming(
                            tonic::transport::server::TcpIncoming::from(l).with_nodelay(Some(true)),
                        );
                        builder.serve_with_incoming_shutdown(incoming, stop).await
                    }
                };
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
