//! `cairn-testkit`: what the tests that run real processes and the load tool share to start
//! `cairn` and the reference etcd releases (installed by `scripts/install-test-deps.sh`, see
//! `scripts/testdeps.md`). A missing reference binary makes a test FAIL with a message
//! saying how to install it; it is never skipped.
//!
//! Where this crate fits in Cairn: `docs/architecture.md` at the repository root.
//!
//! - `bins`: [`Impl`] and [`Ctl`], finding the reference binaries ([`etcd_bin`],
//!   [`etcdctl_bin`], [`etcdutl_bin`], [`find_tool`]; directories overridable with
//!   `CAIRN_ETCD_351_DIR` / `CAIRN_ETCD_3423_DIR`), this workspace's binaries
//!   ([`cairn_bin`], [`cairnutl_bin`], [`release_cairn`]), [`default_etcd`], [`version_of`].
//! - `ports`: [`free_port`] / [`try_free_port`], below the kernel's ephemeral range.
//! - `process`: [`run`] a tool to completion, [`etcdctl`], [`clean_command`], plain HTTP
//!   ([`http_get`], [`is_healthy`]).
//! - `member`: etcd's [`Flags`], one member process ([`Proc`]: start, kill -9, SIGTERM,
//!   restart, log), a one-member cluster that waits until healthy ([`Member`]).
//! - `cluster`: the processes of an n-member [`Cluster`] ([`Node`]s with their ports, data
//!   directories, logs and `--initial-cluster`).

mod bins;
mod cluster;
mod member;
mod ports;
mod process;

pub use bins::{
    build_release_cairn, cairn_bin, cairnutl_bin, default_etcd, etcd_bin, etcdctl_bin, etcdutl_bin,
    find_tool, release_cairn, testdeps_dir, tool, version_of, workspace_bin, workspace_root, Ctl,
    Impl,
};
pub use cluster::{Cluster, Node};
pub use member::{Flags, Member, Proc};
pub use ports::{free_port, try_free_port};
pub use process::{clean_command, etcdctl, http_get, http_request, is_healthy, run, Output};
