//! Unit tests of the comparison: the matrix, `--only`, and the report.

use std::path::Path;

use super::cluster::short_name;
use super::report::{civil, goal, ratio};
use super::*;

#[test]
fn civil_dates() {
    assert_eq!(civil(0).0, "1970-01-01");
    assert_eq!(civil(951_782_400).0, "2000-02-29");
    assert_eq!(
        civil(1_700_000_000),
        ("2023-11-14".into(), "22:13:20".into())
    );
}

#[test]
fn default_matrix_covers_the_issue() {
    let m = matrix(1.0, 100_000);
    let names: Vec<&str> = m.iter().map(|c| c.name.as_str()).collect();
    for want in [
        "put 256 B, 1 clients",
        "put 256 B, 16 clients",
        "put 256 B, 100 clients",
        "put 4 KiB, 100 clients",
        "range linearizable, 100 clients",
        "range serializable, 1 clients",
        "txn CAS",
        "LIST 500 of 100000 keys",
        "watch latency",
        "new connections (connect + Range), 4 clients",
    ] {
        assert!(names.iter().any(|n| n.contains(want)), "missing {want}");
    }
    let small = matrix(0.01, 1000);
    assert!(small.iter().all(|c| match c.work {
        Work::Put { total, .. } | Work::Range { total, .. } => total <= 300,
        _ => true,
    }));
}

#[test]
fn failover_section_has_min_median_max_and_failures() {
    let run = |w: u64, l: Option<u64>, failed: &[(&str, u64)]| failover::Run {
        to_write: Duration::from_millis(w),
        to_leader: l.map(Duration::from_millis),
        failed: failed.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        attempts: 100,
        killed: "m1".into(),
    };
    let info = ReportInfo {
        names: ["etcd 3.5.1".into(), "cairn 0.1.0".into()],
        versions: ["v1".into(), "v2".into()],
        bins: ["/a".into(), "/b".into()],
        members: 3,
        tls: false,
        rss: [1, 1],
        seed_times: [Duration::ZERO; 2],
        list_keys: 0,
        wall: Duration::from_secs(1),
        interrupted: false,
        command: "c".into(),
        source: Some("commit abc".into()),
        load: ["1".into(), "1".into()],
        date: ("2026-01-02".into(), "03:04:05".into()),
        failovers: [
            vec![
                run(1200, Some(1100), &[]),
                run(1000, Some(990), &[("Unavailable", 2)]),
                run(1500, None, &[]),
            ],
            vec![run(400, Some(390), &[("Timeout", 1)])],
        ],
        failover_errors: [None, Some("restart failed".into())],
    };
    let md = markdown(&info, &[], "x.svg");
    assert!(md.contains("**3-member clusters on loopback.**"), "{md}");
    for want in [
        "| kill → first acknowledged write, min ms | 1000 | 400 | 0.40× |",
        "| kill → first acknowledged write, median ms | 1200 | 400 | 0.33× |",
        "| kill → first acknowledged write, max ms | 1500 | 400 | 0.27× |",
        "| kill → new leader in Status, median ms | 1045 | 390 | 0.37× |",
        "| failed write attempts after the kill (all runs) | 2 (Unavailable×2) | 1 (Timeout×1) | |",
        "| runs | 3 | 1 | |",
        "- cairn 0.1.0: **failover runs stopped**: restart failed",
    ] {
        assert!(md.contains(want), "missing {want:?} in:\n{md}");
    }
    assert!(!md.contains("LIST keys"), "{md}");
}

#[test]
fn only_selects_by_substring_and_keeps_commas_in_names() {
    let only = vec!["put 256 B, 1 clients".to_string(), "failover".into()];
    assert!(selected(&only, "put 256 B, 1 clients"));
    assert!(!selected(&only, "put 256 B, 16 clients"));
    assert!(selected(&only, FAILOVER));
    assert!(!selected(&only, "range serializable, 1 clients"));
    assert!(selected(&[], "anything"));
}

#[test]
fn commands_are_quoted_for_the_shell() {
    assert_eq!(shell_quote("--members"), "--members");
    assert_eq!(shell_quote("/a/b.md"), "/a/b.md");
    assert_eq!(
        shell_quote("put 256 B, 1 clients"),
        "'put 256 B, 1 clients'"
    );
    assert_eq!(shell_quote("it's"), r"'it'\''s'");
    assert_eq!(shell_quote(""), "''");
}

#[test]
fn goal_needs_twice_the_rate_and_half_the_p99() {
    assert_eq!(
        goal([Some(100.0), Some(200.0)], [Some(10.0), Some(5.0)]),
        "✓"
    );
    assert_eq!(
        goal([Some(100.0), Some(199.0)], [Some(10.0), Some(1.0)]),
        "✗"
    );
    assert_eq!(
        goal([Some(100.0), Some(900.0)], [Some(10.0), Some(5.1)]),
        "✗"
    );
    assert_eq!(goal([Some(100.0), None], [Some(10.0), Some(1.0)]), "–");
}

#[test]
fn ratios_and_short_names() {
    assert_eq!(ratio(Some(2.0), Some(5.0)), "2.50×");
    assert_eq!(ratio(Some(0.0), Some(5.0)), "–");
    assert_eq!(ratio(None, Some(5.0)), "–");
    assert_eq!(
        short_name(Path::new("/x/etcd"), "etcd Version: 3.5.1"),
        "etcd 3.5.1"
    );
    assert_eq!(
        short_name(Path::new("/x/cairn"), "cairn 0.1.0"),
        "cairn 0.1.0"
    );
}

#[test]
fn markdown_has_values_ratios_and_the_single_member_note() {
    let info = ReportInfo {
        names: ["etcd 3.5.1".into(), "cairn 0.1.0".into()],
        versions: ["v1".into(), "v2".into()],
        bins: ["/a".into(), "/b".into()],
        members: 1,
        tls: false,
        rss: [100 << 20, 50 << 20],
        seed_times: [Duration::from_secs(2), Duration::from_secs(1)],
        list_keys: 1000,
        wall: Duration::from_secs(60),
        interrupted: false,
        command: "cairn-bench compare".into(),
        source: None,
        load: ["0.5".into(), "1.5".into()],
        date: ("2026-01-02".into(), "03:04:05".into()),
        failovers: [Vec::new(), Vec::new()],
        failover_errors: [None, None],
    };
    let row = |qps: f64, p99: f64| Row {
        requests: 10,
        qps,
        p50_ms: Some(p99 / 2.0),
        p99_ms: Some(p99),
        ..Row::default()
    };
    let case = Case {
        name: "put 256 B, 1 clients".into(),
        clients: 1,
        work: Work::Put {
            val: 256,
            total: 10,
        },
    };
    let md = markdown(
        &info,
        &[(case, [Some(row(1000.0, 4.0)), Some(row(3000.0, 1.0))])],
        "x.svg",
    );
    assert!(md.contains("Single-member clusters"));
    assert!(!md.contains("Leader failover"));
    assert!(
        md.contains(
            "| put 256 B, 1 clients | 1000 | 3000 | 3.00× | 2.000 | 0.500 | 4.000 | 1.000 \
             | 0.25× | 0.0 | 0.0 | – | ✓ |"
        ),
        "{md}"
    );
    assert!(md.contains("| peak RSS MiB (VmHWM) | 100.0 | 50.0 | 0.50× |"));
    assert!(md.contains("![requests/sec and p99 per workload](x.svg)"));
}
