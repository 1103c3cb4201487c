#!/bin/bash
# Where a subscription's bytes are: one release BusyLamp (sip_threads 2) under heaptrack takes
# COUNT digest subscriptions at RATE/s from busylamp-load, settles 36 s (UDP transactions gone),
# is killed, and the heap still live at that moment is summed by the deepest BusyLamp frame.
#   bench/load/heap-profile.sh COUNT RATE
# DATA, BIN, LOAD: see probe-server.sh. Needs heaptrack (Debian's `heaptrack`). Loopback only, bounded by --count.
set -u
COUNT=${1:-10000}; RATE=${2:-1000}
source "$(dirname "$0")/probe-server.sh"
D=$(mktemp -d /tmp/heap-profile.XXXXXX)
start_busylamp $D heaptrack -o $D/trace
subscribe $COUNT $RATE $D/load.txt
grep -o "succeeded [0-9]*" $D/load.txt
sleep 36
kill -9 $PID; sleep 8
heaptrack_print -f $D/trace.zst --flamegraph-cost-type leaked -F $D/stacks.txt > /dev/null 2>&1
python3 - "$D/stacks.txt" <<'PY'
import collections, re, sys
own = re.compile(r'BusyLamp|SIPTrans|SIPCore|SIPAuth|SIPTransport|Notifier|GRDB|sqlite')
by_frame, total = collections.Counter(), 0
for line in open(sys.argv[1]):
    stack, _, cost = line.rstrip().rpartition(' ')
    frames = [f for f in stack.split(';') if own.search(f)]
    by_frame[(frames[-1] if frames else stack.split(';')[-1])[:140]] += int(cost)
    total += int(cost)
print('live heap at kill: %.1f MB' % (total / 1e6))
for frame, cost in by_frame.most_common(25):
    print('%8.2f MB  %s' % (cost / 1e6, frame))
PY
echo "trace and output in $D"
