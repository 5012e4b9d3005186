//! Finding binaries: the reference etcd releases installed by `scripts/install-test-deps.sh`
//! (under `target/testdeps`, each directory overridable by an environment variable), this
//! workspace's own `cairn` and `cairnutl`, and a binary's version line.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Which server binary a member runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impl {
    /// etcd 3.5.1 (`CAIRN_ETCD_351_DIR`, default `target/testdeps/etcd-3.5.1`).
    Etcd351,
    /// etcd 3.4.23 (`CAIRN_ETCD_3423_DIR`, default `target/testdeps/etcd-3.4.23`).
    Etcd3423,
    /// This workspace's `cairn`, as cargo built it for the running test (see [`cairn_bin`]).
    Cairn,
}

impl Impl {
    /// A short name for messages: "etcd-3.5.1", "etcd-3.4.23", "cairn".
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
    /// etcdctl 3.4.23.
    V3423,
    /// etcdctl 3.5.1.
    V351,
}

impl Ctl {
    /// A short name for messages: "etcdctl-3.4.23", "etcdctl-3.5.1".
    pub fn label(self) -> &'static str {
        match self {
            Ctl::V3423 => "etcdctl-3.4.23",
            Ctl::V351 => "etcdctl-3.5.1",
        }
    }
}

/// The repository root (this crate's parent directory at build time).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Where `scripts/install-test-deps.sh` installs the reference binaries.
pub fn testdeps_dir() -> PathBuf {
    workspace_root().join("target/testdeps")
}

fn dir_of(env_var: &str, default: &str) -> PathBuf {
    match std::env::var_os(env_var) {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => testdeps_dir().join(default),
    }
}

/// A reference tool, `name` in the directory `env_var` names (default:
/// `target/testdeps/<default_dir>`), if it is installed.
pub fn find_tool(env_var: &str, default_dir: &str, name: &str) -> Option<PathBuf> {
    let p = dir_of(env_var, default_dir).join(name);
    p.is_file().then_some(p)
}

/// A reference tool, as [`find_tool`] finds it; panics (the test fails, it is never
/// skipped) with a message saying how to install it when it is missing.
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

/// The server binary of `which` (panics when a reference binary is missing).
pub fn etcd_bin(which: Impl) -> PathBuf {
    match which {
        Impl::Etcd351 => tool("CAIRN_ETCD_351_DIR", "etcd-3.5.1", "etcd"),
        Impl::Etcd3423 => tool("CAIRN_ETCD_3423_DIR", "etcd-3.4.23", "etcd"),
        Impl::Cairn => cairn_bin(),
    }
}

/// The etcdctl of release `ctl` (panics when it is missing).
pub fn etcdctl_bin(ctl: Ctl) -> PathBuf {
    match ctl {
        Ctl::V351 => tool("CAIRN_ETCD_351_DIR", "etcd-3.5.1", "etcdctl"),
        Ctl::V3423 => tool("CAIRN_ETCD_3423_DIR", "etcd-3.4.23", "etcdctl"),
    }
}

/// etcdutl 3.5.1 (panics when it is missing).
pub fn etcdutl_bin() -> PathBuf {
    tool("CAIRN_ETCD_351_DIR", "etcd-3.5.1", "etcdutl")
}

/// This workspace's `cairn`, as cargo built it for the running test (see [`workspace_bin`]).
pub fn cairn_bin() -> PathBuf {
    workspace_bin("cairn")
}

/// This workspace's `cairnutl`, as cargo built it for the running test.
pub fn cairnutl_bin() -> PathBuf {
    workspace_bin("cairnutl")
}

/// A binary target of this workspace built for the running test: cargo builds a package's
/// binaries before its integration tests, into `target/<profile>/`, beside the `deps/`
/// directory that holds the test executable (the path `CARGO_BIN_EXE_<name>` names). Panics
/// when it is not there.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let mut dir = exe.parent().expect("the test executable's directory");
    if dir.ends_with("deps") {
        dir = dir.parent().expect("the profile directory");
    }
    let p = dir.join(name);
    if !p.is_file() {
        panic!(
            "{} is missing: it is built with the tests of the package that defines it \
             (e.g. cargo test -p cairn-server)",
            p.display()
        );
    }
    p
}

/// etcd 3.5.1 as `scripts/install-test-deps.sh` installs it, else `etcd` on PATH.
pub fn default_etcd() -> Option<PathBuf> {
    let p = testdeps_dir().join("etcd-3.5.1/etcd");
    if p.exists() {
        return Some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("etcd"))
            .find(|p| p.exists())
    })
}

/// Where `cargo build --release -p cairn-server --bin cairn` puts `cairn`
/// (`$CARGO_TARGET_DIR`, else the workspace's `target/`).
pub fn release_cairn() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("release/cairn")
}

/// Runs `cargo build --release -p cairn-server --bin cairn` in the workspace (`$CARGO`, else
/// `cargo` on PATH); the error says why it did not succeed.
pub fn build_release_cairn() -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let st = Command::new(cargo)
        .args(["build", "--release", "-p", "cairn-server", "--bin", "cairn"])
        .current_dir(workspace_root())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !st.success() {
        return Err(format!("building cairn failed ({st})"));
    }
    Ok(())
}

/// The first line `bin --version` prints (stdout, then stderr), or "version unknown".
pub fn version_of(bin: &Path) -> String {
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
