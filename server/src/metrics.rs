//! Prometheus metrics with etcd 3.5's names, types, labels and buckets
//! (`server/etcdserver/metrics.go`, `server/mvcc/metrics.go`, `server/mvcc/backend/metrics.go`,
//! `server/wal/metrics.go`, go-grpc-prometheus). One process-wide registry, like etcd's
//! default one. Recording is an atomic add on a pre-resolved handle: no lock, no allocation.
//! Gauges that mirror state (leader, sizes, watchers) are set when `/metrics` is scraped.
//!
//! This module is low in the layering: it uses no other module of the crate.

use std::sync::LazyLock;

use prometheus::{
    exponential_buckets, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The metrics of this process.
pub(crate) struct Metrics {
    pub(crate) registry: Registry,
    pub(crate) has_leader: IntGauge,
    pub(crate) is_leader: IntGauge,
    pub(crate) leader_changes: IntCounter,
    pub(crate) proposals_committed: IntGauge,
    pub(crate) proposals_applied: IntGauge,
    pub(crate) proposals_pending: IntGauge,
    pub(crate) proposals_failed: IntCounter,
    pub(crate) quota_backend_bytes: IntGauge,
    pub(crate) slow_apply: IntCounter,
    pub(crate) heartbeat_send_failures: IntCounter,
    pub(crate) server_version: IntGaugeVec,
    pub(crate) cluster_version: IntGaugeVec,
    pub(crate) server_id: IntGaugeVec,
    pub(crate) db_total_size: IntGauge,
    pub(crate) db_in_use: IntGauge,
    pub(crate) put_total: IntCounter,
    pub(crate) range_total: IntCounter,
    pub(crate) delete_total: IntCounter,
    pub(crate) txn_total: IntCounter,
    pub(crate) watcher_total: IntGauge,
    pub(crate) slow_watcher_total: IntGauge,
    pub(crate) wal_fsync: Histogram,
    pub(crate) backend_commit: Histogram,
    pub(crate) defrag: Histogram,
    pub(crate) grpc_sent_bytes: IntCounter,
    pub(crate) grpc_received_bytes: IntCounter,
    pub(crate) grpc: GrpcMetrics,
}

/// The gRPC codes in go-grpc-prometheus's label spelling, by numeric code.
pub(crate) const GRPC_CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// Every method served: (path, service, method, grpc_type).
pub(crate) const GRPC_METHODS: &[(&str, &str, &str, &str)] = &[
    (
        "/etcdserverpb.KV/Range",
        "etcdserverpb.KV",
        "Range",
        "unary",
    ),
    ("/etcdserverpb.KV/Put", "etcdserverpb.KV", "Put", "unary"),
    (
        "/etcdserverpb.KV/DeleteRange",
        "etcdserverpb.KV",
        "DeleteRange",
        "unary",
    ),
    ("/etcdserverpb.KV/Txn", "etcdserverpb.KV", "Txn", "unary"),
    (
        "/etcdserverpb.KV/Compact",
        "etcdserverpb.KV",
        "Compact",
        "unary",
    ),
    (
        "/etcdserverpb.Watch/Watch",
        "etcdserverpb.Watch",
        "Watch",
        "bidi_stream",
    ),
    (
        "/etcdserverpb.Lease/LeaseGrant",
        "etcdserverpb.Lease",
        "LeaseGrant",
        "unary",
    ),
    (
        "/etcdserverpb.Lease/LeaseRevoke",
        "etcdserverpb.Lease",
        "LeaseRevoke",
        "unary",
    ),
    (
        "/etcdserverpb.Lease/LeaseKeepAlive",
        "etcdserverpb.Lease",
        "LeaseKeepAlive",
        "bidi_stream",
    ),
    (
        "/etcdserverpb.Lease/LeaseTimeToLive",
        "etcdserverpb.Lease",
        "LeaseTimeToLive",
        "unary",
    ),
    (
        "/etcdserverpb.Lease/LeaseLeases",
        "etcdserverpb.Lease",
        "LeaseLeases",
        "unary",
    ),
    (
        "/etcdserverpb.Cluster/MemberAdd",
        "etcdserverpb.Cluster",
        "MemberAdd",
        "unary",
    ),
    (
        "/etcdserverpb.Cluster/MemberRemove",
        "etcdserverpb.Cluster",
        "MemberRemove",
        "unary",
    ),
    (
        "/etcdserverpb.Cluster/MemberUpdate",
        "etcdserverpb.Cluster",
        "MemberUpdate",
        "unary",
    ),
    (
        "/etcdserverpb.Cluster/MemberList",
        "etcdserverpb.Cluster",
        "MemberList",
        "unary",
    ),
    (
        "/etcdserverpb.Cluster/MemberPromote",
        "etcdserverpb.Cluster",
        "MemberPromote",
        "unary",
    ),
    (
        "/etcdserverpb.Maintenance/Alarm",
        "etcdserverpb.Maintenance",
        "Alarm",
        "unary",
    ),
    (
        "/etcdserverpb.Maintenance/Status",
        "etcdserverpb.Maintenance",
        "Status",
        "unary",
    ),
    (
        "/etcdserverpb.Maintenance/Defragment",
        "etcdserverpb.Maintenance",
        "Defragment",
        "unary",
    ),
    (
        "/etcdserverpb.Maintenance/Hash",
        "etcdserverpb.Maintenance",
        "Hash",
        "unary",
    ),
    (
        "/etcdserverpb.Maintenance/HashKV",
        "etcdserverpb.Maintenance",
        "HashKV",
        "unary",
    ),
    (
        "/etcdserverpb.Maintenance/Snapshot",
        "etcdserverpb.Maintenance",
        "Snapshot",
        "server_stream",
    ),
    (
        "/etcdserverpb.Maintenance/MoveLeader",
        "etcdserverpb.Maintenance",
        "MoveLeader",
        "unary",
    ),
    (
        "/etcdserverpb.Maintenance/Downgrade",
        "etcdserverpb.Maintenance",
        "Downgrade",
        "unary",
    ),
    (
        "/grpc.health.v1.Health/Check",
        "grpc.health.v1.Health",
        "Check",
        "unary",
    ),
    (
        "/grpc.health.v1.Health/Watch",
        "grpc.health.v1.Health",
        "Watch",
        "server_stream",
    ),
];

/// Per-method handles, resolved once: `handled[code]` for each gRPC code.
pub(crate) struct MethodMetrics {
    pub(crate) started: IntCounter,
    pub(crate) handled: Vec<IntCounter>,
    pub(crate) msg_received: IntCounter,
    pub(crate) msg_sent: IntCounter,
    pub(crate) handling: Histogram,
}

/// go-grpc-prometheus's server metrics, one [`MethodMetrics`] per entry of [`GRPC_METHODS`].
pub(crate) struct GrpcMetrics {
    pub(crate) methods: Vec<MethodMetrics>,
    handling_vec: HistogramVec,
}

impl GrpcMetrics {
    /// The handles of the method at `path`, if it is one we serve.
    pub(crate) fn method(&self, path: &str) -> Option<&MethodMetrics> {
        GRPC_METHODS
            .iter()
            .position(|m| m.0 == path)
            .map(|i| &self.methods[i])
    }
}

fn hist(name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("valid histogram")
}

fn reg<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new();
        #[cfg(target_os = "linux")]
        {
            let _ = r.register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ));
        }
        let gauge = |name: &str, help: &str| reg(&r, IntGauge::new(name, help).expect("valid"));
        let counter = |name: &str, help: &str| reg(&r, IntCounter::new(name, help).expect("valid"));
        let gauge_vec = |name: &str, help: &str, label: &str| {
            reg(
                &r,
                IntGaugeVec::new(Opts::new(name, help), &[label]).expect("valid"),
            )
        };
        let b = |start: f64, n: usize| exponential_buckets(start, 2.0, n).expect("valid buckets");
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            reg(
                &r,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid"),
            )
        };
        let started = counter_vec(
            "grpc_server_started_total",
            "Total number of RPCs started on the server.",
            &["grpc_type", "grpc_service", "grpc_method"],
        );
        let handled = counter_vec(
            "grpc_server_handled_total",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            &["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
        );
        let msg_received = counter_vec(
            "grpc_server_msg_received_total",
            "Total number of RPC stream messages received on the server.",
            &["grpc_type", "grpc_service", "grpc_method"],
        );
        let msg_sent = counter_vec(
            "grpc_server_msg_sent_total",
            "Total number of gRPC stream messages sent by the server.",
            &["grpc_type", "grpc_service", "grpc_method"],
        );
        let handling_vec = HistogramVec::new(
            HistogramOpts::new(
                "grpc_server_handling_seconds",
                "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
            ),
            &["grpc_type", "grpc_service", "grpc_method"],
        )
        .expect("valid histogram");
        let methods = GRPC_METHODS
            .iter()
            .map(|&(_, svc, m, ty)| MethodMetrics {
                started: started.with_label_values(&[ty, svc, m]),
                handled: GRPC_CODES
                    .iter()
                    .map(|c| handled.with_label_values(&[ty, svc, m, c]))
                    .collect(),
                msg_received: msg_received.with_label_values(&[ty, svc, m]),
                msg_sent: msg_sent.with_label_values(&[ty, svc, m]),
                handling: handling_vec.with_label_values(&[ty, svc, m]),
            })
            .collect();
        Metrics {
            has_leader: gauge(
                "etcd_server_has_leader",
                "Whether or not a leader exists. 1 is existence, 0 is not.",
            ),
            is_leader: gauge(
                "etcd_server_is_leader",
                "Whether or not this member is a leader. 1 if is, 0 otherwise.",
            ),
            leader_changes: counter(
                "etcd_server_leader_changes_seen_total",
                "The number of leader changes seen.",
            ),
            proposals_committed: gauge(
                "etcd_server_proposals_committed_total",
                "The total number of consensus proposals committed.",
            ),
            proposals_applied: gauge(
                "etcd_server_proposals_applied_total",
                "The total number of consensus proposals applied.",
            ),
            proposals_pending: gauge(
                "etcd_server_proposals_pending",
                "The current number of pending proposals to commit.",
            ),
            proposals_failed: counter(
                "etcd_server_proposals_failed_total",
                "The total number of failed proposals seen.",
            ),
            slow_apply: counter(
                "etcd_server_slow_apply_total",
                "The total number of slow apply requests (likely overloaded from slow disk).",
            ),
            heartbeat_send_failures: counter(
                "etcd_server_heartbeat_send_failures_total",
                "The total number of leader heartbeat send failures (likely overloaded from slow disk).",
            ),
            quota_backend_bytes: gauge(
                "etcd_server_quota_backend_bytes",
                "Current backend storage quota size in bytes.",
            ),
            server_version: gauge_vec(
                "etcd_server_version",
                "Which version is running. 1 for 'server_version' label with current version.",
                "server_version",
            ),
            cluster_version: gauge_vec(
                "etcd_cluster_version",
                "Which version is running. 1 for 'cluster_version' label with current cluster version",
                "cluster_version",
            ),
            server_id: gauge_vec(
                "etcd_server_id",
                "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
                "server_id",
            ),
            db_total_size: gauge(
                "etcd_mvcc_db_total_size_in_bytes",
                "Total size of the underlying database physically allocated in bytes.",
            ),
            db_in_use: gauge(
                "etcd_mvcc_db_total_size_in_use_in_bytes",
                "Total size of the underlying database logically in use in bytes.",
            ),
            put_total: counter("etcd_mvcc_put_total", "Total number of puts seen by this member."),
            range_total: counter(
                "etcd_mvcc_range_total",
                "Total number of ranges seen by this member.",
            ),
            delete_total: counter(
                "etcd_mvcc_delete_total",
                "Total number of deletes seen by this member.",
            ),
            txn_total: counter("etcd_mvcc_txn_total", "Total number of txns seen by this member."),
            watcher_total: gauge("etcd_debugging_mvcc_watcher_total", "Total number of watchers."),
            slow_watcher_total: gauge(
                "etcd_debugging_mvcc_slow_watcher_total",
                "Total number of unsynced slow watchers.",
            ),
            wal_fsync: reg(
                &r,
                hist(
                    "etcd_disk_wal_fsync_duration_seconds",
                    "The latency distributions of fsync called by WAL.",
                    b(0.001, 14),
                ),
            ),
            backend_commit: reg(
                &r,
                hist(
                    "etcd_disk_backend_commit_duration_seconds",
                    "The latency distributions of commit called by backend.",
                    b(0.001, 14),
                ),
            ),
            defrag: reg(
                &r,
                hist(
                    "etcd_disk_backend_defrag_duration_seconds",
                    "The latency distribution of backend defragmentation.",
                    b(0.1, 13),
                ),
            ),
            grpc_sent_bytes: counter(
                "etcd_network_client_grpc_sent_bytes_total",
                "The total number of bytes sent to grpc clients.",
            ),
            grpc_received_bytes: counter(
                "etcd_network_client_grpc_received_bytes_total",
                "The total number of bytes received from grpc clients.",
            ),
            grpc: GrpcMetrics {
                methods,
                handling_vec,
            },
            registry: r,
        }
    }
}

/// The process's metrics.
pub(crate) static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Registers grpc_server_handling_seconds (`--metrics extensive`); idempotent.
pub(crate) fn enable_extensive() {
    let m = &*METRICS;
    let _ = m.registry.register(Box::new(m.grpc.handling_vec.clone()));
}

/// Everything registered, in the Prometheus text format.
pub(crate) fn render() -> String {
    let mut out = Vec::new();
    let _ = TextEncoder::new().encode(&METRICS.registry.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}
