#!/bin/bash
# the same with the servers' sides swapped: each case's first server flips
cd /work/wt-benchtls
for i in 4 5 6; do
  for mode in plain tls; do
    flag=""; [ $mode = tls ] && flag="--tls"
    target/release/cairn-bench compare --no-build $flag \
      --baseline target/release/cairn --candidate target/testdeps/etcd-3.5.1/etcd \
      --only "put 256 B, 1 clients" --only "put 256 B, 100 clients" \
      --only "range serializable" --only "new connections" \
      --out perf/reports/2026-12-06-tls-runs/$mode-$i.md 2>&1 | grep "compare:"
  done
done
