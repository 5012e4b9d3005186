#!/usr/bin/env bash
# The whole test suite: installs what the compatibility tests need (etcd, etcdctl,
# etcdutl, Go bbolt), then runs every crate's tests and builds the benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-test-deps.sh
export PATH="$PWD/target/testdeps/bin:$PATH"
cargo test --workspace --locked
cargo bench --workspace --locked --no-run
