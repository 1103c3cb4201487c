#!/bin/bash
# Resident memory per subscription at a given count: one release BusyLamp (sip_threads 2) takes
# N digest subscriptions at RATE/s from busylamp-load, settles SETTLE s (UDP transactions gone),
# and prints VmRSS growth per subscription, before and after one more malloc_trim (through gdb),
# with glibc's malloc_stats (heap in use against heap held) in the server's stderr.
#   N=100000 RATE=2500 SETTLE=35 bench/load/memory-probe.sh
# DATA, BIN, LOAD as in ab-threads.sh. Needs gdb. Loopback only, bounded by --count and timeout.
set -u
N=${N:-20000}; RATE=${RATE:-2000}; SETTLE=${SETTLE:-35}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DATA=${DATA:-/tmp/b2/subscribe-data}
BIN=${BIN:-$ROOT/.build-bench/release}
LOAD=${LOAD:-$ROOT/.build-load/release/busylamp-load}
D=$(mktemp -d /tmp/memory-probe.XXXXXX)
printf "sip_threads: 2\n" > $D/config.yaml
"$BIN/busylamp" serve --config $D/config.yaml --directory "$DATA/directory.yaml" --data $D/data \
    --sip udp:127.0.0.1:0 --http 127.0.0.1:0 > $D/out.txt 2> $D/err.txt &
for _ in $(seq 60); do grep -q "^ready" $D/out.txt && break; sleep 1; done
PORT=$(grep -o "sip udp 127.0.0.1:[0-9]*" $D/out.txt | cut -d: -f2); PID=$(pgrep -f "data $D/data")
sleep 2
rss() { awk '/VmRSS/ {print $2}' /proc/$PID/status; }
r0=$(rss)
timeout $((N / RATE + 120)) "$LOAD" subscribe --server 127.0.0.1:$PORT --domain sip.busylamp.test \
    --users "$DATA/watchers.csv" --rate $RATE --count $N --duration $((N / RATE + 1)) --sockets 8 --quiet \
    --drain 10 > $D/load.txt 2>&1
sleep $SETTLE
r1=$(rss)
gdb -q -batch -p $PID -ex 'call (void)malloc_stats()' -ex 'call (int)malloc_trim(0)' > /dev/null 2>&1
r2=$(rss)
ok=$(grep -o "succeeded [0-9]*" $D/load.txt | awk '{print $2}')
kill $PID; sleep 1
echo "subscriptions=$ok rss_before=${r0}kB settled=${r1}kB per_subscription=$(((r1 - r0) * 1024 / ok))B" \
    "after_trim=${r2}kB per_subscription=$(((r2 - r0) * 1024 / ok))B"
grep -A2 "^Total" $D/err.txt
