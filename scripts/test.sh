#!/usr/bin/env bash
# The whole test suite: checks formatting and lints (clippy, warnings are errors), installs
# what the compatibility tests need (etcd, etcdctl, etcdutl, Go bbolt), then runs every
# crate's tests and builds the benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
./scripts/install-test-deps.sh
export PATH="$PWD/target/testdeps/bin:$PATH"
cargo test --workspace --locked
# The benchmarks must keep compiling. Checking that against the dev profile reuses the test
# build above (seconds) instead of a second, optimized build of every dependency (minutes on
# CI's 2 cores); `cargo bench` itself builds them optimized when figures are wanted.
cargo bench --workspace --locked --no-run --profile dev
