//! cairn-server: an etcd v3 member.
//!
//! Module map (see ../shared/DESIGN.md):
//! - `server`: [`Server::start`] (taking a [`Config`]) / [`Server::stop`] — the entry point.
//! - `api`: the gRPC services (KV, Maintenance, Cluster; health); unknown services answer
//!   Unimplemented.
//! - `raft`: the raft-rs loop: proposals, WAL group commit, apply, ReadIndex batching,
//!   backend batch commits, log compaction.
//! - `apply`: executes committed requests (one revision per write request).
//! - `mvcc`: the revision store (cairn-index + cairn-engine with etcd's bucket layout).
//! - `membership`: member and cluster ids, derived like etcd's.
//! - `schema`: the backend file's layout (bucket names, meta keys, member JSON), shared
//!   with `cairnutl`.
//! - `compactor`: automatic compaction.
//! - `transport`: raft messages and snapshots between members (Cairn's own protocol).
//! - `snapshot`: installing a backend received from the leader; streaming ours.
//! - `lease`: the lessor (grant, revoke, keep-alive, expiry through raft).
//! - `watch`: the watchable store (synced and catching-up watchers, bounded stream queues).
//! - `config`: [`Config`], a member's configuration, from etcd's flags, `ETCD_*` environment
//!   variables and `--config-file` YAML; the command-line tokenizer of `cairn` and
//!   `cairnutl`.
//! - `http`: `/health`, `/version`, `/livez`, `/readyz` on the client port.
//! - `status`: the [`status::MemberStatus`] trait the HTTP handlers are written against.
//! - `pb`: generated protobuf/gRPC code for etcd's packages.
//! - `error`: etcd's client-visible errors.

mod api;
mod apply;
pub mod config;
pub mod error;
pub mod http;
mod lease;
pub mod membership;
mod mvcc;
pub mod pb;
mod raft;
mod recover;
pub mod schema;
mod server;
mod snapshot;
mod state;
pub mod status;
mod tasks;
mod transport;
mod watch;

pub use config::{AutoCompaction, Config};
pub use error::Error;
pub use server::Server;

/// The HTTP routes served next to gRPC on the client port.
fn http_routes(status: std::sync::Arc<dyn status::MemberStatus>) -> axum::Router {
    http::router(status)
}
