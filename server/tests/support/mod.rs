//! Shared helpers for the tests that run real processes: `cairn` (this package's binary) and
//! the reference etcd releases installed by `scripts/install-test-deps.sh`
//! (see `scripts/testdeps.md`). Starting, killing and restarting members, free ports and
//! binary lookup come from the test kit (`cairn-testkit`, re-exported here); this module
//! adds the fault tests' multi-process [`cluster`] and the peer [`proxy`] it partitions
//! with. A missing reference binary makes the test FAIL with a message saying how to
//! install it; it is never skipped.
#![allow(dead_code)]

pub use cairn_testkit::*;

pub mod cluster;
pub mod proxy;
