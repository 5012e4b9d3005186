//! What the HTTP endpoints (`/health`, `/livez`, `/readyz`, `/version`) need to know about
//! the member, as a small object-safe trait.
//!
//! Contract with `http` (owned by server-surface):
//! - `http` exposes `pub fn router(status: std::sync::Arc<dyn MemberStatus>) -> axum::Router`
//!   (axum 0.8, already a dependency of this crate). The server merges that router with the
//!   gRPC services on the client port: requests with `content-type: application/grpc*` go to
//!   gRPC, everything else to this router; paths the router does not know answer 404.
//! - Every method is cheap except the range probe, which performs a real Range
//!   (`keys_only`, `limit 1`) through the same code path as the KV service.

use std::future::Future;
use std::pin::Pin;

/// Version of etcd this server presents itself as (Status RPC, `/version`).
pub const SERVER_VERSION: &str = "3.5.17";
/// Cluster version reported by `/version` (`etcdcluster`).
pub const CLUSTER_VERSION: &str = "3.5.0";

/// A boxed future returned by [`MemberStatus::range_probe`].
pub type ProbeFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Member state needed by the health/readiness/version HTTP handlers.
pub trait MemberStatus: Send + Sync + 'static {
    /// True when this member knows a raft leader (`RAFT NO LEADER` otherwise).
    fn has_leader(&self) -> bool;
    /// Names of the active alarms, etcd's spelling: `"NOSPACE"`, `"CORRUPT"`.
    fn alarms(&self) -> Vec<String>;
    /// True when this member is a raft learner.
    fn is_learner(&self) -> bool;
    /// A Range probe (`keys_only`, `limit 1`) like etcd's health check. `serializable`
    /// false goes through ReadIndex. `Err` carries the error text (for `RANGE ERROR:...`).
    fn range_probe(&self, serializable: bool) -> ProbeFuture<'_>;
    /// `etcdserver` field of `/version` (e.g. "3.5.17").
    fn server_version(&self) -> String {
        SERVER_VERSION.to_string()
    }
    /// `etcdcluster` field of `/version` (e.g. "3.5.0").
    fn cluster_version(&self) -> String {
        CLUSTER_VERSION.to_string()
    }
}
