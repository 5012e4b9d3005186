//! What the peer port adds to [`super::TlsInfo`]: `--peer-cert-allowed-cn` and
//! `--peer-cert-allowed-hostname` (checked on the verified certificate of the other
//! member, on both sides of a connection, as etcd's `VerifyPeerCertificate` is), and the
//! unverified dialing of `--peer-auto-tls` without a CA (etcd's `InsecureSkipVerify`).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// `--peer-cert-allowed-cn` / `--peer-cert-allowed-hostname` (at most one is set).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedPeer {
    pub cn: Option<String>,
    pub hostname: Option<String>,
}

impl AllowedPeer {
    pub fn is_empty(&self) -> bool {
        self.cn.is_none() && self.hostname.is_none()
    }

    /// Whether the (already verified) end-entity certificate `cert` is allowed; the error
    /// names the certificate's CN.
    pub fn check(&self, cert: &CertificateDer<'_>) -> Result<(), String> {
        if self.is_empty() {
            return Ok(());
        }
        let cn = common_name(cert.as_ref());
        if let (Some(want), Some(cn)) = (&self.cn, &cn) {
            if want == cn {
                return Ok(());
            }
        }
        if let Some(host) = &self.hostname {
            let ok = ServerName::try_from(host.as_str())
                .ok()
                .zip(webpki::EndEntityCert::try_from(cert).ok())
                .is_some_and(|(name, ee)| ee.verify_is_valid_for_subject_name(&name).is_ok());
            if ok {
                return Ok(());
            }
        }
        let cn = cn.unwrap_or_default();
        Err(match (&self.cn, &self.hostname) {
            (Some(want), _) => {
                format!("peer certificate CN {cn:?} is not allowed (--peer-cert-allowed-cn={want})")
            }
            (None, Some(want)) => format!(
                "peer certificate (CN {cn:?}) is not valid for --peer-cert-allowed-hostname={want}"
            ),
            (None, None) => String::new(),
        })
    }
}

impl AllowedPeer {
    /// [`AllowedPeer::check`] on a verified certificate during a handshake: a refusal is
    /// logged (warn, with the CN and `what`) and fails the handshake.
    fn enforce(&self, cert: &CertificateDer<'_>, what: &str) -> Result<(), rustls::Error> {
        self.check(cert).map_err(|why| {
            tracing::warn!(
                cn = %common_name(cert.as_ref()).unwrap_or_default(),
                reason = %why,
                "{what}"
            );
            rustls::Error::General(why)
        })
    }
}

/// The subject's CommonName of a DER certificate (the first one), if it has one.
pub fn common_name(der: &[u8]) -> Option<String> {
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serial,
    // signature, issuer, validity, subject, ... }, ... }
    let (tag, cert, _) = tlv(der)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, tbs, _) = tlv(cert)?;
    if tag != 0x30 {
        return None;
    }
    let mut rest = tbs;
    let (tag, _, after) = tlv(rest)?;
    if tag == 0xa0 {
        rest = after;
    }
    // serial, signature algorithm, issuer, validity
    for _ in 0..4 {
        rest = tlv(rest)?.2;
    }
    let (tag, mut subject, _) = tlv(rest)?;
    if tag != 0x30 {
        return None;
    }
    const CN_OID: &[u8] = &[0x55, 0x04, 0x03];
    while !subject.is_empty() {
        let (_, set, next) = tlv(subject)?;
        subject = next;
        let mut set = set;
        while !set.is_empty() {
            let (_, atv, next) = tlv(set)?;
            set = next;
            let (tag, oid, value) = tlv(atv)?;
            if tag == 0x06 && oid == CN_OID {
                let (_, v, _) = tlv(value)?;
                return Some(String::from_utf8_lossy(v).into_owned());
            }
        }
    }
    None
}

/// One DER tag-length-value: (tag, contents, what follows). `None` on malformed input.
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    let (len, head) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = head.checked_add(len)?;
    if end > b.len() {
        return None;
    }
    Some((tag, &b[head..end], &b[end..]))
}

/// A client certificate verifier that also applies [`AllowedPeer`].
#[derive(Debug)]
pub(super) struct AllowedClientVerifier {
    pub(super) inner: Arc<dyn ClientCertVerifier>,
    pub(super) allowed: AllowedPeer,
}

impl ClientCertVerifier for AllowedClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        self.allowed
            .enforce(end_entity, "refusing a peer: certificate not allowed")?;
        Ok(ok)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The dialing side's server certificate check: webpki against the CA (with
/// [`AllowedPeer`]), or none at all (`inner: None`, `--peer-auto-tls` without a CA: the
/// connection is encrypted, the other member not authenticated — etcd's
/// `InsecureSkipVerify`). Handshake signatures are always checked.
#[derive(Debug)]
pub(super) struct PeerServerVerifier {
    pub(super) inner: Option<Arc<dyn ServerCertVerifier>>,
    pub(super) allowed: AllowedPeer,
    pub(super) provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PeerServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(inner) = &self.inner else {
            return Ok(ServerCertVerified::assertion());
        };
        let ok =
            inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        self.allowed.enforce(
            end_entity,
            "refusing to talk to a peer: certificate not allowed",
        )?;
        Ok(ok)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(cn: &str, sans: &[&str]) -> CertificateDer<'static> {
        let mut p =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::OrganizationName, "org");
        if !cn.is_empty() {
            dn.push(rcgen::DnType::CommonName, cn);
        }
        p.distinguished_name = dn;
        let kp = rcgen::KeyPair::generate().unwrap();
        p.self_signed(&kp).unwrap().der().clone()
    }

    #[test]
    fn common_name_is_read_from_the_subject() {
        assert_eq!(
            common_name(cert("member-1", &["a.example"]).as_ref()).as_deref(),
            Some("member-1")
        );
        assert_eq!(common_name(cert("", &["a.example"]).as_ref()), None);
        assert_eq!(common_name(b"\x30\x82\xff"), None);
        assert_eq!(common_name(&[]), None);
    }

    #[test]
    fn allowed_cn_and_hostname() {
        let c = cert("etcd-peer", &["peer.example", "127.0.0.1"]);
        assert!(AllowedPeer::default().check(&c).is_ok());
        let cn = |s: &str| AllowedPeer {
            cn: Some(s.into()),
            hostname: None,
        };
        assert!(cn("etcd-peer").check(&c).is_ok());
        let e = cn("other").check(&c).unwrap_err();
        assert!(e.contains("\"etcd-peer\"") && e.contains("other"), "{e}");
        let host = |s: &str| AllowedPeer {
            cn: None,
            hostname: Some(s.into()),
        };
        assert!(host("peer.example").check(&c).is_ok());
        assert!(host("127.0.0.1").check(&c).is_ok());
        assert!(host("evil.example").check(&c).is_err());
    }
}
