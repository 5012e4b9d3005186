//! `cairn-bench compare`: starts a baseline (etcd) and a candidate (Cairn) with
//! the same flags and fresh data directories on free loopback ports, runs the
//! workload matrix against each in turn (alternating which goes first), samples
//! the servers' CPU time and peak RSS from `/proc`, and writes a Markdown report
//! with a chart beside it.
//!
//! Clusters are described by a member count (`--members`). With several members,
//! writes and watches go to the leader (found with Status before each workload),
//! range and LIST requests rotate over every member request by request, server CPU
//! is summed over the members, and after the matrix the leader is killed (-9) a few
//! times under a light write load to time the failover (see `failover`).
//!
//! - `args`: the flags ([`CompareArgs`]);
//! - `cluster`: the binaries and their clusters, started and killed with the test kit
//!   (`cairn-testkit`), and the connection pools the workloads use;
//! - `report`: the figures, the Markdown report and the chart;
//! - here: the workload matrix and the run.

mod args;
mod cluster;
mod pki;
mod report;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_testkit::{default_etcd, workspace_root};
use tokio_util::sync::CancellationToken;

pub use args::CompareArgs;
pub use cluster::Cluster;
pub use pki::Pki;

use crate::cli::{
    ConnRateArgs, Consistency, GlobalOpts, PutArgs, RangeArgs, TxnCasArgs, WatchLatencyArgs,
};
use crate::conn::{flag_err, BenchError};
use crate::failover;
use crate::workloads::{self, Ctx};
use cluster::cairn_binary;
use report::{chart, loadavg, markdown, row_of, shell_quote, source_state, utc_now};
use report::{ReportInfo, Row};

/// One workload of the matrix.
#[derive(Clone, Debug)]
enum Work {
    Put {
        val: usize,
        total: u64,
    },
    Range {
        serializable: bool,
        total: u64,
    },
    Cas {
        total: u64,
    },
    List {
        total: u64,
    },
    WatchLatency {
        put_total: u64,
    },
    /// New connection (TLS handshake with `--tls`) + one serializable Range, closed.
    Connect {
        total: u64,
    },
}

#[derive(Clone, Debug)]
struct Case {
    name: String,
    clients: usize,
    work: Work,
}

/// Whether `name` is selected by `--only` (empty: everything).
fn selected(only: &[String], name: &str) -> bool {
    only.is_empty()
        || only
            .iter()
            .any(|o| !o.is_empty() && name.contains(o.as_str()))
}

/// Name of the failover measurement, for `--only`.
const FAILOVER: &str = "leader failover";

fn scaled(n: u64, scale: f64) -> u64 {
    ((n as f64 * scale).round() as u64).max(1)
}

/// The default matrix: puts at 1/16/100 clients with 256 B and 4 KiB values,
/// linearizable and serializable point reads at 1 and 100 clients, a
/// compare-and-swap txn, a LIST page of 500 keys out of `list_keys`, and watch latency.
fn matrix(scale: f64, list_keys: u64) -> Vec<Case> {
    let s = |n| scaled(n, scale);
    let mut v = Vec::new();
    for (val, label) in [(256usize, "256 B"), (4096, "4 KiB")] {
        for (clients, total) in [(1usize, 2_000u64), (16, 8_000), (100, 16_000)] {
            v.push(Case {
                name: format!("put {label}, {clients} clients"),
                clients,
                work: Work::Put {
                    val,
                    total: s(total),
                },
            });
        }
    }
    for (serializable, label) in [(false, "linearizable"), (true, "serializable")] {
        for (clients, total) in [(1usize, 4_000u64), (100, 30_000)] {
            v.push(Case {
                name: format!("range {label}, {clients} clients"),
                clients,
                work: Work::Range {
                    serializable,
                    total: s(total),
                },
            });
        }
    }
    v.push(Case {
        name: "txn CAS (k8s update), 16 clients".into(),
        clients: 16,
        work: Work::Cas { total: s(8_000) },
    });
    v.push(Case {
        name: format!("LIST 500 of {list_keys} keys, 4 clients"),
        clients: 4,
        work: Work::List { total: s(400) },
    });
    v.push(Case {
        name: "watch latency, 100 watchers".into(),
        clients: 1,
        work: Work::WatchLatency { put_total: s(500) },
    });
    v.push(Case {
        name: "new connections (connect + Range), 4 clients".into(),
        clients: 4,
        work: Work::Connect { total: s(2_000) },
    });
    v
}

const RANGE_KEY: &str = "/bench/range/key";
const LIST_PREFIX: &str = "/registry/pods/default/";

async fn prepare(
    cluster: &Cluster,
    list_keys: u64,
    cancel: &CancellationToken,
) -> Result<Duration, BenchError> {
    let pool = cluster.writer_pool(64).await?;
    let value: Bytes = vec![b'v'; 256].into();
    workloads::seed(
        &pool,
        vec![(RANGE_KEY.as_bytes().to_vec(), value.clone())],
        1,
        cancel,
    )
    .await?;
    let t = Instant::now();
    let items = (0..list_keys)
        .map(|i| {
            (
                format!("{LIST_PREFIX}pod-{i:07}").into_bytes(),
                value.clone(),
            )
        })
        .collect();
    workloads::seed(&pool, items, 64, cancel).await?;
    Ok(t.elapsed())
}

async fn run_case(
    case: &Case,
    cluster: &Cluster,
    list_keys: u64,
    cancel: &CancellationToken,
) -> Result<Row, BenchError> {
    let ctx = Ctx {
        pool: cluster.writer_pool(case.clients).await?,
        clients: case.clients,
        cancel: cancel.clone(),
        quiet: true,
    };
    let cpu0 = cluster.cpu();
    let summaries = match &case.work {
        Work::Put { val, total } => {
            workloads::put(
                &ctx,
                &PutArgs {
                    key_size: 8,
                    val_size: *val,
                    rate: 0,
                    total: *total,
                    key_space_size: 100_000,
                    sequential_keys: false,
                },
            )
            .await?
        }
        Work::Range {
            serializable,
            total,
        } => {
            workloads::range_spread(
                &ctx,
                &cluster.member_pools(case.clients).await?,
                &RangeArgs {
                    key: Some(RANGE_KEY.into()),
                    end: None,
                    rate: 0,
                    total: *total,
                    consistency: if *serializable {
                        Consistency::S
                    } else {
                        Consistency::L
                    },
                    limit: 0,
                    count_only: false,
                    keys_only: false,
                    prefix: false,
                },
            )
            .await?
        }
        Work::Cas { total } => {
            workloads::txn_cas(
                &ctx,
                &TxnCasArgs {
                    key_size: 8,
                    val_size: 256,
                    rate: 0,
                    total: *total,
                    key_space_size: 1000,
                },
            )
            .await?
        }
        Work::List { total } => {
            let _ = list_keys;
            workloads::range_spread(
                &ctx,
                &cluster.member_pools(case.clients).await?,
                &RangeArgs {
                    key: Some(LIST_PREFIX.into()),
                    end: None,
                    rate: 0,
                    total: *total,
                    consistency: Consistency::L,
                    limit: 500,
                    count_only: false,
                    keys_only: false,
                    prefix: true,
                },
            )
            .await?
        }
        Work::WatchLatency { put_total } => {
            workloads::watch_latency(
                &ctx,
                &WatchLatencyArgs {
                    streams: 10,
                    watchers_per_stream: 10,
                    prevkv: false,
                    put_total: *put_total,
                    put_rate: 100,
                    key_size: 32,
                    val_size: 256,
                },
            )
            .await?
        }
        Work::Connect { total } => {
            workloads::conn_rate(
                &ctx,
                &cluster.endpoints,
                &ConnRateArgs {
                    total: *total,
                    rate: 0,
                    range_key: RANGE_KEY.into(),
                },
            )
            .await?
        }
    };
    let server_cpu = cluster.cpu().saturating_sub(cpu0);
    let s = summaries
        .last()
        .ok_or_else(|| BenchError::Setup("workload produced no summary".into()))?;
    Ok(row_of(s, server_cpu))
}

/// Runs the whole comparison and writes the report.
pub async fn run(
    a: &CompareArgs,
    _g: &GlobalOpts,
    cancel: CancellationToken,
) -> Result<(), BenchError> {
    if a.members == 0 {
        return Err(flag_err("members", "must be at least 1"));
    }
    if !(a.scale > 0.0 && a.scale.is_finite()) {
        return Err(flag_err("scale", "must be a positive number"));
    }
    let started = Instant::now();
    let load_before = loadavg();
    let source = source_state();
    let baseline_bin = match &a.baseline {
        Some(p) => p.clone(),
        None => default_etcd().ok_or_else(|| {
            flag_err(
                "baseline",
                "no etcd found (run scripts/install-test-deps.sh, or pass --baseline PATH)",
            )
        })?,
    };
    let candidate_bin = match &a.candidate {
        Some(p) => p.clone(),
        None => cairn_binary(a.no_build)?,
    };
    let bins = [baseline_bin, candidate_bin];
    let work = tempfile::Builder::new()
        .prefix("cairn-compare-")
        .tempdir()?;
    let pki = if a.tls {
        let p = Pki::generate(&work.path().join("pki"))?;
        eprintln!(
            "compare: TLS with client-certificate auth; certificates in {}",
            work.path().join("pki").display()
        );
        Some(p)
    } else {
        None
    };
    let mut clusters = Vec::new();
    for (i, bin) in bins.iter().enumerate() {
        let dir = work.path().join(["baseline", "candidate"][i]);
        let c = Cluster::start(bin, a.members, &dir, pki.as_ref()).await?;
        eprintln!(
            "compare: {} ({}) serving on {}",
            c.name,
            c.version,
            c.endpoints.join(",")
        );
        clusters.push(c);
    }
    if clusters[0].name == clusters[1].name {
        // The same server on both sides (e.g. validating the harness): tell them apart.
        clusters[0].name.push_str(" (baseline)");
        clusters[1].name.push_str(" (candidate)");
    }
    let mut cases = matrix(a.scale, a.list_keys);
    if !a.only.is_empty() {
        cases.retain(|c| selected(&a.only, &c.name));
    }
    let mut seed_times = [Duration::ZERO; 2];
    // The LIST keys are written only when LIST runs; the range key whenever a read runs.
    let list_keys = if cases.iter().any(|c| matches!(c.work, Work::List { .. })) {
        a.list_keys
    } else {
        0
    };
    if cases
        .iter()
        .any(|c| matches!(c.work, Work::List { .. } | Work::Range { .. }))
    {
        for (i, c) in clusters.iter().enumerate() {
            eprintln!(
                "compare: {}: writing the range key and {list_keys} keys for LIST",
                c.name
            );
            seed_times[i] = prepare(c, list_keys, &cancel).await?;
        }
    }
    let mut results: Vec<(Case, [Option<Row>; 2])> = Vec::new();
    for (k, case) in cases.iter().enumerate() {
        if cancel.is_cancelled() {
            break;
        }
        let mut rows: [Option<Row>; 2] = [None, None];
        // Alternate which server goes first, so warm-up and drift hit both alike.
        let order = if k % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let c = &mut clusters[i];
            if !c.alive() {
                eprintln!(
                    "compare: {} is no longer running; skipping {}",
                    c.name, case.name
                );
                continue;
            }
            match run_case(case, c, list_keys, &cancel).await {
                Ok(r) => {
                    eprintln!(
                        "compare: {:<36} {:<14} {:>9.0} req/s  p99 {:>8.3} ms  errors {}",
                        case.name,
                        c.name,
                        r.qps,
                        r.p99_ms.unwrap_or(f64::NAN),
                        r.errors
                    );
                    rows[i] = Some(r);
                }
                Err(e) => eprintln!("compare: {} on {}: {e}", case.name, c.name),
            }
        }
        results.push((case.clone(), rows));
    }
    // Before the failover runs: a killed member's peak goes with it.
    let rss = [clusters[0].peak_rss(), clusters[1].peak_rss()];
    let mut failovers: [Vec<failover::Run>; 2] = [Vec::new(), Vec::new()];
    let mut failover_errors: [Option<String>; 2] = [None, None];
    if a.members > 1 && a.failover > 0 && selected(&a.only, FAILOVER) {
        for rep in 0..a.failover {
            let order = if rep % 2 == 0 { [0, 1] } else { [1, 0] };
            for i in order {
                if cancel.is_cancelled() || failover_errors[i].is_some() {
                    continue;
                }
                let c = &mut clusters[i];
                match failover_once(c, &cancel).await {
                    Ok(r) => {
                        eprintln!(
                            "compare: {FAILOVER} {}/{} {:<14} killed {}: first write after {:.0} ms, \
                             new leader seen after {} ms, {} failed attempts",
                            rep + 1,
                            a.failover,
                            c.name,
                            r.killed,
                            r.to_write.as_secs_f64() * 1e3,
                            r.to_leader
                                .map(|d| format!("{:.0}", d.as_secs_f64() * 1e3))
                                .unwrap_or_else(|| "?".into()),
                            r.failed_total()
                        );
                        failovers[i].push(r);
                    }
                    Err(e) => {
                        eprintln!("compare: {FAILOVER} on {}: {e}", c.name);
                        failover_errors[i] = Some(e.to_string());
                    }
                }
            }
        }
    }
    let names = [clusters[0].name.clone(), clusters[1].name.clone()];
    let info = ReportInfo {
        names: names.clone(),
        versions: [clusters[0].version.clone(), clusters[1].version.clone()],
        bins: [bins[0].display().to_string(), bins[1].display().to_string()],
        members: a.members,
        tls: a.tls,
        rss,
        seed_times,
        list_keys,
        wall: started.elapsed(),
        interrupted: cancel.is_cancelled(),
        command: std::env::args()
            .map(|a| shell_quote(&a))
            .collect::<Vec<_>>()
            .join(" "),
        source,
        load: [load_before, loadavg()],
        date: utc_now(),
        failovers,
        failover_errors,
    };
    drop(clusters);
    if a.keep_data {
        let kept = work.keep();
        eprintln!("compare: data and logs kept in {}", kept.display());
    }
    let md_path = match &a.out {
        Some(p) => p.clone(),
        None => workspace_root()
            .join("perf/reports")
            .join(format!("{}.md", info.date.0)),
    };
    let svg_path = md_path.with_extension("svg");
    if let Some(dir) = md_path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let svg_name = svg_path
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    std::fs::write(&md_path, markdown(&info, &results, &svg_name))?;
    std::fs::write(&svg_path, chart(&info, &results))?;
    println!("{}", markdown(&info, &results, &svg_name));
    eprintln!(
        "compare: wrote {} and {} in {:.0} s",
        md_path.display(),
        svg_path.display(),
        info.wall.as_secs_f64()
    );
    Ok(())
}

/// One timed kill of `c`'s leader; the killed member is restarted and caught up
/// afterwards (also when the measurement failed), ready for the next one.
async fn failover_once(
    c: &mut Cluster,
    cancel: &CancellationToken,
) -> Result<failover::Run, BenchError> {
    let (leader, st) = c.wait_leader().await?;
    let pools = c.member_pools(c.endpoints.len()).await?;
    let endpoints = c.endpoints.clone();
    let run = failover::measure(&pools, &endpoints, leader, st.id, || c.kill(leader), cancel).await;
    drop(pools);
    if !c.started(leader) {
        c.restart(leader).await?;
    }
    let mut run = run?;
    run.killed = c.procs.nodes[leader].name.clone();
    Ok(run)
}
