//! [`Options`]: a [`Config`] resolved into the forms the member's parts use. The library
//! converts; callers only ever build a [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{AutoCompaction, ClusterState, Config, Scheme, Url};
use crate::error::{Error, Result};
use crate::tls::{AllowedPeer, SelfCertSpec, Side, TlsInfo};

/// What `Server::start` takes from a [`Config`], in the forms the member's parts use:
/// bind addresses, URLs as text, the quota as an option. Made only by [`Options::new`], so
/// it has no defaults of its own.
#[derive(Debug)]
pub(crate) struct Options {
    pub(crate) name: String,
    pub(crate) data_dir: PathBuf,
    /// Addresses to serve gRPC + HTTP on (port 0 = any free port), each with whether it
    /// is an https listener.
    pub(crate) listen_client_addrs: Vec<(SocketAddr, bool)>,
    /// The client port's TLS, when a listener is https: the files (empty for `--auto-tls`
    /// until [`Options::client_tls_config`] makes them) and the policy.
    pub(crate) client_tls: Option<TlsInfo>,
    /// `--auto-tls` with no `--cert-file`: where the self-signed pair is kept.
    pub(crate) client_self_cert: Option<SelfCertSpec>,
    /// Client URLs reported by MemberList; empty = derived from the bound addresses.
    pub(crate) advertise_client_urls: Vec<String>,
    pub(crate) initial_advertise_peer_urls: Vec<String>,
    /// Addresses the peer transport listens on (empty = none), each with whether it is an
    /// https listener.
    pub(crate) listen_peer_addrs: Vec<(SocketAddr, bool)>,
    /// The peer port's TLS (https listeners, dialing https members), when any peer URL
    /// is https or peer TLS flags are given; files empty for `--peer-auto-tls` until
    /// [`Options::peer_tls_config`] makes them.
    pub(crate) peer_tls: Option<TlsInfo>,
    /// `--peer-auto-tls` with no `--peer-cert-file`: where the self-signed pair is kept.
    pub(crate) peer_self_cert: Option<SelfCertSpec>,
    /// `--peer-cert-allowed-cn` / `--peer-cert-allowed-hostname`.
    pub(crate) peer_allowed: AllowedPeer,
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
    /// `--listen-metrics-urls` (with whether each is https) and `--metrics extensive`.
    pub(crate) listen_metrics_addrs: Vec<(SocketAddr, bool)>,
    pub(crate) metrics_extensive: bool,
}

impl Options {
    /// Resolves `cfg`: listen URLs become socket addresses; https listeners get the
    /// client or peer TLS settings.
    pub(crate) fn new(cfg: &Config) -> Result<Options> {
        let bind = |urls: &[Url], flag: &str, tls_ok: bool| -> Result<Vec<(SocketAddr, bool)>> {
            let mut addrs = Vec::new();
            for u in urls {
                let https = u.scheme == Scheme::Https;
                if https && !tls_ok {
                    return Err(Error::Internal(format!(
                        "{flag} {u}: TLS is not supported by cairn yet"
                    )));
                }
                let a = u
                    .bind_addr()
                    .map_err(|e| Error::Internal(format!("{flag}: {e}")))?;
                addrs.push((a, https));
            }
            Ok(addrs)
        };
        let listen_client_addrs = bind(&cfg.listen_client_urls, "--listen-client-urls", true)?;
        let listen_metrics_addrs = bind(&cfg.listen_metrics_urls, "--listen-metrics-urls", true)?;
        let any_https = listen_client_addrs
            .iter()
            .chain(&listen_metrics_addrs)
            .any(|(_, https)| *https);
        let files = cfg.cert_file.is_some() || cfg.key_file.is_some();
        let client_tls = any_https.then(|| TlsInfo {
            side: Side::Client,
            cert_file: cfg.cert_file.clone().unwrap_or_default(),
            key_file: cfg.key_file.clone().unwrap_or_default(),
            trusted_ca_file: cfg.trusted_ca_file.clone(),
            client_cert_auth: cfg.client_cert_auth,
            crl_file: cfg.client_crl_file.clone(),
            cipher_suites: cfg.cipher_suites.clone(),
            min_version: cfg.tls_min_version,
            max_version: cfg.tls_max_version,
        });
        let client_self_cert = (any_https && cfg.auto_tls && !files).then(|| SelfCertSpec {
            dir: cfg.data_dir.join("fixtures").join("client"),
            hosts: cfg
                .listen_client_urls
                .iter()
                .map(|u| u.host.clone())
                .collect(),
            validity_years: cfg.self_signed_cert_validity,
            client_auth: false,
        });
        let listen_peer_addrs = bind(&cfg.listen_peer_urls, "--listen-peer-urls", true)?;
        let peer_https = listen_peer_addrs.iter().any(|(_, https)| *https)
            || cfg
                .initial_advertise_peer_urls
                .iter()
                .chain(cfg.initial_cluster.iter().map(|(_, u)| u))
                .any(|u| u.scheme == Scheme::Https);
        let peer_files = cfg.peer_cert_file.is_some() || cfg.peer_key_file.is_some();
        // As etcd: peer TLS is on when its files or auto-tls are given (an http member may
        // still dial https members, e.g. one added later with MemberAdd).
        let peer_on = peer_https || peer_files || cfg.peer_auto_tls;
        let peer_tls = peer_on.then(|| TlsInfo {
            side: Side::Peer,
            cert_file: cfg.peer_cert_file.clone().unwrap_or_default(),
            key_file: cfg.peer_key_file.clone().unwrap_or_default(),
            trusted_ca_file: cfg.peer_trusted_ca_file.clone(),
            client_cert_auth: cfg.peer_client_cert_auth,
            crl_file: cfg.peer_crl_file.clone(),
            cipher_suites: cfg.cipher_suites.clone(),
            min_version: cfg.tls_min_version,
            max_version: cfg.tls_max_version,
        });
        let peer_self_cert = (peer_on && cfg.peer_auto_tls && !peer_files).then(|| SelfCertSpec {
            dir: cfg.data_dir.join("fixtures").join("peer"),
            hosts: cfg
                .listen_peer_urls
                .iter()
                .chain(&cfg.initial_advertise_peer_urls)
                .map(|u| u.host.clone())
                .collect(),
            validity_years: cfg.self_signed_cert_validity,
            client_auth: true,
        });
        let text = |urls: &[Url]| urls.iter().map(Url::to_string).collect::<Vec<_>>();
        Ok(Options {
            name: cfg.name.clone(),
            data_dir: cfg.data_dir.clone(),
            listen_client_addrs,
            listen_metrics_addrs,
            metrics_extensive: cfg.metrics_extensive,
            client_tls,
            client_self_cert,
            advertise_client_urls: text(&cfg.advertise_client_urls),
            initial_advertise_peer_urls: text(&cfg.initial_advertise_peer_urls),
            listen_peer_addrs,
            peer_tls,
            peer_self_cert,
            peer_allowed: AllowedPeer {
                cn: cfg.peer_cert_allowed_cn.clone(),
                hostname: cfg.peer_cert_allowed_hostname.clone(),
            },
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

    /// The https listeners' rustls configuration (`None` without https listeners): makes
    /// the `--auto-tls` pair when needed, loads and checks the files.
    pub(crate) fn client_tls_config(&self) -> Result<Option<Arc<rustls::ServerConfig>>> {
        let Some(info) = &self.client_tls else {
            return Ok(None);
        };
        let mut info = info.clone();
        if let Some(spec) = &self.client_self_cert {
            let (cert, key) =
                crate::tls::self_cert(spec).map_err(|e| Error::Internal(e.to_string()))?;
            info.cert_file = cert;
            info.key_file = key;
        }
        info.server_config()
            .map(Some)
            .map_err(|e| Error::Internal(e.to_string()))
    }

    /// The peer port's rustls configurations, listener's and dialer's (`None` without
    /// peer TLS): makes the `--peer-auto-tls` pair when needed, loads and checks the files.
    /// Whether inbound peer certificates are verified against `--peer-trusted-ca-file`.
    pub(crate) fn peer_tls_verifies_peers(&self) -> bool {
        self.peer_tls
            .as_ref()
            .is_some_and(|i| i.trusted_ca_file.is_some())
    }

    pub(crate) fn peer_tls_config(
        &self,
    ) -> Result<Option<(Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>)>> {
        let Some(info) = &self.peer_tls else {
            return Ok(None);
        };
        let mut info = info.clone();
        let auto = self.peer_self_cert.is_some();
        if let Some(spec) = &self.peer_self_cert {
            let (cert, key) = crate::tls::self_cert(spec)
                .map_err(|e| Error::Internal(e.0.replace("--auto-tls", "--peer-auto-tls")))?;
            info.cert_file = cert;
            info.key_file = key;
        }
        // etcd's auto-tls dials without verifying (there is no CA to verify against).
        let insecure = auto && info.trusted_ca_file.is_none();
        info.peer_configs(&self.peer_allowed, insecure)
            .map(Some)
            .map_err(|e| Error::Internal(e.to_string()))
    }
}
