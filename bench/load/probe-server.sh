# Sourced by the single-server probes (memory-probe.sh, heap-profile.sh, cpu-profile.sh): where the binaries
# and the load data are, and one release BusyLamp started in a fresh folder.
#   DATA: bench/load/bench.py's subscribe-data (directory.yaml, watchers.csv)
#   BIN: the folder of release busylamp; LOAD: the release busylamp-load
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DATA=${DATA:-/tmp/b2/subscribe-data}
BIN=${BIN:-$ROOT/.build-bench/release}
LOAD=${LOAD:-$ROOT/.build-load/release/busylamp-load}

# start_busylamp DIR [WRAPPER...]: `busylamp serve` (sip_threads 2, ports from the OS) in DIR,
# under WRAPPER when given (heaptrack -o FILE); waits for "ready", sets PORT (UDP) and PID.
start_busylamp() {
    local dir=$1
    shift
    # One loopback address stands for thousands of phones: no per-address subscription limit.
    printf "sip_threads: 2\nsubscriptions_per_source: 100000000\nrequests_per_source: 100000000\nrequest_burst_per_source: 100000000\n" > "$dir/config.yaml"
    "$@" "$BIN/busylamp" serve --config "$dir/config.yaml" --directory "$DATA/directory.yaml" --data "$dir/data" \
        --sip udp:127.0.0.1:0 --http 127.0.0.1:0 > "$dir/out.txt" 2> "$dir/err.txt" &
    for _ in $(seq 120); do grep -q "^ready" "$dir/out.txt" && break; sleep 1; done
    PORT=$(grep -o "sip udp 127.0.0.1:[0-9]*" "$dir/out.txt" | cut -d: -f2)
    PID=$(pgrep -f "^$BIN/busylamp serve.*data $dir/data")
}

# subscribe COUNT RATE OUTPUT: COUNT digest subscriptions at RATE/s from 8 sockets, bounded.
subscribe() {
    timeout $(($1 / $2 + 120)) "$LOAD" subscribe --server 127.0.0.1:$PORT --domain sip.busylamp.test \
        --users "$DATA/watchers.csv" --rate $2 --count $1 --duration $(($1 / $2 + 1)) --sockets 8 --quiet \
        --drain 10 > "$3" 2>&1
}
