#!/bin/bash
# alternates TLS and plaintext compare runs
cd /work/wt-benchtls
for i in 1 2 3; do
  for mode in tls plain; do
    flag=""; [ $mode = tls ] && flag="--tls"
    # alternate which mode goes first per round
    target/release/cairn-bench compare --no-build $flag \
      --only "put 256 B, 1 clients" --only "put 256 B, 100 clients" \
      --only "range serializable" --only "new connections" \
      --out perf/reports/2026-12-06-tls-runs/$mode-$i.md 2>&1 | grep "compare:"
  done
done
