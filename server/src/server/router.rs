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
