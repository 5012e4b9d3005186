//! etcd's server flags, `ETCD_*` environment variables and `--config-file` YAML.
//!
//! The conventions are etcd's (Go `flag` package plus `etcdmain/config.go`):
//! - `-flag`, `--flag`, `-flag=value`, `--flag value`; a boolean flag alone means true and takes
//!   its value only as `--flag=false`; parsing stops at `--` or the first non-flag argument, and
//!   any such argument is an error (`'x' is not a valid flag`).
//! - Every flag can come from `ETCD_<FLAG_UPPER_SNAKE>` when not given on the command line; an
//!   environment variable shadowed by a flag is an error, unknown `ETCD_*` variables a warning.
//! - `--config-file` (or `ETCD_CONFIG_FILE`) loads etcd's YAML, and then the other command-line
//!   flags and environment variables are ignored, as etcd does.
//! - A flag Cairn does not support yet fails start-up with a message naming it, unless its value
//!   is etcd's default (a no-op). An undefined flag fails like Go's
//!   `flag provided but not defined: -foo`.
//!
//! `--snapshot-count` defaults to 100 000, etcd 3.5's value: Cairn reports itself as a 3.5
//! member (3.6 lowered it to 10 000).

mod flags;
mod options;
mod values;
mod yaml;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use flags::{Arity, CommandLine, Flag, FlagError, Syntax};
use flags::{Kind, Support};
pub(crate) use options::Options;
pub use values::{parse_bool, Scheme, Url};

/// etcd's defaults.
pub const DEFAULT_NAME: &str = "default";
pub const DEFAULT_LISTEN_CLIENT_URL: &str = "http://localhost:2379";
pub const DEFAULT_LISTEN_PEER_URL: &str = "http://localhost:2380";
pub const DEFAULT_CLUSTER_TOKEN: &str = "etcd-cluster";
pub const DEFAULT_SNAPSHOT_COUNT: u64 = 100_000;
pub const DEFAULT_HEARTBEAT_MS: u64 = 100;
pub const DEFAULT_ELECTION_MS: u64 = 1000;
/// 2 GiB, used when `--quota-backend-bytes` is 0.
pub const DEFAULT_QUOTA_BACKEND_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// etcd warns above 8 GiB.
pub const MAX_SUGGESTED_QUOTA_BACKEND_BYTES: u64 = 8 * 1024 * 1024 * 1024;
pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 1_572_864;
pub const DEFAULT_MAX_TXN_OPS: u64 = 128;
/// etcd's default `--experimental-watch-progress-notify-interval`.
pub const DEFAULT_WATCH_PROGRESS_NOTIFY_INTERVAL: Duration = Duration::from_secs(600);
/// The shortest progress notification period etcd accepts (shorter values are raised to it).
pub const MIN_WATCH_PROGRESS_NOTIFY_INTERVAL: Duration = Duration::from_millis(100);
/// etcd's default `--experimental-lease-checkpoint-interval`.
pub const DEFAULT_LEASE_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(300);
/// How often etcd's revision-mode compactor looks at the revision (no flag).
pub const DEFAULT_AUTO_COMPACTION_CHECK_INTERVAL: Duration = Duration::from_secs(300);
/// etcd's default `--self-signed-cert-validity` (years).
pub const DEFAULT_SELF_SIGNED_CERT_VALIDITY: u64 = 1;
/// etcd's upper bound for `--election-timeout`.
pub const MAX_ELECTION_MS: u64 = 50_000;

/// `--initial-cluster-state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterState {
    New,
    Existing,
}

/// `--auto-compaction-mode` with `--auto-compaction-retention`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoCompaction {
    /// Retention 0 (the default).
    Off,
    /// Keep this much history (`periodic`: a plain number is hours, or a Go duration).
    Periodic(Duration),
    /// Keep this many revisions (`revision`).
    Revision(u64),
}

/// `--log-level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
    Panic,
    Fatal,
}

impl LogLevel {
    /// A `tracing` filter directive for this level (`panic`/`fatal` log errors only).
    pub fn as_filter(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error | LogLevel::Panic | LogLevel::Fatal => "error",
        }
    }
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// zap's JSON encoder (etcd's default): one JSON object a line.
    Json,
    /// zap's console encoder: tab-separated time, level, caller, message, then the fields
    /// as JSON.
    Console,
}

/// `--log-rotation-config-json` (lumberjack's settings), used with `--enable-log-rotation`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRotation {
    /// `maxsize`: megabytes a file may reach before it is rotated (0 = lumberjack's 100).
    pub max_size_mb: u64,
    /// `maxage`: days rotated files are kept (0 = no limit).
    pub max_age_days: u64,
    /// `maxbackups`: rotated files kept (0 = no limit).
    pub max_backups: u64,
}

/// etcd's `DefaultLogRotationConfig`.
pub const DEFAULT_LOG_ROTATION_CONFIG_JSON: &str =
    r#"{"maxsize": 100, "maxage": 0, "maxbackups": 0, "localtime": false, "compress": false}"#;

/// etcd's error when rotation is on with no file among `--log-outputs` (a single output), or
/// with more than one file.
pub const ERR_LOG_ROTATION_OUTPUTS: &str =
    "--log-outputs requires a single file path when --log-rotate-config-json is defined";

/// One member's configuration, as etcd's flags describe it: what [`crate::Server::start`]
/// takes. [`Default`] gives etcd's defaults; [`Config::for_test`] an in-process test member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `--name`.
    pub name: String,
    /// `--data-dir`; `<name>.etcd` (relative to the working directory) by default.
    pub data_dir: PathBuf,
    /// `--listen-client-urls`: where gRPC and HTTP are served.
    pub listen_client_urls: Vec<Url>,
    /// `--advertise-client-urls`: reported in MemberList. Empty (possible only in code, the
    /// flags require one) = the bound client addresses, for listeners on port 0.
    pub advertise_client_urls: Vec<Url>,
    /// `--listen-peer-urls`; empty (only in code) = no peer listener.
    pub listen_peer_urls: Vec<Url>,
    /// `--initial-advertise-peer-urls`.
    pub initial_advertise_peer_urls: Vec<Url>,
    /// `--initial-cluster`, as `(name, peer URL)` pairs in the given order.
    pub initial_cluster: Vec<(String, Url)>,
    /// `--initial-cluster-state`.
    pub initial_cluster_state: ClusterState,
    /// `--initial-cluster-token`.
    pub initial_cluster_token: String,
    /// `--snapshot-count`.
    pub snapshot_count: u64,
    /// `--heartbeat-interval`.
    pub heartbeat_interval: Duration,
    /// `--election-timeout`.
    pub election_timeout: Duration,
    /// `--quota-backend-bytes` as given: 0 = the 2 GiB default, negative = no quota. Use
    /// [`Config::quota_backend_bytes`].
    pub quota_backend_bytes_raw: i64,
    /// `--max-request-bytes`.
    pub max_request_bytes: u64,
    /// `--max-txn-ops`.
    pub max_txn_ops: u64,
    /// `--auto-compaction-mode` / `--auto-compaction-retention`.
    pub auto_compaction: AutoCompaction,
    /// How often the revision-mode compactor looks (no flag: etcd's 5 minutes; tests
    /// shorten it).
    pub auto_compaction_check_interval: Duration,
    /// `--log-level`.
    pub log_level: LogLevel,
    /// `--log-outputs`: `stderr`, `stdout`, `default` (= stderr) or file paths, in order.
    pub log_outputs: Vec<String>,
    /// `--log-format`.
    pub log_format: LogFormat,
    /// `--enable-log-rotation` with its `--log-rotation-config-json`; `None` = off.
    pub log_rotation: Option<LogRotation>,
    /// `--enable-v2`: accepted; v2 requests are answered "not supported".
    pub enable_v2: bool,
    /// `--experimental-watch-progress-notify-interval` (3.5) or
    /// `--watch-progress-notify-interval` (3.6): period of the progress notifications sent to
    /// watchers that asked for them. etcd's default is 10 minutes; a zero or negative value
    /// keeps the default and a value below 100ms is raised to 100ms, as etcd does.
    pub watch_progress_notify_interval: Duration,
    /// `--experimental-lease-checkpoint-interval`: how often the leader records the remaining
    /// TTLs of leases (etcd's default, also used for 0: 5 minutes).
    pub lease_checkpoint_interval: Duration,
    /// `--experimental-initial-corrupt-check`: a restarted member compares its HashKV with
    /// its peers' before serving, and refuses to start on a mismatch.
    pub initial_corrupt_check: bool,
    /// `--cert-file`: the client port's certificate (PEM; a chain may follow it).
    pub cert_file: Option<PathBuf>,
    /// `--key-file`: the private key of `--cert-file`.
    pub key_file: Option<PathBuf>,
    /// `--trusted-ca-file`: CA certificates client certificates are verified against;
    /// when set, clients must present one (as in etcd).
    pub trusted_ca_file: Option<PathBuf>,
    /// `--client-cert-auth`: clients must present a certificate from `--trusted-ca-file`.
    pub client_cert_auth: bool,
    /// `--client-crl-file`: revoked client certificates (PEM or DER), re-read when changed.
    pub client_crl_file: Option<PathBuf>,
    /// `--auto-tls`: https listeners without `--cert-file` use a self-signed certificate
    /// kept in `<data-dir>/fixtures/client`.
    pub auto_tls: bool,
    /// `--self-signed-cert-validity`, in years (etcd's default 1).
    pub self_signed_cert_validity: u64,
    /// `--cipher-suites`: Go names of the TLS 1.2 suites allowed (empty = rustls's set).
    pub cipher_suites: Vec<String>,
    /// `--tls-min-version` (`None` = TLS1.2).
    pub tls_min_version: Option<crate::tls::TlsVersion>,
    /// `--tls-max-version` (`None` = TLS1.3).
    pub tls_max_version: Option<crate::tls::TlsVersion>,
    /// `--peer-cert-file`: the peer port's certificate, also presented as the client
    /// certificate when dialing other members.
    pub peer_cert_file: Option<PathBuf>,
    /// `--peer-key-file`: the private key of `--peer-cert-file`.
    pub peer_key_file: Option<PathBuf>,
    /// `--peer-trusted-ca-file`: the CA peers' certificates are verified against (both
    /// ways); when set, dialing members must present a certificate (as in etcd).
    pub peer_trusted_ca_file: Option<PathBuf>,
    /// `--peer-client-cert-auth`: dialing members must present a certificate from
    /// `--peer-trusted-ca-file`.
    pub peer_client_cert_auth: bool,
    /// `--peer-crl-file`: revoked peer certificates, re-read when changed.
    pub peer_crl_file: Option<PathBuf>,
    /// `--peer-auto-tls`: https peer listeners without `--peer-cert-file` use a self-signed
    /// certificate kept in `<data-dir>/fixtures/peer`; without a CA, peers are dialed
    /// encrypted but unverified (as etcd does).
    pub peer_auto_tls: bool,
    /// `--peer-cert-allowed-cn`: the CN a peer's verified certificate must have.
    pub peer_cert_allowed_cn: Option<String>,
    /// `--peer-cert-allowed-hostname`: a host name a peer's verified certificate must be
    /// valid for.
    pub peer_cert_allowed_hostname: Option<String>,
    /// `--metrics`: `basic` (default) or `extensive` (adds grpc_server_handling_seconds).
    pub metrics_extensive: bool,
    /// `--listen-metrics-urls`: extra listeners serving `/metrics` and the health paths.
    pub listen_metrics_urls: Vec<Url>,
}

impl Default for Config {
    /// etcd's defaults (what `cairn` with no flags and no environment runs with).
    fn default() -> Self {
        let client = vec![Url::parse(DEFAULT_LISTEN_CLIENT_URL).expect("valid default")];
        let peer = vec![Url::parse(DEFAULT_LISTEN_PEER_URL).expect("valid default")];
        Config {
            name: DEFAULT_NAME.to_string(),
            data_dir: PathBuf::from(format!("{DEFAULT_NAME}.etcd")),
            listen_client_urls: client.clone(),
            advertise_client_urls: client,
            listen_peer_urls: peer.clone(),
            initial_advertise_peer_urls: peer.clone(),
            initial_cluster: vec![(DEFAULT_NAME.to_string(), peer[0].clone())],
            initial_cluster_state: ClusterState::New,
            initial_cluster_token: DEFAULT_CLUSTER_TOKEN.to_string(),
            snapshot_count: DEFAULT_SNAPSHOT_COUNT,
            heartbeat_interval: Duration::from_millis(DEFAULT_HEARTBEAT_MS),
            election_timeout: Duration::from_millis(DEFAULT_ELECTION_MS),
            quota_backend_bytes_raw: 0,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_txn_ops: DEFAULT_MAX_TXN_OPS,
            auto_compaction: AutoCompaction::Off,
            auto_compaction_check_interval: DEFAULT_AUTO_COMPACTION_CHECK_INTERVAL,
            log_level: LogLevel::Info,
            log_outputs: vec!["default".to_string()],
            log_format: LogFormat::Json,
            log_rotation: None,
            enable_v2: false,
            watch_progress_notify_interval: DEFAULT_WATCH_PROGRESS_NOTIFY_INTERVAL,
            lease_checkpoint_interval: DEFAULT_LEASE_CHECKPOINT_INTERVAL,
            initial_corrupt_check: false,
            cert_file: None,
            key_file: None,
            trusted_ca_file: None,
            client_cert_auth: false,
            client_crl_file: None,
            auto_tls: false,
            self_signed_cert_validity: DEFAULT_SELF_SIGNED_CERT_VALIDITY,
            cipher_suites: Vec::new(),
            tls_min_version: None,
            tls_max_version: None,
            peer_cert_file: None,
            peer_key_file: None,
            peer_trusted_ca_file: None,
            peer_client_cert_auth: false,
            peer_crl_file: None,
            peer_auto_tls: false,
            peer_cert_allowed_cn: None,
            peer_cert_allowed_hostname: None,
            metrics_extensive: false,
            listen_metrics_urls: Vec::new(),
        }
    }
}

impl Config {
    /// A member for in-process tests: data in `dir`, clients served on 127.0.0.1 at a free
    /// port (advertised as the bound address), no peer listener; etcd's defaults otherwise.
    pub fn for_test(dir: impl Into<PathBuf>) -> Config {
        Config {
            data_dir: dir.into(),
            listen_client_urls: vec![Url::http(SocketAddr::from(([127, 0, 0, 1], 0)))],
            advertise_client_urls: Vec::new(),
            listen_peer_urls: Vec::new(),
            ..Config::default()
        }
    }

    /// The backend quota: `None` when disabled (negative flag value), 2 GiB for 0.
    pub fn quota_backend_bytes(&self) -> Option<u64> {
        match self.quota_backend_bytes_raw {
            n if n < 0 => None,
            0 => Some(DEFAULT_QUOTA_BACKEND_BYTES),
            n => Some(n as u64),
        }
    }

    /// The member's own peer URLs according to `--initial-cluster`.
    pub fn initial_cluster_urls_of(&self, name: &str) -> Vec<Url> {
        let mut v: Vec<Url> = self
            .initial_cluster
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, u)| u.clone())
            .collect();
        v.sort_by_key(|u| u.to_string());
        v.dedup();
        v
    }

    /// The checks etcd makes when bootstrapping a new member with no data yet
    /// (`ServerConfig.VerifyBootstrap`): the member is in `--initial-cluster`, and its URLs
    /// there are the `--initial-advertise-peer-urls`. Not checked on restarts (etcd ignores
    /// the `initial-*` flags once the data directory exists).
    pub fn verify_bootstrap(&self) -> Result<(), ConfigError> {
        let mine = self.initial_cluster_urls_of(&self.name);
        if mine.is_empty() {
            return Err(ConfigError::invalid(format!(
                "couldn't find local name {:?} in the initial cluster configuration",
                self.name
            )));
        }
        let mut adv = self.initial_advertise_peer_urls.clone();
        adv.sort_by_key(|u| u.to_string());
        adv.dedup();
        if mine != adv {
            let join = |v: &[Url]| {
                v.iter()
                    .map(|u| u.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            return Err(ConfigError::invalid(format!(
                "--initial-cluster has {}={} but missing from --initial-advertise-peer-urls={}",
                self.name,
                join(&mine),
                join(&adv)
            )));
        }
        for (i, (n1, u1)) in self.initial_cluster.iter().enumerate() {
            if let Some((n2, _)) = self.initial_cluster[i + 1..]
                .iter()
                .find(|(n2, u2)| u2 == u1 && n2 != n1)
            {
                return Err(ConfigError::invalid(format!(
                    "--initial-cluster has duplicate url {u1} for members {n1} and {n2}"
                )));
            }
        }
        Ok(())
    }
}

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invocation {
    /// Run a member.
    Run(Box<Config>),
    /// `--version`: print [`version_text`] and exit 0.
    PrintVersion,
    /// `-h`/`--help`: print [`help_text`] and exit 0.
    PrintHelp,
}

/// The result of parsing, with warnings to log once logging is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub invocation: Invocation,
    pub warnings: Vec<String>,
}

/// A start-up configuration error; its text names the offending flag or value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    message: String,
    usage: bool,
}

impl ConfigError {
    fn usage(message: impl Into<String>) -> Self {
        ConfigError {
            message: message.into(),
            usage: true,
        }
    }
    fn invalid(message: impl Into<String>) -> Self {
        ConfigError {
            message: message.into(),
            usage: false,
        }
    }
    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// The process exit code etcd uses: 2 for command-line syntax, 1 for bad values.
    pub fn exit_code(&self) -> i32 {
        if self.usage {
            2
        } else {
            1
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Parses this process's arguments (without the program name) and environment.
pub fn from_process() -> Result<Parsed, ConfigError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env: Vec<(String, String)> = std::env::vars().collect();
    parse(&args, &env, |p| std::fs::read_to_string(p))
}

/// Where a value came from, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Flag,
    Env,
    File,
}

struct Raw {
    name: &'static str,
    value: String,
    source: Source,
}

fn describe(name: &str, source: Source) -> String {
    match source {
        Source::Flag => format!("flag --{name}"),
        Source::Env => format!("environment variable {} (--{name})", flags::env_name(name)),
        Source::File => format!("config file key {name} (--{name})"),
    }
}

fn invalid_value(name: &str, value: &str, source: Source, why: &str) -> ConfigError {
    match source {
        Source::Flag => {
            ConfigError::usage(format!("invalid value {value:?} for flag -{name}: {why}"))
        }
        Source::Env => ConfigError::invalid(format!(
            "invalid value {value:?} for {}: {why}",
            flags::env_name(name)
        )),
        Source::File => ConfigError::invalid(format!(
            "invalid value {value:?} for config file key {name}: {why}"
        )),
    }
}

/// Parses `args` (without the program name) and `env` like etcd. `read_file` reads the
/// `--config-file` (a parameter so tests need no files).
pub fn parse(
    args: &[String],
    env: &[(String, String)],
    read_file: impl Fn(&str) -> std::io::Result<String>,
) -> Result<Parsed, ConfigError> {
    let mut warnings = Vec::new();
    let cli = match parse_command_line(args)? {
        Some(cli) => cli,
        None => {
            return Ok(Parsed {
                invocation: Invocation::PrintHelp,
                warnings,
            })
        }
    };
    let cli_value = |name: &str| {
        cli.iter()
            .rev()
            .find(|r| r.name == name)
            .map(|r| r.value.clone())
    };
    if let Some(v) = cli_value("version") {
        if values::parse_bool(&v) == Ok(true) {
            return Ok(Parsed {
                invocation: Invocation::PrintVersion,
                warnings,
            });
        }
    }
    let env_get = |k: &str| {
        env.iter()
            .rev()
            .find(|(ek, _)| ek == k)
            .map(|(_, v)| v.clone())
    };

    let config_file = cli_value("config-file")
        .filter(|s| !s.is_empty())
        .or_else(|| env_get(&flags::env_name("config-file")).filter(|s| !s.is_empty()));

    let raws: Vec<Raw> = if let Some(path) = config_file {
        let text = read_file(&path)
            .map_err(|e| ConfigError::invalid(format!("cannot read config file {path:?}: {e}")))?;
        let pairs = yaml::parse(&text)
            .map_err(|e| ConfigError::invalid(format!("config file {path:?}: {e}")))?;
        let others = cli.iter().filter(|r| r.name != "config-file").count();
        if others > 0
            || env
                .iter()
                .any(|(k, _)| k.starts_with("ETCD_") && k != "ETCD_CONFIG_FILE")
        {
            warnings.push(format!(
                "loaded server configuration from {path:?}; other command-line flags and \
                 ETCD_* environment variables are ignored"
            ));
        }
        let mut out = Vec::new();
        for (key, value) in pairs {
            let spec = flags::lookup(&key)
                .ok_or_else(|| ConfigError::invalid(format!("unknown config file key {key:?}")))?;
            if matches!(spec.name, "config-file" | "version") {
                return Err(ConfigError::invalid(format!(
                    "config file key {key:?} is not allowed in a config file"
                )));
            }
            check_kind(spec.name, spec.kind, &value, Source::File)?;
            out.push(Raw {
                name: spec.name,
                value,
                source: Source::File,
            });
        }
        out
    } else {
        let mut out = cli;
        let on_cli: std::collections::HashSet<&'static str> = out.iter().map(|r| r.name).collect();
        for (k, v) in env {
            if !k.starts_with("ETCD_") {
                continue;
            }
            if k == "ETCD_VERSION" {
                warnings.push(format!(
                    "cannot set special environment variable {k}={v}; ignored"
                ));
                continue;
            }
            let Some(spec) = flags::FLAGS.iter().find(|f| flags::env_name(f.name) == *k) else {
                warnings.push(format!("unrecognized environment variable {k}={v}"));
                continue;
            };
            if on_cli.contains(spec.name) {
                return Err(ConfigError::invalid(format!(
                    "conflicting environment variable {k:?} is shadowed by corresponding \
                     command-line flag (either unset environment variable or disable flag)"
                )));
            }
            if v.is_empty() || spec.name == "config-file" {
                continue;
            }
            check_kind(spec.name, spec.kind, v, Source::Env)?;
            out.push(Raw {
                name: spec.name,
                value: v.clone(),
                source: Source::Env,
            });
        }
        out
    };

    // Support check: unsupported flags only with etcd's default values.
    let mut set: BTreeMap<&'static str, Raw> = BTreeMap::new();
    for raw in raws {
        let spec = flags::lookup(raw.name).expect("names come from the table");
        match spec.support {
            Support::Yes => {}
            Support::Ignored => {
                warnings.push(format!(
                    "{} has no effect (etcd ignores it too)",
                    describe(raw.name, raw.source)
                ));
                continue;
            }
            Support::No(noops) => {
                if noops.iter().any(|d| same_value(spec.kind, d, &raw.value)) {
                    continue;
                }
                return Err(ConfigError::invalid(format!(
                    "{} is not supported yet by cairn (value {:?}; only etcd's default {} is accepted)",
                    describe(raw.name, raw.source),
                    raw.value,
                    noops.iter().map(|d| format!("{d:?}")).collect::<Vec<_>>().join(" or ")
                )));
            }
        }
        set.insert(raw.name, raw);
    }
    let from_cli = !set.values().any(|r| r.source == Source::File);
    let config = build(&set, from_cli, &mut warnings)?;
    Ok(Parsed {
        invocation: Invocation::Run(Box::new(config)),
        warnings,
    })
}

/// Go `flag` command-line syntax. `None` means help was asked for.
fn parse_command_line(args: &[String]) -> Result<Option<Vec<Raw>>, ConfigError> {
    let arity = |name: &str| match flags::lookup(name) {
        Some(spec) if spec.kind == Kind::Bool => Some(Arity::Bool),
        Some(_) => Some(Arity::Value),
        // Go's flag answers -h and -help with the usage when they are not defined.
        None if name == "h" || name == "help" => Some(Arity::Bool),
        None => None,
    };
    let mut cl = CommandLine::new(args, Syntax::Go, arity);
    let mut out = Vec::new();
    for flag in cl.by_ref() {
        let Flag { name, value } = flag.map_err(|e| ConfigError::usage(e.to_string()))?;
        let Some(spec) = flags::lookup(&name) else {
            return Ok(None);
        };
        let value = if spec.kind == Kind::Bool {
            let b = values::parse_bool(&value).map_err(|e| {
                ConfigError::usage(format!("invalid boolean value {value:?} for -{name}: {e}"))
            })?;
            b.to_string()
        } else {
            value
        };
        check_kind(spec.name, spec.kind, &value, Source::Flag)?;
        out.push(Raw {
            name: spec.name,
            value,
            source: Source::Flag,
        });
    }
    // etcd reports this after parsing, as a configuration error (exit 1).
    if let Some(first) = cl.positional().first() {
        return Err(ConfigError::invalid(format!(
            "'{first}' is not a valid flag"
        )));
    }
    Ok(Some(out))
}

/// The syntax check Go's flag.Value.Set makes for each kind.
fn check_kind(name: &str, kind: Kind, value: &str, source: Source) -> Result<(), ConfigError> {
    let r = match kind {
        Kind::Bool => values::parse_bool(value).map(|_| ()),
        Kind::Uint => values::parse_uint(value).map(|_| ()),
        Kind::Int => values::parse_int(value).map(|_| ()),
        Kind::Duration if value.is_empty() => Ok(()),
        Kind::Duration => values::parse_go_duration(value).map(|_| ()),
        Kind::Str | Kind::List => Ok(()),
    };
    r.map_err(|e| invalid_value(name, value, source, &e))
}

/// Whether `given` means the same as etcd's default `default` for a flag of this kind.
fn same_value(kind: Kind, default: &str, given: &str) -> bool {
    match kind {
        Kind::Bool => values::parse_bool(default).ok() == values::parse_bool(given).ok(),
        Kind::Uint => values::parse_uint(default).ok() == values::parse_uint(given).ok(),
        Kind::Int => values::parse_int(default).ok() == values::parse_int(given).ok(),
        Kind::Duration => {
            let d = |s: &str| {
                if s.is_empty() {
                    Ok(0)
                } else {
                    values::parse_go_duration(s)
                }
            };
            matches!((d(default), d(given)), (Ok(a), Ok(b)) if a == b)
        }
        Kind::Str => default == given.trim(),
        Kind::List => {
            let set = |s: &str| {
                let mut v: Vec<String> = s
                    .split(',')
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect();
                v.sort();
                v.dedup();
                v
            };
            set(default) == set(given)
        }
    }
}

/// `--log-rotation-config-json`, checked like etcd's `setupLogRotation`. Cairn rotates by
/// size and prunes by count and age; `localtime` and `compress` are refused when true.
fn log_rotation(json: &str) -> Result<LogRotation, ConfigError> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| {
        ConfigError::invalid(format!(
            "--log-rotation-config-json: improperly formatted log rotation config: {e}"
        ))
    })?;
    let obj = v.as_object().ok_or_else(|| {
        ConfigError::invalid(
            "--log-rotation-config-json: invalid log rotation config: not an object",
        )
    })?;
    let num = |k: &str| -> Result<u64, ConfigError> {
        match obj.get(k) {
            None => Ok(0),
            Some(x) => x.as_u64().ok_or_else(|| {
                ConfigError::invalid(format!(
                    "--log-rotation-config-json: invalid log rotation config: {k} must be a \
                     non-negative integer"
                ))
            }),
        }
    };
    let flag = |k: &str| -> Result<bool, ConfigError> {
        match obj.get(k) {
            None => Ok(false),
            Some(x) => x.as_bool().ok_or_else(|| {
                ConfigError::invalid(format!(
                    "--log-rotation-config-json: invalid log rotation config: {k} must be a \
                     boolean"
                ))
            }),
        }
    };
    for k in ["localtime", "compress"] {
        if flag(k)? {
            return Err(ConfigError::invalid(format!(
                "--log-rotation-config-json: \"{k}\": true is not supported yet by cairn"
            )));
        }
    }
    Ok(LogRotation {
        max_size_mb: num("maxsize")?,
        max_age_days: num("maxage")?,
        max_backups: num("maxbackups")?,
    })
}

/// Turns the supported flags' values into a [`Config`] and validates it like etcd's
/// `embed.Config.Validate`.
fn build(
    set: &BTreeMap<&'static str, Raw>,
    from_cli: bool,
    warnings: &mut Vec<String>,
) -> Result<Config, ConfigError> {
    let mut c = Config::default();
    let get = |n: &str| set.get(n);
    let bad = |r: &Raw, why: String| invalid_value(r.name, &r.value, r.source, &why);
    let urls = |r: &Raw| values::parse_urls(&r.value).map_err(|e| bad(r, e));
    let uint = |r: &Raw| values::parse_uint(&r.value).map_err(|e| bad(r, e));

    if let Some(r) = get("name") {
        c.name = r.value.clone();
    }
    c.data_dir = match get("data-dir") {
        Some(r) if !r.value.is_empty() => PathBuf::from(&r.value),
        _ => PathBuf::from(format!("{}.etcd", c.name)),
    };
    if let Some(r) = get("listen-client-urls") {
        c.listen_client_urls = urls(r)?;
    }
    match get("advertise-client-urls") {
        Some(r) => c.advertise_client_urls = urls(r)?,
        // etcd drops the default advertise URL when listen URLs are given on the command line.
        None if from_cli && get("listen-client-urls").is_some() => c.advertise_client_urls.clear(),
        None => {}
    }
    if let Some(r) = get("listen-metrics-urls") {
        c.listen_metrics_urls = if r.value.is_empty() {
            Vec::new()
        } else {
            urls(r)?
        };
    }
    if let Some(r) = get("metrics") {
        c.metrics_extensive = match r.value.as_str() {
            "basic" => false,
            "extensive" => true,
            v => {
                return Err(invalid_value(
                    r.name,
                    v,
                    r.source,
                    "must be \"basic\" or \"extensive\"",
                ))
            }
        };
    }
    if let Some(r) = get("listen-peer-urls") {
        c.listen_peer_urls = urls(r)?;
    }
    if let Some(r) = get("initial-advertise-peer-urls") {
        c.initial_advertise_peer_urls = urls(r)?;
    }
    match get("initial-cluster") {
        Some(r) => {
            c.initial_cluster = values::parse_initial_cluster(&r.value).map_err(|e| bad(r, e))?
        }
        // etcd's UpdateDefaultClusterFromName: a renamed member with the default
        // --initial-cluster gets `<name>=<its advertised peer URLs>`.
        None if c.name != DEFAULT_NAME => {
            c.initial_cluster = c
                .initial_advertise_peer_urls
                .iter()
                .map(|u| (c.name.clone(), u.clone()))
                .collect();
        }
        None => {}
    }
    if let Some(r) = get("initial-cluster-state") {
        c.initial_cluster_state = match r.value.as_str() {
            "new" => ClusterState::New,
            "existing" => ClusterState::Existing,
            _ => return Err(bad(r, "invalid value".into())),
        };
    }
    if let Some(r) = get("initial-cluster-token") {
        c.initial_cluster_token = r.value.clone();
    }
    if let Some(r) = get("snapshot-count") {
        c.snapshot_count = uint(r)?;
    }
    let mut heartbeat_ms = DEFAULT_HEARTBEAT_MS;
    let mut election_ms = DEFAULT_ELECTION_MS;
    if let Some(r) = get("heartbeat-interval") {
        heartbeat_ms = uint(r)?;
    }
    if let Some(r) = get("election-timeout") {
        election_ms = uint(r)?;
    }
    if heartbeat_ms == 0 {
        return Err(ConfigError::invalid(
            "--heartbeat-interval must be greater than 0",
        ));
    }
    if heartbeat_ms.saturating_mul(5) > election_ms {
        return Err(ConfigError::invalid(format!(
            "--election-timeout[{election_ms}ms] should be at least as 5 times as \
             --heartbeat-interval[{heartbeat_ms}ms]"
        )));
    }
    if election_ms > MAX_ELECTION_MS {
        return Err(ConfigError::invalid(format!(
            "--election-timeout[{election_ms}ms] is too long, and should be set less than \
             {MAX_ELECTION_MS}ms"
        )));
    }
    c.heartbeat_interval = Duration::from_millis(heartbeat_ms);
    c.election_timeout = Duration::from_millis(election_ms);
    if let Some(r) = get("quota-backend-bytes") {
        c.quota_backend_bytes_raw = values::parse_int(&r.value).map_err(|e| bad(r, e))?;
        if c.quota_backend_bytes_raw < 0 {
            warnings.push("backend quota disabled (negative --quota-backend-bytes)".into());
        } else if c.quota_backend_bytes_raw as u64 > MAX_SUGGESTED_QUOTA_BACKEND_BYTES {
            warnings.push(format!(
                "--quota-backend-bytes {} exceeds the suggested maximum {}",
                c.quota_backend_bytes_raw, MAX_SUGGESTED_QUOTA_BACKEND_BYTES
            ));
        }
    }
    if let Some(r) = get("max-request-bytes") {
        c.max_request_bytes = uint(r)?;
        if c.max_request_bytes == 0 {
            return Err(bad(r, "must be greater than 0".into()));
        }
    }
    if let Some(r) = get("max-txn-ops") {
        c.max_txn_ops = uint(r)?;
        if c.max_txn_ops == 0 {
            return Err(bad(r, "must be greater than 0".into()));
        }
    }
    c.auto_compaction = auto_compaction(
        get("auto-compaction-mode"),
        get("auto-compaction-retention"),
    )?;
    if let Some(r) = get("log-level") {
        c.log_level = match r.value.as_str() {
            "debug" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "warn" => LogLevel::Warn,
            "error" => LogLevel::Error,
            "panic" | "dpanic" => LogLevel::Panic,
            "fatal" => LogLevel::Fatal,
            other => return Err(ConfigError::invalid(format!("unknown log-level {other:?}"))),
        };
    }
    if let Some(r) = get("logger") {
        match r.value.as_str() {
            "zap" => {}
            "capnslog" => return Err(ConfigError::invalid("--logger=capnslog is removed in v3.5")),
            other => {
                return Err(ConfigError::invalid(format!(
                    "--logger: unknown logger option {other:?}"
                )))
            }
        }
    }
    if let Some(r) = get("log-format") {
        c.log_format = match r.value.as_str() {
            "json" | "" => LogFormat::Json,
            "console" => LogFormat::Console,
            other => {
                return Err(ConfigError::invalid(format!(
                    "--log-format: unknown log format: {other}, supported values json, console"
                )))
            }
        };
    }
    if let Some(r) = get("log-outputs") {
        let outs: Vec<String> = r
            .value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if !outs.is_empty() {
            c.log_outputs = outs;
        }
    }
    if c.log_outputs.len() > 1 && c.log_outputs.iter().any(|o| o == "default") {
        return Err(ConfigError::invalid(
            "--log-outputs: multi logoutput for \"default\" is not supported yet",
        ));
    }
    let rotate = match get("enable-log-rotation") {
        Some(r) => values::parse_bool(&r.value).map_err(|e| bad(r, e.to_string()))?,
        None => false,
    };
    if rotate {
        let files = c
            .log_outputs
            .iter()
            .filter(|o| !matches!(o.as_str(), "default" | "stderr" | "stdout"))
            .count();
        // etcd's `setupLogRotation`: a file is needed, and at most one.
        if (c.log_outputs.len() == 1 && files == 0) || files > 1 {
            return Err(ConfigError::invalid(ERR_LOG_ROTATION_OUTPUTS));
        }
        let json = match get("log-rotation-config-json") {
            Some(r) if !r.value.is_empty() => r.value.as_str(),
            _ => DEFAULT_LOG_ROTATION_CONFIG_JSON,
        };
        c.log_rotation = Some(log_rotation(json)?);
    }
    if let Some(r) = get("enable-v2") {
        c.enable_v2 = values::parse_bool(&r.value).map_err(|e| bad(r, e.to_string()))?;
        if c.enable_v2 {
            warnings.push(
                "--enable-v2 is accepted but cairn serves no v2 API; v2 requests are answered \
                 as not supported"
                    .into(),
            );
        }
    }
    if let Some(r) = get("experimental-initial-corrupt-check") {
        c.initial_corrupt_check =
            values::parse_bool(&r.value).map_err(|e| bad(r, e.to_string()))?;
    }
    watch_and_lease(&mut c, get, warnings)?;
    client_tls(&mut c, get, warnings)?;
    peer_tls(&mut c, get, warnings)?;

    // embed.Config.Validate
    for u in c.listen_client_urls.iter().chain(&c.listen_peer_urls) {
        u.bind_addr().map_err(ConfigError::invalid)?;
    }
    for u in c
        .advertise_client_urls
        .iter()
        .chain(&c.initial_advertise_peer_urls)
    {
        if u.host.is_empty() {
            return Err(ConfigError::invalid(format!("expected host in URL ({u})")));
        }
    }
    if c.listen_client_urls.is_empty() {
        return Err(ConfigError::invalid(
            "--listen-client-urls must list at least one URL",
        ));
    }
    if c.advertise_client_urls.is_empty() {
        return Err(ConfigError::invalid(
            "--advertise-client-urls is required when --listen-client-urls is set explicitly",
        ));
    }
    if c.initial_advertise_peer_urls.is_empty() {
        return Err(ConfigError::invalid(
            "--initial-advertise-peer-urls must list at least one URL",
        ));
    }
    let peer_files = (c.peer_cert_file.is_some(), c.peer_key_file.is_some());
    if let Some(u) = c
        .listen_peer_urls
        .iter()
        .find(|u| u.scheme == Scheme::Https)
    {
        if peer_files == (false, false) && !c.peer_auto_tls {
            // etcd's transport.NewListener text, with the flags named.
            return Err(ConfigError::invalid(format!(
                "--listen-peer-urls {u}: cannot listen on TLS for {}: KeyFile and CertFile are \
                 not presented (set --peer-cert-file and --peer-key-file, or --peer-auto-tls)",
                u.bind_addr().map(|a| a.to_string()).unwrap_or_default()
            )));
        }
    }
    if peer_files.0 != peer_files.1 {
        let show = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        return Err(ConfigError::invalid(format!(
            "--peer-cert-file, --peer-key-file: KeyFile and CertFile must both be present[key: \
             {}, cert: {}]",
            show(&c.peer_key_file).unwrap_or_default(),
            show(&c.peer_cert_file).unwrap_or_default()
        )));
    }
    let dials_https = c
        .initial_advertise_peer_urls
        .iter()
        .chain(c.initial_cluster.iter().map(|(_, u)| u))
        .find(|u| u.scheme == Scheme::Https);
    if let Some(u) = dials_https {
        if peer_files == (false, false) && !c.peer_auto_tls {
            return Err(ConfigError::invalid(format!(
                "https peer URL {u} needs peer TLS: set --peer-cert-file and --peer-key-file \
                 (with --peer-trusted-ca-file), or --peer-auto-tls"
            )));
        }
    }
    if let Some(u) = c
        .listen_client_urls
        .iter()
        .find(|u| u.scheme == Scheme::Https)
    {
        let (cert, key) = (c.cert_file.is_some(), c.key_file.is_some());
        if !cert && !key && !c.auto_tls {
            return Err(ConfigError::invalid(format!(
                "TLS key/cert (--cert-file, --key-file) must be provided for client url {u} \
                 with HTTPS scheme"
            )));
        }
        if cert != key {
            let show = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
            return Err(ConfigError::invalid(format!(
                "--cert-file, --key-file: KeyFile and CertFile must both be present[key: {}, \
                 cert: {}]",
                show(&c.key_file).unwrap_or_default(),
                show(&c.cert_file).unwrap_or_default()
            )));
        }
    }
    Ok(c)
}

/// etcd's `parseCompactionRetention`: a non-negative integer is hours (periodic) or a revision
/// count (revision); anything else must be a Go duration (periodic only, for Cairn).
fn auto_compaction(
    mode: Option<&Raw>,
    retention: Option<&Raw>,
) -> Result<AutoCompaction, ConfigError> {
    let periodic = match mode {
        None => true,
        Some(r) => match r.value.as_str() {
            "periodic" => true,
            "revision" => false,
            other => {
                return Err(ConfigError::invalid(format!(
                    "unknown auto-compaction-mode {other:?}"
                )))
            }
        },
    };
    let Some(r) = retention else {
        return Ok(AutoCompaction::Off);
    };
    let v = r.value.trim();
    if v.is_empty() {
        return Ok(AutoCompaction::Off);
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        let n: u64 = v
            .parse()
            .map_err(|_| invalid_value(r.name, &r.value, r.source, "value out of range"))?;
        return Ok(match (n, periodic) {
            (0, _) => AutoCompaction::Off,
            (n, true) => AutoCompaction::Periodic(Duration::from_secs(n.saturating_mul(3600))),
            (n, false) => AutoCompaction::Revision(n),
        });
    }
    let d = values::parse_go_duration(v)
        .map_err(|e| ConfigError::invalid(format!("error parsing CompactionRetention: {e}")))?;
    if d < 0 {
        return Err(ConfigError::invalid(format!(
            "--auto-compaction-retention must not be negative: {v:?}"
        )));
    }
    if !periodic {
        return Err(ConfigError::invalid(format!(
            "--auto-compaction-retention {v:?} is a duration, but --auto-compaction-mode=revision \
             needs a revision count"
        )));
    }
    Ok(if d == 0 {
        AutoCompaction::Off
    } else {
        AutoCompaction::Periodic(Duration::from_nanos(d as u64))
    })
}

/// The watch progress and lease checkpoint periods, with etcd's adjustments.
fn watch_and_lease<'a>(
    c: &mut Config,
    get: impl Fn(&str) -> Option<&'a Raw>,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let duration = |r: &Raw| {
        let v = r.value.trim();
        if v.is_empty() {
            return Ok(0);
        }
        values::parse_go_duration(v).map_err(|e| invalid_value(r.name, &r.value, r.source, &e))
    };
    let progress = match (
        get("experimental-watch-progress-notify-interval"),
        get("watch-progress-notify-interval"),
    ) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::invalid(
                "cannot set --experimental-watch-progress-notify-interval and \
                 --watch-progress-notify-interval at the same time, please use \
                 --watch-progress-notify-interval only",
            ))
        }
        (Some(r), None) | (None, Some(r)) => Some((r, duration(r)?)),
        (None, None) => None,
    };
    if let Some((r, nanos)) = progress {
        if nanos > 0 {
            let d = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
            if d < MIN_WATCH_PROGRESS_NOTIFY_INTERVAL {
                warnings.push(format!(
                    "--{} {:?} is below the minimum; using {:?}",
                    r.name, r.value, MIN_WATCH_PROGRESS_NOTIFY_INTERVAL
                ));
                c.watch_progress_notify_interval = MIN_WATCH_PROGRESS_NOTIFY_INTERVAL;
            } else {
                c.watch_progress_notify_interval = d;
            }
        }
    }
    if let Some(r) = get("experimental-lease-checkpoint-interval") {
        let nanos = duration(r)?;
        if nanos < 0 {
            return Err(invalid_value(
                r.name,
                &r.value,
                r.source,
                "must not be negative",
            ));
        }
        if nanos > 0 {
            c.lease_checkpoint_interval =
                Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        }
    }
    Ok(())
}

/// The client TLS flags, checked like etcd's `Config.Validate` (versions, suites).
fn client_tls<'a>(
    c: &mut Config,
    get: impl Fn(&str) -> Option<&'a Raw>,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let path = |n: &str| {
        get(n)
            .map(|r| r.value.trim())
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let flag = |n: &str| -> Result<bool, ConfigError> {
        match get(n) {
            Some(r) => values::parse_bool(&r.value)
                .map_err(|e| invalid_value(r.name, &r.value, r.source, &e.to_string())),
            None => Ok(false),
        }
    };
    c.cert_file = path("cert-file");
    c.key_file = path("key-file");
    c.trusted_ca_file = path("trusted-ca-file");
    c.client_crl_file = path("client-crl-file");
    c.client_cert_auth = flag("client-cert-auth")?;
    c.auto_tls = flag("auto-tls")?;
    if let Some(r) = get("self-signed-cert-validity") {
        c.self_signed_cert_validity = values::parse_uint(&r.value)
            .map_err(|e| invalid_value(r.name, &r.value, r.source, &e))?;
        if c.self_signed_cert_validity == 0 {
            return Err(ConfigError::invalid(
                "--self-signed-cert-validity: selfSignedCertValidity is invalid,it should be \
                 greater than 0",
            ));
        }
    }
    if c.auto_tls && (c.cert_file.is_some() || c.key_file.is_some()) {
        warnings.push("ignoring client auto TLS since certs given".into());
    }
    if let Some(r) = get("cipher-suites") {
        c.cipher_suites = r
            .value
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        crate::tls::parse_cipher_suites(&c.cipher_suites)
            .map_err(|e| ConfigError::invalid(format!("--cipher-suites: {e}")))?;
    }
    let version = |n: &str| -> Result<Option<crate::tls::TlsVersion>, ConfigError> {
        match get(n).map(|r| r.value.trim()).filter(|v| !v.is_empty()) {
            Some(v) => crate::tls::TlsVersion::parse(v)
                .map(Some)
                .map_err(|e| ConfigError::invalid(format!("--{n}: {e}"))),
            None => Ok(None),
        }
    };
    c.tls_min_version = version("tls-min-version")?;
    c.tls_max_version = version("tls-max-version")?;
    if let (Some(min), Some(max)) = (c.tls_min_version, c.tls_max_version) {
        if min > max {
            return Err(ConfigError::invalid(format!(
                "--tls-min-version, --tls-max-version: min version ({min}) is greater than max \
                 version ({max})"
            )));
        }
    }
    if c.tls_min_version == Some(crate::tls::TlsVersion::Tls13) && !c.cipher_suites.is_empty() {
        return Err(ConfigError::invalid(
            "--cipher-suites: cipher suites cannot be configured when only TLS1.3 is enabled",
        ));
    }
    Ok(())
}

/// The peer TLS flags (`--peer-*`), checked like etcd's `Config.Validate`.
fn peer_tls<'a>(
    c: &mut Config,
    get: impl Fn(&str) -> Option<&'a Raw>,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let text = |n: &str| {
        get(n)
            .map(|r| r.value.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let flag = |n: &str| -> Result<bool, ConfigError> {
        match get(n) {
            Some(r) => values::parse_bool(&r.value)
                .map_err(|e| invalid_value(r.name, &r.value, r.source, &e.to_string())),
            None => Ok(false),
        }
    };
    c.peer_cert_file = text("peer-cert-file").map(PathBuf::from);
    c.peer_key_file = text("peer-key-file").map(PathBuf::from);
    c.peer_trusted_ca_file = text("peer-trusted-ca-file").map(PathBuf::from);
    c.peer_crl_file = text("peer-crl-file").map(PathBuf::from);
    c.peer_client_cert_auth = flag("peer-client-cert-auth")?;
    c.peer_auto_tls = flag("peer-auto-tls")?;
    c.peer_cert_allowed_cn = text("peer-cert-allowed-cn");
    c.peer_cert_allowed_hostname = text("peer-cert-allowed-hostname");
    if let (Some(cn), Some(host)) = (&c.peer_cert_allowed_cn, &c.peer_cert_allowed_hostname) {
        return Err(ConfigError::invalid(format!(
            "--peer-cert-allowed-cn, --peer-cert-allowed-hostname: AllowedCN and \
             AllowedHostname are mutually exclusive (cn={cn:?}, hostname={host:?})"
        )));
    }
    if c.peer_auto_tls && (c.peer_cert_file.is_some() || c.peer_key_file.is_some()) {
        warnings.push("ignoring peer auto TLS since certs given".into());
    }
    Ok(())
}

/// What `cairn --version` prints: etcd's line layout with Cairn's facts.
pub fn version_text() -> String {
    format!(
        "cairn Version: {}\netcd API Version: {}\nGit SHA: {}\nRust Version: {}\nOS/Arch: {}/{}\n",
        env!("CARGO_PKG_VERSION"),
        crate::status::SERVER_VERSION,
        option_env!("CAIRN_GIT_SHA").unwrap_or("Not provided"),
        option_env!("CAIRN_RUSTC_VERSION").unwrap_or("Not provided"),
        std::env::consts::OS,
        go_arch(),
    )
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

/// What `cairn --help` prints.
pub fn help_text() -> String {
    let mut s = String::from(
        "Usage:\n\n  cairn [flags]\n    Start a Cairn (etcd v3 compatible) member.\n\n  \
         cairn --version\n    Show the version.\n\n  cairn -h | --help\n    Show this help.\n\n\
         Flags (etcd's; each also read from ETCD_<FLAG_UPPER_SNAKE> unless --config-file is given):\n",
    );
    let q = |v: &dyn fmt::Display| format!("'{v}'");
    let rows: &[(&str, String, &str)] = &[
        (
            "--name",
            q(&DEFAULT_NAME),
            "Human-readable name for this member.",
        ),
        (
            "--data-dir",
            "'${name}.etcd'".into(),
            "Path to the data directory.",
        ),
        (
            "--listen-client-urls",
            q(&DEFAULT_LISTEN_CLIENT_URL),
            "URLs to listen on for client traffic.",
        ),
        (
            "--advertise-client-urls",
            q(&DEFAULT_LISTEN_CLIENT_URL),
            "This member's client URLs to advertise.",
        ),
        (
            "--listen-peer-urls",
            q(&DEFAULT_LISTEN_PEER_URL),
            "URLs to listen on for peer traffic.",
        ),
        (
            "--initial-advertise-peer-urls",
            q(&DEFAULT_LISTEN_PEER_URL),
            "This member's peer URLs to advertise.",
        ),
        (
            "--initial-cluster",
            format!("'{DEFAULT_NAME}={DEFAULT_LISTEN_PEER_URL}'"),
            "Initial cluster configuration for bootstrapping.",
        ),
        (
            "--initial-cluster-state",
            "'new'".into(),
            "Initial cluster state ('new' or 'existing').",
        ),
        (
            "--initial-cluster-token",
            q(&DEFAULT_CLUSTER_TOKEN),
            "Initial cluster token for bootstrapping.",
        ),
        (
            "--snapshot-count",
            q(&DEFAULT_SNAPSHOT_COUNT),
            "Committed entries that trigger a snapshot (etcd 3.5's default).",
        ),
        (
            "--heartbeat-interval",
            q(&DEFAULT_HEARTBEAT_MS),
            "Time (in milliseconds) of a heartbeat interval.",
        ),
        (
            "--election-timeout",
            q(&DEFAULT_ELECTION_MS),
            "Time (in milliseconds) for an election to timeout.",
        ),
        (
            "--quota-backend-bytes",
            "'0'".into(),
            "Backend size quota raising NOSPACE (0: 2 GiB; negative: none).",
        ),
        (
            "--max-request-bytes",
            q(&DEFAULT_MAX_REQUEST_BYTES),
            "Maximum client request size in bytes.",
        ),
        (
            "--max-txn-ops",
            q(&DEFAULT_MAX_TXN_OPS),
            "Maximum number of operations in a transaction.",
        ),
        (
            "--auto-compaction-mode",
            "'periodic'".into(),
            "periodic|revision.",
        ),
        (
            "--auto-compaction-retention",
            "'0'".into(),
            "Hours or a duration (periodic), or revisions (revision); 0 disables.",
        ),
        (
            "--log-level",
            "'info'".into(),
            "debug, info, warn, error, panic, or fatal.",
        ),
        (
            "--enable-v2",
            "'false'".into(),
            "Accepted; the v2 API is not served.",
        ),
        (
            "--config-file",
            "''".into(),
            "YAML configuration; other flags and ETCD_* variables are then ignored.",
        ),
        ("--version", "'false'".into(), "Print the version and exit."),
    ];
    for (flag, default, what) in rows {
        s.push_str(&format!("  {flag} {default}\n    {what}\n"));
    }
    s.push_str(
        "\nOther etcd flags are recognised but not supported yet: giving one with a value other \
         than etcd's default stops start-up with a message naming it.\n",
    );
    s
}

#[cfg(test)]
mod tests;
