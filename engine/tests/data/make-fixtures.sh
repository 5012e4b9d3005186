#!/usr/bin/env bash
# Regenerates the fixtures in this folder with a real etcd and the real bbolt (not run by the tests;
# the committed files are the test data). Needs scripts/install-test-deps.sh first.
#
#   ./make-fixtures.sh [3.5.1|3.4.23|bbolt]     (no argument: all three)
#
# Starts etcd on free 127.0.0.1 ports with a temporary data dir, writes a few dozen keys
# (one value > 4 KiB so it needs overflow pages, overwrites, deletes, a lease, a txn),
# stops etcd cleanly and keeps member/snap/db as etcd-<version>.db, cut to its high-water
# page (bbolt pre-grows the file; pages past the high-water mark are never read). The
# expected content, as read by the real bbolt, goes to etcd-<version>.dump (bboltcheck dump).
#
# "bbolt" writes bbolt-1.3.6.db with bbolt itself (bboltcheck gen: persisted freelist,
# inline, nested and empty buckets, overflow values, deletes) plus its .dump and .stats.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
BBOLTCHECK="$ROOT/target/testdeps/bin/bboltcheck"
if [ $# = 0 ]; then for v in 3.5.1 3.4.23 bbolt; do "$0" "$v"; done; exit 0; fi
VER=$1
finish() { # cut to the high-water mark, check, dump
    local db=$1 base=${1%.db} size
    # bbolt pre-grows files; "size" = high-water page id * page size, and no page past it is read.
    size=$("$BBOLTCHECK" stats "$db" | awk '$1=="size"{print $2}')
    truncate -s "$size" "$db"
    "$BBOLTCHECK" check "$db"
    "$BBOLTCHECK" dump "$db" >"$base.dump"
    "$BBOLTCHECK" stats "$db" >"$base.stats"
    echo "wrote $db ($size bytes), $base.dump, $base.stats"
}
if [ "$VER" = bbolt ]; then
    [ -x "$BBOLTCHECK" ] || { echo "run scripts/install-test-deps.sh first" >&2; exit 1; }
    rm -f "$HERE/bbolt-1.3.6.db"
    "$BBOLTCHECK" gen "$HERE/bbolt-1.3.6.db"
    finish "$HERE/bbolt-1.3.6.db"
    exit 0
fi
DIR="$ROOT/target/testdeps/etcd-$VER"
ETCD="$DIR/etcd"; CTL="$DIR/etcdctl"
[ -x "$ETCD" ] && [ -x "$BBOLTCHECK" ] || { echo "run scripts/install-test-deps.sh first" >&2; exit 1; }

tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
read -r CP PP < <(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
EP="http://127.0.0.1:$CP"
"$ETCD" --name fixture --data-dir "$tmp/data" \
    --listen-client-urls "$EP" --advertise-client-urls "$EP" \
    --listen-peer-urls "http://127.0.0.1:$PP" --initial-advertise-peer-urls "http://127.0.0.1:$PP" \
    --initial-cluster "fixture=http://127.0.0.1:$PP" --initial-cluster-token fixture \
    >"$tmp/etcd.log" 2>&1 &
pid=$!
export ETCDCTL_API=3
ctl() { "$CTL" --endpoints "$EP" "$@" >/dev/null; }
for _ in $(seq 100); do ctl endpoint health 2>/dev/null && break; sleep 0.1; done
ctl endpoint health

for i in $(seq -w 1 40); do ctl put "key/$i" "value-$i"; done
ctl put big "$(python3 -c 'print("".join(chr(97 + (i * 7) % 26) for i in range(6000)))')"
for i in 03 07 11; do ctl put "key/$i" "second-$i"; done
ctl del key/05
ctl del key/2 --prefix
LEASE=$("$CTL" --endpoints "$EP" lease grant 3600 | awk '{print $2}')
ctl put leased "with lease" --lease "$LEASE"
printf '\nput txn/a 1\nput txn/b 2\n\n\n' | ctl txn -i
ctl put "bin/$(printf '\001\002')" ""

kill -TERM "$pid"; wait "$pid" || true; pid=
db="$HERE/etcd-$VER.db"
cp "$tmp/data/member/snap/db" "$db"
finish "$db"
