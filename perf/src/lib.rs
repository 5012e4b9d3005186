//! `cairn-perf`: the `cairn-bench` load tool and the side-by-side comparison.
//!
//! Where this crate fits in Cairn: `docs/architecture.md` at the repository root.
//!
//! - [`cli`]: flags and subcommands, named as etcd's `benchmark` names them.
//! - `conn`: connections spread over endpoints, clients over connections, TLS, auth.
//! - `driver`: the request loop (clients, total, rate, Ctrl-C, progress bar).
//! - `workloads`: put, range, txn-put, txn-mixed, txn-cas, watch, watch-latency,
//!   lease-keepalive, conn-rate (new connections, TLS handshakes, per second).
//! - [`report`]: HDR-histogram summary, errors per status code, text and JSON.
//! - `procstat`: CPU time and peak RSS from `/proc`.
//! - [`compare`]: starts etcd and Cairn, runs the matrix, writes the report and chart.
//! - `failover`: kill -9 of a cluster's leader under load, timed to the next acknowledged write.
//! - `proto`: etcd's v3 gRPC client, generated at build time.

pub mod cli;
pub mod compare;
mod conn;
mod driver;
mod failover;
pub mod procstat;
pub mod proto;
pub mod report;
mod svg;
mod workloads;

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use cli::{Cli, Command, Consistency};
pub use conn::BenchError;
use report::Summary;

/// Exit status: all requests succeeded.
const EXIT_OK: u8 = 0;
/// Exit status: the run finished but some requests failed (see the summary).
const EXIT_REQUEST_ERRORS: u8 = 1;
/// Exit status: bad flags or a failed setup; nothing was measured.
const EXIT_SETUP: u8 = 2;
/// Exit status: interrupted by Ctrl-C (the partial summary was printed).
const EXIT_INTERRUPTED: u8 = 130;

/// Runs one `cairn-bench` invocation and prints its results.
pub async fn run(cli: Cli) -> ExitCode {
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            c.cancel();
        }
    });
    let json = cli.global.json();
    let precise = cli.global.precise;
    let result = match &cli.cmd {
        Command::Compare(args) => compare::run(args, &cli.global, cancel.clone())
            .await
            .map(|()| Vec::new()),
        cmd => run_workload(cmd, &cli.global, cancel.clone(), json).await,
    };
    match result {
        Err(e) => {
            eprintln!("cairn-bench: {e}");
            ExitCode::from(if cancel.is_cancelled() {
                EXIT_INTERRUPTED
            } else {
                EXIT_SETUP
            })
        }
        Ok(summaries) => {
            print_summaries(&summaries, json, precise);
            if cancel.is_cancelled() {
                ExitCode::from(EXIT_INTERRUPTED)
            } else if summaries.iter().any(|s| s.rec.error_count() > 0) {
                ExitCode::from(EXIT_REQUEST_ERRORS)
            } else {
                ExitCode::from(EXIT_OK)
            }
        }
    }
}

async fn run_workload(
    cmd: &Command,
    g: &cli::GlobalOpts,
    cancel: CancellationToken,
    json: bool,
) -> Result<Vec<Summary>, BenchError> {
    let ctx = workloads::Ctx {
        pool: conn::Pool::connect(g).await?,
        clients: g.clients,
        cancel,
        quiet: json,
    };
    let consistency_line = |c: Consistency| {
        if !json {
            println!(
                "bench with {} range",
                if c == Consistency::L {
                    "linearizable"
                } else {
                    "serializable"
                }
            );
        }
    };
    match cmd {
        Command::Put(a) => workloads::put(&ctx, a).await,
        Command::Range(a) => {
            consistency_line(a.consistency);
            workloads::range(&ctx, a).await
        }
        Command::TxnPut(a) => workloads::txn_put(&ctx, a).await,
        Command::TxnMixed(a) => {
            consistency_line(a.consistency);
            workloads::txn_mixed(&ctx, a).await
        }
        Command::TxnCas(a) => workloads::txn_cas(&ctx, a).await,
        Command::Watch(a) => workloads::watch(&ctx, a).await,
        Command::WatchLatency(a) => workloads::watch_latency(&ctx, a).await,
        Command::LeaseKeepalive(a) => workloads::lease_keepalive(&ctx, a).await,
        Command::ConnRate(a) => workloads::conn_rate(&ctx, &g.endpoints, a).await,
        Command::Compare(_) => Ok(Vec::new()),
    }
}

fn print_summaries(summaries: &[Summary], json: bool, precise: bool) {
    if json {
        let v: Vec<_> = summaries.iter().map(Summary::to_json).collect();
        let out = if v.len() == 1 {
            v[0].clone()
        } else {
            serde_json::Value::Array(v)
        };
        println!("{out}");
        return;
    }
    for s in summaries {
        if summaries.len() > 1 {
            println!("\n{} summary:", s.name);
        }
        print!("{}", s.to_text(precise));
    }
}
