//! The clusters under test: which binaries (the baseline etcd, the candidate `cairn`),
//! starting their members with the test kit ([`cairn_testkit::Cluster`]), waiting until
//! they answer and agree on a leader, killing and restarting the leader for the failover
//! runs, their CPU time and peak RSS, and the connection pools the workloads use.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cairn_testkit::{build_release_cairn, release_cairn, version_of, Node};

use super::pki::Pki;
use crate::cli::GlobalOpts;
use crate::conn::{self, wait_ready, BenchError, Dialer, MemberStatus, Pool};
use crate::procstat;

/// The candidate by default: the workspace's `cairn`, built with `cargo build --release`
/// unless `no_build`.
pub(super) fn cairn_binary(no_build: bool) -> Result<PathBuf, BenchError> {
    if !no_build {
        eprintln!("compare: building cairn (cargo build --release -p cairn-server --bin cairn)");
        build_release_cairn().map_err(BenchError::Server)?;
    }
    let bin = release_cairn();
    if !bin.exists() {
        return Err(BenchError::Server(format!(
            "{} not found (build it, or pass --candidate PATH)",
            bin.display()
        )));
    }
    Ok(bin)
}

/// A short name for a binary: "etcd 3.5.1", "cairn 0.1.0".
pub(super) fn short_name(bin: &Path, version: &str) -> String {
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

/// One running cluster of `members` processes of one binary.
pub struct Cluster {
    /// A short name for the report ("etcd 3.5.1", "cairn 0.1.0").
    pub name: String,
    /// The binary's version line.
    pub version: String,
    /// The server binary.
    pub bin: PathBuf,
    /// The member processes; a killed member's is not started.
    pub(super) procs: cairn_testkit::Cluster,
    /// Client URLs (`http://127.0.0.1:port`, or `https://` with TLS), one per member.
    pub endpoints: Vec<String>,
    /// How the clients connect (TLS with the client certificate under `--tls`).
    pub(super) dialer: Dialer,
}

/// How long a (re)started member or a leader election may take.
const READY_WAIT: Duration = Duration::from_secs(30);

impl Cluster {
    /// Starts `members` members with etcd's flags under `dir`, waits until each
    /// answers Maintenance.Status and, with several members, until all of them
    /// agree on a leader. With `tls`, the members serve https with client-certificate
    /// authentication and the clients present the client certificate.
    pub async fn start(
        bin: &Path,
        members: usize,
        dir: &Path,
        tls: Option<&Pki>,
    ) -> Result<Cluster, BenchError> {
        let version = version_of(bin);
        let name = short_name(bin, &version);
        let mut flags = vec!["--log-level=warn".to_string()];
        let dialer = match tls {
            Some(p) => {
                flags.extend(p.server_flags());
                Dialer::from_files(
                    Some(&p.ca.to_string_lossy()),
                    Some(&p.client_cert.to_string_lossy()),
                    Some(&p.client_key.to_string_lossy()),
                    Duration::from_secs(5),
                )?
            }
            None => Dialer::default(),
        };
        let mut procs = cairn_testkit::Cluster::layout(bin, dir, members, "cairn-bench", flags)?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        procs.client_scheme = scheme;
        let endpoints = procs
            .nodes
            .iter()
            .map(|n| format!("{scheme}://{}", n.client_addr()))
            .collect();
        let mut cluster = Cluster {
            name,
            version,
            bin: bin.to_path_buf(),
            procs,
            endpoints,
            dialer,
        };
        for i in 0..members {
            cluster.spawn(i)?;
        }
        for i in 0..members {
            cluster.wait_member(i).await?;
        }
        if members > 1 {
            cluster.wait_leader().await?;
        }
        Ok(cluster)
    }

    fn spawn(&mut self, i: usize) -> Result<(), BenchError> {
        self.procs
            .spawn(i)
            .map_err(|e| BenchError::Server(format!("cannot start {}: {e}", self.bin.display())))
    }

    /// Whether member `i` was started and not killed since.
    pub(super) fn started(&self, i: usize) -> bool {
        self.procs.nodes[i].proc.started()
    }

    /// Waits until member `i` answers Status; on failure the error carries its log's tail.
    async fn wait_member(&mut self, i: usize) -> Result<(), BenchError> {
        let ep = self.endpoints[i].clone();
        if let Err(e) = wait_ready(&self.dialer, &ep, READY_WAIT).await {
            let status = self.procs.nodes[i].proc.exited();
            return Err(BenchError::Server(format!(
                "{} member m{i} did not become ready on {ep} ({}; last error: {e}); log tail:\n{}",
                self.name,
                status
                    .map(|s| format!("exited: {s}"))
                    .unwrap_or_else(|| "still running".into()),
                self.procs.nodes[i].log_tail(15)
            )));
        }
        Ok(())
    }

    /// Status of every running member (None for killed or silent ones).
    async fn statuses(&self) -> Vec<Option<MemberStatus>> {
        let polls = self.endpoints.iter().enumerate().map(|(i, ep)| {
            let running = self.started(i);
            let dialer = &self.dialer;
            async move {
                if running {
                    conn::status(dialer, ep, Duration::from_secs(2)).await.ok()
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
                .filter(|(i, _)| self.started(*i))
                .filter_map(|(_, s)| s.as_ref())
                .collect();
            let all_answer = running.len()
                == (0..self.procs.nodes.len())
                    .filter(|&i| self.started(i))
                    .count();
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
    pub(super) fn kill(&mut self, i: usize) -> Result<Instant, BenchError> {
        self.procs
            .kill(i)
            .ok_or_else(|| BenchError::Server(format!("{}: m{i} is not running", self.name)))
    }

    /// Restarts killed member `i` on its data directory and waits until the
    /// cluster agrees on a leader and the member has applied what the leader had
    /// when it came back.
    pub(super) async fn restart(&mut self, i: usize) -> Result<(), BenchError> {
        self.spawn(i)?;
        self.wait_member(i).await?;
        let (_, leader) = self.wait_leader().await?;
        let deadline = Instant::now() + READY_WAIT;
        while Instant::now() < deadline {
            if let Ok(st) =
                conn::status(&self.dialer, &self.endpoints[i], Duration::from_secs(2)).await
            {
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

    /// CPU time of all members so far.
    pub fn cpu(&self) -> Duration {
        self.procs
            .pids()
            .into_iter()
            .filter_map(|p| procstat::cpu_time(Some(p)).ok())
            .sum()
    }

    /// Sum over members of each one's peak RSS.
    pub fn peak_rss(&self) -> u64 {
        self.procs
            .pids()
            .into_iter()
            .filter_map(|p| procstat::peak_rss(p).ok())
            .sum()
    }

    /// Whether every member still runs.
    pub(super) fn alive(&mut self) -> bool {
        self.procs.nodes.iter_mut().all(Node::running)
    }

    /// Connections for writes (and watches): all to the leader when there are
    /// several members, found with Status just now.
    pub(super) async fn writer_pool(&self, clients: usize) -> Result<Pool, BenchError> {
        if self.endpoints.len() == 1 {
            return Pool::connect_with(&globals(&self.endpoints, clients), self.dialer.clone())
                .await;
        }
        let (leader, _) = self.wait_leader().await?;
        Pool::connect_with(
            &globals(&self.endpoints[leader..=leader], clients),
            self.dialer.clone(),
        )
        .await
    }

    /// One pool per member for reads rotated over all of them; the usual
    /// min(clients, 10) connections, shared out over the members (at least one each).
    pub(super) async fn member_pools(&self, clients: usize) -> Result<Vec<Pool>, BenchError> {
        let n = self.endpoints.len();
        let per_member = clients.clamp(1, 10).div_ceil(n);
        let mut pools = Vec::with_capacity(n);
        for ep in &self.endpoints {
            let mut g = globals(std::slice::from_ref(ep), clients);
            g.conns = per_member;
            pools.push(Pool::connect_with(&g, self.dialer.clone()).await?);
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
