//! `cairn-bench` against a real etcd 3.5.1 (from `scripts/install-test-deps.sh`),
//! and against an endpoint where nothing listens. Checks counts and error
//! reporting, never speed.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cairn_testkit::{find_tool, free_port, Flags, Proc};
use serde_json::Value;

fn etcd_351() -> Option<PathBuf> {
    find_tool("CAIRN_ETCD_351_DIR", "etcd-3.5.1", "etcd")
}

/// A one-member etcd, killed on drop (before its directory goes).
struct Etcd {
    _proc: Proc,
    endpoint: String,
    _dir: tempfile::TempDir,
}

fn start_etcd(bin: &PathBuf) -> Etcd {
    let dir = tempfile::tempdir().unwrap();
    let (c, p) = (free_port(), free_port());
    let client = format!("http://127.0.0.1:{c}");
    let peer = format!("http://127.0.0.1:{p}");
    let flags = Flags {
        name: "t".into(),
        data_dir: dir.path().join("t.etcd"),
        client_url: client,
        listen_peer_url: peer.clone(),
        advertise_peer_url: peer.clone(),
        initial_cluster: format!("t={peer}"),
        initial_cluster_state: None,
        initial_cluster_token: None,
        extra: vec!["--log-level=error".into()],
    };
    let mut proc = Proc::new(bin, dir.path().join("t.log"));
    proc.spawn(&flags.args()).expect("start etcd");
    let etcd = Etcd {
        _proc: proc,
        endpoint: format!("127.0.0.1:{c}"),
        _dir: dir,
    };
    // Ready once a put goes through.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = bench(&etcd.endpoint, &["put", "--total", "1"]);
        if out.status.success() {
            return etcd;
        }
        assert!(Instant::now() < deadline, "etcd did not start: {out:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn bench(endpoint: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn-bench"))
        .arg(format!("--endpoints={endpoint}"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run cairn-bench")
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

/// etcd 3.5.1, or None when it is not installed and this is not CI.
fn etcd_or_skip() -> Option<PathBuf> {
    match etcd_351() {
        Some(p) => Some(p),
        None if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("etcd 3.5.1 missing under CI: scripts/install-test-deps.sh must install it")
        }
        None => {
            eprintln!("SKIP: etcd 3.5.1 not installed (run scripts/install-test-deps.sh)");
            None
        }
    }
}

#[test]
fn put_range_and_txn_against_real_etcd_count_every_request() {
    let Some(bin) = etcd_or_skip() else { return };
    let etcd = start_etcd(&bin);

    let out = bench(
        &etcd.endpoint,
        &[
            "--clients",
            "8",
            "--conns",
            "2",
            "put",
            "--total",
            "200",
            "--val-size",
            "64",
            "--key-space-size",
            "50",
            "--output",
            "json",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let j = json_of(&out);
    assert_eq!(j["requests"], 200);
    assert_eq!(j["errors_total"], 0);
    let p50 = j["percentiles_secs"]["p50"].as_f64().unwrap();
    let slowest = j["slowest_secs"].as_f64().unwrap();
    assert!(p50 > 0.0 && p50 <= slowest);
    let hist_total: u64 = j["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b[1].as_u64().unwrap())
        .sum();
    assert_eq!(hist_total, 200);

    // The text summary of a range run, in etcd benchmark's layout.
    let out = bench(
        &etcd.endpoint,
        &["range", "a", "--total", "50", "--consistency", "s"],
    );
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("bench with serializable range"), "{text}");
    for needle in [
        "Summary:",
        "Requests/sec:",
        "Requests:\t50 ok, 0 failed",
        "Latency distribution:",
    ] {
        assert!(text.contains(needle), "missing {needle:?}:\n{text}");
    }

    // A txn-put with more puts per txn than keys is refused before any request.
    let out = bench(
        &etcd.endpoint,
        &["txn-put", "--txn-ops", "3", "--key-space-size", "2"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--txn-ops"));

    let out = bench(
        &etcd.endpoint,
        &[
            "--clients",
            "4",
            "txn-cas",
            "--total",
            "100",
            "--key-space-size",
            "5",
            "--json",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let j = json_of(&out);
    assert_eq!(j["requests"], 100);
    assert_eq!(j["errors_total"], 0);

    // Authentication against a server without auth enabled fails with etcd's error, by flag.
    let out = bench(
        &etcd.endpoint,
        &["--user", "root:nope", "put", "--total", "1"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--user: authentication failed"), "{err}");
}

#[test]
fn unreachable_endpoint_counts_errors_per_code_and_reports_no_latency() {
    let port = free_port(); // bound then released: nothing listens there
    let out = bench(
        &format!("127.0.0.1:{port}"),
        &["--dial-timeout", "1s", "put", "--total", "25", "--json"],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let j = json_of(&out);
    assert_eq!(j["requests"], 0);
    assert_eq!(j["errors_total"], 25);
    assert_eq!(j["errors"]["Unavailable"]["count"], 25);
    assert!(j["percentiles_secs"]["p50"].is_null());
    assert_eq!(j["requests_per_sec"], 0.0);
}

#[test]
fn unreadable_tls_files_fail_naming_the_flag() {
    let out = bench(
        "127.0.0.1:1",
        &["--cacert", "/nonexistent/ca.pem", "put", "--total", "1"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--cacert: /nonexistent/ca.pem: "), "{err}");
}
