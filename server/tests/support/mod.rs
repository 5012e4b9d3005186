//! Shared helpers for the tests that run real processes: `cairn` (this package's binary) and
//! the reference etcd releases installed by `scripts/install-test-deps.sh`
//! (see `scripts/testdeps.md`). A missing reference binary makes the test FAIL with a message
//! saying how to install it; it is never skipped.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which server binary a [`Member`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impl {
    Etcd351,
    Etcd3423,
    Cairn,
}

impl Impl {
    pub fn label(self) -> &'static str {
        match self {
            Impl::Etcd351 => "etcd-3.5.1",
            Impl::Etcd3423 => "etcd-3.4.23",
            Impl::Cairn => "cairn",
        }
    }
}

/// etcdctl releases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ctl {
    V3423,
    V351,
}

impl Ctl {
    pub fn label(self) -> &'static str {
        match self {
            Ctl::V3423 => "etcdctl-3.4.23",
            Ctl::V351 => "etcdctl-3.5.1",
        }
    }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn dir_of(env_var: &str, default: &str) -> PathBuf {
    match std::env::var_os(env_var) {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => workspace_root().join("target/testdeps").join(default),
    }
}

/// A reference tool; panics (the test fails) when it is not installed.
pub fn tool(env_var: &str, default_dir: &str, name: &str) -> PathBuf {
    let p = dir_of(env_var, default_dir).join(name);
    if !p.is_file() {
        panic!(
            "reference binary {} is missing (CI={}): run scripts/install-test-deps.sh \
             (or set {env_var})",
            p.display(),
            std::env::var("CI").unwrap_or_default()
        );
    }
    p
}

pub fn etcd_bin(which: Impl) -> PathBuf {
    match which {
        Impl::Etcd351 => tool("CAIRN_ETCD_351_DIR", "etcd-3.5.1", "etcd"),
        Impl::Etcd3423 => tool("CAIRN_ETCD_3423_DIR", "etcd-3.4.23", "etcd"),
        Impl::Cairn => PathBuf::from(env!("CARGO_BIN_EXE_cairn")),
    }
}

pub fn etcdctl_bin(ctl: Ctl) -> PathBuf {
    match ctl {
        Ctl::V351 => tool("CAIRN_ETCD_351_DIR", "etcd-3.5.1", "etcdctl"),
        Ctl::V3423 => tool("CAIRN_ETCD_3423_DIR", "etcd-3.4.23", "etcdctl"),
    }
}

pub fn etcdutl_bin() -> PathBuf {
    tool("CAIRN_ETCD_351_DIR", "etcd-3.5.1", "etcdutl")
}

pub fn cairnutl_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cairnutl"))
}

/// A port that was free a moment ago on 127.0.0.1, from below the kernel's ephemeral
/// range (the load tool's choice, shared so both pick ports the same way).
pub fn free_port() -> u16 {
    cairn_perf::compare::free_port().expect("a free port on 127.0.0.1")
}

/// A command with no `ETCD*` variables inherited (they would configure the tools).
pub fn clean_command(program: &Path) -> Command {
    let mut c = Command::new(program);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("ETCD") {
            c.env_remove(&k);
        }
    }
    c
}

/// Output of a finished process.
#[derive(Debug, Clone)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs `cmd` with `stdin`, killing it after `limit`.
pub fn run(mut cmd: Command, stdin: &[u8], limit: Duration) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    {
        let mut si = child.stdin.take().expect("stdin");
        let _ = si.write_all(stdin);
    }
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait().expect("wait") {
            Some(st) => break Some(st),
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let stdout = String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
    Output {
        code: status.and_then(|s| s.code()),
        stdout,
        stderr,
    }
}

/// Runs etcdctl (API v3) against `endpoint`.
pub fn etcdctl(ctl: Ctl, endpoint: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut c = clean_command(&etcdctl_bin(ctl));
    c.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("--dial-timeout=5s")
        .arg("--command-timeout=10s")
        .args(args);
    run(c, stdin, Duration::from_secs(30))
}

/// A simple HTTP/1.1 GET: (status code, body).
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    http_request(addr, "GET", path)
}

pub fn http_request(addr: &str, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad HTTP response: {head:?}")))?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((code, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// A running server process (etcd or cairn) on free 127.0.0.1 ports. Killed on drop.
pub struct Member {
    pub which: Impl,
    pub name: String,
    pub data_dir: PathBuf,
    pub client_port: u16,
    pub peer_port: u16,
    pub extra: Vec<String>,
    child: Option<Child>,
    log_path: PathBuf,
}

impl Member {
    /// Starts a member named `name` with its data in `data_dir` and waits until `/health`
    /// (serializable) answers.
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
        let mut m = Member {
            which,
            name: name.to_string(),
            data_dir: data_dir.to_path_buf(),
            client_port,
            peer_port,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
            log_path: data_dir.with_extension("log"),
        };
        m.spawn();
        m
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn client_addr(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The arguments every member gets: a one-member cluster on this member's ports.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![
            format!("--name={}", self.name),
            format!("--data-dir={}", self.data_dir.display()),
            format!("--listen-client-urls={}", self.endpoint()),
            format!("--advertise-client-urls={}", self.endpoint()),
            format!("--listen-peer-urls={}", self.peer_url()),
            format!("--initial-advertise-peer-urls={}", self.peer_url()),
            format!("--initial-cluster={}={}", self.name, self.peer_url()),
        ];
        a.extend(self.extra.iter().cloned());
        a
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("member log file");
        let mut c = clean_command(&etcd_bin(self.which));
        c.args(self.args())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log);
        if self.which == Impl::Cairn && std::env::var_os("RUST_LOG").is_none() {
            c.env("RUST_LOG", "warn");
        }
        self.child = Some(
            c.spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", self.which.label())),
        );
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "{} exited during start-up ({st}); log:\n{}",
                    self.which.label(),
                    self.log_tail()
                );
            }
            if let Ok((200, body)) = http_get(&self.client_addr(), "/health") {
                if body.contains("\"health\":\"true\"") {
                    return;
                }
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
        let s = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// SIGKILL, no clean shutdown.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
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

    /// Starts the process again on the same data directory and ports.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

pub mod cluster;
pub mod proxy;
