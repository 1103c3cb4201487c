#!/usr/bin/env python3
"""The soak: a long mixed load against the real server, then a check that it stayed right.

    bench/soak/soak.py SECONDS [--bin .build/debug] [--phones 2000] [--out DIR] [...]

Writes a directory with one account `soak` (PHONES lines: extension 1000+i, number 6499+ext,
password pw+ext+x), starts `busylamp serve` on 127.0.0.1 port 0 with a temp --data folder and
an admin token, and runs `busylamp-load soak` against it: every phone REGISTERs (digest,
expires 60, refreshed), watchers SUBSCRIBE to lines of the call pool (Event: dialog, digest,
expires 120, refreshed) and answer every NOTIFY, phones call each other (answered, cancelled
while ringing, or picked up with *89EXT by a third phone). After the warm-up it samples the
server's VmRSS; after SECONDS of load every call ends, the load settles, and the tool writes
what its phones believe. Then this script fails (exit 1, a line per problem) if:
  - a watcher's last NOTIFY differs from GET /api/v1/accounts/soak/lines/{ext}/state
    (all idle: every call ended);
  - a phone whose last REGISTER got 200 is not registered per the API (or the other way round);
  - the API's subscriptions of the account are not the tool's active ones (count and pairs);
  - any transaction failed (timeouts, unexpected 4xx/5xx/6xx), more than --max-failures;
  - the final VmRSS (the least of a few samples over --rss-wait seconds) is more than
    --rss-growth % above the post-warm-up one;
  - the server does not exit 0 on SIGTERM.
Prints the figures either way. Loopback only; every step bounded in time.
"""
import argparse, http.client, json, os, re, signal, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import benchlib  # noqa: E402

DOMAIN = benchlib.DOMAIN
ACCOUNT = "soak"
TOKEN = "soak-admin-token"


def directory_yaml(phones, first):
    out = ["# written by bench/soak/soak.py", "domain: %s" % DOMAIN, "presence_default: true",
           "min_expires: 60", "max_expires: 3600", "accounts:",
           "  - id: %s" % ACCOUNT, "    name: Soak", "    presence: true",
           '    pickup: { directed: "*89", group: "*88" }', "    lines:"]
    for i in range(phones):
        ext = str(first + i)
        out += ['      - extension: "%s"' % ext, '        number: "6499%s"' % ext, "        name: Soak %s" % ext,
                "        password: pw%sx" % ext]
    return "\n".join(out) + "\n"


class API:
    def __init__(self, port):
        self.port = port
        self.conn = None

    def get(self, path):
        for attempt in range(3):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                self.conn.request("GET", path, headers={"Authorization": "Bearer " + TOKEN})
                r = self.conn.getresponse()
                body = r.read()
                if r.status != 200:
                    raise RuntimeError("GET %s: %d %s" % (path, r.status, body[:200]))
                return json.loads(body)
            except (OSError, http.client.HTTPException):
                self.conn = None
                if attempt == 2:
                    raise
                time.sleep(0.5)


def api_view(api, targets):
    """What the end checks read: each watched line's state, every line's lamp (with its
    registration), and the account's subscriptions."""
    states = {ext: api.get("/api/v1/accounts/%s/lines/%s/state" % (ACCOUNT, ext)) for ext in targets}
    lamps = {l["extension"]: l for l in api.get("/api/v1/accounts/%s/lamps" % ACCOUNT)["lamps"]}
    listed = api.get("/api/v1/accounts/%s/subscriptions" % ACCOUNT)["subscriptions"]
    return states, lamps, listed


def http_port(folder):
    text = open(os.path.join(folder, "stdout.log")).read()
    m = re.search(r"^http 127\.0\.0\.1:(\d+)$", text, re.M)
    return int(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("seconds", type=float, nargs="?", default=600)
    ap.add_argument("--bin", default=".build/debug", help="folder with busylamp and busylamp-load")
    ap.add_argument("--phones", type=int, default=2000)
    ap.add_argument("--call-pool", type=int, default=200)
    ap.add_argument("--watchers", type=int, default=100)
    ap.add_argument("--targets", type=int, default=3)
    ap.add_argument("--call-rate", type=float, default=2.0)
    ap.add_argument("--warmup-calls", type=float, default=10)
    ap.add_argument("--settle", type=float, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-failures", type=int, default=0)
    ap.add_argument("--rss-growth", type=float, default=10.0, help="percent")
    ap.add_argument("--rss-wait", type=float, default=15, help="seconds of RSS samples at the end")
    ap.add_argument("--out", help="keep the run's files here (default: a temp folder, removed on success)")
    ap.add_argument("--json", help="write the figures to this file")
    a = ap.parse_args()

    first = 1000
    folder = a.out or tempfile.mkdtemp(prefix="busylamp-soak-")
    os.makedirs(folder, exist_ok=True)
    directory = os.path.join(folder, "directory.yaml")
    with open(directory, "w") as f:
        f.write(directory_yaml(a.phones, first))
    os.environ["BUSYLAMP_ADMIN_TOKEN"] = TOKEN
    server = benchlib.BusyLamp(os.path.abspath(os.path.join(a.bin, "busylamp")), directory, os.path.join(folder, "server"))
    t0 = time.time()
    server.start()
    port = http_port(server.dir)
    api = API(port)
    print("soak: server pid %d, sip udp 127.0.0.1:%d, http 127.0.0.1:%d, folder %s" % (server.p.pid, server.port, port, folder))
    rss_start = server.rss_kb()
    report_path = os.path.join(folder, "report.json")
    cmd = [os.path.join(a.bin, "busylamp-load"), "soak", "--server", "127.0.0.1:%d" % server.port, "--domain", DOMAIN,
           "--phones", str(a.phones), "--first-extension", str(first), "--call-pool", str(a.call_pool),
           "--watchers", str(a.watchers), "--targets", str(a.targets), "--call-rate", str(a.call_rate),
           "--warmup-calls", str(a.warmup_calls), "--duration", str(a.seconds), "--settle", str(a.settle),
           "--seed", str(a.seed), "--json", report_path]
    print("soak: " + " ".join(cmd))
    load = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    rss_warm = None
    warm_at = None
    bound = a.seconds + a.warmup_calls + a.settle + 400
    killer = threading.Timer(bound, load.kill)
    killer.start()
    # VmRSS every 5 s while the load runs: a leak climbs, a cache levels off
    trace = []
    stop_trace = threading.Event()

    def sample():
        while not stop_trace.wait(5):
            try:
                trace.append((round(time.time() - t0), server.rss_kb()))
            except OSError:
                return
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    targets = sorted({str(first + (i * a.targets + slot) % a.call_pool) for i in range(a.watchers) for slot in range(a.targets)})
    for line in load.stdout:
        sys.stdout.write(line)
        if line.strip() == "soak: warm" and rss_warm is None:
            warm_at = time.time() - t0
            # The end's checks read the API; so does the warm-up, so that the memory both
            # figures are taken after holds the same caches and buffers.
            rss_before_api = server.rss_kb()
            api_view(api, targets)
            rss_warm = server.rss_kb()
            print("soak: warm after %.0f s, server VmRSS %d kB (%d kB before a first pass over the API)" % (
                warm_at, rss_warm, rss_before_api))
    rc = load.wait()
    killer.cancel()
    stop_trace.set()
    sampler.join()
    problems = []
    if rc != 0:
        problems.append("busylamp-load soak exited %d" % rc)
    report = json.load(open(report_path)) if os.path.exists(report_path) else None
    if report is None:
        problems.append("no report from busylamp-load soak")
        report = {"phones": [], "watches": [], "counts": {}, "failures": {}, "failureSamples": []}

    states, lamps, listed = api_view(api, sorted({w["target"] for w in report["watches"]}))

    # --- the lamps: every watcher's last NOTIFY against the API --------------------------
    lamp_wrong = []
    for w in report["watches"]:
        api_state = states[w["target"]]["state"]
        if w["state"] != api_state:
            lamp_wrong.append("%s watching %s: last NOTIFY %s, API %s" % (w["watcher"], w["target"], w["state"], api_state))
        elif api_state != "idle":
            lamp_wrong.append("%s watching %s: %s at the end, every call ended" % (w["watcher"], w["target"], api_state))
    if lamp_wrong:
        problems.append("%d lamps wrong, e.g. %s" % (len(lamp_wrong), "; ".join(lamp_wrong[:5])))

    # --- registrations -------------------------------------------------------------------
    reg_wrong = []
    for p in report["phones"]:
        api_registered = lamps.get(p["ext"], {}).get("registered")
        if p["registered"] != api_registered:
            reg_wrong.append("%s: tool %s, API %s" % (p["ext"], p["registered"], api_registered))
    for ext in states:
        per_line = states[ext]["registered"]
        if per_line != lamps.get(ext, {}).get("registered"):
            reg_wrong.append("%s: /state says %s, /lamps %s" % (ext, per_line, lamps.get(ext, {}).get("registered")))
    registered = sum(1 for p in report["phones"] if p["registered"])
    if reg_wrong:
        problems.append("%d registrations differ, e.g. %s" % (len(reg_wrong), "; ".join(reg_wrong[:5])))
    if registered < len(report["phones"]):
        problems.append("%d of %d phones not registered at the end" % (len(report["phones"]) - registered, len(report["phones"])))

    # --- subscriptions -------------------------------------------------------------------
    dialog = [s for s in listed if s.get("event") == "dialog"]
    api_pairs = sorted((s["watcher"], s["target"]) for s in dialog)
    tool_pairs = sorted((w["watcher"], w["target"]) for w in report["watches"] if w["active"])
    if api_pairs != tool_pairs:
        only_api = sorted(set(api_pairs) - set(tool_pairs))
        only_tool = sorted(set(tool_pairs) - set(api_pairs))
        problems.append("subscriptions: API %d, tool %d active; only in the API %s, only in the tool %s" % (
            len(api_pairs), len(tool_pairs), only_api[:5], only_tool[:5]))
    if len(tool_pairs) < len(report["watches"]):
        problems.append("%d of %d subscriptions not active at the end" % (len(report["watches"]) - len(tool_pairs), len(report["watches"])))
    never = [w for w in report["watches"] if w["notifies"] == 0]
    if never:
        problems.append("%d subscriptions never got a NOTIFY" % len(never))

    # --- failures ------------------------------------------------------------------------
    failures = sum(report["failures"].values())
    if failures > a.max_failures:
        problems.append("%d transaction failures (at most %d): %s; e.g. %s" % (
            failures, a.max_failures, report["failures"], report["failureSamples"][:5]))

    # --- memory --------------------------------------------------------------------------
    samples = []
    deadline = time.time() + a.rss_wait
    while True:
        samples.append(server.rss_kb())
        if rss_warm and samples[-1] <= rss_warm * (1 + a.rss_growth / 100) and len(samples) >= 3:
            break
        if time.time() >= deadline:
            break
        time.sleep(1)
    rss_end = min(samples)
    growth = 100.0 * (rss_end - rss_warm) / rss_warm if rss_warm else float("nan")
    if rss_warm is None:
        problems.append("the warm-up never ended (no 'soak: warm' line)")
    elif growth > a.rss_growth:
        problems.append("VmRSS grew %.1f %% (%d kB after warm-up, %d kB at the end; samples %s), more than %.0f %%" % (
            growth, rss_warm, rss_end, samples, a.rss_growth))
    log_problems, first_lines = server.log_problems()

    # --- stop ----------------------------------------------------------------------------
    server_rc = server.stop()
    if server_rc != 0:
        problems.append("the server exited %s on SIGTERM, not 0" % server_rc)

    c = report["counts"]
    figures = {
        "seconds": a.seconds, "phones": len(report["phones"]), "registered_at_end": registered,
        "subscriptions": len(report["watches"]), "active_at_end": len(tool_pairs), "api_subscriptions": len(api_pairs),
        "register_ok": c.get("ok REGISTER", 0), "register_refreshes": c.get("register refreshes", 0),
        "subscribe_ok": c.get("ok SUBSCRIBE", 0), "subscribe_refreshes": c.get("subscribe refreshes", 0),
        "notifies": c.get("NOTIFY", 0), "calls": c.get("ended calls", 0), "calls_after_warmup": report.get("callsInRun", 0),
        "answered": c.get("ok INVITE", 0), "cancelled": c.get("cancelled INVITE", 0), "pickups": c.get("pickups", 0),
        "picked_up": c.get("ok INVITE (picker)", 0), "retransmissions": sum(v for k, v in c.items() if k.startswith("retransmitted")),
        "failures": failures, "rss_start_kb": rss_start, "rss_warm_kb": rss_warm, "rss_end_kb": rss_end,
        "rss_growth_pct": round(growth, 1), "server_log_problems": log_problems, "wall_s": round(time.time() - t0, 1),
        "server_exit": server_rc, "rss_trace": trace,
    }
    print()
    print("soak: %(phones)d phones (%(registered_at_end)d registered at the end), %(subscriptions)d subscriptions "
          "(%(active_at_end)d active, API lists %(api_subscriptions)d)" % figures)
    print("soak: REGISTER 200 %(register_ok)d (refreshes %(register_refreshes)d), SUBSCRIBE 2xx %(subscribe_ok)d "
          "(refreshes %(subscribe_refreshes)d), NOTIFY %(notifies)d" % figures)
    print("soak: calls %(calls)d (after warm-up %(calls_after_warmup)d): answered %(answered)d, cancelled %(cancelled)d, "
          "pickups %(pickups)d (%(picked_up)d answered); retransmissions %(retransmissions)d, failures %(failures)d" % figures)
    print("soak: server VmRSS %(rss_start_kb)d kB at start, %(rss_warm_kb)s kB after warm-up, %(rss_end_kb)d kB at the end "
          "(%(rss_growth_pct)+.1f %%); %(server_log_problems)d warning/error log lines; %(wall_s).0f s in all" % figures)
    if trace:
        step = max(1, len(trace) // 8)
        print("soak: VmRSS during the load (s: kB): %s" % ", ".join("%d: %d" % t for t in trace[::step] + [trace[-1]]))
    if log_problems:
        print("soak: first log lines at warning or worse: %s" % first_lines)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(figures, f, indent=2)
    if problems:
        print()
        for p in problems:
            print("soak: FAILED: " + p, file=sys.stderr)
        print("soak: the run's files are in %s" % folder, file=sys.stderr)
        return 1
    print("soak: PASSED (%.0f s of load)" % a.seconds)
    if not a.out:
        subprocess.run(["rm", "-rf", folder])
    return 0


if __name__ == "__main__":
    sys.exit(main())
