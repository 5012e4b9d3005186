//! The processes of a cluster of n members on loopback: where each one listens, its data
//! directory and log, the `--initial-cluster` it starts with, and starting, killing and
//! restarting it. Waiting for a leader or for health is the caller's (each talks to the
//! members with its own client).

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::member::{Flags, Proc};
use crate::ports::try_free_port;

/// One member of a [`Cluster`].
pub struct Node {
    /// `--name`.
    pub name: String,
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// The client listener's port.
    pub client_port: u16,
    /// The member's real peer listener's port.
    pub peer_port: u16,
    /// The peer URL the other members use when it is not the listener's (e.g. a proxy in
    /// front of it).
    pub advertise_peer_url: Option<String>,
    /// `--initial-cluster` it starts with.
    pub initial_cluster: String,
    /// `--initial-cluster-state` it starts with ("new" or "existing").
    pub initial_state: &'static str,
    /// Member id (0 until the caller learns it).
    pub id: u64,
    /// Removed from the cluster (by the caller, with MemberRemove).
    pub removed: bool,
    /// The process.
    pub proc: Proc,
}

impl Node {
    /// `http://127.0.0.1:<client port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// `127.0.0.1:<client port>`.
    pub fn client_addr(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// `http://127.0.0.1:<peer port>`.
    pub fn listen_peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    /// The URL other members use.
    pub fn advertised_peer_url(&self) -> String {
        match &self.advertise_peer_url {
            Some(u) => u.clone(),
            None => self.listen_peer_url(),
        }
    }

    /// Started and still running.
    pub fn running(&mut self) -> bool {
        self.proc.running()
    }

    /// The process id while started.
    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }

    /// The whole log.
    pub fn log(&self) -> String {
        self.proc.log()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.proc.log_tail(lines)
    }
}

/// The member processes of one cluster, all of one binary, with their data directories and
/// logs under one directory. Members are killed on drop.
pub struct Cluster {
    /// The server binary of every member.
    pub bin: PathBuf,
    /// Where the data directories (`<dir>/<name>`) and logs (`<dir>/<name>.log`) go.
    pub dir: PathBuf,
    /// `--initial-cluster-token`.
    pub token: String,
    /// Flags every member gets after the cluster's own.
    pub flags: Vec<String>,
    /// The members, in the order they were added.
    pub nodes: Vec<Node>,
    /// Scheme of the client URLs the members listen on and advertise: "http" (the
    /// default) or "https" (TLS; the flags naming the certificates go in `flags`).
    pub client_scheme: &'static str,
}

impl Cluster {
    /// A cluster of `bin` with no members yet; creates `dir`.
    pub fn new(
        bin: impl Into<PathBuf>,
        dir: &Path,
        token: impl Into<String>,
        flags: Vec<String>,
    ) -> std::io::Result<Cluster> {
        std::fs::create_dir_all(dir)?;
        Ok(Cluster {
            bin: bin.into(),
            dir: dir.to_path_buf(),
            token: token.into(),
            flags,
            nodes: Vec::new(),
            client_scheme: "http",
        })
    }

    /// A new cluster of `n` members named `m0`, `m1`, ... on free ports, each starting with
    /// all of them in `--initial-cluster` and `--initial-cluster-state new`. Nothing is
    /// started yet (see [`Cluster::start_all`]).
    pub fn layout(
        bin: impl Into<PathBuf>,
        dir: &Path,
        n: usize,
        token: impl Into<String>,
        flags: Vec<String>,
    ) -> std::io::Result<Cluster> {
        let mut c = Cluster::new(bin, dir, token, flags)?;
        for i in 0..n {
            c.add_node(&format!("m{i}"))?;
        }
        c.bootstrap_all();
        Ok(c)
    }

    /// Adds member `name` on free ports, not started, with no initial cluster yet; returns
    /// its index.
    pub fn add_node(&mut self, name: &str) -> std::io::Result<usize> {
        let client_port = try_free_port()?;
        let peer_port = try_free_port()?;
        self.nodes.push(Node {
            name: name.to_string(),
            data_dir: self.dir.join(name),
            client_port,
            peer_port,
            advertise_peer_url: None,
            initial_cluster: String::new(),
            initial_state: "new",
            id: 0,
            removed: false,
            proc: Proc::new(&self.bin, self.dir.join(format!("{name}.log"))),
        });
        Ok(self.nodes.len() - 1)
    }

    /// `name=advertised peer URL` of every member, comma-separated.
    pub fn initial_cluster(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("{}={}", n.name, n.advertised_peer_url()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Every member starts a new cluster of all of them.
    pub fn bootstrap_all(&mut self) {
        let ic = self.initial_cluster();
        for n in &mut self.nodes {
            n.initial_cluster = ic.clone();
            n.initial_state = "new";
        }
    }

    /// etcd's flags of member `i`.
    pub fn flags_of(&self, i: usize) -> Flags {
        let n = &self.nodes[i];
        Flags {
            name: n.name.clone(),
            data_dir: n.data_dir.clone(),
            client_url: format!("{}://127.0.0.1:{}", self.client_scheme, n.client_port),
            listen_peer_url: n.listen_peer_url(),
            advertise_peer_url: n.advertised_peer_url(),
            initial_cluster: n.initial_cluster.clone(),
            initial_cluster_state: Some(n.initial_state.to_string()),
            initial_cluster_token: Some(self.token.clone()),
            extra: self.flags.clone(),
        }
    }

    /// The command line of member `i`.
    pub fn args(&self, i: usize) -> Vec<String> {
        self.flags_of(i).args()
    }

    /// Starts member `i` (again: on its data directory and ports; a running process is
    /// killed first).
    pub fn spawn(&mut self, i: usize) -> std::io::Result<()> {
        let args = self.args(i);
        self.nodes[i].proc.spawn(&args)
    }

    /// Starts every member.
    pub fn start_all(&mut self) -> std::io::Result<()> {
        for i in 0..self.nodes.len() {
            self.spawn(i)?;
        }
        Ok(())
    }

    /// SIGKILL of member `i` (no clean shutdown); the instant just before the signal, or
    /// `None` when it was not started.
    pub fn kill(&mut self, i: usize) -> Option<Instant> {
        self.nodes[i].proc.kill()
    }

    /// SIGKILL of every member.
    pub fn kill_all(&mut self) {
        for n in &mut self.nodes {
            n.proc.kill();
        }
    }

    /// Indexes of members that are running and not removed.
    pub fn live(&mut self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| !self.nodes[i].removed && self.nodes[i].running())
            .collect()
    }

    /// Process ids of the started members.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().filter_map(Node::pid).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layout_names_every_member_in_the_initial_cluster() {
        let dir = std::env::temp_dir().join(format!("cairn-testkit-layout-{}", std::process::id()));
        let mut c = Cluster::layout("/bin/true", &dir, 3, "tok", vec!["--x=1".into()]).unwrap();
        c.nodes[2].advertise_peer_url = Some("http://127.0.0.1:9".into());
        c.bootstrap_all();
        let ic = c.initial_cluster();
        assert_eq!(ic.split(',').count(), 3);
        assert!(ic.ends_with(",m2=http://127.0.0.1:9"), "{ic}");
        let args = c.args(1);
        assert_eq!(args[0], "--name=m1");
        assert!(args.contains(&format!("--initial-cluster={ic}")));
        assert!(args.contains(&"--initial-cluster-token=tok".to_string()));
        assert!(args.contains(&"--initial-cluster-state=new".to_string()));
        assert_eq!(args.last().map(String::as_str), Some("--x=1"));
        assert_eq!(c.nodes[1].data_dir, dir.join("m1"));
        assert!(c.live().is_empty() && c.pids().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
