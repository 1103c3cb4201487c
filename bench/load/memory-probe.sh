#!/bin/bash
# Resident memory per subscription at a given count: one release BusyLamp (sip_threads 2) takes
# N digest subscriptions at RATE/s from busylamp-load, settles SETTLE s (UDP transactions gone),
# and prints VmRSS growth per subscription, before and after one more malloc_trim (through gdb),
# with glibc's malloc_stats (heap in use against heap held) in the server's stderr.
#   N=100000 RATE=2500 SETTLE=35 bench/load/memory-probe.sh
# DATA, BIN, LOAD: see probe-server.sh. Needs gdb. Loopback only, bounded by --count and timeout.
set -u
N=${N:-20000}; RATE=${RATE:-2000}; SETTLE=${SETTLE:-35}
source "$(dirname "$0")/probe-server.sh"
D=$(mktemp -d /tmp/memory-probe.XXXXXX)
start_busylamp $D
sleep 2
rss() { awk '/VmRSS/ {print $2}' /proc/$PID/status; }
r0=$(rss)
subscribe $N $RATE $D/load.txt
sleep $SETTLE
r1=$(rss)
gdb -q -batch -p $PID -ex 'call (void)malloc_stats()' -ex 'call (int)malloc_trim(0)' > /dev/null 2>&1
r2=$(rss)
ok=$(grep -o "succeeded [0-9]*" $D/load.txt | awk '{print $2}')
kill $PID; sleep 1
echo "subscriptions=$ok rss_before=${r0}kB settled=${r1}kB per_subscription=$(((r1 - r0) * 1024 / ok))B" \
    "after_trim=${r2}kB per_subscription=$(((r2 - r0) * 1024 / ok))B"
grep -A2 "^Total" $D/err.txt
