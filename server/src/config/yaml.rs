//! `--config-file`: etcd's YAML file (`embed.ConfigFromFile`), read into the same
//! `flag name → string value` form as the command line, so one table and one set of value
//! parsers serve both.

use yaml_rust2::{Yaml, YamlLoader};

/// Sub-keys of `client-transport-security` / `peer-transport-security` and the flags they
/// stand for (etcd's `securityConfig` JSON tags).
const CLIENT_TLS_KEYS: &[(&str, &str)] = &[
    ("cert-file", "cert-file"),
    ("key-file", "key-file"),
    ("client-cert-file", "client-cert-file"),
    ("client-key-file", "client-key-file"),
    ("client-cert-auth", "client-cert-auth"),
    ("trusted-ca-file", "trusted-ca-file"),
    ("auto-tls", "auto-tls"),
    ("crl-file", "client-crl-file"),
    ("allowed-hostname", "client-cert-allowed-hostname"),
];
const PEER_TLS_KEYS: &[(&str, &str)] = &[
    ("cert-file", "peer-cert-file"),
    ("key-file", "peer-key-file"),
    ("client-cert-file", "peer-client-cert-file"),
    ("client-key-file", "peer-client-key-file"),
    ("client-cert-auth", "peer-client-cert-auth"),
    ("trusted-ca-file", "peer-trusted-ca-file"),
    ("auto-tls", "peer-auto-tls"),
    ("crl-file", "peer-crl-file"),
    ("allowed-cn", "peer-cert-allowed-cn"),
    ("allowed-hostname", "peer-cert-allowed-hostname"),
    (
        "skip-client-san-verification",
        "peer-skip-client-san-verification",
    ),
];

/// Parses the file's text into `(key, value)` pairs in file order. Null values are left out
/// (they leave etcd's default in place). Lists become comma-separated strings.
pub(crate) fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| format!("invalid YAML: {e}"))?;
    let mut out = Vec::new();
    let Some(doc) = docs.into_iter().next() else {
        return Ok(out);
    };
    let map = match doc {
        Yaml::Hash(h) => h,
        Yaml::Null => return Ok(out),
        _ => return Err("the config file must be a YAML mapping of option names to values".into()),
    };
    for (k, v) in map {
        let key = match k {
            Yaml::String(s) => s,
            other => return Err(format!("config file key {other:?} is not a string")),
        };
        let tls = match key.as_str() {
            "client-transport-security" => Some(CLIENT_TLS_KEYS),
            "peer-transport-security" => Some(PEER_TLS_KEYS),
            _ => None,
        };
        if let Some(table) = tls {
            match v {
                Yaml::Null => {}
                Yaml::Hash(sub) => {
                    for (sk, sv) in sub {
                        let sk = match sk {
                            Yaml::String(s) => s,
                            other => return Err(format!("{key}: key {other:?} is not a string")),
                        };
                        let flag = table
                            .iter()
                            .find(|(k, _)| *k == sk)
                            .map(|(_, f)| *f)
                            .ok_or_else(|| format!("unknown config file key {key}.{sk}"))?;
                        if let Some(val) = scalar(&format!("{key}.{sk}"), sv)? {
                            out.push((flag.to_string(), val));
                        }
                    }
                }
                _ => return Err(format!("config file key {key} must be a mapping")),
            }
            continue;
        }
        if let Some(val) = scalar(&key, v)? {
            out.push((key, val));
        }
    }
    Ok(out)
}

fn scalar(key: &str, v: Yaml) -> Result<Option<String>, String> {
    Ok(Some(match v {
        Yaml::Null => return Ok(None),
        Yaml::String(s) => s,
        Yaml::Integer(i) => i.to_string(),
        Yaml::Real(r) => r,
        Yaml::Boolean(b) => b.to_string(),
        Yaml::Array(items) => {
            let mut parts = Vec::with_capacity(items.len());
            for it in items {
                match scalar(key, it)? {
                    Some(s) => parts.push(s),
                    None => continue,
                }
            }
            parts.join(",")
        }
        _ => {
            return Err(format!(
                "config file key {key} has a value of an unsupported type"
            ))
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_keys_and_types() {
        let kv = parse(
            "name: 'n1'\nsnapshot-count: 5000\nenable-v2: true\nlisten-client-urls: \
             http://127.0.0.1:1,http://127.0.0.1:2\nwal-dir:\nlog-outputs: [stderr]\n",
        )
        .unwrap();
        assert_eq!(
            kv,
            vec![
                ("name".into(), "n1".into()),
                ("snapshot-count".into(), "5000".into()),
                ("enable-v2".into(), "true".into()),
                (
                    "listen-client-urls".into(),
                    "http://127.0.0.1:1,http://127.0.0.1:2".into()
                ),
                ("log-outputs".into(), "stderr".into()),
            ]
        );
    }

    #[test]
    fn transport_security_is_flattened() {
        let kv = parse(
            "client-transport-security:\n  cert-file: /c\n  client-cert-auth: false\n\
             peer-transport-security:\n  allowed-cn: x\n",
        )
        .unwrap();
        assert_eq!(
            kv,
            vec![
                ("cert-file".into(), "/c".into()),
                ("client-cert-auth".into(), "false".into()),
                ("peer-cert-allowed-cn".into(), "x".into()),
            ]
        );
        assert!(parse("client-transport-security:\n  bogus: 1\n")
            .unwrap_err()
            .contains("bogus"));
    }

    #[test]
    fn bad_documents() {
        assert!(parse("- a\n- b\n").is_err());
        assert!(parse("name: [unclosed\n").is_err());
        assert_eq!(parse("").unwrap(), vec![]);
    }
}
