//! The client port's routes: the gRPC services, the learner gate, the HTTP endpoints and
//! the answers to unknown paths.

use std::sync::Arc;

use bytes::Bytes;

use crate::api::cluster::ClusterService;
use crate::api::kv::KvService;
use crate::api::lease::LeaseService;
use crate::api::maintenance::MaintenanceService;
use crate::api::watch::WatchService;
use crate::api::Node;
use crate::config::Options;
use crate::error::Error;
use crate::metrics;
use crate::pb::etcdserverpb::{
    cluster_server::ClusterServer, kv_server::KvServer, lease_server::LeaseServer,
    maintenance_server::MaintenanceServer, watch_server::WatchServer,
};
use crate::status::{MemberStatus, ProbeFuture};

/// gRPC allows this much above `--max-request-bytes` for message framing (etcd's 512 KiB).
const GRPC_OVERHEAD: usize = 512 * 1024;

pub(super) fn build_router(node: &Arc<Node>, opts: &Options) -> tonic::service::Routes {
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
        ))
        .layer(axum::middleware::from_fn(grpc_metrics));
    let status: Arc<dyn MemberStatus> = Arc::new(StatusHandle { node: node.clone() });
    let http = crate::http_routes(status);
    let router = grpc
        .merge(http)
        .merge(metrics_routes(node))
        .fallback(fallback);
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
pub(super) struct StatusHandle {
    pub(super) node: Arc<Node>,
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

/// `/metrics`: the state-mirroring gauges are refreshed, then everything is rendered.
pub(super) fn metrics_routes(node: &Arc<Node>) -> axum::Router {
    let node = node.clone();
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let node = node.clone();
            async move {
                refresh_gauges(&node);
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    metrics::render(),
                )
            }
        }),
    )
}

fn refresh_gauges(node: &Node) {
    let m = &*metrics::METRICS;
    m.has_leader.set(node.raft.has_leader() as i64);
    m.is_leader.set(node.raft.is_leader() as i64);
    m.proposals_committed.set(node.raft.committed() as i64);
    m.proposals_applied.set(node.raft.applied() as i64);
    m.proposals_pending
        .set(node.raft.pending_proposals() as i64);
    m.quota_backend_bytes
        .set(node.limits.quota_backend_bytes as i64);
    let be = &node.state.store.backend;
    m.db_total_size.set(be.size() as i64);
    m.db_in_use.set(be.size_in_use() as i64);
    let (total, unsynced) = node.state.watch.counts();
    m.watcher_total.set(total as i64);
    m.slow_watcher_total.set(unsynced as i64);
}

/// Sets the constant-labelled gauges (version, cluster version, member id).
pub(super) fn init_metrics(node: &Node, extensive: bool) {
    let m = &*metrics::METRICS;
    m.server_version
        .with_label_values(&[crate::status::SERVER_VERSION])
        .set(1);
    let cv = crate::status::CLUSTER_VERSION;
    let major_minor = cv.rsplit_once('.').map_or(cv, |(a, _)| a);
    m.cluster_version.with_label_values(&[major_minor]).set(1);
    m.server_id
        .with_label_values(&[&format!("{:x}", node.state.member.id)])
        .set(1);
    if extensive {
        metrics::enable_extensive();
    }
}

/// go-grpc-prometheus's server interceptor as a middleware: started/handled/messages per
/// method (pre-resolved handles, atomic adds), bytes in and out.
pub(super) async fn grpc_metrics(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let Some(m) = metrics::METRICS.grpc.method(req.uri().path()) else {
        return next.run(req).await;
    };
    m.started.inc();
    let start = std::time::Instant::now();
    let (parts, body) = req.into_parts();
    let body = axum::body::Body::new(Counted::new(body, m, false, start));
    let resp = next
        .run(axum::extract::Request::from_parts(parts, body))
        .await;
    // A trailers-only answer (an error before any message) carries the status in headers.
    if let Some(code) = resp.headers().get("grpc-status") {
        let c = grpc_code(code.as_bytes());
        m.handled[c].inc();
        m.handling.observe(start.elapsed().as_secs_f64());
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let body = axum::body::Body::new(Counted::new(body, m, true, start));
    axum::response::Response::from_parts(parts, body)
}

fn grpc_code(v: &[u8]) -> usize {
    let n = std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(2);
    if n < metrics::GRPC_CODES.len() {
        n
    } else {
        2
    }
}

/// A request or response body that counts gRPC messages (5-byte length-prefixed) and
/// bytes; a response body also records the status from its trailers.
struct Counted {
    inner: axum::body::Body,
    m: &'static metrics::MethodMetrics,
    response: bool,
    start: std::time::Instant,
    /// Bytes of the current message's 5-byte prefix seen so far, and the prefix.
    hdr: [u8; 5],
    hdr_len: usize,
    /// Payload bytes of the current message still to come.
    remaining: usize,
    done: bool,
}

impl Counted {
    fn new(
        inner: axum::body::Body,
        m: &'static metrics::MethodMetrics,
        response: bool,
        start: std::time::Instant,
    ) -> Counted {
        Counted {
            inner,
            m,
            response,
            start,
            hdr: [0; 5],
            hdr_len: 0,
            remaining: 0,
            done: false,
        }
    }

    fn count(&mut self, mut data: &[u8]) {
        let mut msgs = 0;
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len());
                self.remaining -= n;
                data = &data[n..];
                continue;
            }
            let n = (5 - self.hdr_len).min(data.len());
            self.hdr[self.hdr_len..self.hdr_len + n].copy_from_slice(&data[..n]);
            self.hdr_len += n;
            data = &data[n..];
            if self.hdr_len == 5 {
                self.hdr_len = 0;
                self.remaining =
                    u32::from_be_bytes([self.hdr[1], self.hdr[2], self.hdr[3], self.hdr[4]])
                        as usize;
                msgs += 1;
            }
        }
        if self.response {
            self.m.msg_sent.inc_by(msgs);
        } else {
            self.m.msg_received.inc_by(msgs);
        }
    }

    fn finish(&mut self, code: usize) {
        if self.response && !self.done {
            self.done = true;
            self.m.handled[code].inc();
            self.m.handling.observe(self.start.elapsed().as_secs_f64());
        }
    }
}

impl http_body::Body for Counted {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        let this = &mut *self;
        let r = std::pin::Pin::new(&mut this.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    let bytes = if this.response {
                        &metrics::METRICS.grpc_sent_bytes
                    } else {
                        &metrics::METRICS.grpc_received_bytes
                    };
                    bytes.inc_by(d.len() as u64);
                    let d = d.clone();
                    this.count(&d);
                } else if let Some(t) = f.trailers_ref() {
                    let c = t.get("grpc-status").map_or(0, |v| grpc_code(v.as_bytes()));
                    this.finish(c);
                }
            }
            Poll::Ready(Some(Err(_))) => this.finish(1),
            Poll::Ready(None) => this.finish(0),
            Poll::Pending => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    /// A response dropped before its trailers: the client went away (Canceled).
    fn drop(&mut self) {
        self.finish(1);
    }
}
