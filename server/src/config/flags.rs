//! The one table of etcd's server flags, shared by the command line, `ETCD_*` environment
//! variables and `--config-file` YAML keys (which are the flag names).
//!
//! Every flag etcd 3.4/3.5/3.6 documents is listed, so that a flag Cairn does not support yet
//! is reported by name instead of as unknown. An unsupported flag is still accepted when its
//! value is etcd's default (so it changes nothing), e.g. `--client-cert-auth=false` or
//! `--logger=zap`: tools that spell out every default keep working.

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
    no("cert-file", Str, &[""]),
    no("key-file", Str, &[""]),
    no("client-cert-file", Str, &[""]),
    no("client-key-file", Str, &[""]),
    no("client-cert-auth", Bool, &["false"]),
    no("client-crl-file", Str, &[""]),
    no("client-cert-allowed-hostname", Str, &[""]),
    no("trusted-ca-file", Str, &[""]),
    no("auto-tls", Bool, &["false"]),
    no("peer-cert-file", Str, &[""]),
    no("peer-key-file", Str, &[""]),
    no("peer-client-cert-file", Str, &[""]),
    no("peer-client-key-file", Str, &[""]),
    no("peer-client-cert-auth", Bool, &["false"]),
    no("peer-trusted-ca-file", Str, &[""]),
    no("peer-cert-allowed-cn", Str, &[""]),
    no("peer-cert-allowed-hostname", Str, &[""]),
    no("peer-auto-tls", Bool, &["false"]),
    no("peer-crl-file", Str, &[""]),
    no("self-signed-cert-validity", Uint, &["1"]),
    no("cipher-suites", List, &[""]),
    no("tls-min-version", Str, &["", "TLS1.2"]),
    no("tls-max-version", Str, &[""]),
    no("cors", List, &["*", ""]),
    no("host-whitelist", List, &["*", ""]),
    // --- auth ----------------------------------------------------------------------------
    no("auth-token", Str, &["simple"]),
    no("bcrypt-cost", Uint, &["10"]),
    no("auth-token-ttl", Uint, &["300"]),
    // --- profiling, metrics, logging -----------------------------------------------------
    no("enable-pprof", Bool, &["false"]),
    no("metrics", Str, &["basic"]),
    no("listen-metrics-urls", List, &[""]),
    no("logger", Str, &["zap"]),
    no("log-outputs", List, &["default", "stderr"]),
    no("log-format", Str, &["json"]),
    no("enable-log-rotation", Bool, &["false"]),
    no("log-rotation-config-json", Str, &[""]),
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
    no("experimental-initial-corrupt-check", Bool, &["false"]),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

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
