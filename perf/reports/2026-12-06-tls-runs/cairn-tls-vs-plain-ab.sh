#!/bin/bash
# Cairn TLS vs Cairn plaintext, interleaved request by workload: two standalone members
# (same binary, same PKI), 5 rounds, order flipped each round.
set -e
cd /work/wt-benchtls
W=$(mktemp -d /tmp/benchtls-ab.XXXX)
target/release/cairn-bench compare --no-build --tls --keep-data --only "put 256 B, 1 clients" --scale 0.01 --out $W/gen.md 2>&1 | grep "kept in" > $W/kept
K=$(sed -E 's/.*kept in //' $W/kept); P=$K/pki
start() { local name=$1 scheme=$2 c=$3 p=$4; shift 4
  target/release/cairn --name $name --data-dir $W/$name --listen-client-urls $scheme://127.0.0.1:$c --advertise-client-urls $scheme://127.0.0.1:$c \
    --listen-peer-urls http://127.0.0.1:$p --initial-advertise-peer-urls http://127.0.0.1:$p --initial-cluster $name=http://127.0.0.1:$p --log-level warn "$@" > $W/$name.log 2>&1 &
  echo $!; }
T=$(start tls https 31581 31582 --cert-file $P/server.pem --key-file $P/server-key.pem --trusted-ca-file $P/ca.pem --client-cert-auth)
N=$(start plain http 31583 31584)
sleep 3
TLSF="--cacert $P/ca.pem --cert $P/client.pem --key $P/client-key.pem"
run() { # mode args...
  local mode=$1; shift
  if [ $mode = tls ]; then ep="--endpoints https://127.0.0.1:31581 $TLSF"; else ep="--endpoints http://127.0.0.1:31583"; fi
  target/release/cairn-bench $ep "$@" --json | python3 -c 'import json,sys; j=json.load(sys.stdin); print(round(j["requests_per_sec"]), j["errors_total"], round(j["percentiles_secs"]["p99"]*1e3,3))'
}
for mode in tls plain; do run $mode put --total 200 >/dev/null; run $mode range /bench/range/key --total 1 >/dev/null; done
for round in 1 2 3 4 5; do
  if [ $((round % 2)) = 1 ]; then order="tls plain"; else order="plain tls"; fi
  for w in put1 put100 rs1 rs100; do
    for mode in $order; do
      case $w in
        put1) r=$(run $mode put --total 3000 --val-size 256 --key-space-size 100000);;
        put100) r=$(run $mode --clients 100 --conns 10 put --total 16000 --val-size 256 --key-space-size 100000);;
        rs1) r=$(run $mode range /bench/range/key --total 5000 --consistency s);;
        rs100) r=$(run $mode --clients 100 --conns 10 range /bench/range/key --total 30000 --consistency s);;
      esac
      echo "round $round $w $mode $r"
    done
  done
done
kill $T $N; sleep 1; rm -rf $W $K
