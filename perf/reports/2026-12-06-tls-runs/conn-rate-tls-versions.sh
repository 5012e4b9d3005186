#!/bin/bash
# conn-rate against standalone servers with the same PKI: etcd 3.5.1 (TLS 1.2 only),
# cairn default (TLS 1.3), cairn --tls-max-version=TLS1.2; rotated 3 rounds.
set -e
cd /work/wt-benchtls
W=$(mktemp -d /tmp/benchtls-tls12.XXXX)
# certificates: from a kept compare run
target/release/cairn-bench compare --no-build --tls --keep-data --only "put 256 B, 1 clients" --scale 0.01 --out $W/gen.md 2>&1 | grep "kept in" | tee $W/kept
K=$(sed -E 's/.*kept in //' $W/kept)
P=$K/pki
start() { # name bin port peer extra...
  local name=$1 bin=$2 c=$3 p=$4; shift 4
  $bin --name $name --data-dir $W/$name --listen-client-urls https://127.0.0.1:$c --advertise-client-urls https://127.0.0.1:$c \
    --listen-peer-urls http://127.0.0.1:$p --initial-advertise-peer-urls http://127.0.0.1:$p --initial-cluster $name=http://127.0.0.1:$p \
    --cert-file $P/server.pem --key-file $P/server-key.pem --trusted-ca-file $P/ca.pem --client-cert-auth --log-level warn "$@" > $W/$name.log 2>&1 &
  echo $!
}
E=$(start e target/testdeps/etcd-3.5.1/etcd 31379 31380)
C13=$(start c13 target/release/cairn 31381 31382)
C12=$(start c12 target/release/cairn 31383 31384 --tls-max-version=TLS1.2)
sleep 3
for port in 31379 31381 31383; do
  echo | openssl s_client -connect 127.0.0.1:$port -CAfile $P/ca.pem -cert $P/client.pem -key $P/client-key.pem -alpn h2 2>/dev/null | grep -E "^ *Protocol|Cipher is|Server Temp Key" | head -3 | tr '\n' ' '; echo " <- $port"
done
B="target/release/cairn-bench --cacert $P/ca.pem --cert $P/client.pem --key $P/client-key.pem"
for round in 1 2 3; do
  for port in 31379 31381 31383 31383 31381 31379; do
    r=$($B --endpoints https://127.0.0.1:$port --clients 4 conn-rate --total 1000 --json)
    echo "round $round port $port $(echo "$r" | python3 -c 'import json,sys; j=json.load(sys.stdin); print(round(j["requests_per_sec"]), j["errors_total"], round(j["percentiles_secs"]["p50"]*1e3,3))')"
  done
done
for pid in $E $C13 $C12; do kill $pid; done
rm -rf $K
