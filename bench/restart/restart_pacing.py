#!/usr/bin/env python3
"""Restart with N stored subscriptions: how the first NOTIFYs leave (issue 9).

    bench/restart/restart_pacing.py [--subscriptions 100000] [--binary .build/release/busylamp]

Starts `busylamp serve` once to create its store, stops it, writes N dialog subscriptions into
the store's `subscriptions` table as a crashed process would have left them (100 watched lines,
N/100 watchers each, every watcher at one of 4 local UDP sockets), then starts the server again
and answers every NOTIFY 200 from those sockets, recording when each subscription's first
NOTIFY arrived. Prints the time from `ready` to the first and last NOTIFY, how many arrived in
the busiest 4 ms (one timer tick) and 100 ms, and whether every subscription was notified. Loopback
only; stops by itself after --seconds (default 30).
"""
import argparse, json, multiprocessing as mp, os, signal, socket, sqlite3, subprocess, sys, tempfile, time

DOMAIN = "sip.busylamp.test"
LINES = 100

def directory_yaml():
    lines = ["domain: %s" % DOMAIN, "presence_default: true", "accounts:", "  - id: acme", "    name: Acme", "    lines:"]
    for ext in ["201"] + [str(300 + i) for i in range(LINES)]:
        lines += ['      - extension: "%s"' % ext, '        number: "64955%s"' % ext.zfill(5), "        name: L%s" % ext, "        password: secret-%s" % ext]
    return "\n".join(lines) + "\n"

def start(binary, folder, extra=()):
    out = open(os.path.join(folder, "server.out"), "a")
    proc = subprocess.Popen([binary, "serve", "--directory", os.path.join(folder, "directory.yaml"), "--data", os.path.join(folder, "data"),
                             "--sip", "udp:127.0.0.1:0", "--http", "127.0.0.1:0", *extra], stdout=subprocess.PIPE, stderr=out, text=True)
    port = None
    for line in proc.stdout:
        if line.startswith("sip udp "): port = int(line.split(":")[-1])
        if line.strip() == "ready": return proc, port, time.monotonic()
    raise SystemExit("server ended before ready; see %s" % out.name)

def udp_receive_buffer_drops():
    """The machine's count of datagrams dropped for a full socket buffer (/proc/net/snmp): a run
    where the receivers fell behind (another busy process on the machine) shows it here, and its
    late NOTIFYs are retransmissions, not the server's pace."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    return int(rows[1][rows[0].index("RcvbufErrors")])

def receiver(sock, deadline, results):
    """Answers each NOTIFY 200 and records the first arrival time per Call-ID."""
    first = {}
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try: data, addr = sock.recvfrom(65535)
        except socket.timeout: continue
        now = time.monotonic()
        head, _, _ = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        if not lines[0].startswith(b"NOTIFY"): continue
        keep = [l for l in lines[1:] if l[:4].lower() in (b"via:", b"from", b"to: ", b"call", b"cseq")]
        call_id = next((l.split(b":", 1)[1].strip() for l in lines if l.lower().startswith(b"call-id:")), b"")
        first.setdefault(call_id.decode(), now)
        sock.sendto(b"SIP/2.0 200 OK\r\n" + b"\r\n".join(keep) + b"\r\nContent-Length: 0\r\n\r\n", addr)
    results.put(first)

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscriptions", type=int, default=100_000)
    parser.add_argument("--binary", default=".build/release/busylamp")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--sockets", type=int, default=4)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="busylamp-restart-")
    with open(os.path.join(folder, "directory.yaml"), "w") as f: f.write(directory_yaml())
    proc, _, _ = start(args.binary, folder)
    proc.send_signal(signal.SIGTERM); proc.wait(timeout=20)

    sockets = []
    for _ in range(args.sockets):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
        s.bind(("127.0.0.1", 0)); sockets.append(s)
    db = sqlite3.connect(os.path.join(folder, "data", [n for n in os.listdir(os.path.join(folder, "data")) if n.endswith(".sqlite")][0]))
    now = time.time() - 978307200  # seconds since 2001-01-01 (Date's reference)
    rows = []
    for n in range(args.subscriptions):
        target = "64955%s" % str(300 + n % LINES).zfill(5)
        port = sockets[n % len(sockets)].getsockname()[1]
        call_id, tag = "restart-%d@127.0.0.1" % n, "srv%d" % n
        rows.append((call_id + ";" + tag, "dialog", "acme", "6495500201", target, "sip:%s@%s" % (target, DOMAIN), "confirmed", call_id, tag,
                     "ph%d" % n, 5, 1, "<sip:%s@%s>;tag=%s" % (target, DOMAIN, tag), "<sip:6495500201@%s>;tag=ph%d" % (DOMAIN, n),
                     "sip:6495500201@127.0.0.1:%d" % port, "[]", 0, "udp", "127.0.0.1", port, None, now + 3600, 6, "bench", now, None))
    db.executemany("INSERT INTO subscriptions VALUES (%s)" % ",".join("?" * 26), rows)
    db.commit(); db.close()

    results = mp.Queue()
    deadline = time.monotonic() + args.seconds
    workers = [mp.Process(target=receiver, args=(s, deadline, results)) for s in sockets]
    for w in workers: w.start()
    drops_before = udp_receive_buffer_drops()
    proc, _, ready = start(args.binary, folder)
    first = {}
    for _ in workers: first.update(results.get())
    for w in workers: w.join()
    drops = udp_receive_buffer_drops() - drops_before
    proc.send_signal(signal.SIGTERM); proc.wait(timeout=20)
    times = sorted(first.values())
    def busiest(window):
        best, lo = 0, 0
        for hi in range(len(times)):
            while times[hi] - times[lo] > window: lo += 1
            best = max(best, hi - lo + 1)
        return best
    report = {"subscriptions": args.subscriptions, "notified": len(times),
              "first_after_ready_s": round(times[0] - ready, 3) if times else None,
              "last_after_ready_s": round(times[-1] - ready, 3) if times else None,
              "busiest_4ms": busiest(0.004), "busiest_100ms": busiest(0.1),
              "udp_receive_buffer_drops": drops}
    print(json.dumps(report))
    sys.exit(0 if len(times) == args.subscriptions else 1)

if __name__ == "__main__":
    main()
