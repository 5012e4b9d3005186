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

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::cli::{Consistency, GlobalOpts, PutArgs, RangeArgs, TxnCasArgs, WatchLatencyArgs};
use crate::conn::{self, flag_err, wait_ready, BenchError, MemberStatus, Pool};
use crate::failover;
use crate::procstat;
use crate::report::Summary;
use crate::svg;
use crate::workloads::{self, Ctx};

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
    /// Keep the servers' data directories and logs (their path is printed)
    #[arg(long = "keep-data")]
    pub keep_data: bool,
}

/// The repository root (this crate's parent directory at build time).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// etcd 3.5.1 as `scripts/install-test-deps.sh` installs it, else `etcd` on PATH.
pub fn default_etcd() -> Option<PathBuf> {
    let p = repo_root().join("target/testdeps/etcd-3.5.1/etcd");
    if p.exists() {
        return Some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("etcd"))
            .find(|p| p.exists())
    })
}

fn cairn_binary(no_build: bool) -> Result<PathBuf, BenchError> {
    let root = repo_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target.join("release/cairn");
    if !no_build {
        eprintln!("compare: building cairn (cargo build --release -p cairn-server --bin cairn)");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "--release", "-p", "cairn-server", "--bin", "cairn"])
            .current_dir(&root)
            .status()
            .map_err(|e| BenchError::Server(format!("cannot run cargo: {e}")))?;
        if !st.success() {
            return Err(BenchError::Server(format!("building cairn failed ({st})")));
        }
    }
    if !bin.exists() {
        return Err(BenchError::Server(format!(
            "{} not found (build it, or pass --candidate PATH)",
            bin.display()
        )));
    }
    Ok(bin)
}

fn version_of(bin: &Path) -> String {
    Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).to_string()
                + &String::from_utf8_lossy(&o.stderr);
            text.lines().next().map(|l| l.trim().to_string())
        })
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "version unknown".into())
}

/// A short name for a binary: "etcd 3.5.1", "cairn 0.1.0".
fn short_name(bin: &Path, version: &str) -> String {
    let file = bin
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_else(|| "server".into());
    let ver = version
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .unwrap_or("");
    format!("{file} {ver}").trim().to_string()
}

/// A port free a moment ago on 127.0.0.1, chosen below the kernel's ephemeral range so
/// the load tool's own outgoing connections (whose local ports come from that range)
/// cannot take it before the server binds it.
pub fn free_port() -> Result<u16, BenchError> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u32>().ok())
        })
        .unwrap_or(32768);
    let (low, high) = (10_000u32, ephemeral_low.max(10_512));
    let span = high - low;
    // Offset by process so two load tools (or test binaries) start apart.
    let start = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (low + (start + n.wrapping_mul(37)) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// How to (re)start one member.
struct MemberSpec {
    name: String,
    data_dir: PathBuf,
    client: String,
    peer: String,
    log: PathBuf,
}

/// One running cluster of `members` processes of one binary.
pub struct Cluster {
    pub name: String,
    pub version: String,
    pub bin: PathBuf,
    initial_cluster: String,
    specs: Vec<MemberSpec>,
    /// One per member; None while a member is killed.
    procs: Vec<Option<Child>>,
    pub endpoints: Vec<String>,
}

/// How long a (re)started member or a leader election may take.
const READY_WAIT: Duration = Duration::from_secs(30);

impl Cluster {
    /// Starts `members` members with etcd's flags under `dir`, waits until each
    /// answers Maintenance.Status and, with several members, until all of them
    /// agree on a leader.
    pub async fn start(bin: &Path, members: usize, dir: &Path) -> Result<Cluster, BenchError> {
        let version = version_of(bin);
        let name = short_name(bin, &version);
        std::fs::create_dir_all(dir)?;
        let mut specs = Vec::new();
        for i in 0..members {
            specs.push(MemberSpec {
                name: format!("m{i}"),
                data_dir: dir.join(format!("m{i}.etcd")),
                client: format!("http://127.0.0.1:{}", free_port()?),
                peer: format!("http://127.0.0.1:{}", free_port()?),
                log: dir.join(format!("m{i}.log")),
            });
        }
        let initial_cluster = specs
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let endpoints = specs
            .iter()
            .map(|m| m.client.trim_start_matches("http://").to_string())
            .collect();
        let mut cluster = Cluster {
            name,
            version,
            bin: bin.to_path_buf(),
            initial_cluster,
            specs,
            procs: Vec::new(),
            endpoints,
        };
        for i in 0..members {
            let child = cluster.spawn(i)?;
            cluster.procs.push(Some(child));
        }
        for i in 0..members {
            cluster.wait_member(i).await?;
        }
        if members > 1 {
            cluster.wait_leader().await?;
        }
        Ok(cluster)
    }

    fn spawn(&self, i: usize) -> Result<Child, BenchError> {
        let m = &self.specs[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)?;
        Command::new(&self.bin)
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(&m.data_dir)
            .args(["--listen-client-urls", &m.client])
            .args(["--advertise-client-urls", &m.client])
            .args(["--listen-peer-urls", &m.peer])
            .args(["--initial-advertise-peer-urls", &m.peer])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "cairn-bench"])
            .args(["--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| BenchError::Server(format!("cannot start {}: {e}", self.bin.display())))
    }

    /// Waits until member `i` answers Status; on failure the error carries its log's tail.
    async fn wait_member(&mut self, i: usize) -> Result<(), BenchError> {
        let ep = self.endpoints[i].clone();
        if let Err(e) = wait_ready(&ep, READY_WAIT).await {
            let status = self.procs[i]
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            return Err(BenchError::Server(format!(
                "{} member m{i} did not become ready on {ep} ({}; last error: {e}); log tail:\n{}",
                self.name,
                status
                    .map(|s| format!("exited: {s}"))
                    .unwrap_or_else(|| "still running".into()),
                self.log_tail(i)
            )));
        }
        Ok(())
    }

    fn log_tail(&self, i: usize) -> String {
        let log = std::fs::read_to_string(&self.specs[i].log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Status of every running member (None for killed or silent ones).
    async fn statuses(&self) -> Vec<Option<MemberStatus>> {
        let polls = self.endpoints.iter().enumerate().map(|(i, ep)| {
            let running = self.procs.get(i).is_some_and(Option::is_some);
            async move {
                if running {
                    conn::status(ep, Duration::from_secs(2)).await.ok()
                } else {
                    None
                }
            }
        });
        futures::future::join_all(polls).await
    }

    /// Waits until every running member answers Status naming the same leader,
    /// one of them; returns its index and Status.
    pub(crate) async fn wait_leader(&self) -> Result<(usize, MemberStatus), BenchError> {
        let deadline = Instant::now() + READY_WAIT;
        let mut last = Vec::new();
        while Instant::now() < deadline {
            let st = self.statuses().await;
            last = st.clone();
            let running: Vec<&MemberStatus> = st
                .iter()
                .enumerate()
                .filter(|(i, _)| self.procs[*i].is_some())
                .filter_map(|(_, s)| s.as_ref())
                .collect();
            let all_answer = running.len() == self.procs.iter().filter(|p| p.is_some()).count();
            if let Some(first) = running.first() {
                let leader = first.leader;
                if all_answer && leader != 0 && running.iter().all(|s| s.leader == leader) {
                    if let Some(i) = st.iter().position(|s| s.is_some_and(|s| s.is_leader())) {
                        if let Some(s) = st[i] {
                            return Ok((i, s));
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(BenchError::Server(format!(
            "{}: the members did not agree on a leader within {} s (last statuses: {last:?})",
            self.name,
            READY_WAIT.as_secs()
        )))
    }

    /// kill -9 of member `i`; returns the instant just before the signal.
    fn kill(&mut self, i: usize) -> Result<Instant, BenchError> {
        let mut child = self.procs[i]
            .take()
            .ok_or_else(|| BenchError::Server(format!("{}: m{i} is not running", self.name)))?;
        let at = Instant::now();
        child.kill()?; // SIGKILL
        let _ = child.wait();
        Ok(at)
    }

    /// Restarts killed member `i` on its data directory and waits until the
    /// cluster agrees on a leader and the member has applied what the leader had
    /// when it came back.
    async fn restart(&mut self, i: usize) -> Result<(), BenchError> {
        let child = self.spawn(i)?;
        self.procs[i] = Some(child);
        self.wait_member(i).await?;
        let (_, leader) = self.wait_leader().await?;
        let deadline = Instant::now() + READY_WAIT;
        while Instant::now() < deadline {
            if let Ok(st) = conn::status(&self.endpoints[i], Duration::from_secs(2)).await {
                if st.applied_index >= leader.raft_index {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(BenchError::Server(format!(
            "{}: restarted m{i} did not catch up within {} s",
            self.name,
            READY_WAIT.as_secs()
        )))
    }

    fn pids(&self) -> Vec<u32> {
        self.procs.iter().flatten().map(Child::id).collect()
    }

    /// CPU time of all members so far.
    pub fn cpu(&self) -> Duration {
        self.pids()
            .into_iter()
            .filter_map(|p| procstat::cpu_time(Some(p)).ok())
            .sum()
    }

    /// Sum over members of each one's peak RSS.
    pub fn peak_rss(&self) -> u64 {
        self.pids()
            .into_iter()
            .filter_map(|p| procstat::peak_rss(p).ok())
            .sum()
    }

    /// Whether every member still runs.
    fn alive(&mut self) -> bool {
        self.procs.iter_mut().all(|c| match c {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        })
    }

    fn stop(&mut self) {
        for c in self.procs.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.procs.clear();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One workload of the matrix.
#[derive(Clone, Debug)]
enum Work {
    Put { val: usize, total: u64 },
    Range { serializable: bool, total: u64 },
    Cas { total: u64 },
    List { total: u64 },
    WatchLatency { put_total: u64 },
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
    v
}

const RANGE_KEY: &str = "/bench/range/key";
const LIST_PREFIX: &str = "/registry/pods/default/";

/// Figures of one workload against one server.
#[derive(Clone, Debug, Default)]
struct Row {
    requests: u64,
    errors: u64,
    error_codes: String,
    qps: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    avg_ms: f64,
    server_cpu_us: f64,
    client_cpu_us: f64,
}

fn row_of(s: &Summary, server_cpu: Duration) -> Row {
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

impl Cluster {
    /// Connections for writes (and watches): all to the leader when there are
    /// several members, found with Status just now.
    async fn writer_pool(&self, clients: usize) -> Result<Pool, BenchError> {
        if self.endpoints.len() == 1 {
            return Pool::connect(&globals(&self.endpoints, clients)).await;
        }
        let (leader, _) = self.wait_leader().await?;
        Pool::connect(&globals(&self.endpoints[leader..=leader], clients)).await
    }

    /// One pool per member for reads rotated over all of them; the usual
    /// min(clients, 10) connections, shared out over the members (at least one each).
    async fn member_pools(&self, clients: usize) -> Result<Vec<Pool>, BenchError> {
        let n = self.endpoints.len();
        let per_member = clients.clamp(1, 10).div_ceil(n);
        let mut pools = Vec::with_capacity(n);
        for ep in &self.endpoints {
            let mut g = globals(std::slice::from_ref(ep), clients);
            g.conns = per_member;
            pools.push(Pool::connect(&g).await?);
        }
        Ok(pools)
    }
}

fn globals(endpoints: &[String], clients: usize) -> GlobalOpts {
    GlobalOpts {
        endpoints: endpoints.to_vec(),
        conns: clients.clamp(1, 10),
        clients,
        precise: false,
        target_leader: false,
        user: None,
        cert: None,
        key: None,
        cacert: None,
        dial_timeout: Duration::from_secs(5),
        output: None,
        json: false,
    }
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
    let mut clusters = Vec::new();
    for (i, bin) in bins.iter().enumerate() {
        let dir = work.path().join(["baseline", "candidate"][i]);
        let c = Cluster::start(bin, a.members, &dir).await?;
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
        None => repo_root()
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
    if c.procs[leader].is_none() {
        c.restart(leader).await?;
    }
    let mut run = run?;
    run.killed = c.specs[leader].name.clone();
    Ok(run)
}

struct ReportInfo {
    names: [String; 2],
    versions: [String; 2],
    bins: [String; 2],
    members: usize,
    rss: [u64; 2],
    seed_times: [Duration; 2],
    list_keys: u64,
    wall: Duration,
    interrupted: bool,
    command: String,
    /// /proc/loadavg's 1-minute figure before and after the run.
    load: [String; 2],
    /// (YYYY-MM-DD, HH:MM:SS) in UTC.
    date: (String, String),
    /// The checkout's commit and whether it had uncommitted changes (when git answers).
    source: Option<String>,
    /// Leader kills timed per server (several members only).
    failovers: [Vec<failover::Run>; 2],
    /// Why a server's failover runs stopped, if they did.
    failover_errors: [Option<String>; 2],
}

/// The current UTC date and time, from the system clock (civil calendar).
fn utc_now() -> (String, String) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    civil(secs)
}

fn civil(secs: u64) -> (String, String) {
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
fn shell_quote(a: &str) -> String {
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
fn source_state() -> Option<String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(repo_root())
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

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn ratio(base: Option<f64>, cand: Option<f64>) -> String {
    match (base, cand) {
        (Some(b), Some(c)) if b > 0.0 => format!("{:.2}×", c / b),
        _ => "–".into(),
    }
}

/// "✓" when the candidate has at least twice the baseline's requests/sec at no more
/// than half its p99, "✗" when not, "–" when a figure is missing.
fn goal(qps: [Option<f64>; 2], p99: [Option<f64>; 2]) -> &'static str {
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

fn num(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "–".into())
}

fn markdown(info: &ReportInfo, results: &[(Case, [Option<Row>; 2])], svg_name: &str) -> String {
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
         time from sending a put to each watcher receiving its event (etcd benchmark measures from the put's acknowledgement, which on loopback is ≈0).",
        info.list_keys
    );
    s
}

/// The "Leader failover" section (several members, when it ran).
fn failover_section(s: &mut String, info: &ReportInfo) {
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

fn chart(info: &ReportInfo, results: &[(Case, [Option<Row>; 2])]) -> String {
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

#[cfg(test)]
mod tests {
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
}
