//! etcd-shaped logs from the real `cairn` binary: every line a member writes while it starts,
//! serves a put, follows a leader change and stops is a zap-style JSON object with `level`,
//! `ts`, `caller` and `msg`; `--log-outputs` to a file and stderr at once writes the same
//! lines to both; bad `--log-outputs`, `--logger` and `--log-format` values fail start-up
//! naming the flag.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use cairn_testkit::{cairn_bin, free_port, is_healthy, Proc};
use support::cluster::{Cluster, ClusterOpts};
use support::Impl;

/// Parses one log line as etcd's zap JSON; panics (with the line) when it is not.
fn parse_line(line: &str, what: &str) -> serde_json::Map<String, serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {line:?}"));
    let serde_json::Value::Object(m) = v else {
        panic!("{what}: not an object: {line:?}");
    };
    let level = m["level"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: level: {line}"));
    assert!(
        ["debug", "info", "warn", "error", "dpanic", "panic", "fatal"].contains(&level),
        "{what}: level {level:?}: {line}"
    );
    let ts = m["ts"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: ts: {line}"));
    let re = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$").unwrap();
    assert!(re.is_match(ts), "{what}: ts {ts:?}: {line}");
    let caller = m["caller"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: caller: {line}"));
    assert!(
        Regex::caller().is_match(caller),
        "{what}: caller {caller:?}: {line}"
    );
    assert!(m["msg"].is_string(), "{what}: msg: {line}");
    m
}

struct Regex;
impl Regex {
    fn caller() -> regex::Regex {
        regex::Regex::new(r"^[\w.-]+(/[\w.-]+)?\.rs:\d+$").unwrap()
    }
}

/// Every line of `log`, parsed; the log must end with a newline (whole lines only).
fn parse_log(log: &str, what: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    assert!(!log.is_empty(), "{what}: empty log");
    assert!(log.ends_with('\n'), "{what}: log ends mid-line: {log:?}");
    log.lines().map(|l| parse_line(l, what)).collect()
}

fn msgs(lines: &[serde_json::Map<String, serde_json::Value>]) -> Vec<String> {
    lines
        .iter()
        .map(|m| m["msg"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_of_a_three_member_cluster_is_etcd_json() {
    let opts = ClusterOpts {
        proxied: false,
        ..ClusterOpts::default()
    };
    let mut c = Cluster::start(Impl::Cairn, 3, opts).await;
    let leader = c.wait_leader(None, Duration::from_secs(30)).await;
    let mut client = c.client((leader + 1) % 3).await;
    client.put("logs-key", "v", None).await.expect("put");
    c.kill9(leader);
    let new_leader = c
        .wait_leader(Some(&[leader]), Duration::from_secs(60))
        .await;
    assert_ne!(new_leader, leader);
    let mut client = c.client(new_leader).await;
    client
        .put("logs-key", "v2", None)
        .await
        .expect("put after the leader change");
    for i in 0..3 {
        if i != leader {
            c.nodes[i].proc.stop();
        }
    }
    for i in 0..3 {
        let log = c.nodes[i].log();
        let what = format!("member {i}");
        let lines = parse_log(&log, &what);
        let m = msgs(&lines);
        // etcd's first lines: the listeners, then the effective configuration.
        assert_eq!(m[0], "configuring peer listeners", "{what}: {log}");
        assert_eq!(m[1], "configuring client listeners", "{what}: {log}");
        assert_eq!(m[2], "starting an etcd server", "{what}: {log}");
        let cfg = &lines[2];
        assert_eq!(cfg["name"], c.nodes[i].name.as_str(), "{what}");
        assert_eq!(cfg["snapshot-count"], serde_json::json!(100000), "{what}");
        assert_eq!(cfg["quota-size-bytes"], serde_json::json!(2147483648u64));
        assert_eq!(cfg["heartbeat-interval"], "50ms");
        assert_eq!(cfg["election-timeout"], "500ms");
        assert_eq!(cfg["initial-cluster-state"], "new");
        assert!(
            cfg["initial-cluster"]
                .as_str()
                .unwrap()
                .contains(&c.nodes[i].name),
            "{what}: {cfg:?}"
        );
        if i != leader {
            // The leader change, with the new leader's id and the term as a number.
            let new_id = format!("{:x}", c.nodes[new_leader].id);
            assert!(
                lines.iter().any(|l| l["msg"] == "raft leader elected"
                    && l["leader"] == new_id.as_str()
                    && l["term"].as_u64().is_some_and(|t| t >= 2)),
                "{what}: no election of {new_id} in {log}"
            );
            // A clean stop is logged.
            assert!(
                m.iter().any(|s| s == "shutting down"),
                "{what}: no stop in {m:?}"
            );
        }
    }
}

/// A single member's arguments on free ports.
fn member_args(dir: &Path, extra: &[String]) -> (Vec<String>, String) {
    let cport = free_port();
    let pport = free_port();
    let client = format!("http://127.0.0.1:{cport}");
    let peer = format!("http://127.0.0.1:{pport}");
    let mut args = vec![
        "--name=solo".to_string(),
        format!("--data-dir={}", dir.join("data").display()),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=solo={peer}"),
    ];
    args.extend(extra.iter().cloned());
    (args, format!("127.0.0.1:{cport}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_and_stderr_get_the_same_lines() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("member.log");
    let (args, addr) = member_args(
        dir.path(),
        &[format!("--log-outputs=stderr,{}", file.display())],
    );
    let mut proc = Proc::new(cairn_bin(), dir.path().join("stderr.log"));
    proc.env("RUST_LOG", "info");
    proc.spawn(&args).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !is_healthy(&addr) {
        assert!(proc.running(), "exited: {}", proc.log());
        assert!(Instant::now() < deadline, "not healthy: {}", proc.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut client = etcd_client::Client::connect([format!("http://{addr}")], None)
        .await
        .unwrap();
    client.put("k", "v", None).await.unwrap();
    proc.stop();
    let stderr = proc.log();
    let in_file = std::fs::read_to_string(&file).unwrap();
    assert_eq!(stderr, in_file, "the two outputs differ");
    let lines = parse_log(&in_file, "file");
    assert!(
        msgs(&lines).iter().any(|m| m == "shutting down"),
        "{in_file}"
    );
}

#[test]
fn log_level_filters_below_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut args, _) = member_args(dir.path(), &[]);
    // An invalid flag value after logging is set up would not do: use a bad bootstrap
    // (an initial cluster without this member) that fails after the configuration line.
    args.push("--log-level=warn".into());
    args.push("--initial-cluster=other=http://127.0.0.1:1".into());
    let out = cairn_testkit::clean_command(&cairn_bin())
        .args(&args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The bootstrap error is a JSON line too.
    let lines = parse_log(&stderr, "bad bootstrap");
    assert!(
        lines.iter().any(|l| l["level"] == "error"
            && l["error"]
                .as_str()
                .is_some_and(|e| e.contains("couldn't find local name"))),
        "{stderr}"
    );
    // --log-level=warn: "starting an etcd server" (info) is filtered out.
    assert!(!stderr.contains("starting an etcd server"), "{stderr}");
    let (mut args, _) = member_args(dir.path(), &[]);
    args.push("--initial-cluster=other=http://127.0.0.1:1".into());
    let out = cairn_testkit::clean_command(&cairn_bin())
        .args(&args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("starting an etcd server"), "{stderr}");
}

/// Runs `cairn` with `extra` flags, expecting it to fail before serving; its stderr.
fn fails_to_start(extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let (args, _) = member_args(dir.path(), &extra);
    let out = cairn_testkit::clean_command(&cairn_bin())
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{extra:?} started: {stderr}");
    assert!(
        !dir.path().join("data").exists(),
        "{extra:?}: data dir created"
    );
    stderr
}

#[test]
fn bad_log_flags_fail_start_up_naming_the_flag() {
    let e = fails_to_start(&["--log-outputs=/nonexistent-dir-for-cairn/x.log"]);
    assert!(
        e.contains("--log-outputs") && e.contains("couldn't open sink"),
        "{e}"
    );
    let e = fails_to_start(&["--logger=capnslog2"]);
    assert!(e.contains("--logger"), "{e}");
    let e = fails_to_start(&["--log-format=xml"]);
    assert!(e.contains("--log-format"), "{e}");
    let e = fails_to_start(&["--enable-log-rotation", "--log-outputs=stderr"]);
    assert!(
        e.contains(
            "--log-outputs requires a single file path when --log-rotate-config-json is defined"
        ),
        "{e}"
    );
}
