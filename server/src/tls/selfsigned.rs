//! `--auto-tls`: a self-signed certificate for this member's hosts, made once and kept in
//! the data directory (`fixtures/client`, as etcd does), reused on restarts.

use std::path::{Path, PathBuf};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};

use super::TlsError;

/// Where a self-signed pair lives, and what it is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelfCertSpec {
    /// The directory holding `cert.pem` and `key.pem`.
    pub dir: PathBuf,
    /// Host names or IP addresses (a `host:port` keeps its host) the certificate names.
    pub hosts: Vec<String>,
    /// `--self-signed-cert-validity`, in years.
    pub validity_years: u64,
    /// Also usable as a client certificate (peers dial each other with it).
    pub client_auth: bool,
}

/// Returns `(cert.pem, key.pem)` in `spec.dir`, generating them when either is missing.
pub fn self_cert(spec: &SelfCertSpec) -> Result<(PathBuf, PathBuf), TlsError> {
    if spec.validity_years == 0 {
        return Err(TlsError(
            "--self-signed-cert-validity: selfSignedCertValidity is invalid,it should be \
             greater than 0"
                .into(),
        ));
    }
    let err = |what: &str, p: &Path, e: &dyn std::fmt::Display| {
        TlsError(format!("--auto-tls: cannot {what} {}: {e}", p.display()))
    };
    std::fs::create_dir_all(&spec.dir).map_err(|e| err("create", &spec.dir, &e))?;
    let cert = spec.dir.join("cert.pem");
    let key = spec.dir.join("key.pem");
    if cert.is_file() && key.is_file() {
        return Ok((cert, key));
    }
    let mut names: Vec<String> = spec
        .hosts
        .iter()
        .map(|h| host_of(h).to_string())
        .filter(|h| !h.is_empty())
        .collect();
    names.dedup();
    let mut params = CertificateParams::new(names).map_err(|e| err("generate", &cert, &e))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "etcd");
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now;
    let days = i64::try_from(spec.validity_years.min(1000)).unwrap_or(1000) * 365;
    params.not_after = now + time::Duration::days(days);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    if spec.client_auth {
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ClientAuth);
    }
    let kp =
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| err("generate", &key, &e))?;
    let c = params
        .self_signed(&kp)
        .map_err(|e| err("generate", &cert, &e))?;
    write_private(&key, kp.serialize_pem().as_bytes()).map_err(|e| err("write", &key, &e))?;
    std::fs::write(&cert, c.pem()).map_err(|e| err("write", &cert, &e))?;
    tracing::warn!(
        cert = %cert.display(),
        validity_years = spec.validity_years,
        "automatically generated a self-signed certificate"
    );
    Ok((cert, key))
}

fn write_private(p: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(p)?;
    f.write_all(data)?;
    f.sync_all()
}

/// `host` of `host:port`, `[v6]:port` or a bare host.
fn host_of(h: &str) -> &str {
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match h.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once() {
        let d = tempfile::tempdir().unwrap();
        let spec = SelfCertSpec {
            dir: d.path().join("fixtures/client"),
            hosts: vec!["127.0.0.1:2379".into(), "localhost".into()],
            validity_years: 1,
            client_auth: false,
        };
        let (c, k) = self_cert(&spec).unwrap();
        let first = std::fs::read(&c).unwrap();
        assert!(String::from_utf8_lossy(&first).contains("BEGIN CERTIFICATE"));
        assert!(std::fs::read_to_string(&k).unwrap().contains("PRIVATE KEY"));
        let again = self_cert(&spec).unwrap();
        assert_eq!(again, (c.clone(), k));
        assert_eq!(std::fs::read(&c).unwrap(), first, "kept, not regenerated");
        let zero = SelfCertSpec {
            validity_years: 0,
            ..spec
        };
        assert!(self_cert(&zero).unwrap_err().0.contains("greater than 0"));
        assert_eq!(host_of("[::1]:2379"), "::1");
        assert_eq!(host_of("a.b:1"), "a.b");
    }
}
