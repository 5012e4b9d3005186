//! `cairn-bench` over TLS against a Cairn member that serves https with client-certificate
//! authentication (certificates made for the test with rcgen, by the generator
//! `compare --tls` uses): puts and new connections succeed with the client certificate,
//! and fail without it. Checks outcomes, never speed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cairn_perf::compare::Pki;
use cairn_testkit::{free_port, Flags, Proc};
use serde_json::Value;

/// The workspace's `cairn` of this profile: beside `cairn-bench` in the target
/// directory; built with cargo when the tests of this package did not build it.
fn cairn() -> PathBuf {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_cairn-bench"));
    let bin = bench.with_file_name("cairn");
    if !bin.is_file() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "cairn-server", "--bin", "cairn"]);
        if bench.parent().is_some_and(|d| d.ends_with("release")) {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("run cargo build");
        assert!(st.success(), "building cairn failed");
    }
    assert!(bin.is_file(), "{} missing", bin.display());
    bin
}

/// A one-member Cairn serving https only, with --client-cert-auth; killed on drop
/// (before its directory goes).
struct Member {
    _proc: Proc,
    endpoint: String,
    pki: Pki,
    _dir: tempfile::TempDir,
}

fn bench(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn-bench"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run cairn-bench")
}

fn with_client_cert(m: &Member, rest: &[&str]) -> Vec<String> {
    let mut a = vec![format!("--endpoints={}", m.endpoint)];
    a.extend(m.pki.client_flags());
    a.extend(rest.iter().map(|s| s.to_string()));
    a
}

fn start_member(dir: &Path) -> (Proc, u16, Pki) {
    let pki = Pki::generate(&dir.join("pki")).expect("certificates");
    let (c, p) = (free_port(), free_port());
    let peer = format!("http://127.0.0.1:{p}");
    let mut extra = pki.server_flags();
    extra.push("--log-level=warn".into());
    let flags = Flags {
        name: "t".into(),
        data_dir: dir.join("t.cairn"),
        client_url: format!("https://127.0.0.1:{c}"),
        listen_peer_url: peer.clone(),
        advertise_peer_url: peer.clone(),
        initial_cluster: format!("t={peer}"),
        initial_cluster_state: None,
        initial_cluster_token: None,
        extra,
    };
    let mut proc = Proc::new(cairn(), dir.join("t.log"));
    proc.spawn(&flags.args()).expect("start cairn");
    (proc, c, pki)
}

fn start() -> Member {
    let dir = tempfile::tempdir().unwrap();
    let (proc, port, pki) = start_member(dir.path());
    let m = Member {
        _proc: proc,
        endpoint: format!("https://127.0.0.1:{port}"),
        pki,
        _dir: dir,
    };
    // Ready once a put goes through.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = bench(&with_client_cert(&m, &["put", "--total", "1"]));
        if out.status.success() {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "cairn did not start: {out:?}\nlog: {}",
            m._proc.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn puts_and_new_connections_over_tls_with_a_client_certificate() {
    let m = start();

    let out = bench(&with_client_cert(
        &m,
        &[
            "--conns=2",
            "--clients=8",
            "put",
            "--total=300",
            "--key-space-size=100",
            "--json",
        ],
    ));
    assert!(out.status.success(), "{out:?}");
    let j = json_of(&out);
    assert_eq!(j["requests"], 300, "{j}");
    assert_eq!(j["errors_total"], 0, "{j}");

    // Scheme-less endpoints use TLS when TLS flags are given, as etcd's benchmark does.
    let bare = m.endpoint.trim_start_matches("https://").to_string();
    let mut args = vec![format!("--endpoints={bare}")];
    args.extend(m.pki.client_flags());
    args.extend(["range", "foo", "--total=20", "--json"].map(String::from));
    let out = bench(&args);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(json_of(&out)["requests"], 20);

    // Each of these is a new connection with a full handshake and one Range.
    let out = bench(&with_client_cert(
        &m,
        &["--clients=3", "conn-rate", "--total=30", "--json"],
    ));
    assert!(out.status.success(), "{out:?}");
    let j = json_of(&out);
    assert_eq!(j["name"], "conn-rate", "{j}");
    assert_eq!(j["requests"], 30, "{j}");
    assert_eq!(j["errors_total"], 0, "{j}");
}

#[test]
fn without_a_client_certificate_requests_fail_under_client_cert_auth() {
    let m = start();

    // The CA, but no client pair: the server refuses the handshake.
    let out = bench(&[
        format!("--endpoints={}", m.endpoint),
        format!("--cacert={}", m.pki.ca.display()),
        "--dial-timeout=2s".into(),
        "put".into(),
        "--total=10".into(),
        "--json".into(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let j = json_of(&out);
    assert_eq!(j["requests"], 0, "{j}");
    assert_eq!(j["errors_total"], 10, "{j}");

    let out = bench(&[
        format!("--endpoints={}", m.endpoint),
        format!("--cacert={}", m.pki.ca.display()),
        "conn-rate".into(),
        "--total=5".into(),
        "--json".into(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let j = json_of(&out);
    assert_eq!(j["requests"], 0, "{j}");
    assert_eq!(j["errors_total"], 5, "{j}");

    // --cert without --key is a flag error: nothing runs.
    let out = bench(&[
        format!("--endpoints={}", m.endpoint),
        format!("--cert={}", m.pki.client_cert.display()),
        "put".into(),
        "--total=1".into(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--cert needs --key"),
        "{out:?}"
    );

    // The client certificate still works against the same member.
    let out = bench(&with_client_cert(&m, &["put", "--total=5", "--json"]));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(json_of(&out)["requests"], 5);
}
