//! Multi-process clusters on loopback for the fault tests: n real `cairn` (or etcd 3.5.1)
//! processes (started, killed and restarted by the test kit's [`cairn_testkit::Cluster`]),
//! each behind a [`PeerProxy`] so the test can partition peers, plus clients that record
//! every operation for the linearizability checker (`cairn-linearize`).
//!
//! ```ignore
//! let mut c = Cluster::start(Impl::Cairn, 3, ClusterOpts::default()).await;
//! let l = c.wait_leader(None, Duration::from_secs(30)).await;
//! c.kill9(l);
//! c.restart(l).await;
//! c.wait_converged(Duration::from_secs(60)).await;
//! c.check_history();
//! ```
//!
//! Nothing here asserts timing: waits have generous deadlines and the tests print what they
//! measured.
#![allow(dead_code)]

use super::proxy::{Partition, PeerProxy};
use super::{etcd_bin, Impl};
use cairn_linearize::{check, execute, Input, Op, Output, Recorder};
use etcd_client::{Client, ConnectOptions, GetOptions, KvClient, MemberAddOptions};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a cluster is started.
#[derive(Clone, Debug)]
pub struct ClusterOpts {
    /// Put a [`PeerProxy`] in front of every member (needed for partitions).
    pub proxied: bool,
    pub heartbeat_ms: u64,
    pub election_ms: u64,
    pub snapshot_count: Option<u64>,
    /// Extra flags for every member.
    pub extra: Vec<String>,
    /// Deadline for the cluster to elect a leader at start.
    pub start_timeout: Duration,
    /// Per-request client timeout.
    pub op_timeout: Duration,
    /// RUST_LOG for cairn members (etcd logs at info anyway).
    pub cairn_log: String,
}

impl Default for ClusterOpts {
    fn default() -> Self {
        ClusterOpts {
            proxied: true,
            heartbeat_ms: 50,
            election_ms: 500,
            snapshot_count: None,
            extra: Vec::new(),
            start_timeout: Duration::from_secs(60),
            op_timeout: Duration::from_secs(5),
            cairn_log: std::env::var("CAIRN_CLUSTER_LOG").unwrap_or_else(|_| "info".into()),
        }
    }
}

/// Whether heavier variants were asked for (`CAIRN_HEAVY=1`).
pub fn heavy() -> bool {
    std::env::var("CAIRN_HEAVY").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Status of one member, as reported by the Status RPC.
#[derive(Clone, Debug)]
pub struct MemberStatus {
    pub member_id: u64,
    pub leader: u64,
    pub term: u64,
    pub raft_index: u64,
    pub applied_index: u64,
    pub is_learner: bool,
    pub revision: i64,
}

/// n member processes on loopback. Kills them and removes their directories on drop.
///
/// The processes (ports, data directories, logs, `--initial-cluster`, start and kill) are a
/// [`cairn_testkit::Cluster`], which this derefs to: `c.nodes[i]` is member `i`.
pub struct Cluster {
    pub which: Impl,
    pub opts: ClusterOpts,
    pub partition: Partition,
    /// The member processes.
    pub procs: cairn_testkit::Cluster,
    /// The [`PeerProxy`] in front of each member (its URL is the advertised peer URL), if
    /// proxied.
    pub proxies: Vec<Option<PeerProxy>>,
    pub history: Arc<History>,
    dir: tempfile::TempDir,
}

impl Deref for Cluster {
    type Target = cairn_testkit::Cluster;

    fn deref(&self) -> &cairn_testkit::Cluster {
        &self.procs
    }
}

impl DerefMut for Cluster {
    fn deref_mut(&mut self) -> &mut cairn_testkit::Cluster {
        &mut self.procs
    }
}

static TOKEN_SERIAL: AtomicUsize = AtomicUsize::new(0);

impl Cluster {
    /// Starts `n` members as a new cluster and waits until every one reports a leader.
    pub async fn start(which: Impl, n: usize, opts: ClusterOpts) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("cairn-cluster-")
            .tempdir()
            .expect("temp dir");
        let token = format!(
            "tok-{}-{}",
            std::process::id(),
            TOKEN_SERIAL.fetch_add(1, Ordering::Relaxed)
        );
        let mut flags = vec![
            format!("--heartbeat-interval={}", opts.heartbeat_ms),
            format!("--election-timeout={}", opts.election_ms),
        ];
        if let Some(s) = opts.snapshot_count {
            flags.push(format!("--snapshot-count={s}"));
        }
        flags.extend(opts.extra.iter().cloned());
        let procs = cairn_testkit::Cluster::new(etcd_bin(which), dir.path(), token, flags)
            .expect("cluster directory");
        let mut c = Cluster {
            which,
            opts,
            partition: Partition::new(),
            procs,
            proxies: Vec::new(),
            history: Arc::new(History::new()),
            dir,
        };
        for i in 0..n {
            c.new_node(&format!("m{i}"));
        }
        c.procs.bootstrap_all();
        for i in 0..n {
            c.spawn(i);
        }
        let t0 = Instant::now();
        let deadline = t0 + c.opts.start_timeout;
        for i in 0..n {
            c.wait_member_has_leader(i, deadline).await;
        }
        eprintln!(
            "[cluster] {} x{n} has a leader on every member after {:?}",
            which.label(),
            t0.elapsed()
        );
        c
    }

    /// Lays out member `name` (not started), with its proxy when proxied; its index.
    fn new_node(&mut self, name: &str) -> usize {
        let i = self.procs.add_node(name).expect("free ports on 127.0.0.1");
        let proxy = self.opts.proxied.then(|| {
            let target: SocketAddr = format!("127.0.0.1:{}", self.procs.nodes[i].peer_port)
                .parse()
                .unwrap();
            PeerProxy::start(target, self.partition.clone())
        });
        let n = &mut self.procs.nodes[i];
        n.advertise_peer_url = proxy.as_ref().map(PeerProxy::url);
        if self.which == Impl::Cairn {
            n.proc.default_env("RUST_LOG", &self.opts.cairn_log);
        }
        n.proc.env("NO_COLOR", "1");
        self.proxies.push(proxy);
        i
    }

    fn spawn(&mut self, i: usize) {
        let which = self.which;
        self.procs
            .spawn(i)
            .unwrap_or_else(|e| panic!("spawn {}: {e}", which.label()));
    }

    /// Client URLs of the live members.
    pub fn endpoints(&mut self) -> Vec<String> {
        self.live()
            .into_iter()
            .map(|i| self.nodes[i].endpoint())
            .collect()
    }

    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(self.opts.op_timeout)
    }

    /// A client talking to member `i` only.
    pub async fn client(&self, i: usize) -> Client {
        Client::connect([self.nodes[i].endpoint()], Some(self.connect_options()))
            .await
            .expect("client connect")
    }

    /// A client that records its operations in the cluster's history, talking to the
    /// given members (it moves to the next one after a failure).
    pub async fn recording_client(&self, members: &[usize]) -> RecClient {
        let eps = members.iter().map(|&i| self.nodes[i].endpoint()).collect();
        RecClient::new(eps, self.history.clone(), self.opts.op_timeout).await
    }

    /// Like [`Cluster::recording_client`] with its own per-request timeout.
    pub async fn recording_client_timeout(
        &self,
        members: &[usize],
        timeout: Duration,
    ) -> RecClient {
        let eps = members.iter().map(|&i| self.nodes[i].endpoint()).collect();
        RecClient::new(eps, self.history.clone(), timeout).await
    }

    /// Status of member `i`, or the error text.
    pub async fn status(&self, i: usize) -> Result<MemberStatus, String> {
        let mut c = Client::connect([self.nodes[i].endpoint()], Some(self.connect_options()))
            .await
            .map_err(|e| e.to_string())?;
        let s = tokio::time::timeout(Duration::from_secs(3), c.status())
            .await
            .map_err(|_| "status timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let h = s.header().ok_or("status without header")?;
        Ok(MemberStatus {
            member_id: h.member_id(),
            leader: s.leader(),
            term: s.raft_term(),
            raft_index: s.raft_index(),
            applied_index: s.raft_applied_index(),
            is_learner: s.is_learner(),
            revision: h.revision(),
        })
    }

    async fn wait_member_has_leader(&mut self, i: usize, deadline: Instant) {
        loop {
            if !self.nodes[i].running() {
                panic!(
                    "member {} exited; log:\n{}",
                    self.nodes[i].name,
                    self.nodes[i].log_tail(60)
                );
            }
            if let Ok(s) = self.status(i).await {
                if s.member_id != 0 {
                    self.nodes[i].id = s.member_id;
                    if let Some(p) = &self.proxies[i] {
                        p.set_target_id(s.member_id);
                    }
                }
                if s.leader != 0 {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "member {} reports no leader; log:\n{}",
                    self.nodes[i].name,
                    self.nodes[i].log_tail(60)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Index of the member with id `id`.
    pub fn index_of(&self, id: u64) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id && id != 0)
    }

    /// The member that currently says it is the leader (Status leader == its own id), among
    /// live members not in `exclude`.
    pub async fn leader(&mut self, exclude: &[usize]) -> Option<usize> {
        for i in self.live() {
            if exclude.contains(&i) {
                continue;
            }
            if let Ok(s) = self.status(i).await {
                if s.leader != 0 && s.leader == s.member_id {
                    return Some(i);
                }
            }
        }
        None
    }

    /// Waits until a live member outside `exclude` is leader AND every live member outside
    /// `exclude` agrees on it. Returns the leader's index. Panics after `timeout`.
    pub async fn wait_leader(&mut self, exclude: Option<&[usize]>, timeout: Duration) -> usize {
        let exclude = exclude.unwrap_or(&[]);
        let deadline = Instant::now() + timeout;
        loop {
            let live = self.live();
            let mut seen = Vec::new();
            for i in live.clone() {
                if exclude.contains(&i) {
                    continue;
                }
                seen.push(self.status(i).await.map(|s| s.leader).unwrap_or(0));
            }
            if let Some(&l) = seen.first() {
                if l != 0 && seen.iter().all(|&x| x == l) {
                    if let Some(idx) = self.index_of(l) {
                        if !exclude.contains(&idx) && live.contains(&idx) {
                            return idx;
                        }
                    }
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "no agreed leader after {timeout:?}: {seen:?}\n{}",
                    self.dump()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL member `i` (no clean shutdown).
    pub fn kill9(&mut self, i: usize) {
        self.procs.kill(i);
    }

    /// Starts member `i` again on the same data directory and ports and waits until it
    /// reports a leader.
    pub async fn restart(&mut self, i: usize) {
        self.kill9(i);
        self.spawn(i);
        let deadline = Instant::now() + self.opts.start_timeout;
        self.wait_member_has_leader(i, deadline).await;
    }

    /// Starts member `i` again without waiting.
    pub fn respawn(&mut self, i: usize) {
        self.kill9(i);
        self.spawn(i);
    }

    /// Runs `f` against live members (other than `avoid`) in turn until it succeeds;
    /// panics with the last errors after `timeout`.
    async fn retry_on_members<T, F, Fut>(
        &mut self,
        avoid: &[usize],
        timeout: Duration,
        what: &str,
        mut f: F,
    ) -> T
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = Instant::now() + timeout;
        let mut errors = Vec::new();
        loop {
            for i in self.live() {
                if avoid.contains(&i) {
                    continue;
                }
                let c = self.client(i).await;
                match f(c).await {
                    Ok(v) => return v,
                    Err(e) => {
                        errors.push(format!("{}: {e}", self.nodes[i].name));
                    }
                }
            }
            if Instant::now() > deadline {
                let tail = errors[errors.len().saturating_sub(6)..].join("\n");
                panic!("{what} failed for {timeout:?}; last errors:\n{tail}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// MemberAdd (optionally as a learner) through a live member, then starts the new
    /// process with `--initial-cluster-state existing`. Waits until it reports a leader.
    /// Returns its index.
    pub async fn add_member(&mut self, learner: bool) -> usize {
        let name = format!("m{}", self.nodes.len());
        let idx = self.new_node(&name);
        let url = self.nodes[idx].advertised_peer_url();
        let resp = self
            .retry_on_members(&[idx], Duration::from_secs(60), "MemberAdd", |mut c| {
                let url = url.clone();
                async move {
                    let opts = if learner {
                        MemberAddOptions::new().with_is_learner()
                    } else {
                        MemberAddOptions::new()
                    };
                    c.member_add([url], Some(opts)).await
                }
            })
            .await;
        let added = resp.member().expect("MemberAdd answers the member");
        self.nodes[idx].id = added.id();
        if let Some(p) = &self.proxies[idx] {
            p.set_target_id(added.id());
        }
        let mut parts = Vec::new();
        for m in resp.member_list() {
            let mname = if m.id() == added.id() {
                name.clone()
            } else {
                let n = m.name().to_string();
                if n.is_empty() {
                    self.nodes
                        .iter()
                        .find(|x| x.id == m.id())
                        .map(|x| x.name.clone())
                        .unwrap_or_default()
                } else {
                    n
                }
            };
            for u in m.peer_urls() {
                parts.push(format!("{mname}={u}"));
            }
        }
        self.nodes[idx].initial_cluster = parts.join(",");
        self.nodes[idx].initial_state = "existing";
        eprintln!(
            "[cluster] added {name} id {:x} learner={learner}; --initial-cluster={}",
            added.id(),
            self.nodes[idx].initial_cluster
        );
        self.spawn(idx);
        let deadline = Instant::now() + self.opts.start_timeout;
        self.wait_member_has_leader(idx, deadline).await;
        idx
    }

    /// MemberPromote for learner `i`, retried while the cluster says it is not in sync
    /// (as kubeadm does). Returns how many attempts it took.
    pub async fn promote(&mut self, i: usize, timeout: Duration) -> usize {
        let id = self.nodes[i].id;
        let mut attempts = 0usize;
        let deadline = Instant::now() + timeout;
        loop {
            for j in self.live() {
                if j == i {
                    continue;
                }
                attempts += 1;
                let mut c = self.client(j).await;
                match c.member_promote(id).await {
                    Ok(_) => return attempts,
                    Err(e) => {
                        if Instant::now() > deadline {
                            panic!("MemberPromote {id:x} still failing: {e}\n{}", self.dump());
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// MemberRemove for member `i` through another member; then waits (up to 10 s) for the
    /// removed process to stop by itself, and kills it otherwise. Returns whether it exited
    /// on its own.
    pub async fn remove_member(&mut self, i: usize) -> bool {
        let id = self.nodes[i].id;
        assert_ne!(id, 0, "member id of {} unknown", self.nodes[i].name);
        // A retry after an attempt that timed out but went through finds no such member.
        let tried = Arc::new(AtomicUsize::new(0));
        self.retry_on_members(&[i], Duration::from_secs(60), "MemberRemove", |mut c| {
            let tried = tried.clone();
            async move {
                let first = tried.fetch_add(1, Ordering::Relaxed) == 0;
                match c.member_remove(id).await {
                    Ok(_) => Ok(()),
                    Err(e) if !first && e.to_string().contains("member not found") => Ok(()),
                    Err(e) => Err(e),
                }
            }
        })
        .await;
        self.nodes[i].removed = true;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut exited = false;
        while Instant::now() < deadline {
            if !self.nodes[i].running() {
                exited = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.kill9(i);
        exited
    }

    /// MemberUpdate: member `i` gets a new proxy in front of its peer port and its peer URL
    /// becomes that proxy's. Requires a proxied cluster.
    pub async fn update_peer_url(&mut self, i: usize) -> String {
        let target: SocketAddr = format!("127.0.0.1:{}", self.nodes[i].peer_port)
            .parse()
            .unwrap();
        let p = PeerProxy::start(target, self.partition.clone());
        p.set_target_id(self.nodes[i].id);
        let url = p.url();
        let id = self.nodes[i].id;
        let u = url.clone();
        self.retry_on_members(&[], Duration::from_secs(60), "MemberUpdate", |mut c| {
            let u = u.clone();
            async move { c.member_update(id, vec![u]).await }
        })
        .await;
        // Keep the old proxy serving until every member switched: drop it after a while.
        let old = self.proxies[i].replace(p);
        self.nodes[i].advertise_peer_url = Some(url.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            drop(old);
        });
        url
    }

    /// MemberList as member `i` sees it: (id, name, peer URLs, is_learner), sorted by id.
    pub async fn member_list(
        &self,
        i: usize,
    ) -> Result<Vec<(u64, String, Vec<String>, bool)>, String> {
        let mut c = self.client(i).await;
        let r = c.member_list().await.map_err(|e| e.to_string())?;
        let mut v: Vec<_> = r
            .members()
            .iter()
            .map(|m| {
                let mut urls = m.peer_urls().to_vec();
                urls.sort();
                (m.id(), m.name().to_string(), urls, m.is_learner())
            })
            .collect();
        v.sort();
        Ok(v)
    }

    /// HashKV (at each member's current revision) of every live member, retried until all
    /// agree on (revision, compact revision, hash). Returns (hash, revision).
    pub async fn wait_converged(&mut self, timeout: Duration) -> (u32, i64) {
        let t0 = Instant::now();
        let deadline = t0 + timeout;
        let mut last = Vec::new();
        loop {
            last.clear();
            for i in self.live() {
                let mut c = self.client(i).await;
                let r = c
                    .hash_kv(0)
                    .await
                    .map(|r| {
                        let rev = r.header().map(|h| h.revision()).unwrap_or(0);
                        (r.hash(), rev, r.compact_version())
                    })
                    .map_err(|e| e.to_string());
                last.push((self.nodes[i].name.clone(), r));
            }
            let oks: Vec<_> = last.iter().filter_map(|(_, r)| r.as_ref().ok()).collect();
            if !last.is_empty() && oks.len() == last.len() && oks.iter().all(|x| *x == oks[0]) {
                eprintln!(
                    "[cluster] HashKV equal on {} members after {:?}: {:?}",
                    last.len(),
                    t0.elapsed(),
                    oks[0]
                );
                return (oks[0].0, oks[0].1);
            }
            if Instant::now() > deadline {
                panic!(
                    "HashKV differs after {timeout:?}: {last:?}\n{}",
                    self.dump()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every key under `prefix` on member `i` (serializable read, local state).
    pub async fn local_kvs(
        &self,
        i: usize,
        prefix: &str,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, String> {
        let mut c = self.client(i).await;
        let r = c
            .get(
                prefix,
                Some(GetOptions::new().with_prefix().with_serializable()),
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(r.kvs()
            .iter()
            .map(|kv| (kv.key().to_vec(), kv.value().to_vec()))
            .collect())
    }

    /// Asserts that every acknowledged put under `prefix` in the history is present with its
    /// value on every live member (serializable reads, retried for a while so followers can
    /// apply). Returns how many writes were checked.
    pub async fn assert_acked_writes_everywhere(
        &mut self,
        prefix: &str,
        timeout: Duration,
    ) -> usize {
        let acked = self.history.acked_puts(prefix.as_bytes());
        let deadline = Instant::now() + timeout;
        for i in self.live() {
            loop {
                let kvs = self.local_kvs(i, prefix).await;
                let missing: Vec<String> = match &kvs {
                    Ok(kvs) => {
                        let map: std::collections::HashMap<&[u8], &[u8]> = kvs
                            .iter()
                            .map(|(k, v)| (k.as_slice(), v.as_slice()))
                            .collect();
                        acked
                            .iter()
                            .filter(|(k, v)| map.get(k.as_slice()) != Some(&v.as_slice()))
                            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
                            .collect()
                    }
                    Err(e) => vec![format!("<read failed: {e}>")],
                };
                if missing.is_empty() {
                    break;
                }
                if Instant::now() > deadline {
                    panic!(
                        "member {}: {} acknowledged writes missing, e.g. {:?}\n{}",
                        self.nodes[i].name,
                        missing.len(),
                        &missing[..missing.len().min(10)],
                        self.dump()
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        acked.len()
    }

    /// Runs the linearizability checker on the recorded history (failed or timed-out writes
    /// count as "may have happened"); panics unless it is linearizable (a checker that gave
    /// up fails the test too: nothing was proven).
    pub fn check_history(&self) {
        let ops = self.history.ops();
        let report = check(&ops);
        eprintln!("[cluster] linearizability: {report}");
        report.assert_ok();
    }

    /// A summary of every member (status, log tail), for failure messages.
    pub fn dump(&self) -> String {
        let mut s = String::new();
        for n in &self.nodes {
            let _ = writeln!(
                s,
                "--- {} id {:x} client {} peer {} adv {} removed={} pid={:?}\n{}",
                n.name,
                n.id,
                n.client_port,
                n.peer_port,
                n.advertised_peer_url(),
                n.removed,
                n.pid(),
                n.log_tail(25)
            );
        }
        s
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill9(i);
        }
        if std::thread::panicking() {
            eprintln!("[cluster] logs at failure:\n{}", self.dump());
            if std::env::var_os("CAIRN_KEEP_CLUSTER").is_some() {
                let p = self.dir.path().to_path_buf();
                eprintln!("[cluster] keeping {}", p.display());
                std::mem::forget(std::mem::replace(
                    &mut self.dir,
                    tempfile::tempdir().expect("temp dir"),
                ));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Recorded client history (the linearizability checker's types).

/// All operations of all recording clients of a cluster, in the checker's format.
pub struct History {
    rec: Recorder,
    clients: AtomicUsize,
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

impl History {
    pub fn new() -> History {
        History {
            rec: Recorder::new(),
            clients: AtomicUsize::new(0),
        }
    }

    /// Nanoseconds since the history began (the ops' time base).
    pub fn now(&self) -> u64 {
        self.rec.now()
    }

    pub fn recorder(&self) -> &Recorder {
        &self.rec
    }

    pub fn ops(&self) -> Vec<Op> {
        self.rec.history()
    }

    /// Acknowledged puts whose key starts with `prefix` (the tests write each such key once).
    pub fn acked_puts(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.ops()
            .into_iter()
            .filter(|o| !o.is_ambiguous())
            .filter_map(|o| match o.input {
                Input::Put { key, value } if key.starts_with(prefix) => Some((key, value)),
                _ => None,
            })
            .collect()
    }

    /// (acknowledged, failed or timed out) writes.
    pub fn write_counts(&self) -> (usize, usize) {
        let ops = self.ops();
        let w: Vec<_> = ops.iter().filter(|o| !o.input.is_read_only()).collect();
        let ok = w.iter().filter(|o| !o.is_ambiguous()).count();
        (ok, w.len() - ok)
    }

    /// The earliest return time of an acknowledged write called at or after `t`.
    pub fn first_write_acked_after(&self, t: u64) -> Option<u64> {
        self.ops()
            .iter()
            .filter(|o| !o.is_ambiguous() && !o.input.is_read_only() && o.call >= t)
            .filter_map(|o| o.ret)
            .min()
    }

    /// Operations called at or after `t` that completed.
    pub fn completed_since(&self, t: u64) -> usize {
        self.ops()
            .iter()
            .filter(|o| !o.is_ambiguous() && o.call >= t)
            .count()
    }

    fn next_client(&self) -> usize {
        self.clients.fetch_add(1, Ordering::Relaxed)
    }
}

/// A client whose every operation is recorded. Talks to one endpoint at a time and moves to
/// the next one after a failure.
pub struct RecClient {
    pub id: usize,
    endpoints: Vec<String>,
    cur: usize,
    client: Option<KvClient>,
    history: Arc<History>,
    timeout: Duration,
}

impl RecClient {
    pub async fn new(
        endpoints: Vec<String>,
        history: Arc<History>,
        timeout: Duration,
    ) -> RecClient {
        let id = history.next_client();
        RecClient {
            id,
            endpoints,
            cur: id,
            client: None,
            history,
            timeout,
        }
    }

    /// The endpoint the next operation goes to.
    pub fn endpoint(&self) -> &str {
        &self.endpoints[self.cur % self.endpoints.len()]
    }

    async fn conn(&mut self) -> Result<&mut KvClient, String> {
        if self.client.is_none() {
            let ep = self.endpoint().to_string();
            let c = Client::connect(
                [ep],
                Some(
                    ConnectOptions::new()
                        .with_connect_timeout(Duration::from_secs(1))
                        .with_timeout(self.timeout),
                ),
            )
            .await
            .map_err(|e| e.to_string())?;
            self.client = Some(c.kv_client());
        }
        Ok(self.client.as_mut().unwrap())
    }

    /// Runs `input` and records it; a failure or timeout is recorded as ambiguous and moves
    /// the client to the next endpoint.
    pub async fn exec(&mut self, input: Input) -> Result<Output, String> {
        let rec = self.history.rec.clone();
        let p = rec.begin(self.id, input.clone());
        let timeout = self.timeout + Duration::from_secs(1);
        let r = match self.conn().await {
            Err(e) => Err(e),
            Ok(kv) => match tokio::time::timeout(timeout, execute(kv, &input)).await {
                Ok(Ok(out)) => Ok(out),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("client-side timeout".to_string()),
            },
        };
        match &r {
            Ok(out) => rec.end(p, out.clone()),
            Err(_) => {
                rec.fail(p);
                self.client = None;
                self.cur += 1;
            }
        }
        r
    }

    /// Put; the header revision.
    pub async fn put(
        &mut self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> Result<i64, String> {
        Ok(self.exec(Input::put(key, value)).await?.revision())
    }

    /// Linearizable get of one key: its value.
    pub async fn get(&mut self, key: impl Into<Vec<u8>>) -> Result<Option<Vec<u8>>, String> {
        match self.exec(Input::get(key)).await? {
            Output::Get { kvs, .. } => Ok(kvs.into_iter().next().map(|kv| kv.value)),
            other => Err(format!("unexpected output {other:?}")),
        }
    }

    /// Delete of one key: how many were deleted.
    pub async fn delete(&mut self, key: impl Into<Vec<u8>>) -> Result<i64, String> {
        match self.exec(Input::delete(key)).await? {
            Output::Delete { deleted, .. } => Ok(deleted),
            other => Err(format!("unexpected output {other:?}")),
        }
    }
}

/// Write load shared by the fault tests: each iteration puts a unique key under `w/`, puts a
/// unique value into one of a few shared registers under `r/`, and reads a register
/// (linearizable). Failures back off 50 ms. Runs until `stop` is set; returns
/// (iterations, failed iterations).
pub async fn write_load(
    mut c: RecClient,
    stop: Arc<std::sync::atomic::AtomicBool>,
    registers: usize,
) -> (u64, u64) {
    let mut seq = 0u64;
    let mut failures = 0u64;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let id = c.id;
        let mut ok = c
            .put(format!("w/{id:03}/{seq:08}"), format!("v{id}-{seq}"))
            .await
            .is_ok();
        let reg = format!("r/{}", (seq as usize + id) % registers.max(1));
        ok &= c.put(reg.clone(), format!("c{id}-{seq}")).await.is_ok();
        ok &= c.get(reg).await.is_ok();
        if !ok {
            failures += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    (seq, failures)
}
