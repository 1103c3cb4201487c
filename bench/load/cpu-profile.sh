#!/bin/bash
# Where a subscription's CPU goes: one release BusyLamp (sip_threads 2) takes digest
# subscriptions at RATE/s for SECONDS from busylamp-load while `perf record` samples it for 6 s;
# prints the CPU ticks each thread used over the run and the profile by library and by
# inclusive frame (perf adds overhead: the run is slower than without it).
#   bench/load/cpu-profile.sh RATE [SECONDS]
# DATA, BIN, LOAD: see probe-server.sh. Needs perf (Debian's `linux-perf`). Loopback only, bounded.
set -u
RATE=${1:-4500}; SECONDS_OF_LOAD=${2:-10}
source "$(dirname "$0")/probe-server.sh"
D=$(mktemp -d /tmp/cpu-profile.XXXXXX)
start_busylamp $D
thread_ticks() {
    for t in /proc/$PID/task/*; do echo "$(basename $t) $(cat $t/comm) $(awk '{print $14+$15}' $t/stat)"; done | sort
}
thread_ticks > $D/ticks-before
(sleep 2; perf record -F 999 -g -p $PID -o $D/perf.data -- sleep 6 > /dev/null 2>&1) &
PERF=$!
subscribe $((RATE * SECONDS_OF_LOAD)) $RATE $D/load.txt
thread_ticks > $D/ticks-after
wait $PERF  # not a bare wait: the server is a background job too
kill $PID
echo "CPU ticks per thread over the run:"
join $D/ticks-before $D/ticks-after | awk '{d = $5 - $3; if (d > 0) print "  " $2, d}' | sort -k2 -n -r
grep -o "succeeded [0-9]*" $D/load.txt
grep subscribe_2xx $D/load.txt
perf report -i $D/perf.data --no-children --sort dso -g none 2> /dev/null | grep '%' | head -8
perf report -i $D/perf.data --children --sort symbol -g none 2> /dev/null | grep '%' | head -60 \
    | swift demangle --simplified | cut -c1-160
echo "perf data: $D/perf.data"
