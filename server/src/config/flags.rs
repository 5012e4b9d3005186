//! The one table of etcd's server flags, shared by the command line, `ETCD_*` environment
//! variables and `--config-file` YAML keys (which are the flag names); and the command-line
//! tokenizer, in Go's `flag` syntax (`cairn`, like `etcd`) or pflag's (`cairnutl`, like
//! `etcdutl`).
//!
//! Every flag etcd 3.4/3.5/3.6 documents is listed, so that a flag Cairn does not support yet
//! is reported by name instead of as unknown. An unsupported flag is still accepted when its
//! value is etcd's default (so it changes nothing), e.g. `--client-cert-auth=false` or
//! `--enable-pprof=false`: tools that spell out every default keep working.

/// How a flag's value is read. Go's `flag` package treats booleans specially on the command
/// line (`--flag` alone means true, and `--flag value` does not consume `value`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Bool,
    Str,
    Uint,
    Int,
    Duration,
    /// Comma-separated list (URLs, names); compared as a set for the no-op check.
    List,
}

/// What Cairn does with a flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Support {
    /// Read into [`super::Config`].
    Yes,
    /// Not supported yet: start-up fails unless the value is one of these (etcd's defaults,
    /// which change nothing).
    No(&'static [&'static str]),
    /// etcd itself accepts and ignores these legacy flags (`etcdmain/config.go` `ignored`).
    Ignored,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct FlagSpec {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    pub(crate) support: Support,
}

const fn yes(name: &'static str, kind: Kind) -> FlagSpec {
    FlagSpec {
        name,
        kind,
        support: Support::Yes,
    }
}
const fn no(name: &'static str, kind: Kind, noop: &'static [&'static str]) -> FlagSpec {
    FlagSpec {
        name,
        kind,
        support: Support::No(noop),
    }
}
const fn ignored(name: &'static str) -> FlagSpec {
    FlagSpec {
        name,
        kind: Kind::Str,
        support: Support::Ignored,
    }
}

use Kind::{Bool, Duration, Int, List, Str, Uint};

/// etcd's server flags (names without dashes). Source of the names, kinds and defaults:
/// `etcd --help` of 3.4.23 and 3.5.1, and `server/etcdmain/help.go` of 3.6.
pub(crate) const FLAGS: &[FlagSpec] = &[
    // --- supported ---------------------------------------------------------------------
    yes("name", Str),
    yes("data-dir", Str),
    yes("listen-client-urls", List),
    yes("advertise-client-urls", List),
    yes("listen-peer-urls", List),
    yes("initial-advertise-peer-urls", List),
    yes("initial-cluster", List),
    yes("initial-cluster-state", Str),
    yes("initial-cluster-token", Str),
    yes("snapshot-count", Uint),
    yes("heartbeat-interval", Uint),
    yes("election-timeout", Uint),
    yes("quota-backend-bytes", Int),
    yes("max-request-bytes", Uint),
    yes("max-txn-ops", Uint),
    yes("auto-compaction-mode", Str),
    yes("auto-compaction-retention", Str),
    yes("log-level", Str),
    yes("enable-v2", Bool),
    yes("config-file", Str),
    yes("experimental-watch-progress-notify-interval", Duration),
    yes("watch-progress-notify-interval", Duration),
    yes("experimental-lease-checkpoint-interval", Duration),
    yes("version", Bool),
    // client TLS
    yes("cert-file", Str),
    yes("key-file", Str),
    yes("client-cert-auth", Bool),
    yes("client-crl-file", Str),
    yes("trusted-ca-file", Str),
    yes("auto-tls", Bool),
    yes("self-signed-cert-validity", Uint),
    yes("cipher-suites", List),
    yes("tls-min-version", Str),
    yes("tls-max-version", Str),
    // peer TLS
    yes("peer-cert-file", Str),
    yes("peer-key-file", Str),
    yes("peer-client-cert-auth", Bool),
    yes("peer-trusted-ca-file", Str),
    yes("peer-cert-allowed-cn", Str),
    yes("peer-cert-allowed-hostname", Str),
    yes("peer-auto-tls", Bool),
    yes("peer-crl-file", Str),
    // --- member, not supported yet ------------------------------------------------------
    no("wal-dir", Str, &[""]),
    no("max-snapshots", Uint, &["5"]),
    no("max-wals", Uint, &["5"]),
    no("initial-election-tick-advance", Bool, &["true"]),
    no("listen-client-http-urls", List, &[""]),
    no("backend-bbolt-freelist-type", Str, &["map", "array"]),
    no("backend-batch-interval", Duration, &["", "0"]),
    no("backend-batch-limit", Uint, &["0"]),
    no("max-concurrent-streams", Uint, &["4294967295"]),
    no("grpc-keepalive-min-time", Duration, &["5s"]),
    no("grpc-keepalive-interval", Duration, &["2h"]),
    no("grpc-keepalive-timeout", Duration, &["20s"]),
    no("socket-reuse-port", Bool, &["false"]),
    no("socket-reuse-address", Bool, &["false"]),
    no("enable-grpc-gateway", Bool, &["true"]),
    no("raft-read-timeout", Duration, &["5s"]),
    no("raft-write-timeout", Duration, &["5s"]),
    no("memory-mlock", Bool, &["false"]),
    no("feature-gates", Str, &[""]),
    no("max-learners", Uint, &["1"]),
    // --- clustering and discovery -------------------------------------------------------
    no("discovery", Str, &[""]),
    no("discovery-fallback", Str, &["proxy", "exit"]),
    no("discovery-proxy", Str, &[""]),
    no("discovery-srv", Str, &[""]),
    no("discovery-srv-name", Str, &[""]),
    no("discovery-token", Str, &[""]),
    no("discovery-endpoints", List, &[""]),
    no("discovery-dial-timeout", Duration, &["2s"]),
    no("discovery-request-timeout", Duration, &["5s"]),
    no("discovery-keepalive-time", Duration, &["2s"]),
    no("discovery-keepalive-timeout", Duration, &["6s"]),
    no("discovery-insecure-transport", Bool, &["true"]),
    no("discovery-insecure-skip-tls-verify", Bool, &["false"]),
    no("discovery-cert", Str, &[""]),
    no("discovery-key", Str, &[""]),
    no("discovery-cacert", Str, &[""]),
    no("discovery-user", Str, &[""]),
    no("discovery-password", Str, &[""]),
    no("strict-reconfig-check", Bool, &["true"]),
    no("pre-vote", Bool, &["true"]),
    no("v2-deprecation", Str, &["not-yet"]),
    no("experimental-enable-v2v3", Str, &[""]),
    no("proxy", Str, &["off"]),
    no("proxy-failure-wait", Uint, &["5000"]),
    no("proxy-refresh-interval", Uint, &["30000"]),
    no("proxy-dial-timeout", Uint, &["1000"]),
    no("proxy-write-timeout", Uint, &["5000"]),
    no("proxy-read-timeout", Uint, &["0"]),
    // --- security ----------------------------------------------------------------------
    no("client-cert-file", Str, &[""]),
    no("client-key-file", Str, &[""]),
    no("client-cert-allowed-hostname", Str, &[""]),
    no("peer-client-cert-file", Str, &[""]),
    no("peer-client-key-file", Str, &[""]),
    no("cors", List, &["*", ""]),
    no("host-whitelist", List, &["*", ""]),
    // --- auth ----------------------------------------------------------------------------
    no("auth-token", Str, &["simple"]),
    no("bcrypt-cost", Uint, &["10"]),
    no("auth-token-ttl", Uint, &["300"]),
    // --- profiling, metrics, logging -----------------------------------------------------
    no("enable-pprof", Bool, &["false"]),
    yes("metrics", Str),
    yes("listen-metrics-urls", List),
    yes("logger", Str),
    yes("log-outputs", List),
    yes("log-format", Str),
    yes("enable-log-rotation", Bool),
    yes("log-rotation-config-json", Str),
    no("log-package-levels", Str, &[""]),
    no("debug", Bool, &["false"]),
    no("warning-unary-request-duration", Duration, &["300ms"]),
    // --- tracing -----------------------------------------------------------------------
    no("enable-distributed-tracing", Bool, &["false"]),
    no("distributed-tracing-address", Str, &["localhost:4317"]),
    no("distributed-tracing-service-name", Str, &["etcd"]),
    no("distributed-tracing-instance-id", Str, &[""]),
    no("distributed-tracing-sampling-rate", Uint, &["0"]),
    no("experimental-enable-distributed-tracing", Bool, &["false"]),
    no(
        "experimental-distributed-tracing-address",
        Str,
        &["localhost:4317"],
    ),
    no(
        "experimental-distributed-tracing-service-name",
        Str,
        &["etcd"],
    ),
    no("experimental-distributed-tracing-instance-id", Str, &[""]),
    no(
        "experimental-distributed-tracing-sampling-rate",
        Uint,
        &["0"],
    ),
    // --- experimental (3.5 names) and their 3.6 replacements ---------------------------
    yes("experimental-initial-corrupt-check", Bool),
    no("experimental-corrupt-check-time", Duration, &["0s"]),
    no("corrupt-check-time", Duration, &["0s"]),
    no("experimental-compact-hash-check-enabled", Bool, &["false"]),
    no("experimental-compact-hash-check-time", Duration, &["1m"]),
    no("compact-hash-check-time", Duration, &["1m"]),
    no("experimental-enable-lease-checkpoint", Bool, &["false"]),
    no(
        "experimental-enable-lease-checkpoint-persist",
        Bool,
        &["false"],
    ),
    no("experimental-compaction-batch-limit", Uint, &["1000"]),
    no("compaction-batch-limit", Uint, &["1000"]),
    no(
        "experimental-compaction-sleep-interval",
        Duration,
        &["10ms"],
    ),
    no("compaction-sleep-interval", Duration, &["10ms"]),
    no(
        "experimental-peer-skip-client-san-verification",
        Bool,
        &["false"],
    ),
    no("peer-skip-client-san-verification", Bool, &["false"]),
    no("experimental-warning-apply-duration", Duration, &["100ms"]),
    no("warning-apply-duration", Duration, &["100ms"]),
    no(
        "experimental-warning-unary-request-duration",
        Duration,
        &["0s", "300ms"],
    ),
    no(
        "experimental-txn-mode-write-with-shared-buffer",
        Bool,
        &["true"],
    ),
    no(
        "experimental-bootstrap-defrag-threshold-megabytes",
        Uint,
        &["0"],
    ),
    no("bootstrap-defrag-threshold-megabytes", Uint, &["0"]),
    no("experimental-stop-grpc-service-on-defrag", Bool, &["false"]),
    no("experimental-memory-mlock", Bool, &["false"]),
    no("experimental-snapshot-catchup-entries", Uint, &["5000"]),
    no("snapshot-catchup-entries", Uint, &["5000"]),
    no("experimental-downgrade-check-time", Duration, &["5s"]),
    no("downgrade-check-time", Duration, &["5s"]),
    no("experimental-max-learners", Uint, &["1"]),
    no("experimental-local-address", Str, &[""]),
    // --- unsafe ------------------------------------------------------------------------
    no("force-new-cluster", Bool, &["false"]),
    no("unsafe-no-fsync", Bool, &["false"]),
    // --- legacy flags etcd accepts and ignores -----------------------------------------
    ignored("cluster-active-size"),
    ignored("cluster-remove-delay"),
    ignored("cluster-sync-interval"),
    ignored("config"),
    ignored("force"),
    ignored("max-result-buffer"),
    ignored("max-retry-attempts"),
    ignored("peer-heartbeat-interval"),
    ignored("peer-election-timeout"),
    ignored("retry-interval"),
    ignored("snapshot"),
    ignored("v"),
    ignored("vv"),
];

pub(crate) fn lookup(name: &str) -> Option<&'static FlagSpec> {
    FLAGS.iter().find(|f| f.name == name)
}

/// `some-flag` → `ETCD_SOME_FLAG` (etcd's `flags.FlagToEnv`).
pub(crate) fn env_name(flag: &str) -> String {
    let mut s = String::with_capacity(flag.len() + 5);
    s.push_str("ETCD_");
    for c in flag.chars() {
        s.push(if c == '-' {
            '_'
        } else {
            c.to_ascii_uppercase()
        });
    }
    s
}

// --- the command-line tokenizer ---------------------------------------------------------

/// Command-line syntax: how flags are told from arguments.
#[derive(Clone, Copy, Debug)]
pub enum Syntax<'a> {
    /// Go's `flag` package, as `etcd` parses its flags: `-flag` and `--flag` alike; the flags
    /// end at the first argument that is not one (or after `--`).
    Go,
    /// spf13/pflag, as etcd's cobra tools (`etcdutl`) parse theirs: `--flag` long names and
    /// the one-letter `shorthands` (`-x` for a long name; a value attaches to one that takes
    /// a value as `-x=value`); arguments may come between flags, and `--` ends the flags.
    Pflag { shorthands: &'a [(char, &'a str)] },
}

/// Whether a flag takes a value (given by the caller for each name the tokenizer meets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arity {
    /// A boolean: `--flag` alone means `true`; a value only as `--flag=value`.
    Bool,
    /// `--flag=value` or `--flag value`.
    Value,
}

/// One flag as given: its (long) name without dashes, and its value as written (`"true"`
/// for a boolean given alone; a boolean's value is not checked here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flag {
    pub name: String,
    pub value: String,
}

/// A command-line syntax error, worded as Go's `flag` or pflag words it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagError(String);

impl std::fmt::Display for FlagError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FlagError {}

/// The flags of a command line, one at a time (an iterator, so a caller can stop at the
/// first flag it rejects, as Go's `flag` does); then [`positional`](Self::positional). `arity`
/// tells whether a name takes a value, `None` for a name not defined (an error).
pub struct CommandLine<'a, F> {
    args: &'a [String],
    next: usize,
    syntax: Syntax<'a>,
    arity: F,
    positional: Vec<String>,
    done: bool,
}

impl<'a, F: Fn(&str) -> Option<Arity>> CommandLine<'a, F> {
    /// Tokenizes `args` (without the program or command names).
    pub fn new(args: &'a [String], syntax: Syntax<'a>, arity: F) -> Self {
        CommandLine {
            args,
            next: 0,
            syntax,
            arity,
            positional: Vec::new(),
            done: false,
        }
    }

    /// The arguments that are not flags: with [`Syntax::Go`], those from the first
    /// non-flag (or after `--`) on; with [`Syntax::Pflag`], all of them. Complete once the
    /// iterator has returned `None`.
    pub fn positional(&self) -> &[String] {
        &self.positional
    }

    /// The next flag, or `Ok(None)` when the flags end.
    fn flag(&mut self) -> Result<Option<Flag>, FlagError> {
        match self.syntax {
            Syntax::Go => self.go_flag(),
            Syntax::Pflag { shorthands } => self.pflag_flag(shorthands),
        }
    }

    fn go_flag(&mut self) -> Result<Option<Flag>, FlagError> {
        let Some(s) = self.args.get(self.next) else {
            return Ok(None);
        };
        if s.len() < 2 || !s.starts_with('-') {
            self.positional.extend_from_slice(&self.args[self.next..]);
            return Ok(None);
        }
        let mut name = &s[1..];
        if let Some(rest) = name.strip_prefix('-') {
            if rest.is_empty() {
                self.positional
                    .extend_from_slice(&self.args[self.next + 1..]);
                return Ok(None);
            }
            name = rest;
        }
        if name.is_empty() || name.starts_with('-') || name.starts_with('=') {
            return Err(FlagError(format!("bad flag syntax: {s}")));
        }
        self.next += 1;
        let (name, inline) = match name.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (name, None),
        };
        let Some(arity) = (self.arity)(name) else {
            return Err(FlagError(format!("flag provided but not defined: -{name}")));
        };
        self.value(name, inline, arity, "-").map(Some)
    }

    fn pflag_flag(&mut self, shorthands: &[(char, &str)]) -> Result<Option<Flag>, FlagError> {
        while let Some(a) = self.args.get(self.next) {
            self.next += 1;
            if a == "--" {
                self.positional.extend_from_slice(&self.args[self.next..]);
                self.next = self.args.len();
                return Ok(None);
            }
            if let Some(long) = a.strip_prefix("--") {
                let (name, inline) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (long, None),
                };
                let Some(arity) = (self.arity)(name) else {
                    return Err(FlagError(format!("unknown flag: --{name}")));
                };
                return self.value(name, inline, arity, "--").map(Some);
            }
            let Some(short) = a.strip_prefix('-').filter(|r| !r.is_empty()) else {
                self.positional.push(a.clone());
                continue;
            };
            let c = short.chars().next().expect("not empty");
            let after = &short[c.len_utf8()..];
            let unknown = || {
                FlagError(format!(
                    "unknown shorthand flag: {:?} in {a}",
                    &short[..c.len_utf8()]
                ))
            };
            let Some(&(_, name)) = shorthands.iter().find(|(s, _)| *s == c) else {
                return Err(unknown());
            };
            let Some(arity) = (self.arity)(name) else {
                return Err(FlagError(format!("unknown flag: --{name}")));
            };
            let inline = match (after, arity) {
                ("", _) => None,
                (v, Arity::Value) if v.starts_with('=') => Some(&v[1..]),
                _ => return Err(unknown()),
            };
            return self.value(name, inline, arity, "--").map(Some);
        }
        Ok(None)
    }

    /// The value of flag `name`: inline, implied (a boolean) or the next argument.
    fn value(
        &mut self,
        name: &str,
        inline: Option<&str>,
        arity: Arity,
        dashes: &str,
    ) -> Result<Flag, FlagError> {
        let value = match (inline, arity) {
            (Some(v), _) => v.to_string(),
            (None, Arity::Bool) => "true".to_string(),
            (None, Arity::Value) => match self.args.get(self.next) {
                Some(v) => {
                    self.next += 1;
                    v.clone()
                }
                None => return Err(FlagError(format!("flag needs an argument: {dashes}{name}"))),
            },
        };
        Ok(Flag {
            name: name.to_string(),
            value,
        })
    }
}

impl<F: Fn(&str) -> Option<Arity>> Iterator for CommandLine<'_, F> {
    type Item = Result<Flag, FlagError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = self.flag().transpose();
        if !matches!(r, Some(Ok(_))) {
            self.done = true;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    /// The flags as `(name, value)` pairs or the error's text, and the positional arguments.
    type Tokens = (Result<Vec<(String, String)>, String>, Vec<String>);

    fn tokens(a: &[&str], syntax: Syntax<'_>, arity: impl Fn(&str) -> Option<Arity>) -> Tokens {
        let args = strings(a);
        let mut cl = CommandLine::new(&args, syntax, arity);
        let flags = cl
            .by_ref()
            .map(|r| r.map(|f| (f.name, f.value)).map_err(|e| e.to_string()))
            .collect();
        (flags, cl.positional().to_vec())
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn go_syntax() {
        let arity = |n: &str| match n {
            "b" => Some(Arity::Bool),
            "v" | "w" => Some(Arity::Value),
            _ => None,
        };
        let (f, pos) = tokens(
            &["-b", "--v", "x", "-w=y", "--b=false", "z", "-v", "q"],
            Syntax::Go,
            arity,
        );
        assert_eq!(
            f.unwrap(),
            pairs(&[("b", "true"), ("v", "x"), ("w", "y"), ("b", "false")])
        );
        assert_eq!(pos, strings(&["z", "-v", "q"]));
        let (f, pos) = tokens(&["-b", "--", "-v", "x"], Syntax::Go, arity);
        assert_eq!(f.unwrap(), pairs(&[("b", "true")]));
        assert_eq!(pos, strings(&["-v", "x"]));
        let (f, _) = tokens(&["-b", "-nope"], Syntax::Go, arity);
        assert_eq!(f.unwrap_err(), "flag provided but not defined: -nope");
        let (f, _) = tokens(&["-v"], Syntax::Go, arity);
        assert_eq!(f.unwrap_err(), "flag needs an argument: -v");
        let (f, _) = tokens(&["---v"], Syntax::Go, arity);
        assert_eq!(f.unwrap_err(), "bad flag syntax: ---v");
    }

    #[test]
    fn pflag_syntax() {
        let syntax = Syntax::Pflag {
            shorthands: &[('w', "write-out"), ('h', "help")],
        };
        let arity = |n: &str| {
            Some(if n == "help" || n == "b" {
                Arity::Bool
            } else {
                Arity::Value
            })
        };
        let (f, pos) = tokens(
            &[
                "a", "--b", "--v", "x", "-w", "json", "c", "-w=t", "-", "--", "--z",
            ],
            syntax,
            arity,
        );
        assert_eq!(
            f.unwrap(),
            pairs(&[
                ("b", "true"),
                ("v", "x"),
                ("write-out", "json"),
                ("write-out", "t")
            ])
        );
        assert_eq!(pos, strings(&["a", "c", "-", "--z"]));
        let (f, _) = tokens(&["-h"], syntax, arity);
        assert_eq!(f.unwrap(), pairs(&[("help", "true")]));
        for bad in ["-x", "-h=x", "-hw", "-wjson"] {
            let (f, _) = tokens(&[bad], syntax, arity);
            let c = &bad[1..2];
            assert_eq!(
                f.unwrap_err(),
                format!("unknown shorthand flag: {c:?} in {bad}")
            );
        }
        let (f, _) = tokens(&["--v"], syntax, arity);
        assert_eq!(f.unwrap_err(), "flag needs an argument: --v");
        let (f, _) = tokens(&["--nope"], syntax, |_| None);
        assert_eq!(f.unwrap_err(), "unknown flag: --nope");
    }

    #[test]
    fn names_are_unique_and_lowercase() {
        let mut seen = HashSet::new();
        for f in FLAGS {
            assert!(seen.insert(f.name), "duplicate flag {}", f.name);
            assert!(
                f.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{}",
                f.name
            );
        }
    }

    #[test]
    fn env_names_follow_etcd() {
        assert_eq!(
            env_name("initial-cluster-token"),
            "ETCD_INITIAL_CLUSTER_TOKEN"
        );
        assert_eq!(env_name("name"), "ETCD_NAME");
    }

    #[test]
    fn every_etcd_351_help_flag_is_known() {
        // The list `etcd --help` (3.5.1) prints.
        let listed = "name data-dir wal-dir snapshot-count heartbeat-interval election-timeout \
            initial-election-tick-advance listen-peer-urls listen-client-urls max-snapshots max-wals \
            quota-backend-bytes backend-bbolt-freelist-type backend-batch-interval backend-batch-limit \
            max-txn-ops max-request-bytes grpc-keepalive-min-time grpc-keepalive-interval \
            grpc-keepalive-timeout socket-reuse-port socket-reuse-address initial-advertise-peer-urls \
            initial-cluster initial-cluster-state initial-cluster-token advertise-client-urls discovery \
            discovery-fallback discovery-proxy discovery-srv discovery-srv-name strict-reconfig-check \
            pre-vote auto-compaction-retention auto-compaction-mode enable-v2 v2-deprecation cert-file \
            key-file client-cert-auth client-crl-file client-cert-allowed-hostname trusted-ca-file \
            auto-tls peer-cert-file peer-key-file peer-client-cert-auth peer-trusted-ca-file \
            peer-cert-allowed-cn peer-cert-allowed-hostname peer-auto-tls self-signed-cert-validity \
            peer-crl-file cipher-suites cors host-whitelist auth-token bcrypt-cost auth-token-ttl \
            enable-pprof metrics listen-metrics-urls logger log-outputs log-level enable-log-rotation \
            log-rotation-config-json experimental-enable-distributed-tracing \
            experimental-distributed-tracing-address experimental-distributed-tracing-service-name \
            experimental-distributed-tracing-instance-id proxy proxy-failure-wait \
            proxy-refresh-interval proxy-dial-timeout proxy-write-timeout proxy-read-timeout \
            experimental-initial-corrupt-check experimental-corrupt-check-time \
            experimental-enable-v2v3 experimental-enable-lease-checkpoint \
            experimental-lease-checkpoint-interval watch-progress-notify-interval \
            experimental-compaction-batch-limit experimental-peer-skip-client-san-verification \
            experimental-watch-progress-notify-interval experimental-warning-apply-duration \
            experimental-txn-mode-write-with-shared-buffer \
            experimental-bootstrap-defrag-threshold-megabytes force-new-cluster unsafe-no-fsync";
        for name in listed.split_whitespace() {
            assert!(lookup(name).is_some(), "{name} missing from the table");
        }
    }
}
