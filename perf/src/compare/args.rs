//! `cairn-bench compare`'s flags.

use std::path::PathBuf;

use clap::Args;

/// The flags of `cairn-bench compare`.
#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// Baseline server binary (default: etcd 3.5.1 from target/testdeps/etcd-3.5.1, else `etcd` on PATH)
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Candidate server binary (default: the workspace's `cairn`, built with `cargo build --release`)
    #[arg(long)]
    pub candidate: Option<PathBuf>,
    /// Do not build `cairn`; use the binary already in the target directory
    #[arg(long = "no-build")]
    pub no_build: bool,
    /// Members per cluster. With more than one, writes go to the leader (found
    /// with Status), reads rotate over all members, and the leader failover is measured
    #[arg(long, default_value_t = 1)]
    pub members: usize,
    /// Leader kills to time with several members (0 skips the failover measurement)
    #[arg(long, default_value_t = 3)]
    pub failover: usize,
    /// Multiplies every request total (e.g. 0.1 for a quick smoke run)
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Keys under the prefix that the LIST workload pages through
    #[arg(long = "list-keys", default_value_t = 100_000)]
    pub list_keys: u64,
    /// Only run workloads whose name contains this text; repeat the flag for
    /// several ("failover" selects the failover measurement)
    #[arg(long)]
    pub only: Vec<String>,
    /// Report file (default: perf/reports/<UTC date>.md); the chart goes beside it as .svg
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Serve both sides over TLS: a CA, a server and a client certificate are made
    /// (rcgen) in the run's temporary directory; both servers get the same
    /// --cert-file/--key-file/--trusted-ca-file/--client-cert-auth and https client
    /// URLs, and the clients present the client certificate
    #[arg(long)]
    pub tls: bool,
    /// Keep the servers' data directories and logs (their path is printed)
    #[arg(long = "keep-data")]
    pub keep_data: bool,
}
