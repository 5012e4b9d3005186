//! Value parsers with the conventions of Go's `flag`/`strconv`/`time` packages and etcd's
//! `types.NewURLs`, so that the same inputs are accepted and rejected as by etcd.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// Go's `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err("parse error".into()),
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)` as used by `flag.Uint64Var` (decimal, `0x`, `0o`/`0`, `0b`,
/// `_` separators after a prefix are not supported here: etcd users never write them).
pub(crate) fn parse_uint(s: &str) -> Result<u64, String> {
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if let Some(b) = s.strip_prefix("0b").or_else(|| s.strip_prefix("0B")) {
        (b, 2)
    } else if let Some(o) = s.strip_prefix("0o").or_else(|| s.strip_prefix("0O")) {
        (o, 8)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err("parse error".into());
    }
    u64::from_str_radix(digits, radix).map_err(|_| "value out of range".into())
}

/// Go's `strconv.ParseInt(s, 0, 64)`.
pub(crate) fn parse_int(s: &str) -> Result<i64, String> {
    let (neg, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let v = parse_uint(rest)?;
    if neg {
        if v > (i64::MAX as u64) + 1 {
            return Err("value out of range".into());
        }
        Ok((v as i128).wrapping_neg() as i64)
    } else {
        i64::try_from(v).map_err(|_| "value out of range".into())
    }
}

/// Go's `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, units ns us µs ms s m h, or "0".
/// Returns signed nanoseconds.
pub(crate) fn parse_go_duration(input: &str) -> Result<i128, String> {
    let invalid = || format!("time: invalid duration {input:?}");
    let mut s = input;
    let mut neg = false;
    if let Some(r) = s.strip_prefix('-') {
        neg = true;
        s = r;
    } else if let Some(r) = s.strip_prefix('+') {
        s = r;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !s.is_empty() {
        let num_end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let num = &s[..num_end];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(invalid());
        }
        let value: f64 = num.parse().map_err(|_| invalid())?;
        s = &s[num_end..];
        let unit_end = s
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(s.len());
        let unit = &s[..unit_end];
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration {input:?}"));
        }
        let scale: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(format!("time: unknown unit {unit:?} in duration {input:?}")),
        };
        total += value * scale;
        s = &s[unit_end..];
    }
    if total > i64::MAX as f64 {
        return Err(invalid());
    }
    let n = total.round() as i128;
    Ok(if neg { -n } else { n })
}

/// URL scheme of a client or peer URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// A client or peer URL as etcd accepts them: `scheme://host:port`, no path.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Url {
    pub scheme: Scheme,
    /// Host name or IP literal, without IPv6 brackets.
    pub host: String,
    pub port: u16,
}

impl Url {
    /// Parses one URL with etcd's rules (`types.NewURLs`): scheme http/https (unix and unixs
    /// exist in etcd but are not supported by Cairn yet), `host:port`, no path.
    pub fn parse(s: &str) -> Result<Url, String> {
        let s = s.trim();
        let (scheme, rest) = match s.split_once("://") {
            Some((sch, rest)) => (sch, rest),
            None => {
                return Err(format!(
                    "URL scheme must be http, https, unix, or unixs: {s}"
                ))
            }
        };
        let scheme = match scheme {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            "unix" | "unixs" => {
                return Err(format!(
                    "unix socket URLs are not supported yet by cairn: {s}"
                ))
            }
            _ => {
                return Err(format!(
                    "URL scheme must be http, https, unix, or unixs: {s}"
                ))
            }
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if !path.is_empty() && path != "/" {
            return Err(format!("URL must not contain a path: {s}"));
        }
        if authority.contains('@') {
            return Err(format!("URL must not contain user information: {s}"));
        }
        let bad_form = || format!("URL address does not have the form \"host:port\": {s}");
        let (host, port) = if let Some(r) = authority.strip_prefix('[') {
            let (h, after) = r.split_once(']').ok_or_else(bad_form)?;
            let p = after.strip_prefix(':').ok_or_else(bad_form)?;
            (h, p)
        } else {
            let (h, p) = authority.rsplit_once(':').ok_or_else(bad_form)?;
            if h.contains(':') {
                return Err(bad_form());
            }
            (h, p)
        };
        if port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad_form());
        }
        let port: u16 = port
            .parse()
            .map_err(|_| format!("invalid port in URL: {s}"))?;
        Ok(Url {
            scheme,
            host: host.to_string(),
            port,
        })
    }

    /// `http://<addr>`: the URL of a bound address.
    pub fn http(addr: SocketAddr) -> Url {
        Url {
            scheme: Scheme::Http,
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }

    /// The address to bind for a listen URL. etcd requires an IP literal there, or
    /// `localhost` (bound as 127.0.0.1), or an empty host (all interfaces).
    pub fn bind_addr(&self) -> Result<SocketAddr, String> {
        if self.host.is_empty() {
            return Ok(SocketAddr::new(IpAddr::from([0, 0, 0, 0]), self.port));
        }
        if self.host == "localhost" {
            return Ok(SocketAddr::new(IpAddr::from([127, 0, 0, 1]), self.port));
        }
        self.host
            .parse::<IpAddr>()
            .map(|ip| SocketAddr::new(ip, self.port))
            .map_err(|_| format!("expected IP in URL for binding ({self})"))
    }

    /// Resolves the host (any name) to socket addresses, for dialling an advertised URL.
    pub fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        Ok((self.host.as_str(), self.port).to_socket_addrs()?.collect())
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(
                f,
                "{}://[{}]:{}",
                self.scheme.as_str(),
                self.host,
                self.port
            )
        } else {
            write!(f, "{}://{}:{}", self.scheme.as_str(), self.host, self.port)
        }
    }
}

/// A comma-separated URL list; etcd sorts and de-duplicates them (`flags.UniqueURLsFromFlag`).
pub(crate) fn parse_urls(s: &str) -> Result<Vec<Url>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        out.push(Url::parse(part)?);
    }
    // etcd sorts by the URL's text (types.URLs), so 22379 sorts before 2379.
    out.sort_by_key(|u| u.to_string());
    out.dedup();
    Ok(out)
}

/// `name=url,name=url,...` (etcd's `types.NewURLsMap`): a member name may repeat to give it
/// several peer URLs.
pub(crate) fn parse_initial_cluster(s: &str) -> Result<Vec<(String, Url)>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (name, url) = part.split_once('=').ok_or_else(|| {
            format!("--initial-cluster entry {part:?} is not of the form name=url")
        })?;
        out.push((name.to_string(), Url::parse(url)?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bools_like_strconv() {
        for t in ["1", "t", "T", "true", "TRUE", "True"] {
            assert_eq!(parse_bool(t), Ok(true));
        }
        for f in ["0", "f", "F", "false", "FALSE", "False"] {
            assert_eq!(parse_bool(f), Ok(false));
        }
        assert!(parse_bool("yes").is_err());
        assert!(parse_bool("").is_err());
    }

    #[test]
    fn integers_like_strconv() {
        assert_eq!(parse_uint("100000"), Ok(100_000));
        assert_eq!(parse_uint("0x10"), Ok(16));
        assert_eq!(parse_uint("010"), Ok(8));
        assert_eq!(parse_uint("0"), Ok(0));
        assert_eq!(parse_uint("-5"), Err("parse error".into()));
        assert_eq!(parse_uint("abc"), Err("parse error".into()));
        assert_eq!(
            parse_uint("99999999999999999999"),
            Err("value out of range".into())
        );
        assert_eq!(parse_int("-1"), Ok(-1));
        assert_eq!(parse_int("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(
            parse_int("9223372036854775808"),
            Err("value out of range".into())
        );
    }

    #[test]
    fn durations_like_go() {
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("5m"), Ok(300_000_000_000));
        assert_eq!(parse_go_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("300ms"), Ok(300_000_000));
        assert_eq!(parse_go_duration("2µs"), Ok(2_000));
        assert_eq!(parse_go_duration("-1s"), Ok(-1_000_000_000));
        assert_eq!(
            parse_go_duration("1"),
            Err("time: missing unit in duration \"1\"".into())
        );
        assert_eq!(
            parse_go_duration("-1"),
            Err("time: missing unit in duration \"-1\"".into())
        );
        assert_eq!(
            parse_go_duration("3x"),
            Err("time: unknown unit \"x\" in duration \"3x\"".into())
        );
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("m").is_err());
        assert!(parse_go_duration("1..2s").is_err());
    }

    #[test]
    fn urls_like_etcd() {
        let u = Url::parse("http://127.0.0.1:2379").unwrap();
        assert_eq!(
            u,
            Url {
                scheme: Scheme::Http,
                host: "127.0.0.1".into(),
                port: 2379
            }
        );
        assert_eq!(u.to_string(), "http://127.0.0.1:2379");
        assert_eq!(u.bind_addr().unwrap(), "127.0.0.1:2379".parse().unwrap());
        let v6 = Url::parse("http://[::1]:2380").unwrap();
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.to_string(), "http://[::1]:2380");
        assert_eq!(v6.bind_addr().unwrap(), "[::1]:2380".parse().unwrap());
        let local = Url::parse("http://localhost:2379").unwrap();
        assert_eq!(
            local.bind_addr().unwrap(),
            "127.0.0.1:2379".parse().unwrap()
        );
        assert!(Url::parse("http://example.com:1")
            .unwrap()
            .bind_addr()
            .is_err());
        assert_eq!(Url::parse("https://a:1").unwrap().scheme, Scheme::Https);
        assert!(Url::parse("http://a:1/").is_ok());

        let e = Url::parse("foo").unwrap_err();
        assert_eq!(e, "URL scheme must be http, https, unix, or unixs: foo");
        assert!(Url::parse("ftp://a:1")
            .unwrap_err()
            .contains("URL scheme must be"));
        assert!(Url::parse("http://a").unwrap_err().contains("host:port"));
        assert!(Url::parse("http://a:x").unwrap_err().contains("host:port"));
        assert!(Url::parse("http://a:70000")
            .unwrap_err()
            .contains("invalid port"));
        assert!(Url::parse("http://a:1/path")
            .unwrap_err()
            .contains("must not contain a path"));
        assert!(Url::parse("unix://sock:1")
            .unwrap_err()
            .contains("not supported yet by cairn"));
    }

    #[test]
    fn url_lists_sorted_and_unique() {
        let l = parse_urls("http://b:2,http://a:1, http://b:2").unwrap();
        assert_eq!(
            l.iter().map(|u| u.to_string()).collect::<Vec<_>>(),
            ["http://a:1", "http://b:2"]
        );
        assert!(parse_urls("http://a:1,bad").is_err());
    }

    #[test]
    fn initial_cluster_entries() {
        let c = parse_initial_cluster("a=http://10.0.0.1:2380,b=http://10.0.0.2:2380").unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].0, "b");
        assert_eq!(c[1].1.to_string(), "http://10.0.0.2:2380");
        assert!(parse_initial_cluster("a").unwrap_err().contains("name=url"));
        assert!(parse_initial_cluster("a=nope").is_err());
    }
}
