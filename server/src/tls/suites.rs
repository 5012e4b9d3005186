//! etcd's `--cipher-suites` names (Go's `crypto/tls` names) and `--tls-min-version` /
//! `--tls-max-version` values, mapped onto what rustls offers.

use std::fmt;

use rustls::crypto::CryptoProvider;
use rustls::{CipherSuite, SupportedCipherSuite};

/// A TLS protocol version as etcd names it (`TLS1.2`, `TLS1.3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    /// Parses etcd's spelling. Go's older names (TLS1.0, TLS1.1) are refused, as etcd 3.5.9+
    /// refuses them; rustls has neither protocol anyway.
    pub fn parse(s: &str) -> Result<TlsVersion, String> {
        match s {
            "TLS1.2" => Ok(TlsVersion::Tls12),
            "TLS1.3" => Ok(TlsVersion::Tls13),
            "TLS1.0" | "TLS1.1" => Err(format!(
                "unexpected TLS version {s:?} (must be one of: TLS1.2, TLS1.3): cairn's TLS \
                 (rustls) has no TLS 1.0 or 1.1"
            )),
            _ => Err(format!(
                "unexpected TLS version {s:?} (must be one of: TLS1.2, TLS1.3)"
            )),
        }
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsVersion::Tls12 => "TLS1.2",
            TlsVersion::Tls13 => "TLS1.3",
        })
    }
}

/// Go's names of the suites rustls implements, with their IANA ids. Go also accepts the
/// CHACHA20 names without `_SHA256`.
const SUPPORTED: &[(&str, CipherSuite)] = &[
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_128_GCM_SHA256,
    ),
    (
        "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_AES_256_GCM_SHA384,
    ),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    ),
];

/// Go names etcd accepts that rustls does not implement (CBC, RC4, 3DES, static RSA key
/// exchange).
const UNSUPPORTED: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

/// Checks `--cipher-suites` names and returns their ids, in the given order. An unknown
/// name gets etcd's message; a name Go knows but rustls lacks says so.
pub fn parse_cipher_suites(names: &[String]) -> Result<Vec<CipherSuite>, String> {
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        if let Some((_, id)) = SUPPORTED.iter().find(|(g, _)| g == n) {
            if !out.contains(id) {
                out.push(*id);
            }
        } else if UNSUPPORTED.contains(&n.as_str()) {
            return Err(format!(
                "TLS cipher suite {n:?} is not supported by cairn (rustls implements only \
                 ECDHE with AES-GCM or CHACHA20-POLY1305, and the TLS 1.3 suites)"
            ));
        } else {
            return Err(format!("unexpected TLS cipher suite {n:?}"));
        }
    }
    Ok(out)
}

/// The ring provider restricted to `suites` for TLS 1.2 (empty = all). As in Go, the list
/// does not restrict TLS 1.3 suites.
pub(super) fn provider(suites: &[CipherSuite]) -> CryptoProvider {
    // Deprecated only as a nudge towards aws-lc-rs's post-quantum key exchange; ring keeps
    // the build free of cmake and C++ toolchains. Go 1.16 (etcd 3.5.1) offers no
    // post-quantum group either.
    #[allow(deprecated)]
    let mut p = rustls::crypto::ring::default_provider();
    if !suites.is_empty() {
        p.cipher_suites.retain(|s| match s {
            SupportedCipherSuite::Tls13(_) => true,
            SupportedCipherSuite::Tls12(_) => suites.contains(&s.suite()),
        });
        // Keep the operator's order for TLS 1.2 (Go prefers its own order; either is fine).
        p.cipher_suites.sort_by_key(|s| {
            suites
                .iter()
                .position(|x| *x == s.suite())
                .unwrap_or(usize::MAX)
        });
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let ok = parse_cipher_suites(&[
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into(),
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305".into(),
        ])
        .unwrap();
        assert_eq!(
            ok,
            vec![
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
            ]
        );
        let e = parse_cipher_suites(&["TLS_FOO".into()]).unwrap_err();
        assert_eq!(e, "unexpected TLS cipher suite \"TLS_FOO\"");
        let e = parse_cipher_suites(&["TLS_RSA_WITH_AES_128_CBC_SHA".into()]).unwrap_err();
        assert!(e.contains("not supported by cairn"), "{e}");
        let p = provider(&ok);
        let tls12: Vec<_> = p
            .cipher_suites
            .iter()
            .filter(|s| matches!(s, SupportedCipherSuite::Tls12(_)))
            .map(|s| s.suite())
            .collect();
        assert_eq!(tls12, ok);
        assert!(p
            .cipher_suites
            .iter()
            .any(|s| matches!(s, SupportedCipherSuite::Tls13(_))));
    }

    #[test]
    fn versions() {
        assert_eq!(TlsVersion::parse("TLS1.3"), Ok(TlsVersion::Tls13));
        assert!(TlsVersion::Tls12 < TlsVersion::Tls13);
        assert!(TlsVersion::parse("TLS1.1")
            .unwrap_err()
            .contains("1.0 or 1.1"));
        assert_eq!(
            TlsVersion::parse("x").unwrap_err(),
            "unexpected TLS version \"x\" (must be one of: TLS1.2, TLS1.3)"
        );
    }
}
