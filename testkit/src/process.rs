//! Running tools to completion ([`run`], [`etcdctl`]) and talking plain HTTP to a member
//! ([`http_get`], [`is_healthy`]).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::bins::{etcdctl_bin, Ctl};

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
    /// The exit code; `None` when it was killed (by a signal, or by [`run`]'s time limit).
    pub code: Option<i32>,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

impl Output {
    /// Exited with code 0.
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

/// A simple HTTP/1.1 request without a body: (status code, body, de-chunked).
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

/// One probe of `GET /health` on the client address `addr`: true when the member answers
/// 200 with `"health":"true"` (it knows a leader).
pub fn is_healthy(addr: &str) -> bool {
    matches!(http_get(addr, "/health"), Ok((200, body)) if body.contains("\"health\":\"true\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(dechunk("4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n"), "Wikipedia");
        assert_eq!(dechunk("0\r\n\r\n"), "");
    }

    #[test]
    fn run_reports_output_and_exit_code() {
        let mut c = Command::new("sh");
        c.args(["-c", "cat; echo err >&2; exit 3"]);
        let o = run(c, b"in", Duration::from_secs(10));
        assert_eq!(
            (o.code, o.stdout.as_str(), o.stderr.as_str()),
            (Some(3), "in", "err\n")
        );
        assert!(!o.success());
        let mut c = Command::new("sleep");
        c.arg("10");
        let o = run(c, b"", Duration::from_millis(50));
        assert_eq!(o.code, None, "killed at the limit");
    }
}
