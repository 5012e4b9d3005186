//! The report: figures per workload ([`Row`]), what the run was ([`ReportInfo`]), and the
//! Markdown report and the SVG chart beside it.

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_testkit::workspace_root;

use super::{Case, LIST_PREFIX};
use crate::failover;
use crate::report::Summary;
use crate::svg;

/// Figures of one workload against one server.
#[derive(Clone, Debug, Default)]
pub(super) struct Row {
    pub(super) requests: u64,
    pub(super) errors: u64,
    pub(super) error_codes: String,
    pub(super) qps: f64,
    pub(super) p50_ms: Option<f64>,
    pub(super) p99_ms: Option<f64>,
    pub(super) avg_ms: f64,
    pub(super) server_cpu_us: f64,
    pub(super) client_cpu_us: f64,
}

pub(super) fn row_of(s: &Summary, server_cpu: Duration) -> Row {
    let n = (s.rec.count() + s.rec.error_count()).max(1);
    Row {
        requests: s.rec.count(),
        errors: s.rec.error_count(),
        error_codes: s
            .rec
            .errors()
            .iter()
            .map(|(k, e)| format!("{k}×{}", e.count))
            .collect::<Vec<_>>()
            .join(", "),
        qps: s.requests_per_sec(),
        p50_ms: s.rec.percentile(50.0).map(|d| d.as_secs_f64() * 1e3),
        p99_ms: s.rec.percentile(99.0).map(|d| d.as_secs_f64() * 1e3),
        avg_ms: s.rec.average_secs() * 1e3,
        server_cpu_us: server_cpu.as_secs_f64() * 1e6 / n as f64,
        client_cpu_us: s.client_cpu_us_per_request(),
    }
}

/// What the report says about the run besides the figures.
pub(super) struct ReportInfo {
    pub(super) names: [String; 2],
    pub(super) versions: [String; 2],
    pub(super) bins: [String; 2],
    pub(super) members: usize,
    /// Both servers served https with client-certificate auth (`--tls`).
    pub(super) tls: bool,
    pub(super) rss: [u64; 2],
    pub(super) seed_times: [Duration; 2],
    pub(super) list_keys: u64,
    pub(super) wall: Duration,
    pub(super) interrupted: bool,
    pub(super) command: String,
    /// /proc/loadavg's 1-minute figure before and after the run.
    pub(super) load: [String; 2],
    /// (YYYY-MM-DD, HH:MM:SS) in UTC.
    pub(super) date: (String, String),
    /// The checkout's commit and whether it had uncommitted changes (when git answers).
    pub(super) source: Option<String>,
    /// Leader kills timed per server (several members only).
    pub(super) failovers: [Vec<failover::Run>; 2],
    /// Why a server's failover runs stopped, if they did.
    pub(super) failover_errors: [Option<String>; 2],
}

/// The current UTC date and time, from the system clock (civil calendar).
pub(super) fn utc_now() -> (String, String) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    civil(secs)
}

pub(super) fn civil(secs: u64) -> (String, String) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days since 1970-01-01 to a proleptic Gregorian date (era-based conversion).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

/// `a` as a POSIX shell word: unchanged when it is plain, else in single quotes.
pub(super) fn shell_quote(a: &str) -> String {
    let plain = !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

/// "commit 1a2b3c4 (with uncommitted changes)" for the repository the tool was built from.
pub(super) fn source_state() -> Option<String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(workspace_root())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "--short", "HEAD"])?;
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(format!(
        "commit {head}{}",
        if dirty {
            " (with uncommitted changes)"
        } else {
            ""
        }
    ))
}

pub(super) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

pub(super) fn ratio(base: Option<f64>, cand: Option<f64>) -> String {
    match (base, cand) {
        (Some(b), Some(c)) if b > 0.0 => format!("{:.2}×", c / b),
        _ => "–".into(),
    }
}

/// "✓" when the candidate has at least twice the baseline's requests/sec at no more
/// than half its p99, "✗" when not, "–" when a figure is missing.
pub(super) fn goal(qps: [Option<f64>; 2], p99: [Option<f64>; 2]) -> &'static str {
    match (qps, p99) {
        ([Some(qb), Some(qc)], [Some(pb), Some(pc)]) if qb > 0.0 && pb > 0.0 => {
            if qc >= 2.0 * qb && pc <= 0.5 * pb {
                "✓"
            } else {
                "✗"
            }
        }
        _ => "–",
    }
}

pub(super) fn num(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "–".into())
}

pub(super) fn markdown(
    info: &ReportInfo,
    results: &[(Case, [Option<Row>; 2])],
    svg_name: &str,
) -> String {
    let [b, c] = &info.names;
    let mut s = String::new();
    let _ = writeln!(s, "# {c} vs {b} — {} {} UTC\n", info.date.0, info.date.1);
    if info.members == 1 {
        let _ = writeln!(
            s,
            "**Single-member clusters.** `--members 3` compares three-member clusters \
             (writes through the leader, reads over all members, leader failover).\n"
        );
    } else {
        let _ = writeln!(
            s,
            "**{}-member clusters on loopback.** Puts, txn CAS and watches go to the leader \
             (found with Maintenance.Status before each workload); range and LIST requests \
             rotate over all members' endpoints, request by request (a follower serves a \
             linearizable read after a ReadIndex round to the leader). Server CPU is the sum \
             over all members.\n",
            info.members
        );
    }
    if info.tls {
        let _ = writeln!(
            s,
            "**TLS.** Both servers serve https with the same certificates (a CA, a server \
             pair for 127.0.0.1 and a client pair, ECDSA P-256, made by rcgen for the run) and \
             `--client-cert-auth`; every connection presents the client certificate. New \
             connections do a full handshake each (no session resumption).\n"
        );
    }
    if info.interrupted {
        let _ = writeln!(s, "**Interrupted by Ctrl-C: partial results.**\n");
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let _ = writeln!(s, "- baseline: `{}` — {}", info.bins[0], info.versions[0]);
    let _ = writeln!(s, "- candidate: `{}` — {}", info.bins[1], info.versions[1]);
    let _ = writeln!(
        s,
        "- machine: {cores} cores; client, both servers and the load tool share them; \
         servers run one at a time under load (the idle one stays up)"
    );
    let _ = writeln!(
        s,
        "- same flags for both: `--name --data-dir (fresh temp dir) --listen/advertise-client-urls \
         --listen-peer-urls --initial-advertise-peer-urls --initial-cluster --initial-cluster-state new \
         --initial-cluster-token --log-level warn`, everything else default"
    );
    let _ = writeln!(
        s,
        "- machine load (1-min load average) before / after: {} / {} — other work on the \
         machine skews every figure; compare ratios, not absolutes, when it is high",
        info.load[0], info.load[1]
    );
    let _ = writeln!(s, "- command: `{}`", info.command);
    if let Some(src) = &info.source {
        let _ = writeln!(s, "- checkout when the run started: {src}");
    }
    let _ = writeln!(s, "- wall time: {:.0} s\n", info.wall.as_secs_f64());
    let _ = writeln!(
        s,
        "Ratios are {c} ÷ {b}: above 1 means {c} is higher (better for requests/sec, worse for \
         latency and CPU). Server CPU is user+system time of the server processes during the \
         workload, divided by requests. Each workload runs against both servers back to back, \
         alternating which goes first.\n"
    );
    let _ = writeln!(s, "![requests/sec and p99 per workload]({svg_name})\n");
    let _ = writeln!(s, "## Headline\n");
    let _ = writeln!(
        s,
        "| workload | req/s {b} | req/s {c} | ratio | p50 ms {b} | p50 ms {c} | p99 ms {b} | \
         p99 ms {c} | ratio | CPU µs/req {b} | CPU µs/req {c} | ratio | goal |"
    );
    let _ = writeln!(
        s,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:-:|"
    );
    for (case, rows) in results {
        let q = rows.clone().map(|r| r.map(|r| r.qps));
        let p50 = rows.clone().map(|r| r.and_then(|r| r.p50_ms));
        let p = rows.clone().map(|r| r.and_then(|r| r.p99_ms));
        let cpu = rows.clone().map(|r| r.map(|r| r.server_cpu_us));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            case.name,
            num(q[0], 0),
            num(q[1], 0),
            ratio(q[0], q[1]),
            num(p50[0], 3),
            num(p50[1], 3),
            num(p[0], 3),
            num(p[1], 3),
            ratio(p[0], p[1]),
            num(cpu[0], 1),
            num(cpu[1], 1),
            ratio(cpu[0], cpu[1]),
            goal(q, p)
        );
    }
    let _ = writeln!(
        s,
        "\ngoal: {c} at ≥ 2× the requests/sec of {b} with ≤ ½ its p99 (✓ both, ✗ not both). \
         CPU µs/req is the servers' CPU time per request.\n"
    );
    failover_section(&mut s, info);
    let _ = writeln!(s, "\n## All figures\n");
    let _ = writeln!(s, "| workload | figure | {b} | {c} | ratio |");
    let _ = writeln!(s, "|---|---|---:|---:|---:|");
    type Figure = (&'static str, fn(&Row) -> Option<f64>, usize);
    let figures: [Figure; 7] = [
        ("requests/sec", |r| Some(r.qps), 0),
        ("p50 ms", |r| r.p50_ms, 3),
        ("p99 ms", |r| r.p99_ms, 3),
        ("average ms", |r| Some(r.avg_ms), 3),
        ("server CPU µs/request", |r| Some(r.server_cpu_us), 1),
        ("client CPU µs/request", |r| Some(r.client_cpu_us), 1),
        ("requests ok", |r| Some(r.requests as f64), 0),
    ];
    for (case, rows) in results {
        for (label, get, digits) in figures {
            let v = [
                rows[0].as_ref().and_then(get),
                rows[1].as_ref().and_then(get),
            ];
            let _ = writeln!(
                s,
                "| {} | {label} | {} | {} | {} |",
                case.name,
                num(v[0], digits),
                num(v[1], digits),
                ratio(v[0], v[1])
            );
        }
        let errs = rows.clone().map(|r| match r {
            Some(r) if r.errors > 0 => format!("{} ({})", r.errors, r.error_codes),
            Some(_) => "0".into(),
            None => "did not run".into(),
        });
        let _ = writeln!(
            s,
            "| {} | errors | {} | {} | |",
            case.name, errs[0], errs[1]
        );
    }
    let rss = info.rss.map(|r| r as f64 / (1024.0 * 1024.0));
    let _ = writeln!(s, "\n## Whole run\n");
    let _ = writeln!(s, "| figure | {b} | {c} | ratio |");
    let _ = writeln!(s, "|---|---:|---:|---:|");
    let _ = writeln!(
        s,
        "| peak RSS MiB (VmHWM) | {:.1} | {:.1} | {} |",
        rss[0],
        rss[1],
        ratio(Some(rss[0]), Some(rss[1]))
    );
    let seed = info.seed_times.map(|d| d.as_secs_f64());
    if info.list_keys > 0 {
        let _ = writeln!(
            s,
            "| writing the {} LIST keys (64 in flight), s | {:.2} | {:.2} | {} |",
            info.list_keys,
            seed[0],
            seed[1],
            ratio(Some(seed[0]), Some(seed[1]))
        );
    }
    let _ = writeln!(s, "\n## Workloads\n");
    let _ = writeln!(
        s,
        "- put: `cairn-bench put --key-size 8 --key-space-size 100000 --val-size N --clients C`; \
         connections = min(clients, 10).\n\
         - range: one 256 B key, `--consistency l` or `s`.\n\
         - txn CAS: `cairn-bench txn-cas`: 1000 objects of 256 B; each update is \
         `Txn(If mod_revision(key) == known, Then put, Else get)`, retried on conflict as \
         an informer-backed update would be.\n\
         - LIST: `range {LIST_PREFIX} --prefix --limit 500` over {} keys of 256 B (the count covers all of them).\n\
         - watch latency: `cairn-bench watch-latency --streams 10 --watchers-per-stream 10 --put-rate 100 --val-size 256`: \
         time from sending a put to each watcher receiving its event (etcd benchmark measures from the put's acknowledgement, which on loopback is ≈0).\n\
         - new connections: `cairn-bench conn-rate`: each request opens a new connection \
         (TCP, the TLS handshake under `--tls`, HTTP/2), sends one serializable range and closes it; req/s is connections per second.",
        info.list_keys
    );
    s
}

/// The "Leader failover" section (several members, when it ran).
pub(super) fn failover_section(s: &mut String, info: &ReportInfo) {
    let runs = &info.failovers;
    if runs[0].is_empty() && runs[1].is_empty() && info.failover_errors.iter().all(Option::is_none)
    {
        return;
    }
    let [b, c] = &info.names;
    let _ = writeln!(s, "\n## Leader failover\n");
    let _ = writeln!(
        s,
        "kill -9 of the leader under a light write load: a 256 B put every {} ms, round-robin \
         over the members (after the kill over the survivors), each attempt with its own {} s \
         timeout and overlapping the others, so the resolution is {} ms. Measured from the \
         signal to the acknowledgement of the first put sent after it, and to the first Status \
         of a survivor naming a new leader. The killed member is restarted and caught up before \
         the next run; runs alternate between the servers.\n",
        failover::PROBE_INTERVAL.as_millis(),
        failover::ATTEMPT_TIMEOUT.as_secs(),
        failover::PROBE_INTERVAL.as_millis()
    );
    let _ = writeln!(s, "| figure | {b} | {c} | ratio |");
    let _ = writeln!(s, "|---|---:|---:|---:|");
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let write = runs
        .clone()
        .map(|r| failover::min_median_max(&r.iter().map(|r| r.to_write).collect::<Vec<_>>()));
    for (k, label) in ["min", "median", "max"].iter().enumerate() {
        let v = write.map(|w| w.map(|w| ms(w[k])));
        let _ = writeln!(
            s,
            "| kill → first acknowledged write, {label} ms | {} | {} | {} |",
            num(v[0], 0),
            num(v[1], 0),
            ratio(v[0], v[1])
        );
    }
    let leader = runs.clone().map(|r| {
        failover::min_median_max(&r.iter().filter_map(|r| r.to_leader).collect::<Vec<_>>())
            .map(|m| ms(m[1]))
    });
    let _ = writeln!(
        s,
        "| kill → new leader in Status, median ms | {} | {} | {} |",
        num(leader[0], 0),
        num(leader[1], 0),
        ratio(leader[0], leader[1])
    );
    let failed = runs.clone().map(|r| failover::failures_text(&r));
    let _ = writeln!(
        s,
        "| failed write attempts after the kill (all runs) | {} | {} | |",
        failed[0], failed[1]
    );
    let count = runs.clone().map(|r| r.len());
    let _ = writeln!(s, "| runs | {} | {} | |", count[0], count[1]);
    let _ = writeln!(s);
    for (i, name) in info.names.iter().enumerate() {
        let each: Vec<String> = runs[i]
            .iter()
            .map(|r| {
                format!(
                    "{} killed: write {:.0} ms, leader {} ms, {}/{} attempts failed",
                    r.killed,
                    ms(r.to_write),
                    r.to_leader
                        .map(|d| format!("{:.0}", ms(d)))
                        .unwrap_or_else(|| "?".into()),
                    r.failed_total(),
                    r.attempts
                )
            })
            .collect();
        let _ = writeln!(s, "- {name}: {}", each.join("; "));
        if let Some(e) = &info.failover_errors[i] {
            let _ = writeln!(s, "- {name}: **failover runs stopped**: {e}");
        }
    }
}

pub(super) fn chart(info: &ReportInfo, results: &[(Case, [Option<Row>; 2])]) -> String {
    let rows: Vec<String> = results.iter().map(|(c, _)| c.name.clone()).collect();
    let qps = results
        .iter()
        .map(|(_, r)| [r[0].as_ref().map(|r| r.qps), r[1].as_ref().map(|r| r.qps)])
        .collect();
    let p99 = results
        .iter()
        .map(|(_, r)| {
            [
                r[0].as_ref().and_then(|r| r.p99_ms),
                r[1].as_ref().and_then(|r| r.p99_ms),
            ]
        })
        .collect();
    let title = format!(
        "{} vs {} — {} ({}-member)",
        info.names[1], info.names[0], info.date.0, info.members
    );
    svg::chart(
        &title,
        &rows,
        [info.names[0].as_str(), info.names[1].as_str()],
        &[
            svg::Panel {
                title: "requests/sec (higher is better)".into(),
                values: qps,
            },
            svg::Panel {
                title: "p99 latency, ms (lower is better)".into(),
                values: p99,
            },
        ],
    )
}
