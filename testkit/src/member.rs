//! One member process: etcd's flags for it ([`Flags`]), the process itself ([`Proc`]), and a
//! single-member cluster that waits until it is healthy ([`Member`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::bins::{etcd_bin, Impl};
use crate::ports::free_port;
use crate::process::{clean_command, is_healthy};

/// etcd's flags for one member, as both etcd and Cairn take them.
#[derive(Clone, Debug)]
pub struct Flags {
    /// `--name`.
    pub name: String,
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// `--listen-client-urls` and `--advertise-client-urls`.
    pub client_url: String,
    /// `--listen-peer-urls`.
    pub listen_peer_url: String,
    /// `--initial-advertise-peer-urls`.
    pub advertise_peer_url: String,
    /// `--initial-cluster`.
    pub initial_cluster: String,
    /// `--initial-cluster-state`, when given.
    pub initial_cluster_state: Option<String>,
    /// `--initial-cluster-token`, when given.
    pub initial_cluster_token: Option<String>,
    /// Further flags, after the others.
    pub extra: Vec<String>,
}

impl Flags {
    /// The command line, one `--flag=value` per argument, then `extra`.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![
            format!("--name={}", self.name),
            format!("--data-dir={}", self.data_dir.display()),
            format!("--listen-client-urls={}", self.client_url),
            format!("--advertise-client-urls={}", self.client_url),
            format!("--listen-peer-urls={}", self.listen_peer_url),
            format!("--initial-advertise-peer-urls={}", self.advertise_peer_url),
            format!("--initial-cluster={}", self.initial_cluster),
        ];
        if let Some(s) = &self.initial_cluster_state {
            a.push(format!("--initial-cluster-state={s}"));
        }
        if let Some(t) = &self.initial_cluster_token {
            a.push(format!("--initial-cluster-token={t}"));
        }
        a.extend(self.extra.iter().cloned());
        a
    }
}

/// One server process: a binary started with some arguments, with no `ETCD*` variables
/// inherited (see [`clean_command`]), stdin closed, and stdout and stderr appended to a log
/// file. It can be killed and started again on the same log. Killed (SIGKILL) on drop.
pub struct Proc {
    bin: PathBuf,
    log_path: PathBuf,
    /// (variable, value, only when the test's own environment does not set it).
    env: Vec<(OsString, OsString, bool)>,
    child: Option<Child>,
}

impl Proc {
    /// A process of `bin` logging to `log_path`; not started.
    pub fn new(bin: impl Into<PathBuf>, log_path: impl Into<PathBuf>) -> Proc {
        Proc {
            bin: bin.into(),
            log_path: log_path.into(),
            env: Vec::new(),
            child: None,
        }
    }

    /// Sets `key` for the process at every start.
    pub fn env(&mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> &mut Proc {
        self.env.push((key.into(), value.into(), false));
        self
    }

    /// Sets `key` for the process at every start, unless the test's own environment sets it
    /// (then the process inherits that value).
    pub fn default_env(
        &mut self,
        key: impl Into<OsString>,
        value: impl Into<OsString>,
    ) -> &mut Proc {
        self.env.push((key.into(), value.into(), true));
        self
    }

    /// The binary.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Starts the binary with `args` (killing the previous process first, if any).
    pub fn spawn(&mut self, args: &[String]) -> std::io::Result<()> {
        self.kill();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)?;
        let mut c = clean_command(&self.bin);
        c.args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for (k, v, only_default) in &self.env {
            if !*only_default || std::env::var_os(k).is_none() {
                c.env(k, v);
            }
        }
        self.child = Some(c.spawn()?);
        Ok(())
    }

    /// Started and not killed or stopped since (it may have exited by itself).
    pub fn started(&self) -> bool {
        self.child.is_some()
    }

    /// Started and still running.
    pub fn running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// How the started process exited, if it did.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// The process id while started.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL (no clean shutdown) and reap; the instant just before the signal, or `None`
    /// when it was not started.
    pub fn kill(&mut self) -> Option<Instant> {
        let mut c = self.child.take()?;
        let at = Instant::now();
        let _ = c.kill();
        let _ = c.wait();
        Some(at)
    }

    /// SIGTERM and wait (falls back to SIGKILL after 20 s).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = c.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits up to `limit` for the process to exit by itself: its exit code if it did
    /// (`None` inside when a signal ended it); `None` when it still runs or was not started.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<Option<i32>> {
        let deadline = Instant::now() + limit;
        let c = self.child.as_mut()?;
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                self.child = None;
                return Some(st.code());
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The whole log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The last `lines` lines of the log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let s = self.log();
        let all: Vec<&str> = s.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running server process (etcd or cairn) forming a one-member cluster on 127.0.0.1
/// ports. Killed on drop.
pub struct Member {
    /// The server binary.
    pub which: Impl,
    /// `--name`.
    pub name: String,
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// The client listener's port.
    pub client_port: u16,
    /// The peer listener's port.
    pub peer_port: u16,
    /// Flags after the others.
    pub extra: Vec<String>,
    proc: Proc,
}

impl Member {
    /// Starts a member named `name` with its data in `data_dir` (its log beside it, as
    /// `<data_dir>.log`) on free ports and waits until `/health` (serializable) answers.
    pub fn start(which: Impl, name: &str, data_dir: &Path, extra: &[&str]) -> Member {
        Self::start_on(which, name, data_dir, free_port(), free_port(), extra)
    }

    /// Like [`Member::start`] on given ports (e.g. those a restored data directory names).
    pub fn start_on(
        which: Impl,
        name: &str,
        data_dir: &Path,
        client_port: u16,
        peer_port: u16,
        extra: &[&str],
    ) -> Member {
        let mut proc = Proc::new(etcd_bin(which), data_dir.with_extension("log"));
        if which == Impl::Cairn {
            proc.default_env("RUST_LOG", "warn");
        }
        let mut m = Member {
            which,
            name: name.to_string(),
            data_dir: data_dir.to_path_buf(),
            client_port,
            peer_port,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            proc,
        };
        m.spawn();
        m
    }

    /// `http://127.0.0.1:<client port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// `127.0.0.1:<client port>`.
    pub fn client_addr(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// `http://127.0.0.1:<peer port>`.
    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    /// The process id; panics when it is not running.
    pub fn pid(&self) -> u32 {
        self.proc.pid().expect("running")
    }

    /// The arguments every member gets: a one-member cluster on this member's ports.
    pub fn args(&self) -> Vec<String> {
        Flags {
            name: self.name.clone(),
            data_dir: self.data_dir.clone(),
            client_url: self.endpoint(),
            listen_peer_url: self.peer_url(),
            advertise_peer_url: self.peer_url(),
            initial_cluster: format!("{}={}", self.name, self.peer_url()),
            initial_cluster_state: None,
            initial_cluster_token: None,
            extra: self.extra.clone(),
        }
        .args()
    }

    fn spawn(&mut self) {
        let args = self.args();
        self.proc
            .spawn(&args)
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.which.label()));
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = self.proc.exited() {
                panic!(
                    "{} exited during start-up ({st}); log:\n{}",
                    self.which.label(),
                    self.log_tail()
                );
            }
            if is_healthy(&self.client_addr()) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} did not become healthy; log:\n{}",
                    self.which.label(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The end of the member's log, for failure messages.
    pub fn log_tail(&self) -> String {
        self.proc.log_tail(40)
    }

    /// SIGKILL, no clean shutdown.
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    /// SIGTERM and wait (falls back to SIGKILL after 20 s).
    pub fn stop(&mut self) {
        self.proc.stop();
    }

    /// Starts the process again on the same data directory and ports and waits until it is
    /// healthy.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_in_etcd_form() {
        let f = Flags {
            name: "m0".into(),
            data_dir: "/d/m0".into(),
            client_url: "http://127.0.0.1:1".into(),
            listen_peer_url: "http://127.0.0.1:2".into(),
            advertise_peer_url: "http://127.0.0.1:3".into(),
            initial_cluster: "m0=http://127.0.0.1:3".into(),
            initial_cluster_state: Some("new".into()),
            initial_cluster_token: Some("t".into()),
            extra: vec!["--heartbeat-interval=50".into()],
        };
        assert_eq!(
            f.args(),
            [
                "--name=m0",
                "--data-dir=/d/m0",
                "--listen-client-urls=http://127.0.0.1:1",
                "--advertise-client-urls=http://127.0.0.1:1",
                "--listen-peer-urls=http://127.0.0.1:2",
                "--initial-advertise-peer-urls=http://127.0.0.1:3",
                "--initial-cluster=m0=http://127.0.0.1:3",
                "--initial-cluster-state=new",
                "--initial-cluster-token=t",
                "--heartbeat-interval=50",
            ]
        );
        let one = Flags {
            initial_cluster_state: None,
            initial_cluster_token: None,
            extra: Vec::new(),
            ..f
        };
        assert_eq!(one.args().len(), 7);
    }

    #[test]
    fn a_proc_logs_can_be_killed_and_started_again() {
        let dir = std::env::temp_dir().join(format!("cairn-testkit-proc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("p.log");
        let _ = std::fs::remove_file(&log);
        let mut p = Proc::new("sh", &log);
        p.env("CAIRN_TESTKIT_X", "x");
        let args = [
            "-c".to_string(),
            "echo $CAIRN_TESTKIT_X; exec sleep 30".to_string(),
        ];
        let wait_lines = |p: &Proc, n: usize| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while p.log().lines().count() < n && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        assert!(!p.started() && p.kill().is_none());
        p.spawn(&args).unwrap();
        assert!(p.running() && p.pid().is_some());
        wait_lines(&p, 1);
        assert!(p.kill().is_some());
        assert!(!p.started() && !p.running());
        p.spawn(&args).unwrap();
        // The log is appended to across starts.
        wait_lines(&p, 2);
        assert_eq!(p.log_tail(1), "x");
        assert_eq!(p.log(), "x\nx\n");
        p.stop();
        assert!(!p.started());
        let exits = ["-c".to_string(), "exit 7".to_string()];
        p.spawn(&exits).unwrap();
        assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(Some(7)));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
