//! `compare --tls`: a throw-away CA, a server certificate for 127.0.0.1 and localhost,
//! and a client certificate, made with rcgen and written as PEM files into the run's
//! temporary directory. Both servers get the same files.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SerialNumber,
};

use crate::conn::BenchError;

/// The PEM files of one run.
#[derive(Clone, Debug)]
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

fn tls_err(e: rcgen::Error) -> BenchError {
    BenchError::Setup(format!("generating test certificates: {e}"))
}

impl Pki {
    /// Generates the certificates (ECDSA P-256, rcgen's default) into `dir`.
    pub fn generate(dir: &Path) -> Result<Pki, BenchError> {
        std::fs::create_dir_all(dir)?;
        let ca_key = KeyPair::generate().map_err(tls_err)?;
        let mut p = CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
        p.distinguished_name
            .push(DnType::CommonName, "cairn-bench compare ca");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = p.self_signed(&ca_key).map_err(tls_err)?;
        let leaf = |cn: &str, sans: &[&str], server: bool, serial: u64| {
            let key = KeyPair::generate().map_err(tls_err)?;
            let mut p =
                CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                    .map_err(tls_err)?;
            p.distinguished_name.push(DnType::CommonName, cn);
            p.serial_number = Some(SerialNumber::from(serial));
            p.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            // etcd's gateway dials the server with the server's own pair: it needs both.
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            if server {
                p.extended_key_usages
                    .push(ExtendedKeyUsagePurpose::ServerAuth);
            }
            let c = p.signed_by(&key, &ca, &ca_key).map_err(tls_err)?;
            Ok::<_, BenchError>((c.pem(), key.serialize_pem()))
        };
        let (sc, sk) = leaf("server", &["127.0.0.1", "localhost"], true, 2)?;
        let (cc, ck) = leaf("root", &[], false, 3)?;
        let w = |name: &str, data: &str| -> Result<PathBuf, BenchError> {
            let p = dir.join(name);
            std::fs::write(&p, data)?;
            Ok(p)
        };
        Ok(Pki {
            ca: w("ca.pem", &ca.pem())?,
            server_cert: w("server.pem", &sc)?,
            server_key: w("server-key.pem", &sk)?,
            client_cert: w("client.pem", &cc)?,
            client_key: w("client-key.pem", &ck)?,
        })
    }

    /// The server flags, the same for etcd and Cairn.
    pub fn server_flags(&self) -> Vec<String> {
        vec![
            format!("--cert-file={}", self.server_cert.display()),
            format!("--key-file={}", self.server_key.display()),
            format!("--trusted-ca-file={}", self.ca.display()),
            "--client-cert-auth".to_string(),
        ]
    }

    /// `cairn-bench`'s flags for the client side.
    pub fn client_flags(&self) -> Vec<String> {
        vec![
            format!("--cacert={}", self.ca.display()),
            format!("--cert={}", self.client_cert.display()),
            format!("--key={}", self.client_key.display()),
        ]
    }
}
