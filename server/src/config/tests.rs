use super::*;

fn args(s: &[&str]) -> Vec<String> {
    s.iter().map(|a| a.to_string()).collect()
}

fn env(s: &[(&str, &str)]) -> Vec<(String, String)> {
    s.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn no_file(_: &str) -> std::io::Result<String> {
    Err(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        "no such file",
    ))
}

fn run_with(a: &[&str], e: &[(&str, &str)]) -> Result<Parsed, ConfigError> {
    parse(&args(a), &env(e), no_file)
}

fn config(a: &[&str], e: &[(&str, &str)]) -> Config {
    match run_with(a, e)
        .unwrap_or_else(|err| panic!("{a:?}: {err}"))
        .invocation
    {
        Invocation::Run(c) => *c,
        other => panic!("expected Run, got {other:?}"),
    }
}

fn error(a: &[&str], e: &[(&str, &str)]) -> ConfigError {
    match run_with(a, e) {
        Err(err) => err,
        Ok(p) => panic!("{a:?} {e:?} parsed: {p:?}"),
    }
}

fn url(s: &str) -> Url {
    Url::parse(s).unwrap()
}

#[test]
fn no_flags_gives_etcd_defaults() {
    let c = config(&[], &[]);
    assert_eq!(c, Config::default());
    assert_eq!(c.name, "default");
    assert_eq!(c.data_dir, PathBuf::from("default.etcd"));
    assert_eq!(c.listen_client_urls, vec![url("http://localhost:2379")]);
    assert_eq!(
        c.listen_client_urls[0].bind_addr().unwrap(),
        "127.0.0.1:2379".parse().unwrap()
    );
    assert_eq!(c.advertise_client_urls, vec![url("http://localhost:2379")]);
    assert_eq!(
        c.initial_cluster,
        vec![("default".to_string(), url("http://localhost:2380"))]
    );
    assert_eq!(c.initial_cluster_state, ClusterState::New);
    assert_eq!(c.initial_cluster_token, "etcd-cluster");
    assert_eq!(c.snapshot_count, 100_000);
    assert_eq!(c.heartbeat_interval, Duration::from_millis(100));
    assert_eq!(c.election_timeout, Duration::from_millis(1000));
    assert_eq!(c.quota_backend_bytes(), Some(2 * 1024 * 1024 * 1024));
    assert_eq!(c.max_request_bytes, 1_572_864);
    assert_eq!(c.max_txn_ops, 128);
    assert_eq!(c.auto_compaction, AutoCompaction::Off);
    assert_eq!(c.log_level, LogLevel::Info);
    assert!(!c.enable_v2);
    c.verify_bootstrap().unwrap();
}

#[test]
fn go_flag_syntaxes() {
    for form in [
        &["--name=n1"][..],
        &["--name", "n1"][..],
        &["-name=n1"][..],
        &["-name", "n1"][..],
    ] {
        assert_eq!(config(form, &[]).name, "n1", "{form:?}");
    }
    // Renaming moves the data dir and the default initial cluster, like etcd.
    let c = config(&["--name", "n1"], &[]);
    assert_eq!(c.data_dir, PathBuf::from("n1.etcd"));
    assert_eq!(
        c.initial_cluster,
        vec![("n1".to_string(), url("http://localhost:2380"))]
    );
    c.verify_bootstrap().unwrap();
    // A value may start with a dash when it follows a non-boolean flag.
    assert_eq!(config(&["--name", "-odd"], &[]).name, "-odd");
    // The last occurrence wins.
    assert_eq!(config(&["--name=a", "--name=b"], &[]).name, "b");
}

#[test]
fn boolean_flags() {
    assert!(config(&["--enable-v2"], &[]).enable_v2);
    assert!(!config(&[], &[]).initial_corrupt_check);
    assert!(config(&["--experimental-initial-corrupt-check"], &[]).initial_corrupt_check);
    assert!(config(&["--experimental-initial-corrupt-check=true"], &[]).initial_corrupt_check);
    assert!(
        config(&[], &[("ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK", "true")]).initial_corrupt_check
    );
    assert!(!config(&["--experimental-initial-corrupt-check=false"], &[]).initial_corrupt_check);
    assert!(error(&["--experimental-initial-corrupt-check=maybe"], &[])
        .message()
        .contains("experimental-initial-corrupt-check"));
    assert!(config(&["-enable-v2=true"], &[]).enable_v2);
    assert!(config(&["--enable-v2=1"], &[]).enable_v2);
    assert!(!config(&["--enable-v2=false"], &[]).enable_v2);
    // A bool flag does not take the next argument: etcd then rejects "false".
    assert_eq!(
        error(&["--enable-v2", "false"], &[]).message(),
        "'false' is not a valid flag"
    );
    let e = error(&["--enable-v2=maybe"], &[]);
    assert_eq!(
        e.message(),
        "invalid boolean value \"maybe\" for -enable-v2: parse error"
    );
    assert_eq!(e.exit_code(), 2);
}

#[test]
fn syntax_errors() {
    assert_eq!(
        error(&["--foo"], &[]).message(),
        "flag provided but not defined: -foo"
    );
    assert_eq!(
        error(&["-foo=1"], &[]).message(),
        "flag provided but not defined: -foo"
    );
    assert_eq!(
        error(&["extra"], &[]).message(),
        "'extra' is not a valid flag"
    );
    assert_eq!(
        error(&["--name", "a", "--", "x"], &[]).message(),
        "'x' is not a valid flag"
    );
    assert_eq!(
        error(&["--name"], &[]).message(),
        "flag needs an argument: -name"
    );
    assert_eq!(
        error(&["---name=a"], &[]).message(),
        "bad flag syntax: ---name=a"
    );
    assert_eq!(error(&["-=a"], &[]).message(), "bad flag syntax: -=a");
    let e = error(&["--snapshot-count=-5"], &[]);
    assert_eq!(
        e.message(),
        "invalid value \"-5\" for flag -snapshot-count: parse error"
    );
    assert_eq!(e.exit_code(), 2);
    assert_eq!(
        error(&["--listen-peer-urls", "foo"], &[]).message(),
        "invalid value \"foo\" for flag -listen-peer-urls: URL scheme must be http, https, unix, \
         or unixs: foo"
    );
    // "--" alone just ends the flags.
    assert_eq!(config(&["--name", "a", "--"], &[]).name, "a");
}

#[test]
fn help_and_version() {
    for h in ["-h", "--help", "-help"] {
        assert_eq!(
            run_with(&[h], &[]).unwrap().invocation,
            Invocation::PrintHelp
        );
    }
    assert_eq!(
        run_with(&["--version"], &[]).unwrap().invocation,
        Invocation::PrintVersion
    );
    // --version wins over otherwise invalid configuration values, like etcd.
    assert_eq!(
        run_with(&["--initial-cluster-state=bad", "--version"], &[])
            .unwrap()
            .invocation,
        Invocation::PrintVersion
    );
    let v = version_text();
    assert!(
        v.starts_with(&format!("cairn Version: {}\n", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    assert!(
        v.contains(&format!(
            "etcd API Version: {}\n",
            crate::status::SERVER_VERSION
        )),
        "{v}"
    );
    assert!(v.contains("Git SHA: ") && v.contains("Rust Version: ") && v.contains("OS/Arch: "));
    let h = help_text();
    for name in [
        "--name",
        "--data-dir",
        "--quota-backend-bytes",
        "--auto-compaction-retention",
    ] {
        assert!(h.contains(name), "{name} missing from help");
    }
}

#[test]
fn every_supported_flag_is_read() {
    let c = config(
        &[
            "--name=m1",
            "--data-dir=/tmp/x",
            "--listen-client-urls=http://127.0.0.1:2379,http://127.0.0.1:22379",
            "--advertise-client-urls=http://10.0.0.1:2379",
            "--listen-peer-urls=http://127.0.0.1:2380",
            "--initial-advertise-peer-urls=http://10.0.0.1:2380",
            "--initial-cluster=m1=http://10.0.0.1:2380,m2=http://10.0.0.2:2380",
            "--initial-cluster-state=existing",
            "--initial-cluster-token=tok",
            "--snapshot-count=10000",
            "--heartbeat-interval=50",
            "--election-timeout=500",
            "--quota-backend-bytes=1048576",
            "--max-request-bytes=1000",
            "--max-txn-ops=7",
            "--auto-compaction-mode=revision",
            "--auto-compaction-retention=1000",
            "--log-level=debug",
            "--enable-v2",
        ],
        &[],
    );
    assert_eq!(c.name, "m1");
    assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
    assert_eq!(
        c.listen_client_urls,
        vec![url("http://127.0.0.1:22379"), url("http://127.0.0.1:2379")]
    );
    assert_eq!(c.advertise_client_urls, vec![url("http://10.0.0.1:2379")]);
    assert_eq!(c.listen_peer_urls, vec![url("http://127.0.0.1:2380")]);
    assert_eq!(
        c.initial_advertise_peer_urls,
        vec![url("http://10.0.0.1:2380")]
    );
    assert_eq!(c.initial_cluster.len(), 2);
    assert_eq!(c.initial_cluster_state, ClusterState::Existing);
    assert_eq!(c.initial_cluster_token, "tok");
    assert_eq!(c.snapshot_count, 10_000);
    assert_eq!(c.heartbeat_interval, Duration::from_millis(50));
    assert_eq!(c.election_timeout, Duration::from_millis(500));
    assert_eq!(c.quota_backend_bytes(), Some(1_048_576));
    assert_eq!(c.max_request_bytes, 1000);
    assert_eq!(c.max_txn_ops, 7);
    assert_eq!(c.auto_compaction, AutoCompaction::Revision(1000));
    assert_eq!(c.log_level, LogLevel::Debug);
    assert!(c.enable_v2);
    c.verify_bootstrap().unwrap();
}

#[test]
fn listen_without_advertise_is_rejected_like_etcd() {
    assert_eq!(
        error(&["--listen-client-urls", "http://127.0.0.1:23999"], &[]).message(),
        "--advertise-client-urls is required when --listen-client-urls is set explicitly"
    );
}

#[test]
fn value_validation() {
    assert_eq!(
        error(&["--initial-cluster-state", "bad"], &[]).message(),
        "invalid value \"bad\" for flag -initial-cluster-state: invalid value"
    );
    assert!(error(&["--election-timeout=400"], &[])
        .message()
        .contains("at least as 5 times"));
    assert!(error(
        &["--election-timeout=60000", "--heartbeat-interval=100"],
        &[]
    )
    .message()
    .contains("is too long"));
    assert!(error(&["--heartbeat-interval=0"], &[])
        .message()
        .contains("greater than 0"));
    assert!(error(&["--max-txn-ops=0"], &[])
        .message()
        .contains("greater than 0"));
    assert_eq!(
        error(&["--log-level=loud"], &[]).message(),
        "unknown log-level \"loud\""
    );
    assert_eq!(
        error(&["--auto-compaction-mode=sometimes"], &[]).message(),
        "unknown auto-compaction-mode \"sometimes\""
    );
    assert_eq!(
        error(&["--auto-compaction-retention=-1"], &[]).message(),
        "error parsing CompactionRetention: time: missing unit in duration \"-1\""
    );
    assert!(error(&["--auto-compaction-retention=-5m"], &[])
        .message()
        .contains("negative"));
    assert!(error(
        &[
            "--auto-compaction-mode=revision",
            "--auto-compaction-retention=5m"
        ],
        &[]
    )
    .message()
    .contains("revision count"));
    let bind = error(
        &[
            "--listen-client-urls=http://example.com:2379",
            "--advertise-client-urls=http://example.com:2379",
        ],
        &[],
    );
    assert_eq!(
        bind.message(),
        "expected IP in URL for binding (http://example.com:2379)"
    );
    assert_eq!(bind.exit_code(), 1);
    let tls = error(
        &[
            "--listen-client-urls=https://127.0.0.1:1",
            "--advertise-client-urls=https://127.0.0.1:1",
        ],
        &[],
    );
    assert_eq!(
        tls.message(),
        "TLS key/cert (--cert-file, --key-file) must be provided for client url \
         https://127.0.0.1:1 with HTTPS scheme"
    );
    let peer = error(
        &[
            "--listen-peer-urls=https://127.0.0.1:2",
            "--initial-advertise-peer-urls=https://127.0.0.1:2",
            "--initial-cluster=default=https://127.0.0.1:2",
        ],
        &[],
    );
    assert!(
        peer.message()
            .contains("cannot listen on TLS for 127.0.0.1:2")
            && peer.message().contains("--peer-cert-file"),
        "{peer}"
    );
    // With peer TLS flags, https peer URLs are accepted and read into the config.
    let c = config(
        &[
            "--listen-peer-urls=https://127.0.0.1:2",
            "--initial-advertise-peer-urls=https://127.0.0.1:2",
            "--initial-cluster=default=https://127.0.0.1:2",
            "--peer-cert-file=/p.pem",
            "--peer-key-file=/p-key.pem",
            "--peer-trusted-ca-file=/ca.pem",
            "--peer-client-cert-auth",
            "--peer-cert-allowed-cn=etcd",
        ],
        &[("ETCD_PEER_CRL_FILE", "/crl.pem")],
    );
    assert_eq!(
        c.peer_cert_file.as_deref(),
        Some(std::path::Path::new("/p.pem"))
    );
    assert_eq!(
        c.peer_key_file.as_deref(),
        Some(std::path::Path::new("/p-key.pem"))
    );
    assert_eq!(
        c.peer_trusted_ca_file.as_deref(),
        Some(std::path::Path::new("/ca.pem"))
    );
    assert_eq!(
        c.peer_crl_file.as_deref(),
        Some(std::path::Path::new("/crl.pem"))
    );
    assert!(c.peer_client_cert_auth);
    assert_eq!(c.peer_cert_allowed_cn.as_deref(), Some("etcd"));
    let e = error(
        &[
            "--peer-auto-tls",
            "--peer-cert-allowed-cn=a",
            "--peer-cert-allowed-hostname=b",
        ],
        &[],
    );
    assert!(e.message().contains("mutually exclusive"), "{e}");
}

#[test]
fn auto_compaction_retention_semantics() {
    let ac = |a: &[&str]| config(a, &[]).auto_compaction;
    assert_eq!(ac(&["--auto-compaction-retention=0"]), AutoCompaction::Off);
    assert_eq!(
        ac(&["--auto-compaction-retention=2"]),
        AutoCompaction::Periodic(Duration::from_secs(7200))
    );
    assert_eq!(
        ac(&[
            "--auto-compaction-mode=periodic",
            "--auto-compaction-retention=5m"
        ]),
        AutoCompaction::Periodic(Duration::from_secs(300))
    );
    assert_eq!(
        ac(&["--auto-compaction-retention=1h30m"]),
        AutoCompaction::Periodic(Duration::from_secs(5400))
    );
    assert_eq!(
        ac(&[
            "--auto-compaction-mode=revision",
            "--auto-compaction-retention=500"
        ]),
        AutoCompaction::Revision(500)
    );
    assert_eq!(
        ac(&["--auto-compaction-mode=revision"]),
        AutoCompaction::Off
    );
}

#[test]
fn quota_values() {
    assert_eq!(
        config(&["--quota-backend-bytes=0"], &[]).quota_backend_bytes(),
        Some(1 << 31)
    );
    let p = run_with(&["--quota-backend-bytes=-1"], &[]).unwrap();
    match p.invocation {
        Invocation::Run(c) => assert_eq!(c.quota_backend_bytes(), None),
        other => panic!("{other:?}"),
    }
    assert!(p.warnings.iter().any(|w| w.contains("quota disabled")));
}

#[test]
fn unsupported_flags_are_named() {
    let e = error(&["--peer-client-cert-file=/x.pem"], &[]);
    assert!(
        e.message()
            .starts_with("flag --peer-client-cert-file is not supported yet by cairn"),
        "{e}"
    );
    assert_eq!(e.exit_code(), 1);
    let e = error(&["--peer-skip-client-san-verification"], &[]);
    assert!(
        e.message()
            .starts_with("flag --peer-skip-client-san-verification is not supported yet"),
        "{e}"
    );
    assert!(error(&["--metrics=verbose"], &[])
        .message()
        .contains("-metrics"));
    assert!(error(&["--listen-metrics-urls=127.0.0.1:2381"], &[])
        .message()
        .contains("listen-metrics-urls"));
    // Unsupported flags given etcd's default value change nothing and are accepted.
    let c = config(
        &[
            "--client-cert-auth=false",
            "--logger=zap",
            "--log-outputs=stderr",
            "--max-snapshots=5",
            "--enable-grpc-gateway",
            "--experimental-watch-progress-notify-interval=10m0s",
            "--wal-dir=",
        ],
        &[],
    );
    assert_eq!(
        c,
        Config {
            log_outputs: vec!["stderr".into()],
            ..Config::default()
        }
    );
    // Values are still syntax-checked like Go's flag package.
    assert_eq!(
        error(&["--max-snapshots=x"], &[]).message(),
        "invalid value \"x\" for flag -max-snapshots: parse error"
    );
}

#[test]
fn ignored_legacy_flags_warn() {
    let p = run_with(&["--peer-heartbeat-interval=5"], &[]).unwrap();
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("peer-heartbeat-interval")),
        "{p:?}"
    );
}

#[test]
fn environment_variables() {
    let c = config(
        &[],
        &[
            ("ETCD_NAME", "envname"),
            ("ETCD_SNAPSHOT_COUNT", "42"),
            ("ETCD_ENABLE_V2", "true"),
            ("ETCD_LISTEN_CLIENT_URLS", "http://127.0.0.1:12379"),
            ("ETCD_ADVERTISE_CLIENT_URLS", "http://127.0.0.1:12379"),
            ("ETCD_DATA_DIR", ""), // empty values are unset
            ("PATH", "/bin"),
        ],
    );
    assert_eq!(c.name, "envname");
    assert_eq!(c.data_dir, PathBuf::from("envname.etcd"));
    assert_eq!(c.snapshot_count, 42);
    assert!(c.enable_v2);
    assert_eq!(c.listen_client_urls, vec![url("http://127.0.0.1:12379")]);

    // Flags override the defaults, env fills the rest; a shadowed variable is an error.
    let c = config(&["--name=flag"], &[("ETCD_SNAPSHOT_COUNT", "7")]);
    assert_eq!((c.name.as_str(), c.snapshot_count), ("flag", 7));
    let e = error(&["--name=flag"], &[("ETCD_NAME", "env")]);
    assert!(e
        .message()
        .contains("\"ETCD_NAME\" is shadowed by corresponding command-line flag"));

    assert_eq!(
        error(&[], &[("ETCD_SNAPSHOT_COUNT", "abc")]).message(),
        "invalid value \"abc\" for ETCD_SNAPSHOT_COUNT: parse error"
    );
    let e = error(&[], &[("ETCD_PEER_CLIENT_CERT_FILE", "/x")]);
    assert!(
        e.message().starts_with(
            "environment variable ETCD_PEER_CLIENT_CERT_FILE (--peer-client-cert-file) is not \
             supported yet"
        ),
        "{e}"
    );
    let p = run_with(&[], &[("ETCD_BOGUS", "1"), ("ETCD_VERSION", "1")]).unwrap();
    assert!(p
        .warnings
        .iter()
        .any(|w| w.contains("unrecognized environment variable ETCD_BOGUS")));
    assert!(p.warnings.iter().any(|w| w.contains("ETCD_VERSION")));
    assert!(matches!(p.invocation, Invocation::Run(_)));
}

const YAML: &str = "\
name: 'y1'
data-dir: /var/lib/y1
listen-client-urls: http://127.0.0.1:3379
advertise-client-urls: http://127.0.0.1:3379
listen-peer-urls: http://127.0.0.1:3380
initial-advertise-peer-urls: http://127.0.0.1:3380
initial-cluster: y1=http://127.0.0.1:3380
initial-cluster-token: 'yt'
initial-cluster-state: 'new'
snapshot-count: 20000
heartbeat-interval: 100
election-timeout: 1000
quota-backend-bytes: 4096000
max-request-bytes: 2000000
max-txn-ops: 256
auto-compaction-mode: periodic
auto-compaction-retention: \"1\"
log-level: warn
enable-v2: false
wal-dir:
max-wals: 5
log-outputs: [stderr]
client-transport-security:
  cert-file:
  client-cert-auth: false
  auto-tls: false
";

fn with_file(text: &'static str) -> impl Fn(&str) -> std::io::Result<String> {
    move |p: &str| {
        assert_eq!(p, "/etc/etcd.yml");
        Ok(text.to_string())
    }
}

#[test]
fn config_file_yaml() {
    let p = parse(
        &args(&["--config-file", "/etc/etcd.yml"]),
        &[],
        with_file(YAML),
    )
    .unwrap();
    let Invocation::Run(c) = p.invocation else {
        panic!()
    };
    assert_eq!(c.name, "y1");
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/y1"));
    assert_eq!(c.listen_client_urls, vec![url("http://127.0.0.1:3379")]);
    assert_eq!(
        c.initial_cluster,
        vec![("y1".to_string(), url("http://127.0.0.1:3380"))]
    );
    assert_eq!(c.initial_cluster_token, "yt");
    assert_eq!(c.snapshot_count, 20_000);
    assert_eq!(c.quota_backend_bytes(), Some(4_096_000));
    assert_eq!(c.max_request_bytes, 2_000_000);
    assert_eq!(c.max_txn_ops, 256);
    assert_eq!(
        c.auto_compaction,
        AutoCompaction::Periodic(Duration::from_secs(3600))
    );
    assert_eq!(c.log_level, LogLevel::Warn);
    c.verify_bootstrap().unwrap();
}

#[test]
fn config_file_overrides_flags_and_env() {
    // etcd ignores other flags and ETCD_* variables when a config file is given (even a
    // variable that a flag would shadow), and says so.
    let p = parse(
        &args(&["--config-file=/etc/etcd.yml", "--name=flag"]),
        &env(&[("ETCD_SNAPSHOT_COUNT", "1"), ("ETCD_NAME", "env")]),
        with_file(YAML),
    )
    .unwrap();
    let Invocation::Run(c) = p.invocation else {
        panic!()
    };
    assert_eq!((c.name.as_str(), c.snapshot_count), ("y1", 20_000));
    assert!(
        p.warnings.iter().any(|w| w.contains("ignored")),
        "{:?}",
        p.warnings
    );
    // ETCD_CONFIG_FILE works too.
    let p = parse(
        &[],
        &env(&[("ETCD_CONFIG_FILE", "/etc/etcd.yml")]),
        with_file(YAML),
    )
    .unwrap();
    let Invocation::Run(c) = p.invocation else {
        panic!()
    };
    assert_eq!(c.name, "y1");
    // Unknown flags on the command line are still errors.
    assert!(parse(
        &args(&["--config-file=/etc/etcd.yml", "--nope"]),
        &[],
        with_file(YAML)
    )
    .is_err());
}

#[test]
fn config_file_errors() {
    let e = parse(
        &args(&["--config-file=/etc/etcd.yml"]),
        &[],
        with_file("bogus-key: 1\n"),
    )
    .unwrap_err();
    assert_eq!(e.message(), "unknown config file key \"bogus-key\"");
    let e = parse(
        &args(&["--config-file=/etc/etcd.yml"]),
        &[],
        with_file("peer-transport-security:\n  client-cert-file: /p.pem\n"),
    )
    .unwrap_err();
    assert!(e.message().starts_with(
        "config file key peer-client-cert-file (--peer-client-cert-file) is not supported yet"
    ));
    let e = parse(
        &args(&["--config-file=/etc/etcd.yml"]),
        &[],
        with_file("snapshot-count: x\n"),
    )
    .unwrap_err();
    assert_eq!(
        e.message(),
        "invalid value \"x\" for config file key snapshot-count: parse error"
    );
    let e = parse(&args(&["--config-file=/nope.yml"]), &[], no_file).unwrap_err();
    assert!(e.message().contains("/nope.yml"), "{e}");
    let e = parse(
        &args(&["--config-file=/etc/etcd.yml"]),
        &[],
        with_file("name: [a\n"),
    )
    .unwrap_err();
    assert!(e.message().contains("invalid YAML"), "{e}");
    // In a config file, listen URLs without advertise URLs keep the default advertise URL
    // (etcd only clears it for command-line flags).
    let p = parse(
        &args(&["--config-file=/etc/etcd.yml"]),
        &[],
        with_file("listen-client-urls: http://127.0.0.1:5000\n"),
    )
    .unwrap();
    let Invocation::Run(c) = p.invocation else {
        panic!()
    };
    assert_eq!(c.advertise_client_urls, vec![url("http://localhost:2379")]);
}

#[test]
fn bootstrap_verification() {
    let c = config(
        &["--name=a", "--initial-cluster=b=http://127.0.0.1:2380"],
        &[],
    );
    assert_eq!(
        c.verify_bootstrap().unwrap_err().message(),
        "couldn't find local name \"a\" in the initial cluster configuration"
    );
    let c = config(
        &["--initial-advertise-peer-urls=http://127.0.0.1:2380"],
        &[],
    );
    assert_eq!(
        c.verify_bootstrap().unwrap_err().message(),
        "--initial-cluster has default=http://localhost:2380 but missing from \
         --initial-advertise-peer-urls=http://127.0.0.1:2380"
    );
    let c = config(
        &[
            "--name=a",
            "--initial-advertise-peer-urls=http://127.0.0.1:2380",
            "--initial-cluster=a=http://127.0.0.1:2380,b=http://127.0.0.1:2380",
        ],
        &[],
    );
    assert!(c
        .verify_bootstrap()
        .unwrap_err()
        .message()
        .contains("duplicate url"));
}

#[test]
fn watch_progress_and_lease_checkpoint_intervals() {
    let d = Config::default();
    assert_eq!(d.watch_progress_notify_interval, Duration::from_secs(600));
    assert_eq!(d.lease_checkpoint_interval, Duration::from_secs(300));
    // kubeadm's spelling (3.5 name), and the 3.6 name.
    let c = config(&["--experimental-watch-progress-notify-interval=5s"], &[]);
    assert_eq!(c.watch_progress_notify_interval, Duration::from_secs(5));
    let c = config(&["--watch-progress-notify-interval", "1m30s"], &[]);
    assert_eq!(c.watch_progress_notify_interval, Duration::from_secs(90));
    let c = config(
        &[],
        &[("ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL", "250ms")],
    );
    assert_eq!(c.watch_progress_notify_interval, Duration::from_millis(250));
    // Below etcd's 100ms minimum: raised, with a warning.
    let p = run_with(&["--watch-progress-notify-interval=10ms"], &[]).unwrap();
    let Invocation::Run(c) = p.invocation else {
        panic!("expected a run")
    };
    assert_eq!(c.watch_progress_notify_interval, Duration::from_millis(100));
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("--watch-progress-notify-interval")),
        "{:?}",
        p.warnings
    );
    // Zero keeps etcd's default.
    let c = config(&["--experimental-watch-progress-notify-interval=0"], &[]);
    assert_eq!(c.watch_progress_notify_interval, Duration::from_secs(600));
    // Both names at once are refused.
    let e = error(
        &[
            "--experimental-watch-progress-notify-interval=5s",
            "--watch-progress-notify-interval=5s",
        ],
        &[],
    );
    assert!(e.message().contains("at the same time"), "{e}");
    // Go duration syntax is required.
    let e = error(&["--watch-progress-notify-interval=5"], &[]);
    assert!(
        e.message()
            .starts_with("invalid value \"5\" for flag -watch-progress-notify-interval"),
        "{e}"
    );

    let c = config(&["--experimental-lease-checkpoint-interval=10m"], &[]);
    assert_eq!(c.lease_checkpoint_interval, Duration::from_secs(600));
    let c = config(&["--experimental-lease-checkpoint-interval=0s"], &[]);
    assert_eq!(c.lease_checkpoint_interval, Duration::from_secs(300));
    let e = error(&["--experimental-lease-checkpoint-interval=-1s"], &[]);
    assert!(
        e.message()
            .contains("-experimental-lease-checkpoint-interval"),
        "{e}"
    );
    let e = error(&["--experimental-lease-checkpoint-interval=soon"], &[]);
    assert!(
        e.message()
            .contains("-experimental-lease-checkpoint-interval"),
        "{e}"
    );
}

#[test]
fn client_tls_flags() {
    let https = [
        "--listen-client-urls=https://127.0.0.1:2379",
        "--advertise-client-urls=https://127.0.0.1:2379",
    ];
    fn with<'a>(https: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        let mut a = https.to_vec();
        a.extend_from_slice(extra);
        a
    }
    let with = |extra: &[&'static str]| with(&https, extra);
    let c = config(
        &with(&[
            "--cert-file=/c.pem",
            "--key-file=/k.pem",
            "--trusted-ca-file=/ca.pem",
            "--client-cert-auth",
            "--client-crl-file=/crl.pem",
            "--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            "--tls-min-version=TLS1.2",
            "--tls-max-version=TLS1.3",
            "--self-signed-cert-validity=3",
        ]),
        &[],
    );
    assert_eq!(c.cert_file, Some(PathBuf::from("/c.pem")));
    assert_eq!(c.key_file, Some(PathBuf::from("/k.pem")));
    assert_eq!(c.trusted_ca_file, Some(PathBuf::from("/ca.pem")));
    assert_eq!(c.client_crl_file, Some(PathBuf::from("/crl.pem")));
    assert!(c.client_cert_auth);
    assert_eq!(c.cipher_suites.len(), 2);
    assert_eq!(c.tls_min_version, Some(crate::tls::TlsVersion::Tls12));
    assert_eq!(c.tls_max_version, Some(crate::tls::TlsVersion::Tls13));
    assert_eq!(c.self_signed_cert_validity, 3);
    // The same through ETCD_* variables.
    let e = config(
        &https,
        &[
            ("ETCD_CERT_FILE", "/c.pem"),
            ("ETCD_KEY_FILE", "/k.pem"),
            ("ETCD_CLIENT_CERT_AUTH", "true"),
            ("ETCD_TRUSTED_CA_FILE", "/ca.pem"),
            ("ETCD_AUTO_TLS", "false"),
            ("ETCD_TLS_MIN_VERSION", "TLS1.3"),
        ],
    );
    assert_eq!(e.cert_file, Some(PathBuf::from("/c.pem")));
    assert!(e.client_cert_auth);
    assert_eq!(e.tls_min_version, Some(crate::tls::TlsVersion::Tls13));
    // auto-tls alone is enough for an https URL.
    assert!(config(&with(&["--auto-tls"]), &[]).auto_tls);
    // etcd's errors, naming the flag.
    let msg = |a: &[&'static str]| error(&with(a), &[]).message().to_string();
    assert_eq!(
        msg(&["--auto-tls", "--cipher-suites=TLS_FOO"]),
        "--cipher-suites: unexpected TLS cipher suite \"TLS_FOO\""
    );
    assert!(
        msg(&["--auto-tls", "--cipher-suites=TLS_RSA_WITH_RC4_128_SHA"])
            .contains("not supported by cairn")
    );
    assert_eq!(
        msg(&[
            "--auto-tls",
            "--tls-min-version=TLS1.3",
            "--tls-max-version=TLS1.2"
        ]),
        "--tls-min-version, --tls-max-version: min version (TLS1.3) is greater than max \
         version (TLS1.2)"
    );
    assert!(
        msg(&["--auto-tls", "--tls-max-version=TLS1.0"]).starts_with(
            "--tls-max-version: unexpected TLS version \"TLS1.0\" (must be one of: TLS1.2, TLS1.3)"
        )
    );
    assert_eq!(
        msg(&[
            "--auto-tls",
            "--tls-min-version=TLS1.3",
            "--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
        ]),
        "--cipher-suites: cipher suites cannot be configured when only TLS1.3 is enabled"
    );
    assert!(msg(&["--cert-file=/c.pem"]).contains("KeyFile and CertFile must both be present"));
    assert!(msg(&["--auto-tls", "--self-signed-cert-validity=0"]).contains("greater than 0"));
}

#[test]
fn client_tls_in_config_file() {
    let p = parse(
        &args(&["--config-file", "/etc/etcd.yml"]),
        &[],
        with_file(
            "listen-client-urls: https://127.0.0.1:2379\n\
             advertise-client-urls: https://127.0.0.1:2379\n\
             cipher-suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n\
             tls-min-version: TLS1.2\n\
             client-transport-security:\n  cert-file: /c.pem\n  key-file: /k.pem\n  \
             trusted-ca-file: /ca.pem\n  client-cert-auth: true\n  crl-file: /crl.pem\n",
        ),
    )
    .unwrap();
    let Invocation::Run(c) = p.invocation else {
        panic!("{p:?}")
    };
    assert_eq!(c.cert_file, Some(PathBuf::from("/c.pem")));
    assert_eq!(c.key_file, Some(PathBuf::from("/k.pem")));
    assert_eq!(c.trusted_ca_file, Some(PathBuf::from("/ca.pem")));
    assert_eq!(c.client_crl_file, Some(PathBuf::from("/crl.pem")));
    assert!(c.client_cert_auth);
    assert_eq!(
        c.cipher_suites,
        vec!["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".to_string()]
    );
}

#[test]
fn log_flags() {
    let c = config(
        &[
            "--logger=zap",
            "--log-format=console",
            "--log-outputs=stdout,/tmp/x.log",
        ],
        &[],
    );
    assert_eq!(c.log_format, LogFormat::Console);
    assert_eq!(
        c.log_outputs,
        vec!["stdout".to_string(), "/tmp/x.log".to_string()]
    );
    assert_eq!(c.log_rotation, None);
    let e = error(&["--logger=x"], &[]);
    assert!(e.message().contains("--logger"), "{e}");
    assert!(error(&["--logger=capnslog"], &[])
        .message()
        .contains("--logger=capnslog is removed"));
    let e = error(&["--log-format=xml"], &[]);
    assert!(
        e.message()
            .starts_with("--log-format: unknown log format: xml"),
        "{e}"
    );
    let e = error(&["--log-outputs=default,/tmp/x.log"], &[]);
    assert!(e.message().contains("--log-outputs"), "{e}");
    // etcd's validation: rotation needs exactly one file output.
    for outs in ["stderr", "/tmp/a.log,/tmp/b.log"] {
        let e = error(
            &["--enable-log-rotation", &format!("--log-outputs={outs}")],
            &[],
        );
        assert_eq!(e.message(), ERR_LOG_ROTATION_OUTPUTS);
    }
    let c = config(
        &["--enable-log-rotation", "--log-outputs=stderr,/tmp/a.log"],
        &[],
    );
    assert_eq!(
        c.log_rotation,
        Some(LogRotation {
            max_size_mb: 100,
            max_age_days: 0,
            max_backups: 0
        })
    );
    let c = config(
        &[
            "--enable-log-rotation",
            "--log-outputs=/tmp/a.log",
            r#"--log-rotation-config-json={"maxsize": 1, "maxage": 2, "maxbackups": 3}"#,
        ],
        &[],
    );
    assert_eq!(
        c.log_rotation,
        Some(LogRotation {
            max_size_mb: 1,
            max_age_days: 2,
            max_backups: 3
        })
    );
    let e = error(
        &[
            "--enable-log-rotation",
            "--log-outputs=/tmp/a.log",
            "--log-rotation-config-json={bad",
        ],
        &[],
    );
    assert!(
        e.message()
            .starts_with("--log-rotation-config-json: improperly formatted"),
        "{e}"
    );
    let e = error(
        &[
            "--enable-log-rotation",
            "--log-outputs=/tmp/a.log",
            r#"--log-rotation-config-json={"compress": true}"#,
        ],
        &[],
    );
    assert!(e.message().contains("compress"), "{e}");
    // Without rotation the JSON is not read, as in etcd.
    config(&["--log-rotation-config-json={bad"], &[]);
}
