//! `cairn-bench compare --members 3` with etcd 3.5.1 on both sides (from
//! `scripts/install-test-deps.sh`): the harness forms two three-member clusters,
//! reads over all members, kills each leader once and writes the report's
//! cluster sections. Checks that figures are present, never what they are.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use cairn_testkit::find_tool;

fn etcd_351() -> Option<PathBuf> {
    if let Some(p) = find_tool("CAIRN_ETCD_351_DIR", "etcd-3.5.1", "etcd") {
        return Some(p);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("etcd 3.5.1 missing under CI: scripts/install-test-deps.sh must install it");
    }
    eprintln!("SKIP: etcd 3.5.1 not installed (run scripts/install-test-deps.sh)");
    None
}

/// The cells of the report's table row that starts with `| {first} |`.
fn row<'a>(md: &'a str, first: &str) -> Vec<&'a str> {
    let start = format!("| {first} |");
    let line = md
        .lines()
        .find(|l| l.starts_with(&start))
        .unwrap_or_else(|| panic!("no row {first:?} in:\n{md}"));
    line.trim_matches('|').split('|').map(str::trim).collect()
}

#[test]
fn three_member_etcd_clusters_read_everywhere_and_survive_a_leader_kill() {
    let Some(etcd) = etcd_351() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out_md = dir.path().join("report.md");
    let out = Command::new(env!("CARGO_BIN_EXE_cairn-bench"))
        .arg("compare")
        .args(["--members", "3", "--failover", "1", "--scale", "0.01"])
        .arg("--baseline")
        .arg(&etcd)
        .arg("--candidate")
        .arg(&etcd)
        .args(["--only", "range serializable, 1 clients"])
        .args(["--only", "put 256 B, 1 clients"])
        .args(["--only", "failover"])
        .arg("--out")
        .arg(&out_md)
        .stdin(Stdio::null())
        .output()
        .expect("run cairn-bench compare");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "compare failed: {stderr}");
    let md = std::fs::read_to_string(&out_md).unwrap();
    assert!(md.contains("**3-member clusters on loopback.**"), "{md}");
    assert!(
        md.contains("etcd 3.5.1 (baseline)") && md.contains("etcd 3.5.1 (candidate)"),
        "{md}"
    );
    // Both workloads ran on both sides without a failed request.
    for w in ["put 256 B, 1 clients", "range serializable, 1 clients"] {
        let errors = md
            .lines()
            .find(|l| l.starts_with(&format!("| {w} | errors |")))
            .unwrap_or_else(|| panic!("no error row for {w}:\n{md}"));
        assert_eq!(errors, format!("| {w} | errors | 0 | 0 | |"));
        let r = row(&md, w);
        let qps: Vec<f64> = [r[1], r[2]].iter().map(|v| v.parse().unwrap()).collect();
        assert!(qps.iter().all(|q| *q > 0.0), "{r:?}");
    }
    // One timed leader kill per side, with a time for the first write after it.
    assert!(md.contains("## Leader failover"), "{md}");
    assert_eq!(row(&md, "runs")[1..3], ["1", "1"]);
    let med = row(&md, "kill → first acknowledged write, median ms");
    for v in &med[1..3] {
        let ms: f64 = v.parse().unwrap_or_else(|_| panic!("{med:?}"));
        assert!(ms > 0.0, "{med:?}");
    }
    assert!(!md.contains("failover runs stopped"), "{md}");
}
