#!/usr/bin/env python3
"""SUBSCRIBE with digest, BusyLamp beside Kamailio: the runs behind scripts/bench-subscribe.

    python3 bench/subscribe/bench.py --busylamp BIN --data DIR --work DIR
        [--servers busylamp kamailio] [--busylamp-rates 250 400 ...] [--kamailio-rates 400 1000 ...]
        [--runs 3] [--stop-when-dirty]
        [--memory-runs 3] [--memory-rate 1000] [--settle 35] [--calls N]

DIR (--data) is what generate.py wrote. Every run starts a fresh server (BusyLamp with a new
--data folder under --work, or Kamailio with a new runtime folder), offers every watcher of
watchers.csv once (SIPp: SUBSCRIBE, 401, SUBSCRIBE with Authorization, 200, the initial
NOTIFY answered 200) at a fixed rate, reads SIPp's and the server's figures, and stops the
server by its PID. Loopback only: every socket is 127.0.0.1 on a port the OS picked free;
every SIPp run is bounded by -m (count), -recv_timeout and a `timeout` wrapper, every server
wait by a deadline.

Rows go to WORK/results.csv and WORK/memory.csv; the Markdown tables (medians of the runs) to
standard output and WORK/summary.md.
"""
import argparse
import csv
import glob
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from benchlib import (HOST, BusyLamp, Kamailio, free_port, loadavg, log, med, pct, sipp_rtd,  # noqa: E402
                      sipp_stat, sipp_trace_args, stat_int, time_cpu_s, write_row)

SCENARIO = os.path.join(HERE, "subscribe_digest.xml")



# ---------------------------------------------------------------- SIPp
def sipp(server, data, domain, rate, calls, tag, work):
    d = os.path.join(work, tag + "-sipp")
    subprocess.run(["rm", "-rf", d], check=True)
    os.makedirs(d)
    limit = int(3 * calls / rate) + 60
    cmd = ["sipp", "%s:%d" % (HOST, server.port), "-sf", SCENARIO, "-inf", os.path.join(data, "watchers.csv"),
           "-set", "dom", domain, "-i", HOST, "-p", str(free_port()), "-mp", str(free_port()),
           "-t", "u1", "-r", str(rate), "-m", str(calls), "-l", "10000",
           "-recv_timeout", "10000", "-max_recv_loops", "100000", "-buff_size", "4194304", "-nostdin",
           # a failed call is not followed by a BYE (the server has no dialog usage for it)
           "-default_behaviors", "all,-bye"] + sipp_trace_args(d, 100)
    timef = os.path.join(d, "time.txt")
    full = ["/usr/bin/time", "-f", "%e %U %S", "-o", timef, "timeout", str(limit)] + cmd
    with open(os.path.join(d, "stdout.log"), "w") as out:
        p = subprocess.Popen(full, stdout=out, stderr=subprocess.STDOUT, cwd=d, start_new_session=True)
        try:
            rc = p.wait(limit + 30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            rc = p.wait(10)
    res = dict(sipp_rc=rc, sipp_dir=d, sipp_cmd=" ".join(cmd))
    st, elapsed = sipp_stat(d, " (rc %s)" % rc)
    res.update(ok=int(st["SuccessfulCall(C)"]), failed=int(st["FailedCall(C)"]),
               sub_retrans=int(st["Retransmissions(C)"]), elapsed_s=elapsed,
               unexpected=stat_int(st, "FailedUnexpectedMessage(C)"),
               timeouts=stat_int(st, "FailedMaxUDPRetrans(C)") + stat_int(st, "FailedCmdNotSent(C)"))
    counts = glob.glob(os.path.join(d, "*_counts.csv"))
    notify_retrans = 0
    if counts:
        crow = list(csv.reader(open(counts[0]), delimiter=";"))
        for k, v in zip(crow[0], crow[-1]):
            if k.endswith("NOTIFY_Retrans") and v.strip().isdigit():
                notify_retrans += int(v)
    res["notify_retrans"] = notify_retrans
    rtd = sipp_rtd(d)
    for key, name in (("1", "sub200"), ("2", "subnotify")):
        v = rtd.get(key, [])
        for q in (50, 95, 99):
            res["%s_p%d_ms" % (name, q)] = pct(v, q)
    res["sipp_cpu_s"] = time_cpu_s(timef)
    res["achieved_per_s"] = round(res["ok"] / res["elapsed_s"], 1) if res["elapsed_s"] > 0 else 0.0
    return res


# ---------------------------------------------------------------- runs
def make_server(kind, a, tag):
    if kind == "busylamp":
        return BusyLamp(a.busylamp, os.path.join(a.data, "directory.yaml"), os.path.join(a.work, tag))
    return Kamailio(a.data, os.path.join(a.work, tag), children=a.kam_children, shm=a.kam_shm)


def rate_run(kind, a, rate, run):
    tag = "%s-r%d-%d" % (kind, rate, run)
    srv = make_server(kind, a, tag)
    la = loadavg()
    srv.start()
    try:
        time.sleep(1)
        c0 = srv.cpu()
        r = sipp(srv, a.data, a.domain, rate, a.calls, tag, a.work)
        c1 = srv.cpu()
        alive = srv.alive()
    finally:
        rc = srv.stop()
    nbad, first_bad = srv.log_problems()
    row = dict(server=srv.name, rate=rate, run=run, calls=a.calls, ok=r["ok"], failed=r["failed"],
               achieved_per_s=r["achieved_per_s"], elapsed_s=r["elapsed_s"], sub_retrans=r["sub_retrans"],
               notify_retrans=r["notify_retrans"], unexpected=r["unexpected"],
               sub200_p50_ms=r["sub200_p50_ms"], sub200_p95_ms=r["sub200_p95_ms"],
               subnotify_p95_ms=r["subnotify_p95_ms"], subnotify_p99_ms=r["subnotify_p99_ms"],
               server_cpu_us_per_sub=round(1e6 * (c1 - c0) / max(1, r["ok"]), 1),
               sipp_cpu_s=r["sipp_cpu_s"], loadavg_before=la, server_alive_after=alive, server_rc=rc,
               server_log_problems=nbad, server_start_s=round(srv.start_s, 1), sipp_rc=r["sipp_rc"],
               sipp_dir=r["sipp_dir"])
    clean = row["failed"] == 0 and row["sub_retrans"] == 0 and row["ok"] == a.calls
    row["clean"] = clean
    write_row(os.path.join(a.work, "results.csv"), row)
    log("%s %d/s run %d: ok %d failed %d achieved %.0f/s SUB retrans %d NOTIFY retrans %d cpu %.0f us/sub%s"
        % (srv.name, rate, run, row["ok"], row["failed"], row["achieved_per_s"], row["sub_retrans"],
           row["notify_retrans"], row["server_cpu_us_per_sub"], "" if clean else "  NOT CLEAN"))
    if not clean or nbad:
        log("  server log problems: %d %s; SIPp errors: %s/errors.log" % (nbad, "".join(first_bad).strip()[:400], r["sipp_dir"]))
    if kind == "busylamp" and not alive:
        log("  busylamp died during the run (rc %s), see %s" % (rc, srv.dir))
    return row


def trimmed_per_sub(srv, before, ok):
    """VmRSS growth per subscription after glibc's malloc_trim(0), called in the server by gdb:
    the heap pages that transactions and buffers used during the load and that malloc keeps
    free go back to the OS, so what remains is closer to what the subscriptions hold. NaN
    without gdb. The server is paused for the call and goes on afterwards."""
    if not shutil.which("gdb"):
        return float("nan")
    r = subprocess.run(["gdb", "-p", str(srv.p.pid), "-batch", "-nx", "-ex", "call (int) malloc_trim(0)"],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0 or not srv.alive():
        log("  gdb malloc_trim failed: %s" % r.stderr[-300:])
        return float("nan")
    time.sleep(1)
    return round((srv.rss_kb() * 1024 - before) / max(1, ok))


def memory_run(kind, a, run):
    tag = "%s-mem-%d" % (kind, run)
    srv = make_server(kind, a, tag)
    la = loadavg()
    srv.start()
    try:
        time.sleep(2)
        if kind == "busylamp":
            before = srv.rss_kb() * 1024
        else:
            before = srv.shm_used()["real_used"]
            pss0 = srv.pss_kb() * 1024
        r = sipp(srv, a.data, a.domain, a.memory_rate, a.calls, tag, a.work)
        if kind == "busylamp":
            right_after = srv.rss_kb() * 1024
        else:
            right_after = srv.shm_used()["real_used"]
        # UDP server transactions stay 32 s (Timer J = 64*T1) after their final response in
        # BusyLamp, about 5 s (tm wait timer) in Kamailio: measure after both have passed
        time.sleep(a.settle)
        if kind == "busylamp":
            after = srv.rss_kb() * 1024
            extra = dict(trimmed_bytes_per_sub=trimmed_per_sub(srv, before, r["ok"]))
        else:
            after = srv.shm_used()["real_used"]
            pss1 = srv.pss_kb() * 1024
            extra = dict(pss_bytes_per_sub=round((pss1 - pss0) / max(1, r["ok"])))
        alive = srv.alive()
    finally:
        rc = srv.stop()
    # the same columns for both servers: memory.csv has one header
    extra = dict(dict(trimmed_bytes_per_sub=float("nan"), pss_bytes_per_sub=float("nan")), **extra)
    row = dict(server=srv.name, run=run, rate=a.memory_rate, ok=r["ok"], failed=r["failed"],
               measure="VmRSS" if kind == "busylamp" else "shm real_used",
               before_bytes=before, right_after_bytes=right_after, settled_bytes=after, settle_s=a.settle,
               bytes_per_sub=round((after - before) / max(1, r["ok"])),
               bytes_per_sub_right_after=round((right_after - before) / max(1, r["ok"])),
               loadavg_before=la, server_alive_after=alive, server_rc=rc)
    row.update(extra)
    write_row(os.path.join(a.work, "memory.csv"), row)
    log("%s memory run %d: %d subscriptions (%d failed), %s %d -> %d bytes: %d bytes/subscription"
        % (srv.name, run, r["ok"], r["failed"], row["measure"], before, after, row["bytes_per_sub"]))
    return row


# ---------------------------------------------------------------- tables
def summary(rows, mem, a):
    out = []
    servers = []
    for r in rows:
        if r["server"] not in servers:
            servers.append(r["server"])
    out.append("| server | offered /s | achieved /s | clean runs | failed | SUBSCRIBE retrans | NOTIFY retrans "
               "| SUB→200 p95 ms | SUB→NOTIFY p99 ms | server CPU µs/subscription | load avg before |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    best = {}
    for s in servers:
        for rate in sorted({r["rate"] for r in rows if r["server"] == s}):
            rr = [r for r in rows if r["server"] == s and r["rate"] == rate]
            nclean = sum(1 for r in rr if r["clean"])
            if nclean == len(rr):
                best[s] = max(best.get(s, 0), rate)
            out.append("| %s | %s | %s | %d of %d | %s | %s | %s | %s | %s | %s | %s |" % (
                s, "{:,}".format(rate), med(rr, "achieved_per_s"), nclean, len(rr), med(rr, "failed"),
                med(rr, "sub_retrans"), med(rr, "notify_retrans"), med(rr, "sub200_p95_ms"),
                med(rr, "subnotify_p99_ms"), med(rr, "server_cpu_us_per_sub"),
                med(rr, "loadavg_before", "{:.2f}")))
    out.append("")
    for s in servers:
        if s in best:
            rr = [r for r in rows if r["server"] == s and r["rate"] == best[s]]
            out.append("- %s: highest offered rate clean in every run: **%s/s** (achieved %s/s)."
                       % (s, "{:,}".format(best[s]), med(rr, "achieved_per_s")))
        else:
            out.append("- %s: no offered rate was clean in every run." % s)
    if "BusyLamp" in best and "Kamailio" in best:
        out.append("- Ratio BusyLamp / Kamailio of the highest clean rates: **%.2f**." % (best["BusyLamp"] / best["Kamailio"]))
    common = sorted({r["rate"] for r in rows if r["server"] == "BusyLamp"} & {r["rate"] for r in rows if r["server"] == "Kamailio"})
    for rate in common:
        b = statistics.median(float(r["server_cpu_us_per_sub"]) for r in rows if r["server"] == "BusyLamp" and r["rate"] == rate)
        k = statistics.median(float(r["server_cpu_us_per_sub"]) for r in rows if r["server"] == "Kamailio" and r["rate"] == rate)
        if b > 0:
            out.append("- At %s/s: server CPU per subscription BusyLamp %.0f µs, Kamailio %.0f µs (Kamailio / BusyLamp %.2f)."
                       % ("{:,}".format(rate), b, k, k / b))
    if mem:
        out.append("")
        out.append("| server | what | subscriptions active (median) | before | after %d s settle | bytes per subscription | right after the load, bytes per subscription |" % a.settle)
        out.append("|---|---|---:|---:|---:|---:|---:|")
        for s in servers:
            mm = [m for m in mem if m["server"] == s]
            if not mm:
                continue
            out.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                s, mm[0]["measure"], med(mm, "ok"), med(mm, "before_bytes"), med(mm, "settled_bytes"),
                med(mm, "bytes_per_sub"), med(mm, "bytes_per_sub_right_after")))
        bm = [m for m in mem if m["server"] == "BusyLamp"]
        if bm:
            out.append("")
            out.append("- BusyLamp, VmRSS growth per subscription after `malloc_trim(0)` (called in the server by gdb"
                       " after the settle, returning the heap pages malloc kept free): %s bytes."
                       % med(bm, "trimmed_bytes_per_sub"))
        km = [m for m in mem if m["server"] == "Kamailio"]
        if km:
            out.append("")
            out.append("- Kamailio, PSS of all its processes after the settle, bytes per subscription: %s."
                       % med(km, "pss_bytes_per_sub"))
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--busylamp", required=False)
    ap.add_argument("--data", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--domain", default="sip.busylamp.test")
    ap.add_argument("--servers", nargs="+", default=["busylamp", "kamailio"], choices=["busylamp", "kamailio"])
    ap.add_argument("--busylamp-rates", nargs="+", type=int, default=[500, 1000, 2000, 3000, 4000, 6000, 8000, 10000, 12000, 15000, 20000])
    ap.add_argument("--kamailio-rates", nargs="+", type=int, default=[400, 1000, 2000, 4000, 6000, 8000, 10000, 12000, 15000, 20000])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--calls", type=int, default=0, help="subscriptions per run (default: every watcher once)")
    ap.add_argument("--memory-runs", type=int, default=3)
    ap.add_argument("--memory-rate", type=int, default=400)
    ap.add_argument("--settle", type=int, default=35)
    ap.add_argument("--kam-children", type=int, default=2)
    ap.add_argument("--kam-shm", type=int, default=2048)
    ap.add_argument("--stop-when-dirty", action="store_true",
                    help="stop climbing the rates for a server after a rate with no clean run")
    a = ap.parse_args()
    if "busylamp" in a.servers and not a.busylamp:
        ap.error("--busylamp BIN is needed")
    a.data, a.work = os.path.abspath(a.data), os.path.abspath(a.work)
    if a.busylamp:
        a.busylamp = os.path.abspath(a.busylamp)
    watchers = sum(1 for _ in open(os.path.join(a.data, "watchers.csv"))) - 1
    if a.calls <= 0 or a.calls > watchers:
        a.calls = watchers
    os.makedirs(a.work, exist_ok=True)
    for f in ("results.csv", "memory.csv"):
        if os.path.exists(os.path.join(a.work, f)):
            os.remove(os.path.join(a.work, f))
    log("%d distinct watchers, %d subscriptions per run" % (watchers, a.calls))
    rows, mem = [], []
    for kind in a.servers:
        for rate in (a.busylamp_rates if kind == "busylamp" else a.kamailio_rates):
            batch = []
            for run in range(1, a.runs + 1):
                try:
                    batch.append(rate_run(kind, a, rate, run))
                except RuntimeError as e:
                    log("%s %d/s run %d could not run: %s" % (kind, rate, run, e))
            rows += batch
            if a.stop_when_dirty and batch and not any(r["clean"] for r in batch):
                log("%s: no clean run at %d/s, not climbing further" % (kind, rate))
                break
        for run in range(1, a.memory_runs + 1):
            try:
                mem.append(memory_run(kind, a, run))
            except RuntimeError as e:
                log("%s memory run %d could not run: %s" % (kind, run, e))
    text = summary(rows, mem, a)
    open(os.path.join(a.work, "summary.md"), "w").write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
