//! Certificates made by the tests (rcgen; no key is checked in) and small helpers to run
//! TLS members and clients. Used by `tests/tls.rs`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_testkit::{etcdctl, Ctl, Output};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SerialNumber,
};

/// A test CA with a server pair (127.0.0.1, localhost), a client pair, a revoked client
/// pair and a CRL listing the revoked one, written as PEM files in `dir`.
pub struct Pki {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub revoked_cert: PathBuf,
    pub revoked_key: PathBuf,
    pub crl: PathBuf,
    /// A CA the member does not trust, and a client pair it signed.
    pub other_cert: PathBuf,
    pub other_key: PathBuf,
    root: (rcgen::Certificate, KeyPair),
}

fn ca(cn: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let c = p.self_signed(&key).expect("ca");
    (c, key)
}

fn leaf(
    cn: &str,
    sans: &[&str],
    server: bool,
    serial: u64,
    issuer: &(rcgen::Certificate, KeyPair),
) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let mut p =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.serial_number = Some(SerialNumber::from(serial));
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    if server {
        p.extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    let c = p.signed_by(&key, &issuer.0, &issuer.1).expect("sign");
    (c.pem(), key.serialize_pem())
}

pub const REVOKED_SERIAL: u64 = 0x0bad_beef;

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let w = |name: &str, data: &str| {
            let p = dir.join(name);
            std::fs::write(&p, data).unwrap();
            p
        };
        let root = ca("cairn test ca");
        let other = ca("untrusted ca");
        let (sc, sk) = leaf("server", &["127.0.0.1", "localhost"], true, 1001, &root);
        let (cc, ck) = leaf("root", &[], false, 1002, &root);
        let (rc, rk) = leaf("revoked", &[], false, REVOKED_SERIAL, &root);
        let (oc, ok) = leaf("root", &[], false, 1003, &other);
        let now = time::OffsetDateTime::now_utc();
        let crl = CertificateRevocationListParams {
            this_update: now - time::Duration::minutes(1),
            next_update: now + time::Duration::days(1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: vec![RevokedCertParams {
                serial_number: SerialNumber::from(REVOKED_SERIAL),
                revocation_time: now - time::Duration::minutes(1),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            }],
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&root.0, &root.1)
        .expect("crl");
        Pki {
            dir: dir.to_path_buf(),
            ca: w("ca.pem", &root.0.pem()),
            server_cert: w("server.pem", &sc),
            server_key: w("server-key.pem", &sk),
            client_cert: w("client.pem", &cc),
            client_key: w("client-key.pem", &ck),
            revoked_cert: w("revoked.pem", &rc),
            revoked_key: w("revoked-key.pem", &rk),
            crl: w("crl.pem", &crl.pem().expect("crl pem")),
            other_cert: w("other.pem", &oc),
            other_key: w("other-key.pem", &ok),
            root,
        }
    }

    /// Another server pair (127.0.0.1) from the same CA, as `(cert, key)` files.
    pub fn new_server_pair(&self, cn: &str) -> (PathBuf, PathBuf) {
        let (c, k) = leaf(cn, &["127.0.0.1"], true, 2001, &self.root);
        let (cp, kp) = (
            self.dir.join(format!("{cn}.pem")),
            self.dir.join(format!("{cn}-key.pem")),
        );
        std::fs::write(&cp, c).unwrap();
        std::fs::write(&kp, k).unwrap();
        (cp, kp)
    }

    /// The member's flags for an https client port requiring client certificates.
    pub fn server_flags(&self, crl: bool) -> Vec<String> {
        let mut v = vec![
            format!("--cert-file={}", self.server_cert.display()),
            format!("--key-file={}", self.server_key.display()),
            format!("--trusted-ca-file={}", self.ca.display()),
            "--client-cert-auth=true".to_string(),
        ];
        if crl {
            v.push(format!("--client-crl-file={}", self.crl.display()));
        }
        v
    }

    /// etcdctl's flags with the good client certificate.
    pub fn ctl_flags(&self) -> Vec<String> {
        self.ctl_flags_with(&self.client_cert, &self.client_key)
    }

    pub fn ctl_flags_with(&self, cert: &Path, key: &Path) -> Vec<String> {
        vec![
            format!("--cacert={}", self.ca.display()),
            format!("--cert={}", cert.display()),
            format!("--key={}", key.display()),
        ]
    }
}

/// etcdctl with extra TLS flags.
pub fn ctl(which: Ctl, endpoint: &str, tls: &[String], args: &[&str]) -> Output {
    let mut a: Vec<&str> = tls.iter().map(String::as_str).collect();
    a.extend_from_slice(args);
    etcdctl(which, endpoint, &a, b"")
}

/// Waits until `etcdctl get` answers with `tls` (`endpoint health` ignores
/// `--insecure-skip-tls-verify`); panics with the log otherwise.
pub fn wait_healthy(endpoint: &str, tls: &[String], log: &dyn Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let o = ctl(Ctl::V351, endpoint, tls, &["get", "probe"]);
        if o.success() {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "{endpoint} not healthy: {}\n{}\nlog:\n{}",
                o.stdout,
                o.stderr,
                log()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A rustls client trusting `ca`, presenting `cert`/`key` when given.
pub fn client_config(ca: &Path, pair: Option<(&Path, &Path)>) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut cfg = match pair {
        Some((c, k)) => b
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(c)
                    .unwrap()
                    .map(|c| c.unwrap())
                    .collect(),
                PrivateKeyDer::from_pem_file(k).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

/// `GET path` over TLS (HTTP/1.1): the status line and body, or the error text.
pub fn https_get(
    addr: &str,
    cfg: Arc<rustls::ClientConfig>,
    path: &str,
) -> Result<(String, String), String> {
    let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(cfg, name).map_err(|e| e.to_string())?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => {}
        // Servers close without close_notify; what was read counts.
        Err(e) if !out.is_empty() => {
            let _ = e;
        }
        Err(e) => return Err(e.to_string()),
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.lines().next().unwrap_or_default().to_string();
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Ok((status, body))
}

/// The certificate the server at `addr` presents (DER), after a full handshake.
pub fn served_cert(addr: &str, cfg: Arc<rustls::ClientConfig>) -> Vec<u8> {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(cfg, name).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    s.flush().unwrap();
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).unwrap();
    }
    s.conn.peer_certificates().unwrap()[0].to_vec()
}

/// The DER of the first certificate of a PEM file.
pub fn pem_cert(p: &Path) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_file(p)
        .unwrap()
        .to_vec()
}
