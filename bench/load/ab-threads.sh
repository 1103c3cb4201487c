#!/bin/bash
# One BusyLamp (release, sip_threads THREADS) offered SUBSCRIBE with digest at RATE/s for SECONDS
# (default 10) by busylamp-load from 8 sockets; prints successes, server CPU ticks (1/100 s),
# retransmissions and latency. Loopback only, bounded by --duration and timeout.
#   bench/load/ab-threads.sh THREADS RATE [SECONDS]
# DATA: a folder bench/load/bench.py wrote (subscribe-data: directory.yaml, watchers.csv).
# BIN: the folder holding release busylamp and busylamp-load.
set -u
DATA=${DATA:-/tmp/b2/subscribe-data}
BIN=${BIN:-$(cd "$(dirname "$0")/../.." && pwd)/.build-bench/release}
LOAD=${LOAD:-$(cd "$(dirname "$0")/../.." && pwd)/.build-load/release/busylamp-load}
T=$1; R=$2; D=/tmp/ab-$T-$R; rm -rf $D; mkdir -p $D
printf "sip_threads: $T\nsubscriptions_per_source: 100000000\nrequests_per_source: 100000000\nrequest_burst_per_source: 100000000\n" > $D/config.yaml
"$BIN/busylamp" serve --config $D/config.yaml --directory "$DATA/directory.yaml" --data $D/data --sip udp:127.0.0.1:0 --http 127.0.0.1:0 > $D/out.txt 2>&1 &
for i in $(seq 60); do grep -q "^ready" $D/out.txt && break; sleep 1; done
PORT=$(grep -o "sip udp 127.0.0.1:[0-9]*" $D/out.txt | cut -d: -f2); PID=$(pgrep -f "data $D/data")
sleep 1
c0=$(awk '{print $14+$15}' /proc/$PID/stat)
timeout 120 "$LOAD" subscribe --server 127.0.0.1:$PORT --domain sip.busylamp.test --users "$DATA/watchers.csv" --rate $R --duration ${3:-10} --sockets 8 --quiet --drain 5 > $D/load.txt 2>&1
c1=$(awk '{print $14+$15}' /proc/$PID/stat)
kill $PID; sleep 1
ok=$(grep -o "succeeded [0-9]*" $D/load.txt)
echo "threads=$T rate=$R $ok cpu_ticks=$((c1-c0)) $(grep -o 'retransmissions [0-9]*' $D/load.txt) $(grep subscribe_2xx $D/load.txt)"
