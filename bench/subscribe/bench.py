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
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HOST = "127.0.0.1"
SCENARIO = os.path.join(HERE, "subscribe_digest.xml")
KAM_CFG = os.path.join(HERE, "kamailio-blf-auth.cfg")
TICK = os.sysconf("SC_CLK_TCK")


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1 (chosen by the OS for UDP)."""
    for _ in range(50):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind((HOST, 0))
        port = u.getsockname()[1]
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind((HOST, port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise SystemExit("no free port")


def loadavg():
    return float(open("/proc/loadavg").read().split()[0])


def proc_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        st = f.read().rsplit(")", 1)[1].split()
    return (int(st[11]) + int(st[12])) / TICK


def children_of(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read().rsplit(")", 1)[1].split()
                if int(st[1]) == pid:
                    out.append(int(d))
            except (OSError, IndexError):
                pass
    return out


# ---------------------------------------------------------------- servers
class BusyLamp:
    name = "BusyLamp"

    def __init__(self, binary, directory, work, tag):
        self.binary, self.directory = binary, directory
        self.dir = os.path.join(work, tag)
        subprocess.run(["rm", "-rf", self.dir], check=True)
        os.makedirs(self.dir)
        self.p = None

    def start(self):
        self.out = open(os.path.join(self.dir, "stdout.log"), "w")
        self.err = open(os.path.join(self.dir, "server.log"), "w")
        cmd = [self.binary, "serve", "--directory", self.directory, "--data", os.path.join(self.dir, "data"),
               "--sip", "udp:%s:0" % HOST, "--sip", "tcp:%s:0" % HOST, "--http", "%s:0" % HOST]
        self.cmd = cmd
        t0 = time.time()
        self.p = subprocess.Popen(cmd, stdout=self.out, stderr=self.err, stdin=subprocess.DEVNULL)
        self.port = None
        while time.time() - t0 < 180:
            time.sleep(0.1)
            text = open(os.path.join(self.dir, "stdout.log")).read()
            m = re.search(r"^sip udp 127\.0\.0\.1:(\d+)$", text, re.M)
            if m:
                self.port = int(m.group(1))
            if re.search(r"^ready$", text, re.M) and self.port:
                self.start_s = time.time() - t0
                return self
            if self.p.poll() is not None:
                raise RuntimeError("busylamp exited rc=%s before ready; see %s/server.log" % (self.p.returncode, self.dir))
        self.stop()
        raise RuntimeError("busylamp not ready within 180 s; see %s" % self.dir)

    def cpu(self):
        return proc_cpu(self.p.pid)

    def rss_kb(self):
        with open("/proc/%d/status" % self.p.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def alive(self):
        return self.p is not None and self.p.poll() is None

    def stop(self):
        if not self.p:
            return None
        rc = self.p.poll()
        if rc is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                rc = self.p.wait(20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                rc = self.p.wait(5)
        self.out.close()
        self.err.close()
        self.p = None
        return rc

    def log_problems(self):
        """Lines of the server log at warning level or worse (kept short)."""
        path = os.path.join(self.dir, "server.log")
        bad = [l for l in open(path, errors="replace") if re.search(r"\b(warning|error|critical)\b", l)]
        return len(bad), bad[:3]


class Kamailio:
    name = "Kamailio"

    def __init__(self, data, work, tag, children=2, shm=2048, pkg=16):
        self.data = data
        self.run = os.path.join(work, tag)
        subprocess.run(["rm", "-rf", self.run], check=True)
        os.makedirs(os.path.join(self.run, "dbtext"))
        os.makedirs(os.path.join(self.run, "run"))
        self.children, self.shm, self.pkg = children, shm, pkg
        self.p = None

    def start(self):
        self.port = free_port()
        for t in ("version", "presentity", "active_watchers", "watchers", "xcap", "pua"):
            subprocess.run(["cp", "/usr/share/kamailio/dbtext/kamailio/" + t, self.run + "/dbtext/"], check=True)
        subprocess.run(["cp", os.path.join(self.data, "htable"), self.run + "/dbtext/htable"], check=True)
        with open(os.path.join(self.run, "dbtext", "version"), "a") as f:
            if "htable:" not in open(os.path.join(self.run, "dbtext", "version")).read():
                f.write("htable:2\n")
        cfg = open(KAM_CFG).read().replace("@RUN@", self.run).replace("@PORT@", str(self.port))
        cfgp = os.path.join(self.run, "kamailio.cfg")
        open(cfgp, "w").write(cfg)
        cmd = ["kamailio", "-f", cfgp, "-DD", "-E", "-Y", self.run + "/run",
               "-m", str(self.shm), "-M", str(self.pkg), "-n", str(self.children), "-N", "2"]
        self.cmd = cmd
        self.logf = open(os.path.join(self.run, "server.log"), "w")
        t0 = time.time()
        self.p = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  cwd=self.run)
        while time.time() - t0 < 60:
            time.sleep(0.2)
            if self.p.poll() is not None:
                raise RuntimeError("kamailio exited rc=%s; see %s/server.log" % (self.p.returncode, self.run))
            try:
                self.rpc("core.uptime")
                break
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
        else:
            self.stop()
            raise RuntimeError("kamailio not answering kamcmd within 60 s")
        self.start_s = time.time() - t0
        time.sleep(0.5)
        return self

    def rpc(self, *args):
        r = subprocess.run(["kamcmd", "-s", "unix:" + self.run + "/kamailio_ctl"] + list(args),
                           capture_output=True, text=True, timeout=20)
        if r.returncode != 0:
            raise RuntimeError("kamcmd %s: %s" % (args, r.stderr))
        return r.stdout

    def pids(self):
        return [self.p.pid] + children_of(self.p.pid)

    def cpu(self):
        tot = 0.0
        for pid in self.pids():
            try:
                tot += proc_cpu(pid)
            except OSError:
                pass
        return tot

    def shm_used(self):
        d = {}
        for line in self.rpc("core.shmmem").splitlines():
            k, _, v = line.strip().rstrip(",").partition(":")
            try:
                d[k.strip()] = int(v)
            except ValueError:
                pass
        return d

    def pss_kb(self):
        tot = 0
        for pid in self.pids():
            try:
                with open("/proc/%d/smaps_rollup" % pid) as f:
                    for line in f:
                        if line.startswith("Pss:"):
                            tot += int(line.split()[1])
            except OSError:
                pass
        return tot

    def alive(self):
        return self.p is not None and self.p.poll() is None

    def stop(self):
        if not self.p:
            return None
        pids = self.pids()
        rc = self.p.poll()
        if rc is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                rc = self.p.wait(20)
            except subprocess.TimeoutExpired:
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                rc = self.p.wait(5)
        for _ in range(50):
            alive = [pid for pid in pids if os.path.exists("/proc/%d" % pid)]
            if not alive:
                break
            time.sleep(0.2)
        self.logf.close()
        self.p = None
        return rc

    def log_problems(self):
        path = os.path.join(self.run, "server.log")
        bad = [l for l in open(path, errors="replace") if re.search(r"\b(ERROR|CRITICAL|ALERT)\b", l)]
        return len(bad), bad[:3]


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
           "-default_behaviors", "all,-bye",
           "-trace_stat", "-stf", os.path.join(d, "stat.csv"), "-fd", "1",
           "-trace_counts", "-trace_rtt", "-rtt_freq", "100",
           "-trace_err", "-error_file", os.path.join(d, "errors.log"),
           "-trace_screen", "-screen_file", os.path.join(d, "screen.log")]
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
    try:
        rows = list(csv.reader(open(os.path.join(d, "stat.csv")), delimiter=";"))
    except OSError:
        tail = open(os.path.join(d, "stdout.log"), errors="replace").read()[-600:]
        raise RuntimeError("SIPp wrote no statistics (rc %s): %s" % (rc, tail))
    st = dict(zip(rows[0], rows[-1]))
    start = float(st["StartTime"].split("\t")[-1])
    now = float(st["CurrentTime"].split("\t")[-1])
    res.update(ok=int(st["SuccessfulCall(C)"]), failed=int(st["FailedCall(C)"]),
               sub_retrans=int(st["Retransmissions(C)"]), elapsed_s=round(now - start, 3),
               unexpected=int(st.get("FailedUnexpectedMessage(C)", 0) or 0),
               timeouts=int(st.get("FailedMaxUDPRetrans(C)", 0) or 0) + int(st.get("FailedCmdNotSent(C)", 0) or 0))
    counts = glob.glob(os.path.join(d, "*_counts.csv"))
    notify_retrans = 0
    if counts:
        crow = list(csv.reader(open(counts[0]), delimiter=";"))
        for k, v in zip(crow[0], crow[-1]):
            if k.endswith("NOTIFY_Retrans") and v.strip().isdigit():
                notify_retrans += int(v)
    res["notify_retrans"] = notify_retrans
    rtd = {}
    for f in glob.glob(os.path.join(d, "*_rtt.csv")):
        with open(f) as fh:
            next(fh, None)
            for line in fh:
                p2 = line.strip().split(";")
                if len(p2) == 3:
                    try:
                        rtd.setdefault(p2[2], []).append(float(p2[1]))
                    except ValueError:
                        pass
    for key, name in (("1", "sub200"), ("2", "subnotify")):
        v = rtd.get(key, [])
        for q in (50, 95, 99):
            res["%s_p%d_ms" % (name, q)] = pct(v, q)
    try:
        e, u, s = open(timef).read().split()[-3:]
        res["sipp_cpu_s"] = round(float(u) + float(s), 2)
    except (OSError, ValueError):
        res["sipp_cpu_s"] = float("nan")
    res["achieved_per_s"] = round(res["ok"] / res["elapsed_s"], 1) if res["elapsed_s"] > 0 else 0.0
    return res


def pct(v, q):
    if not v:
        return float("nan")
    v = sorted(v)
    return v[min(len(v) - 1, max(0, int(round(q / 100.0 * (len(v) - 1)))))]


# ---------------------------------------------------------------- runs
def make_server(kind, a, tag):
    if kind == "busylamp":
        return BusyLamp(a.busylamp, os.path.join(a.data, "directory.yaml"), a.work, tag)
    return Kamailio(a.data, a.work, tag, children=a.kam_children, shm=a.kam_shm)


def write_row(path, row):
    new = not os.path.exists(path)
    with open(path, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(row.keys()))
        if new:
            w.writeheader()
        w.writerow(row)


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
def med(rows, key, fmt="{:,.0f}"):
    v = [float(r[key]) for r in rows if r[key] == r[key]]  # drop NaN
    if not v:
        return "n/a"
    m = statistics.median(v)
    if len(v) == 1 or min(v) == max(v):
        return fmt.format(m)
    return "%s (%s..%s)" % (fmt.format(m), fmt.format(min(v)), fmt.format(max(v)))


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
