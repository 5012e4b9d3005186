//! cairn-server: an etcd v3 member.
//!
//! [`Server::start`] takes a [`Config`] (etcd's flags, `ETCD_*` variables and
//! `--config-file` YAML, parsed by [`config`]) and serves until [`Server::stop`]. How the
//! member is built — the path of a Put from gRPC to disk, the threads, the formats — is in
//! `docs/architecture.md` at the repository root.
//!
//! Modules, lowest layer first; each uses only modules above it (the `module_layers` test
//! fails on any import cycle):
//! - `error`, `pb`, [`schema`]: client-visible errors and [`error::Fatal`]; generated
//!   protobuf code; the backend file's layout (bucket names, meta keys, member JSON);
//!   `fileutil`: the data directory's permissions (0700 directories, 0600 files);
//!   `metrics`: the Prometheus registry with etcd's metric names (uses no other module).
//! - `mvcc`: the revision store (cairn-index + cairn-engine with etcd's bucket layout).
//! - [`membership`]: member and cluster ids, derived like etcd's; the member records.
//! - `lease`: the lessor (leases, deadlines, attached keys).
//! - `watch`: the watch hub (synced and catching-up watchers, bounded stream queues).
//! - `state`: `State`, what applying entries changes and what reads see.
//! - `apply`: `apply(&State, Op)`; the raft entry format and the typed request/response
//!   pairs (`apply/request.rs`).
//! - `transport`: raft messages and snapshots between members (Cairn's own protocol).
//! - `snapshot`: installing a backend received from the leader; a pinned view of ours.
//! - `raft`: the raft-rs loop thread and `Proposer`, the handle the services use.
//! - `api`: the gRPC services (KV, Watch, Lease, Cluster, Maintenance; health); request
//!   checks; unknown services answer Unimplemented.
//! - `tasks`: lease expiry and checkpoints, automatic compaction.
//! - `recover`: start-up and crash recovery.
//! - [`tls`]: rustls configurations from etcd's TLS flags, certificate reloading,
//!   `--auto-tls`, the TLS accept loop with its handshake deadline.
//! - [`config`], [`http`], [`status`]: configuration; `/health`, `/version`, `/livez`,
//!   `/readyz`; the [`status::MemberStatus`] trait the HTTP handlers use.
//! - `server`: [`Server`], wiring it all together.

mod api;
mod apply;
pub mod config;
pub mod error;
mod fileutil;
pub mod http;
mod lease;
pub mod logging;
pub mod membership;
mod metrics;
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
pub mod tls;
mod transport;
mod watch;

pub use config::{AutoCompaction, Config};
pub use error::Error;
pub use server::Server;

/// The HTTP routes served next to gRPC on the client port.
fn http_routes(status: std::sync::Arc<dyn status::MemberStatus>) -> axum::Router {
    http::router(status)
}
