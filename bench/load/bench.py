#!/usr/bin/env python3
"""BusyLamp beside Kamailio, both driven by busylamp-load: the runs behind scripts/bench.

    python3 bench/load/bench.py --busylamp BIN --load BIN --work DIR
        [--servers busylamp kamailio] [--loads subscribe fanout memory]
        [--rates 2000 4000 ...] [--runs 3] [--seconds 10] [--watchers 1000 10000]
        [--sipp] [--quick]

Every run starts a fresh server (benchlib's BusyLamp or Kamailio, 127.0.0.1, a port the OS
picked), runs one busylamp-load command against it, reads the tool's JSON and the server's CPU
time (/proc, every Kamailio process), and stops the server by its PID. The servers take turns
run by run (busylamp r1, kamailio r1, busylamp r2, ...), so that what else the machine does
hits both alike.

Loads:
  subscribe  the SUBSCRIBE-with-digest ladder: at each --rates rate, --seconds of offered
             subscriptions (401, SUBSCRIBE with Authorization, 200, initial NOTIFY answered),
             the watchers of bench/subscribe/generate.py's data in turn (re-subscribing with a
             new Call-ID when the rate x seconds is more than there are). A run is clean when
             nothing failed, timed out or stayed unfinished and retransmissions are at most
             --max-retrans of the requests. A server stops climbing after a rate with no clean
             run. Server CPU per subscription = its CPU time during the run / subscriptions.
             With --sipp, SIPp (bench/subscribe/subscribe_digest.xml) runs the same rate
             against the same servers in the same rotation, as a cross-check of the tool.
  fanout     W watchers (bench/calls/bench.py's data: distinct lines, digest) subscribe to one
             line; then calls from the trunk to it, one at a time; the tool times every
             watcher's NOTIFY from the INVITE (early), the callee's 200 (confirmed) and the
             BYE (idle).
  memory     every watcher subscribes once at --memory-rate; after --settle seconds (UDP
             transactions gone) memory grows by: BusyLamp VmRSS, Kamailio shm real_used (and
             the PSS of all its processes), divided by the subscriptions.

Rows: WORK/subscribe.csv, WORK/fanout.csv, WORK/memory.csv; the tables (medians of the runs,
with min..max, and BusyLamp / Kamailio ratios): standard output and WORK/summary.md.
Loopback only; every busylamp-load and SIPp run is bounded by its count, its --duration and
--drain, and a `timeout` around it.
"""
import argparse
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
sys.path.insert(0, BENCH)
from benchlib import DOMAIN, HOST, BusyLamp, Kamailio, free_port, loadavg, log, med, write_row  # noqa: E402


def load_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


calls_bench = load_module("calls_bench", os.path.join(BENCH, "calls", "bench.py"))
subscribe_bench = load_module("subscribe_bench", os.path.join(BENCH, "subscribe", "bench.py"))

NAMES = {"busylamp": "BusyLamp", "kamailio": "Kamailio"}


# ---------------------------------------------------------------- servers and the tool
def make_server(kind, a, data, tag):
    d = os.path.join(a.work, "runs", tag)
    if kind == "busylamp":
        return BusyLamp(a.busylamp, os.path.join(data, "directory.yaml"), d)
    return Kamailio(data, d, children=a.kam_children, shm=a.kam_shm)


def stop(srv):
    """srv.stop(), and when its process outlives benchlib's waits (Kamailio freeing a large shm
    under load can), SIGKILL by PID again and wait up to a minute more."""
    try:
        return srv.stop()
    except subprocess.TimeoutExpired:
        log("%s did not stop in time; SIGKILL by PID and waiting" % srv.name)
        for pid in srv.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            return srv.p.wait(60)
        except subprocess.TimeoutExpired:
            raise RuntimeError("%s (pid %d) would not stop" % (srv.name, srv.p.pid))


def domain_of(srv):
    return DOMAIN if isinstance(srv, BusyLamp) else srv.domain


def run_load(a, srv, args, tag, limit):
    """busylamp-load ARGS against srv; its JSON as a dict (its output in WORK/runs/TAG.log)."""
    out = os.path.join(a.work, "runs", tag + "-load.json")
    logf = os.path.join(a.work, "runs", tag + "-load.log")
    # Phones come from many addresses; one socket would put every flow on one of BusyLamp's
    # shards (SO_REUSEPORT spreads by source address). Kamailio's children share one socket.
    cmd = [a.load] + args + ["--server", "%s:%d" % (HOST, srv.port), "--domain", domain_of(srv),
                             "--sockets", str(a.load_sockets), "--json", out, "--quiet"]
    with open(logf, "w") as fh:
        fh.write(" ".join(cmd) + "\n")
        fh.flush()
        rc = subprocess.run(["timeout", str(int(limit))] + cmd, stdout=fh, stderr=subprocess.STDOUT).returncode
    if rc != 0 or not os.path.exists(out):
        raise RuntimeError("busylamp-load rc %s, see %s" % (rc, logf))
    return json.load(open(out))


def lat(flows, name, q):
    return flows["latency_ms"].get(name, {}).get(q, float("nan"))


# ---------------------------------------------------------------- subscribe ladder
def subscribe_run(kind, driver, a, rate, run):
    tag = "sub-%s-%s-r%d-%d" % (kind, driver, rate, run)
    srv = make_server(kind, a, a.sub_data, tag + "-server")
    la = loadavg()
    srv.start()
    try:
        time.sleep(1)
        c0 = srv.cpu()
        t0 = time.time()
        if driver == "busylamp-load":
            r = run_load(a, srv, ["subscribe", "--users", os.path.join(a.sub_data, "watchers.csv"),
                                  "--rate", str(rate), "--duration", str(a.seconds), "--drain", str(a.drain)],
                         tag, a.seconds + a.drain + 60)
            f = r["flows"]
            res = dict(ok=f["succeeded"], failed=f["failed"], timeouts=f["timeouts"], unfinished=f["unfinished"],
                       offered=f["started"], achieved_per_s=f["completed_per_s"], retrans=f["retransmissions"],
                       retrans_ratio=f["retransmission_ratio"],
                       sub200_p50_ms=lat(f, "subscribe_2xx", "p50_ms"), sub200_p99_ms=lat(f, "subscribe_2xx", "p99_ms"),
                       notify_p50_ms=lat(f, "subscribe_first_notify", "p50_ms"),
                       notify_p99_ms=lat(f, "subscribe_first_notify", "p99_ms"),
                       notify_p999_ms=lat(f, "subscribe_first_notify", "p99_9_ms"),
                       notify_retrans=f["counters"]["notify_retransmissions_received"],
                       driver_cpu_s=r["tool_cpu_s"], failures=json.dumps(f["failures_by_status"]))
        else:
            calls = int(rate * a.seconds)
            s = subscribe_bench.sipp(srv, a.sub_data, domain_of(srv), rate, calls, tag, os.path.join(a.work, "runs"))
            res = dict(ok=s["ok"], failed=s["failed"], timeouts=s["timeouts"], unfinished=calls - s["ok"] - s["failed"],
                       offered=calls, achieved_per_s=s["achieved_per_s"], retrans=s["sub_retrans"],
                       retrans_ratio=s["sub_retrans"] / max(1, 2 * calls),
                       sub200_p50_ms=s["sub200_p50_ms"], sub200_p99_ms=s["sub200_p95_ms"],
                       notify_p50_ms=float("nan"), notify_p99_ms=s["subnotify_p99_ms"], notify_p999_ms=float("nan"),
                       notify_retrans=s["notify_retrans"], driver_cpu_s=s["sipp_cpu_s"], failures="")
        wall = time.time() - t0
        c1 = srv.cpu()
        alive = srv.alive()
    finally:
        rc = stop(srv)
    nbad, first_bad = srv.log_problems()
    row = dict(server=srv.name, driver=driver, rate=rate, run=run, seconds=a.seconds)
    row.update(res)
    row.update(server_cpu_s=round(c1 - c0, 2), server_cpu_us_per_sub=round(1e6 * (c1 - c0) / max(1, res["ok"]), 1),
               server_cores=round((c1 - c0) / max(0.001, wall), 2), loadavg_before=la, server_alive_after=alive,
               server_rc=rc, server_log_problems=nbad)
    row["clean"] = (res["failed"] == 0 and res["timeouts"] == 0 and res["unfinished"] == 0 and alive
                    and res["retrans_ratio"] <= a.max_retrans)
    write_row(os.path.join(a.work, "subscribe.csv"), row)
    log("%s/%s %d/s run %d: ok %d/%d failed %d timeouts %d unfinished %d, %.0f/s, retrans %d, SUB->200 p99 %s ms,"
        " NOTIFY p99 %s ms, server %.0f us/sub, driver CPU %s s%s"
        % (srv.name, driver, rate, run, res["ok"], res["offered"], res["failed"], res["timeouts"], res["unfinished"],
           res["achieved_per_s"], res["retrans"], res["sub200_p99_ms"], res["notify_p99_ms"],
           row["server_cpu_us_per_sub"], res["driver_cpu_s"], "" if row["clean"] else "  NOT CLEAN"))
    if nbad:
        log("  server log problems: %d %s" % (nbad, "".join(first_bad).strip()[:300]))
    return row


def subscribe_ladder(a):
    rows = []
    climbing = {(k, d): True for k in a.servers for d in a.drivers}
    for rate in a.rates:
        batch = {key: [] for key in climbing if climbing[key]}
        if not batch:
            break
        for run in range(1, a.runs + 1):
            for key in batch:
                kind, driver = key
                try:
                    batch[key].append(subscribe_run(kind, driver, a, rate, run))
                except RuntimeError as e:
                    log("%s/%s %d/s run %d could not run: %s" % (kind, driver, rate, run, e))
        for key, rr in batch.items():
            rows += rr
            if not any(r["clean"] for r in rr):
                log("%s/%s: no clean run at %d/s, not climbing further" % (key[0], key[1], rate))
                climbing[key] = False
    return rows


# ---------------------------------------------------------------- fan-out
def fanout_run(kind, a, watchers, run):
    tag = "fan-%s-w%d-%d" % (kind, watchers, run)
    trunk_port = free_port()
    data = calls_bench.write_data(os.path.join(a.work, "runs", tag + "-data"), 1, watchers, trunk_port)
    srv = make_server(kind, a, data, tag + "-server")
    big = watchers >= 5000
    ring, talk = (a.big_ring_ms, a.big_talk_ms) if big else (a.ring_ms, a.talk_ms)
    ncalls = a.big_calls if big else a.fanout_calls
    interval = ring + talk + (10000 if big else 1000)
    la = loadavg()
    srv.start()
    try:
        time.sleep(1)
        c0 = srv.cpu()
        limit = watchers / a.sub_rate + ncalls * interval / 1000.0 + 120
        r = run_load(a, srv, ["fanout", "--watchers", os.path.join(data, "watchers.csv"),
                              "--callees", os.path.join(data, "fanout_callee.csv"),
                              "--callers", os.path.join(data, "fanout_calls.csv"), "--trunk",
                              "--caller-port", str(trunk_port), "--calls", str(ncalls), "--ring-ms", str(ring),
                              "--talk-ms", str(talk), "--call-interval-ms", str(interval),
                              "--rate", str(a.sub_rate), "--drain", "10"], tag, limit)
        c1 = srv.cpu()
        alive = srv.alive()
    finally:
        rc = stop(srv)
    f, fo = r["flows"], r["fanout"]
    setup = r.get("setup") or {}
    row = dict(server=srv.name, watchers=watchers, run=run, calls=fo["calls"], ring_ms=ring, talk_ms=talk,
               subscribed=f["succeeded"], sub_failed=f["failed"] + f["timeouts"] + f["unfinished"],
               calls_ok=setup.get("succeeded", 0) - 1, watchers_median=fo["watchers_median"])
    for lamp in ("early", "confirmed", "idle"):
        x = fo[lamp]
        row.update({"%s_delivered" % lamp: x["delivered"], "%s_expected" % lamp: x["expected"],
                    "%s_p50_ms" % lamp: x["p50_ms"], "%s_p99_ms" % lamp: x["p99_ms"],
                    "%s_last_ms" % lamp: x["last_median_ms"]})
    row.update(notifies=fo["notifies_received"],
               notify_retrans=f["counters"]["notify_retransmissions_received"],
               server_cpu_s=round(c1 - c0, 2),
               server_cpu_us_per_notify=round(1e6 * (c1 - c0) / max(1, fo["notifies_received"]), 1),
               loadavg_before=la, server_alive_after=alive, server_rc=rc)
    write_row(os.path.join(a.work, "fanout.csv"), row)
    log("%s fan-out %d watchers run %d: %d subscribed, %d calls; early %d/%d p50 %s p99 %s last %s ms;"
        " confirmed %d/%d; idle %d/%d; server %.0f us/NOTIFY"
        % (srv.name, watchers, run, row["subscribed"], row["calls"], row["early_delivered"], row["early_expected"],
           row["early_p50_ms"], row["early_p99_ms"], row["early_last_ms"], row["confirmed_delivered"],
           row["confirmed_expected"], row["idle_delivered"], row["idle_expected"], row["server_cpu_us_per_notify"]))
    return row


# ---------------------------------------------------------------- memory
def memory_run(kind, a, run):
    tag = "mem-%s-%d" % (kind, run)
    srv = make_server(kind, a, a.sub_data, tag + "-server")
    srv.start()
    try:
        time.sleep(2)
        if kind == "busylamp":
            before = srv.rss_kb() * 1024
        else:
            before, pss0 = srv.shm_used()["real_used"], srv.pss_kb() * 1024
        n = a.watchers_total if not a.quick else min(a.watchers_total, 5000)
        r = run_load(a, srv, ["subscribe", "--users", os.path.join(a.sub_data, "watchers.csv"), "--rate",
                              str(a.memory_rate), "--count", str(n), "--duration", str(n / a.memory_rate + 1),
                              "--drain", "10"], tag, n / a.memory_rate + 90)
        time.sleep(a.settle)
        if kind == "busylamp":
            after, extra = srv.rss_kb() * 1024, float("nan")
        else:
            after = srv.shm_used()["real_used"]
            extra = round((srv.pss_kb() * 1024 - pss0) / max(1, r["flows"]["succeeded"]))
    finally:
        rc = stop(srv)
    ok = r["flows"]["succeeded"]
    row = dict(server=srv.name, run=run, subscriptions=ok, failed=r["flows"]["failed"],
               measure="VmRSS" if kind == "busylamp" else "shm real_used", before_bytes=before, after_bytes=after,
               settle_s=a.settle, bytes_per_sub=round((after - before) / max(1, ok)), pss_bytes_per_sub=extra,
               server_rc=rc)
    write_row(os.path.join(a.work, "memory.csv"), row)
    log("%s memory run %d: %d subscriptions, %s %d -> %d: %d bytes/subscription"
        % (srv.name, run, ok, row["measure"], before, after, row["bytes_per_sub"]))
    return row


# ---------------------------------------------------------------- tables
def median_of(rows, key):
    v = []
    for r in rows:
        try:
            x = float(r[key])
        except (TypeError, ValueError):
            continue
        if x == x:
            v.append(x)
    return statistics.median(v) if v else float("nan")


def ratio(b, k):
    return "%.2f" % (b / k) if b == b and k == k and k else "n/a"


def summary(sub, fan, mem, a):
    out = []
    if sub:
        out.append("### SUBSCRIBE with digest (%d s per run, %s)" % (a.seconds, "median (min..max) of the runs"))
        out.append("")
        out.append("| server | driver | offered /s | completed /s | clean runs | failed | timeouts | retrans "
                   "| SUB→200 p50 ms | SUB→200 p99 ms | SUB→NOTIFY p99 ms | server CPU µs/sub | driver CPU s | load avg |")
        out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        keys = []
        for r in sub:
            if (r["server"], r["driver"]) not in keys:
                keys.append((r["server"], r["driver"]))
        best = {}
        for key in keys:
            for rate in sorted({r["rate"] for r in sub if (r["server"], r["driver"]) == key}):
                rr = [r for r in sub if (r["server"], r["driver"]) == key and r["rate"] == rate]
                nclean = sum(1 for r in rr if r["clean"])
                if nclean == len(rr):
                    best[key] = max(best.get(key, 0), rate)
                out.append("| %s | %s | %s | %s | %d of %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                    key[0], key[1], "{:,}".format(rate), med(rr, "achieved_per_s"), nclean, len(rr), med(rr, "failed"),
                    med(rr, "timeouts"), med(rr, "retrans"), med(rr, "sub200_p50_ms", "{:.2f}"),
                    med(rr, "sub200_p99_ms", "{:.2f}"), med(rr, "notify_p99_ms", "{:.2f}"),
                    med(rr, "server_cpu_us_per_sub"), med(rr, "driver_cpu_s", "{:.2f}"),
                    med(rr, "loadavg_before", "{:.2f}")))
        out.append("")
        for key in keys:
            if key in best:
                out.append("- %s driven by %s: highest offered rate clean in every run: **%s/s**."
                           % (key[0], key[1], "{:,}".format(best[key])))
            else:
                out.append("- %s driven by %s: no offered rate was clean in every run." % key)
        b, k = best.get(("BusyLamp", "busylamp-load")), best.get(("Kamailio", "busylamp-load"))
        if b and k:
            out.append("- Highest clean rate, BusyLamp / Kamailio: **%s**." % ratio(b, k))
        common = sorted({r["rate"] for r in sub if r["server"] == "BusyLamp" and r["driver"] == "busylamp-load"}
                        & {r["rate"] for r in sub if r["server"] == "Kamailio" and r["driver"] == "busylamp-load"})
        for rate in common:
            bc = median_of([r for r in sub if r["server"] == "BusyLamp" and r["rate"] == rate
                            and r["driver"] == "busylamp-load"], "server_cpu_us_per_sub")
            kc = median_of([r for r in sub if r["server"] == "Kamailio" and r["rate"] == rate
                            and r["driver"] == "busylamp-load"], "server_cpu_us_per_sub")
            out.append("- At %s/s, server CPU per subscription: BusyLamp %.0f µs, Kamailio %.0f µs "
                       "(BusyLamp / Kamailio %s)." % ("{:,}".format(rate), bc, kc, ratio(bc, kc)))
    if fan:
        out.append("")
        out.append("### NOTIFY fan-out: W watchers of one line, calls one at a time")
        out.append("")
        out.append("| server | watchers | calls | early delivered/expected | early p50 ms | early p99 ms "
                   "| early last ms | confirmed p99 ms | idle p99 ms | server CPU µs/NOTIFY |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for w in sorted({r["watchers"] for r in fan}):
            for s in [NAMES[k] for k in a.servers]:
                rr = [r for r in fan if r["server"] == s and r["watchers"] == w]
                if not rr:
                    continue
                out.append("| %s | %s | %s | %s/%s | %s | %s | %s | %s | %s | %s |" % (
                    s, "{:,}".format(w), med(rr, "calls"), med(rr, "early_delivered"), med(rr, "early_expected"),
                    med(rr, "early_p50_ms", "{:.1f}"), med(rr, "early_p99_ms", "{:.1f}"),
                    med(rr, "early_last_ms", "{:.1f}"), med(rr, "confirmed_p99_ms", "{:.1f}"),
                    med(rr, "idle_p99_ms", "{:.1f}"), med(rr, "server_cpu_us_per_notify")))
            bl = [r for r in fan if r["server"] == "BusyLamp" and r["watchers"] == w]
            km = [r for r in fan if r["server"] == "Kamailio" and r["watchers"] == w]
            if bl and km:
                out.append("| ratio BusyLamp / Kamailio | %s | | | %s | %s | %s | | | %s |" % (
                    "{:,}".format(w), ratio(median_of(bl, "early_p50_ms"), median_of(km, "early_p50_ms")),
                    ratio(median_of(bl, "early_p99_ms"), median_of(km, "early_p99_ms")),
                    ratio(median_of(bl, "early_last_ms"), median_of(km, "early_last_ms")),
                    ratio(median_of(bl, "server_cpu_us_per_notify"), median_of(km, "server_cpu_us_per_notify"))))
    if mem:
        out.append("")
        out.append("### Memory per active subscription (after %d s settle)" % a.settle)
        out.append("")
        out.append("| server | measure | subscriptions | bytes per subscription | PSS bytes per subscription |")
        out.append("|---|---|---:|---:|---:|")
        for s in [NAMES[k] for k in a.servers]:
            mm = [m for m in mem if m["server"] == s]
            if mm:
                out.append("| %s | %s | %s | %s | %s |" % (s, mm[0]["measure"], med(mm, "subscriptions"),
                                                           med(mm, "bytes_per_sub"), med(mm, "pss_bytes_per_sub")))
        bm, km = [m for m in mem if m["server"] == "BusyLamp"], [m for m in mem if m["server"] == "Kamailio"]
        if bm and km:
            out.append("| ratio BusyLamp / Kamailio | | | %s | |" % ratio(median_of(bm, "bytes_per_sub"),
                                                                        median_of(km, "bytes_per_sub")))
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--busylamp", required=True)
    ap.add_argument("--load", required=True, help="the busylamp-load binary")
    ap.add_argument("--work", required=True)
    ap.add_argument("--servers", nargs="+", default=["busylamp", "kamailio"], choices=["busylamp", "kamailio"])
    ap.add_argument("--loads", nargs="+", default=["subscribe", "fanout", "memory"],
                    choices=["subscribe", "fanout", "memory"])
    ap.add_argument("--rates", nargs="+", type=int, default=[2000, 4000, 6000, 8000, 10000, 15000, 20000])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--load-sockets", type=int, default=8, help="busylamp-load's client sockets (source ports)")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--drain", type=float, default=10, help="seconds the tool waits for flows in flight")
    ap.add_argument("--max-retrans", type=float, default=0.001, help="clean: retransmissions / requests at most")
    ap.add_argument("--sipp", action="store_true", help="SIPp too in the subscribe ladder (a cross-check)")
    ap.add_argument("--accounts", type=int, default=400)
    ap.add_argument("--lines", type=int, default=101)
    ap.add_argument("--watchers", nargs="+", type=int, default=[1000, 10000])
    ap.add_argument("--sub-rate", type=int, default=2000, help="fan-out: the watchers' SUBSCRIBE rate")
    ap.add_argument("--fanout-calls", type=int, default=5)
    ap.add_argument("--ring-ms", type=int, default=1000)
    ap.add_argument("--talk-ms", type=int, default=1000)
    ap.add_argument("--big-calls", type=int, default=2)
    ap.add_argument("--big-ring-ms", type=int, default=5000)
    ap.add_argument("--big-talk-ms", type=int, default=5000)
    ap.add_argument("--memory-runs", type=int, default=3)
    ap.add_argument("--memory-rate", type=int, default=2000)
    ap.add_argument("--settle", type=int, default=35)
    ap.add_argument("--kam-children", type=int, default=2)
    ap.add_argument("--kam-shm", type=int, default=2048)
    ap.add_argument("--quick", action="store_true", help="a short trial (about 3 minutes)")
    a = ap.parse_args()
    if a.quick:
        a.rates, a.runs, a.seconds, a.watchers = [2000, 8000], 1, 5, [1000]
        a.fanout_calls, a.memory_runs, a.settle, a.accounts = 2, 1, 10, 100
    a.drivers = ["busylamp-load"] + (["sipp"] if a.sipp else [])
    a.work = os.path.abspath(a.work)
    a.busylamp, a.load = os.path.abspath(a.busylamp), os.path.abspath(a.load)
    os.makedirs(os.path.join(a.work, "runs"), exist_ok=True)
    for f in ("subscribe.csv", "fanout.csv", "memory.csv"):
        if os.path.exists(os.path.join(a.work, f)):
            os.remove(os.path.join(a.work, f))
    a.sub_data = os.path.join(a.work, "subscribe-data")
    subprocess.run([sys.executable, os.path.join(BENCH, "subscribe", "generate.py"), a.sub_data,
                    "--accounts", str(a.accounts), "--lines", str(a.lines), "--domain", DOMAIN],
                   check=True, stdout=subprocess.DEVNULL)
    a.watchers_total = a.accounts * a.lines
    sub, fan, mem = [], [], []
    if "subscribe" in a.loads:
        sub = subscribe_ladder(a)
    if "fanout" in a.loads:
        for w in a.watchers:
            for run in range(1, a.runs + 1):
                for kind in a.servers:
                    try:
                        fan.append(fanout_run(kind, a, w, run))
                    except RuntimeError as e:
                        log("%s fan-out %d run %d could not run: %s" % (kind, w, run, e))
    if "memory" in a.loads:
        for run in range(1, a.memory_runs + 1):
            for kind in a.servers:
                try:
                    mem.append(memory_run(kind, a, run))
                except RuntimeError as e:
                    log("%s memory run %d could not run: %s" % (kind, run, e))
    text = summary(sub, fan, mem, a)
    open(os.path.join(a.work, "summary.md"), "w").write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
