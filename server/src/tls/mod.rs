//! TLS for the member's listeners, with rustls (ring provider): etcd's `TLSInfo` as
//! [`TlsInfo`], turned into a rustls [`ServerConfig`] (a listener) or [`ClientConfig`]
//! (dialing a member). Used by the client port and the peer port ([`TlsInfo::peer_configs`]:
//! `--peer-cert-allowed-cn`/`-hostname`, unverified `--peer-auto-tls` dialing, in [`peer`]).
//!
//! - Certificates: [`reload::ReloadingKeyPair`] re-reads the key pair when its files
//!   change (checked at most once a second, on handshakes); CRLs likewise.
//! - Client certificates are required when `--client-cert-auth` or `--trusted-ca-file` is
//!   set (etcd's rule), verified against the trusted CA file and the CRL file.
//! - `--cipher-suites` (Go's names), `--tls-min-version`/`--tls-max-version`:
//!   [`suites`]. `--auto-tls`: [`selfsigned`]. Handshakes off the accept loop, under a
//!   deadline: [`accept`].

mod accept;
mod peer;
mod reload;
mod selfsigned;
mod suites;

use std::path::PathBuf;
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore, ServerConfig};

pub use accept::{tls_incoming, TlsConn, TlsConnectInfo, HANDSHAKE_TIMEOUT};
pub use peer::{common_name, AllowedPeer};
pub use reload::ReloadingKeyPair;
pub use selfsigned::{self_cert, SelfCertSpec};
pub use suites::{parse_cipher_suites, TlsVersion};

/// A TLS set-up error; the text names the flag.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

/// Which flags a [`TlsInfo`] came from (for error messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// `--cert-file`, `--key-file`, `--trusted-ca-file`, `--client-crl-file`.
    Client,
    /// `--peer-cert-file`, `--peer-key-file`, `--peer-trusted-ca-file`, `--peer-crl-file`.
    Peer,
}

impl Side {
    fn flag(self, name: &str) -> String {
        match (self, name) {
            (Side::Client, "crl-file") => "client-crl-file".into(),
            (Side::Client, n) => n.into(),
            (Side::Peer, n) => format!("peer-{n}"),
        }
    }
}

/// etcd's `TLSInfo` for one side: the files and the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsInfo {
    pub side: Side,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub trusted_ca_file: Option<PathBuf>,
    pub client_cert_auth: bool,
    pub crl_file: Option<PathBuf>,
    /// `--cipher-suites`, Go names (empty = rustls's defaults).
    pub cipher_suites: Vec<String>,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
}

impl TlsInfo {
    fn provider(&self) -> Result<Arc<rustls::crypto::CryptoProvider>, TlsError> {
        let ids = parse_cipher_suites(&self.cipher_suites)
            .map_err(|e| TlsError(format!("--cipher-suites: {e}")))?;
        Ok(Arc::new(suites::provider(&ids)))
    }

    fn versions(&self) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, TlsError> {
        let min = self.min_version.unwrap_or(TlsVersion::Tls12);
        let max = self.max_version.unwrap_or(TlsVersion::Tls13);
        if min > max {
            return Err(TlsError(format!(
                "--tls-min-version: min version ({min}) is greater than max version ({max})"
            )));
        }
        let mut v = Vec::new();
        if min <= TlsVersion::Tls12 {
            v.push(&rustls::version::TLS12);
        }
        if max >= TlsVersion::Tls13 {
            v.push(&rustls::version::TLS13);
        }
        Ok(v)
    }

    fn key_pair(
        &self,
        provider: &Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Arc<ReloadingKeyPair>, TlsError> {
        let (cf, kf) = (self.side.flag("cert-file"), self.side.flag("key-file"));
        if self.cert_file.as_os_str().is_empty() || self.key_file.as_os_str().is_empty() {
            return Err(TlsError(format!(
                "--{cf}, --{kf}: KeyFile and CertFile must both be present[key: {}, cert: {}]",
                self.key_file.display(),
                self.cert_file.display()
            )));
        }
        Ok(Arc::new(ReloadingKeyPair::new(
            (cf, kf),
            self.cert_file.clone(),
            self.key_file.clone(),
            provider.clone(),
        )?))
    }

    fn roots(&self) -> Result<Option<Arc<RootCertStore>>, TlsError> {
        let Some(ca) = &self.trusted_ca_file else {
            return Ok(None);
        };
        let flag = self.side.flag("trusted-ca-file");
        let mut roots = RootCertStore::empty();
        for c in reload::read_certs(&flag, ca)? {
            roots
                .add(c)
                .map_err(|e| TlsError(format!("--{flag} {}: {e}", ca.display())))?;
        }
        Ok(Some(Arc::new(roots)))
    }

    /// A listener's configuration: loads (and checks) the key pair, the CA and the CRL now,
    /// so bad files fail start-up. ALPN offers h2 and http/1.1 (gRPC and the HTTP
    /// endpoints share the port).
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        self.build_server(&AllowedPeer::default())
    }

    fn build_server(&self, allowed: &AllowedPeer) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = self.provider()?;
        let versions = self.versions()?;
        let pair = self.key_pair(&provider)?;
        let roots = self.roots()?;
        let wants_client_cert = self.client_cert_auth || roots.is_some();
        let verifier: Arc<dyn rustls::server::danger::ClientCertVerifier> =
            if !wants_client_cert {
                rustls::server::WebPkiClientVerifier::no_client_auth()
            } else {
                let Some(roots) = roots else {
                    return Err(TlsError(format!(
                        "--{}: client certificates are verified against --{}, which is not set \
                     (cairn has no system certificate pool)",
                        self.side.flag("client-cert-auth"),
                        self.side.flag("trusted-ca-file")
                    )));
                };
                match &self.crl_file {
                    Some(crl) => Arc::new(reload::CrlVerifier::new(
                        roots,
                        self.side.flag("crl-file"),
                        crl.clone(),
                        provider.clone(),
                    )?),
                    None => reload::webpki_verifier(roots, Vec::new(), provider.clone()).map_err(
                        |e| TlsError(format!("--{}: {e}", self.side.flag("trusted-ca-file"))),
                    )?,
                }
            };
        let verifier: Arc<dyn rustls::server::danger::ClientCertVerifier> =
            if wants_client_cert && !allowed.is_empty() {
                Arc::new(peer::AllowedClientVerifier {
                    inner: verifier,
                    allowed: allowed.clone(),
                })
            } else {
                verifier
            };
        let mut cfg = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| TlsError(format!("--cipher-suites/--tls-min-version: {e}")))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(pair);
        if self.side == Side::Client {
            cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        }
        Ok(Arc::new(cfg))
    }

    /// A dialer's configuration: trusts `trusted_ca_file` (required: there is no system
    /// pool) and presents the key pair.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let provider = self.provider()?;
        let versions = self.versions()?;
        let pair = self.key_pair(&provider)?;
        let Some(roots) = self.roots()? else {
            return Err(TlsError(format!(
                "--{}: needed to verify the members dialed",
                self.side.flag("trusted-ca-file")
            )));
        };
        let mut cfg = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| TlsError(format!("--cipher-suites/--tls-min-version: {e}")))?
            .with_root_certificates(roots)
            .with_client_cert_resolver(pair);
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(cfg))
    }

    /// The peer port's configurations: the listener's (client certificates required when
    /// a CA or `--peer-client-cert-auth` is given, then checked against `allowed`) and the
    /// dialer's, which presents the same key pair as its client certificate (as etcd's
    /// peers do) and verifies the other member's certificate against the CA and `allowed`.
    /// With `insecure` (`--peer-auto-tls` and no CA) the dialer encrypts without verifying,
    /// as etcd's auto-tls does.
    pub fn peer_configs(
        &self,
        allowed: &AllowedPeer,
        insecure: bool,
    ) -> Result<(Arc<ServerConfig>, Arc<ClientConfig>), TlsError> {
        let server = self.build_server(allowed)?;
        let provider = self.provider()?;
        let versions = self.versions()?;
        let pair = self.key_pair(&provider)?;
        let inner: Option<Arc<dyn rustls::client::danger::ServerCertVerifier>> = match self
            .roots()?
        {
            Some(roots) => Some(
                rustls::client::WebPkiServerVerifier::builder_with_provider(
                    roots,
                    provider.clone(),
                )
                .build()
                .map_err(|e| TlsError(format!("--{}: {e}", self.side.flag("trusted-ca-file"))))?,
            ),
            None if insecure => None,
            None => {
                return Err(TlsError(format!(
                    "--{}: needed to verify the members dialed (cairn has no system \
                         certificate pool)",
                    self.side.flag("trusted-ca-file")
                )))
            }
        };
        let verifier = Arc::new(peer::PeerServerVerifier {
            inner,
            allowed: allowed.clone(),
            provider: provider.clone(),
        });
        let client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| TlsError(format!("--cipher-suites/--tls-min-version: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(pair);
        Ok((server, Arc::new(client)))
    }
}
