//! Certificates and CRLs read from disk, and read again when the files change: the server
//! certificate is looked at (one `stat` of each file, at most once per [`RECHECK`]) on each
//! handshake, like etcd, which re-reads its key pair on every handshake. A new pair that
//! does not load is logged and the previous one kept; a CRL that can no longer be read
//! refuses client certificates until it can (etcd fails such handshakes too).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

use super::TlsError;

/// How often a handshake may look at the files again.
pub(super) const RECHECK: Duration = Duration::from_secs(1);

/// What identifies a version of a file without reading it.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(p: &Path) -> Stamp {
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// An I/O error worded like Go's (`open /x: no such file or directory`).
fn io_text(path: &Path, e: &std::io::Error) -> String {
    let why = match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    };
    format!("open {}: {why}", path.display())
}

pub(super) fn read(flag: &str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError(format!("--{flag}: {}", io_text(path, &e))))
}

/// The certificates of a PEM file (`--trusted-ca-file`, a chain).
pub(super) fn read_certs(
    flag: &str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(flag, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("--{flag} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "--{flag} {}: tls: failed to find any PEM data in certificate input",
            path.display()
        )));
    }
    Ok(certs)
}

/// Loads a certificate chain and its key, checking that they belong together.
pub(super) fn load_key_pair(
    cert_flag: &str,
    cert: &Path,
    key_flag: &str,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = read_certs(cert_flag, cert)?;
    let key_pem = read(key_flag, key)?;
    let der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        TlsError(format!(
            "--{key_flag} {}: tls: failed to find any PEM data in key input ({e})",
            key.display()
        ))
    })?;
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| TlsError(format!("--{key_flag} {}: {e}", key.display())))?;
    let ck = CertifiedKey::new(chain, signing);
    match ck.keys_match() {
        Ok(()) => Ok(ck),
        // rustls cannot tell for some key types; the handshake would fail then.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(ck),
        Err(_) => Err(TlsError(format!(
            "--{cert_flag} {} and --{key_flag} {}: tls: private key does not match public key",
            cert.display(),
            key.display()
        ))),
    }
}

struct Loaded {
    stamps: (Stamp, Stamp),
    key: Arc<CertifiedKey>,
    checked: Instant,
}

/// A key pair served from two files, reloaded when either changes.
pub struct ReloadingKeyPair {
    flags: (String, String),
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    loaded: Mutex<Loaded>,
}

impl std::fmt::Debug for ReloadingKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingKeyPair")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish()
    }
}

impl ReloadingKeyPair {
    /// Loads the pair now: a start-up error names the flag.
    pub(super) fn new(
        flags: (String, String),
        cert: PathBuf,
        key: PathBuf,
        provider: Arc<CryptoProvider>,
    ) -> Result<ReloadingKeyPair, TlsError> {
        let stamps = (stamp(&cert), stamp(&key));
        let ck = load_key_pair(&flags.0, &cert, &flags.1, &key, &provider)?;
        Ok(ReloadingKeyPair {
            flags,
            cert,
            key,
            provider,
            loaded: Mutex::new(Loaded {
                stamps,
                key: Arc::new(ck),
                checked: Instant::now(),
            }),
        })
    }

    /// The current pair, reloaded first when the files changed.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let mut l = self.loaded.lock();
        if l.checked.elapsed() >= RECHECK {
            l.checked = Instant::now();
            let stamps = (stamp(&self.cert), stamp(&self.key));
            if stamps != l.stamps {
                match load_key_pair(
                    &self.flags.0,
                    &self.cert,
                    &self.flags.1,
                    &self.key,
                    &self.provider,
                ) {
                    Ok(ck) => {
                        tracing::info!(cert = %self.cert.display(), "reloaded TLS certificate");
                        l.key = Arc::new(ck);
                        l.stamps = stamps;
                    }
                    // Half-written files settle; keep serving the previous pair meanwhile.
                    Err(e) => tracing::warn!(error = %e, "cannot reload TLS certificate"),
                }
            }
        }
        l.key.clone()
    }
}

impl ResolvesServerCert for ReloadingKeyPair {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for ReloadingKeyPair {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Client certificate verification against a fixed CA pool (read at start-up, as etcd
/// does) and a CRL re-read when its file changes.
pub(super) struct CrlVerifier {
    roots: Arc<RootCertStore>,
    crl_flag: String,
    crl: PathBuf,
    provider: Arc<CryptoProvider>,
    hints: Vec<DistinguishedName>,
    schemes: Vec<SignatureScheme>,
    /// (the CRL file's stamp, when it was last looked at, the verifier built from it).
    current: Mutex<(Stamp, Instant, Built)>,
}

impl std::fmt::Debug for CrlVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrlVerifier")
            .field("crl", &self.crl)
            .finish()
    }
}

/// A verifier, or why the CRL could not be used.
type Built = Result<Arc<dyn ClientCertVerifier>, String>;

/// A webpki verifier over `roots`, with the CRLs of `crl` (when given): only the client's
/// own certificate is looked up, and a certificate the CRL does not list passes, as in
/// etcd (which compares serial numbers).
pub(super) fn webpki_verifier(
    roots: Arc<RootCertStore>,
    crls: Vec<CertificateRevocationListDer<'static>>,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let mut b = WebPkiClientVerifier::builder_with_provider(roots, provider);
    if !crls.is_empty() {
        b = b
            .with_crls(crls)
            .only_check_end_entity_revocation()
            .allow_unknown_revocation_status();
    }
    b.build().map_err(|e| e.to_string())
}

fn read_crls(
    flag: &str,
    path: &Path,
) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let bytes = read(flag, path).map_err(|e| e.0)?;
    let crls = if bytes.windows(10).any(|w| w == b"-----BEGIN") {
        CertificateRevocationListDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("--{flag} {}: {e}", path.display()))?
    } else {
        // etcd reads DER CRLs.
        vec![CertificateRevocationListDer::from(bytes)]
    };
    if crls.is_empty() {
        return Err(format!("--{flag} {}: no CRL found", path.display()));
    }
    Ok(crls)
}

impl CrlVerifier {
    pub(super) fn new(
        roots: Arc<RootCertStore>,
        crl_flag: String,
        crl: PathBuf,
        provider: Arc<CryptoProvider>,
    ) -> Result<CrlVerifier, TlsError> {
        let st = stamp(&crl);
        let crls = read_crls(&crl_flag, &crl).map_err(TlsError)?;
        let inner = webpki_verifier(roots.clone(), crls, provider.clone())
            .map_err(|e| TlsError(format!("--{crl_flag} {}: {e}", crl.display())))?;
        Ok(CrlVerifier {
            hints: inner.root_hint_subjects().to_vec(),
            schemes: inner.supported_verify_schemes(),
            roots,
            crl_flag,
            crl,
            provider,
            current: Mutex::new((st, Instant::now(), Ok(inner))),
        })
    }

    fn inner(&self) -> Result<Arc<dyn ClientCertVerifier>, String> {
        let mut c = self.current.lock();
        if c.1.elapsed() >= RECHECK {
            c.1 = Instant::now();
            let st = stamp(&self.crl);
            if st != c.0 || c.2.is_err() {
                c.0 = st;
                c.2 = read_crls(&self.crl_flag, &self.crl).and_then(|crls| {
                    webpki_verifier(self.roots.clone(), crls, self.provider.clone())
                });
                match &c.2 {
                    Ok(_) => tracing::info!(crl = %self.crl.display(), "reloaded CRL"),
                    Err(e) => tracing::warn!(error = %e, "cannot reload the CRL"),
                }
            }
        }
        c.2.clone()
    }
}

impl ClientCertVerifier for CrlVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match self.inner() {
            Ok(v) => v.verify_client_cert(end_entity, intermediates, now),
            Err(e) => Err(rustls::Error::General(e)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}
