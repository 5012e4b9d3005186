//! [`Options`]: a [`Config`] resolved into the forms the member's parts use. The library
//! converts; callers only ever build a [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{AutoCompaction, ClusterState, Config, Scheme, Url};
use crate::error::{Error, Result};

/// What `Server::start` takes from a [`Config`], in the forms the member's parts use:
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
    pub(crate) initial_corrupt_check: bool,
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
            initial_corrupt_check: cfg.initial_corrupt_check,
        })
    }
}
