#!/usr/bin/env python3
"""Calls through the server, BusyLamp beside Kamailio: the runs behind scripts/bench-calls.

    python3 bench/calls/bench.py --work DIR [--busylamp BIN] [--variants busylamp-trunk
        busylamp-line kamailio] [--phases cps fanout] [--runs 3] [--rates 50 100 ...]
        [--watchers 1000 10000] [--stop-when-dirty]

Two phases, each run with a fresh server, the variants interleaved run by run (so that machine
contention hits every server alike):

cps     Calls per second. One SIPp UAS on one port registers --callee-lines lines (REGISTER
        from that port, with digest for BusyLamp) and answers every call: 180, --ring-ms, 200
        with SDP, ACK, BYE, 200. One SIPp UAC offers --seconds x rate calls at a fixed rate
        (INVITE with SDP, 200, ACK, --talk-ms, BYE), spread over the callee lines.
          busylamp-trunk  the caller is the directory's trunk (its port), no digest, dialing
                          the lines' numbers
          busylamp-line   the callers are lines (--callee-lines of them) with digest: INVITE,
                          407, ACK, INVITE with Proxy-Authorization; dialing extensions
          kamailio        Kamailio 5.6 (bench/subscribe/kamailio-blf-auth.cfg: proxy with
                          record-route, dialog, pua_dialoginfo PUBLISHing every call state to
                          its own presence server; INVITE not authenticated), the same caller
                          as busylamp-trunk
        A run is clean when every call completed (caller and callee SIPp: 0 failed) and the
        retransmissions of both SIPp (INVITE, BYE, 200) are at most 1 % of the calls.
cps also reads the server's CPU time (user + system, /proc/PID/stat, every Kamailio process).

fanout  W watchers (distinct lines, SUBSCRIBE Event: dialog with digest, answering every NOTIFY)
        on one line; then --fanout-calls calls from the trunk to that line, one at a time
        (ring, answer, talk, hang up). tcpdump on lo records every packet to and from the
        server's port; the analysis takes per call and watcher the first NOTIFY showing the call
        early (from the INVITE's arrival at the server), confirmed (from the callee's 200) and
        idle again (from the BYE), and per burst the NOTIFYs per second (watchers notified /
        time from the trigger to the last of them).

Loopback only: every socket is 127.0.0.1 on a port the OS picked free; every SIPp run is
bounded by -m, -recv_timeout and a `timeout` wrapper; servers, SIPp and tcpdump are started
here and stopped by their PID. Rows go to WORK/cps.csv and WORK/fanout.csv, the tables to
standard output and WORK/summary.md.
"""
import argparse
import csv
import glob
import os
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HOST = "127.0.0.1"
DOMAIN = "sip.busylamp.test"
KAM_CFG = os.path.join(HERE, "..", "subscribe", "kamailio-blf-auth.cfg")
TICK = os.sysconf("SC_CLK_TCK")
TRACE_MSG = False  # --trace-msg: every SIPp logs its messages (debugging only; costs CPU)


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
    return open("/proc/loadavg").read().split()[0]


def proc_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        st = f.read().rsplit(")", 1)[1].split()
    return (int(st[11]) + int(st[12])) / TICK


def udp_drops(port):
    """Datagrams the kernel dropped at the 127.0.0.1:port UDP socket (receive buffer full),
    from /proc/net/udp's last column, summed over the sockets bound there."""
    total = 0
    want = "0100007F:%04X" % port
    with open("/proc/net/udp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[1] == want:
                total += int(parts[-1])
    return total


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


# ---------------------------------------------------------------- data
# One account, bench000, one group. Line 0 is the watched line of the fan-out; lines 1..K the
# callees of the cps phase, K+1..2K its calling lines (line i+K calls line i); then the watchers.
def number(i):
    return "649000%05d" % i


def extension(i):
    return str(10000 + i)


def password(i):
    return "pw%05dx" % i


def auth(i):
    return "[authentication username=%s password=%s]" % (number(i), password(i))


def write_data(d, callee_lines, watchers, trunk_port):
    """directory.yaml (with the trunk at 127.0.0.1:trunk_port), Kamailio's password table, and
    the SIPp injection files. Deterministic apart from the trunk's port."""
    os.makedirs(d, exist_ok=True)
    K, W = callee_lines, watchers
    total = 1 + 2 * K + W
    with open(os.path.join(d, "directory.yaml"), "w") as f:
        f.write("# generated by bench/calls/bench.py: 1 account, %d lines, 1 trunk\n" % total)
        f.write("domain: %s\npresence_default: true\nmin_expires: 60\nmax_expires: 3600\n" % DOMAIN)
        f.write("trunks:\n  - name: pstn\n    address: %s:%d\n    transport: udp\n" % (HOST, trunk_port))
        f.write("accounts:\n  - id: bench000\n    name: Bench\n    presence: true\n    lines:\n")
        for i in range(total):
            f.write('      - extension: "%s"\n        number: "%s"\n        name: Line %d\n'
                    "        password: %s\n        group: DEFAULT\n" % (extension(i), number(i), i, password(i)))
    with open(os.path.join(d, "htable"), "w") as f:
        f.write("id(int,auto) key_name(string) key_type(int) value_type(int) key_value(string) expires(int) \n")
        for i in range(total):
            f.write("%d:%s:0:0:%s:0\n" % (i + 1, number(i), password(i)))

    def rows(name, lines):
        with open(os.path.join(d, name), "w") as f:
            f.write("SEQUENTIAL\n")
            for line in lines:
                f.write(line + "\n")

    rows("callees.csv", ["%s;%s;%s" % (number(i), extension(i), auth(i)) for i in range(1, K + 1)])
    rows("fanout_callee.csv", ["%s;%s;%s" % (number(0), extension(0), auth(0))])
    rows("trunk_calls.csv", ["0215550%03d;%s;" % (i % 1000, number(1 + i % K)) for i in range(K)])
    rows("line_calls.csv", ["%s;%s;%s" % (number(K + 1 + i), extension(1 + i), auth(K + 1 + i)) for i in range(K)])
    rows("fanout_calls.csv", ["0215550999;%s;" % number(0)])
    rows("watchers.csv", ["%s;%s;%s" % (number(j), number(0), auth(j)) for j in range(1 + 2 * K, total)])
    return d


# ---------------------------------------------------------------- servers
class BusyLamp:
    name = "BusyLamp"

    def __init__(self, binary, data, dirpath, config=None):
        self.binary, self.data, self.dir, self.config = binary, data, dirpath, config
        subprocess.run(["rm", "-rf", self.dir], check=True)
        os.makedirs(self.dir)
        self.p = None
        self.domain = DOMAIN

    def start(self):
        self.out = open(os.path.join(self.dir, "stdout.log"), "w")
        self.err = open(os.path.join(self.dir, "server.log"), "w")
        cmd = [self.binary, "serve", "--directory", os.path.join(self.data, "directory.yaml"),
               "--data", os.path.join(self.dir, "data"),
               "--sip", "udp:%s:0" % HOST, "--sip", "tcp:%s:0" % HOST, "--http", "%s:0" % HOST]
        if self.config:
            cmd += ["--config", self.config]
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
        path = os.path.join(self.dir, "server.log")
        bad = [l for l in open(path, errors="replace") if re.search(r"\b(warning|error|critical)\b", l)]
        return len(bad), bad[:3]


class Kamailio:
    name = "Kamailio"

    def __init__(self, data, dirpath, children=2, shm=2048, pkg=16):
        self.data, self.run = data, dirpath
        subprocess.run(["rm", "-rf", self.run], check=True)
        os.makedirs(os.path.join(self.run, "dbtext"))
        os.makedirs(os.path.join(self.run, "run"))
        self.children, self.shm, self.pkg = children, shm, pkg
        self.p = None

    def start(self):
        self.port = free_port()
        # Kamailio routes a Request-URI naming itself: the domain is its own address
        self.domain = "%s:%d" % (HOST, self.port)
        for t in ("version", "presentity", "active_watchers", "watchers", "xcap", "pua"):
            subprocess.run(["cp", "/usr/share/kamailio/dbtext/kamailio/" + t, self.run + "/dbtext/"], check=True)
        subprocess.run(["cp", os.path.join(self.data, "htable"), self.run + "/dbtext/htable"], check=True)
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
            if not [pid for pid in pids if os.path.exists("/proc/%d" % pid)]:
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
class Sipp:
    """One SIPp process, its files in its own folder, bounded by `timeout`."""

    def __init__(self, d, scenario, server, port, args, inf=None, limit=120):
        self.d = d
        subprocess.run(["rm", "-rf", d], check=True)
        os.makedirs(d)
        cmd = ["sipp", "%s:%d" % (HOST, server.port), "-sf", scenario, "-set", "dom", server.domain,
               "-i", HOST, "-p", str(port), "-mp", str(free_port()), "-t", "u1", "-nostdin",
               "-buff_size", "4194304", "-max_recv_loops", "100000", "-max_sched_loops", "100000",
               "-default_behaviors", "all,-bye",
               "-trace_stat", "-stf", os.path.join(d, "stat.csv"), "-fd", "1",
               "-trace_counts", "-trace_rtt", "-rtt_freq", "20",
               "-trace_err", "-error_file", os.path.join(d, "errors.log"),
               "-trace_screen", "-screen_file", os.path.join(d, "screen.log")]
        if inf:
            cmd += ["-inf", inf]
        if TRACE_MSG:
            cmd += ["-trace_msg", "-message_file", os.path.join(d, "messages.log")]
        cmd += [str(x) for x in args]
        self.cmd = cmd
        self.timef = os.path.join(d, "time.txt")
        self.limit = limit
        # timeout first: it is the process group leader (start_new_session) and SIPp stays in that
        # group (timeout would move itself and its child to a new group if it were not the leader),
        # so stop() reaches SIPp through killpg
        full = ["timeout", str(limit), "/usr/bin/time", "-f", "%e %U %S", "-o", self.timef] + cmd
        self.out = open(os.path.join(d, "stdout.log"), "w")
        self.p = subprocess.Popen(full, stdout=self.out, stderr=subprocess.STDOUT, cwd=d, start_new_session=True)

    def running(self):
        return self.p.poll() is None

    def stop(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGTERM)
                self.p.wait(10)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.p.wait(5)

    def wait(self, t=None):
        try:
            rc = self.p.wait(self.limit + 30 if t is None else t)
        except subprocess.TimeoutExpired:
            self.stop()
            rc = self.p.wait(10)
        self.out.close()
        self.rc = rc
        return rc

    def stats(self):
        try:
            rows = list(csv.reader(open(os.path.join(self.d, "stat.csv")), delimiter=";"))
        except OSError:
            tail = open(os.path.join(self.d, "stdout.log"), errors="replace").read()[-600:]
            raise RuntimeError("SIPp wrote no statistics: %s" % tail)
        st = dict(zip(rows[0], rows[-1]))
        start = float(st["StartTime"].split("\t")[-1])
        now = float(st["CurrentTime"].split("\t")[-1])
        res = dict(ok=int(st["SuccessfulCall(C)"]), failed=int(st["FailedCall(C)"]),
                   created=int(st.get("OutgoingCall(C)", 0) or 0) + int(st.get("IncomingCall(C)", 0) or 0),
                   retrans=int(st["Retransmissions(C)"]), elapsed_s=round(now - start, 3),
                   unexpected=int(st.get("FailedUnexpectedMessage(C)", 0) or 0))
        rtd = {}
        for f in glob.glob(os.path.join(self.d, "*_rtt.csv")):
            with open(f) as fh:
                next(fh, None)
                for line in fh:
                    p2 = line.strip().split(";")
                    if len(p2) == 3:
                        try:
                            rtd.setdefault(p2[2], []).append(float(p2[1]))
                        except ValueError:
                            pass
        res["rtd"] = rtd
        try:
            e, u, s = open(self.timef).read().split()[-3:]
            res["cpu_s"] = round(float(u) + float(s), 2)
        except (OSError, ValueError):
            res["cpu_s"] = float("nan")
        return res

    def errors_excerpt(self, n=6):
        out = []
        for f in sorted(glob.glob(os.path.join(self.d, "*errors.log"))):
            lines = [l.rstrip() for l in open(f, errors="replace") if l.strip()]
            out += lines[:n]
        return out[:n]


def pct(v, q):
    if not v:
        return float("nan")
    v = sorted(v)
    return v[min(len(v) - 1, max(0, int(round(q / 100.0 * (len(v) - 1)))))]


def write_row(path, row):
    new = not os.path.exists(path)
    with open(path, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(row.keys()))
        if new:
            w.writeheader()
        w.writerow(row)


def make_server(variant, a, data, tag):
    d = os.path.join(a.work, "runs", tag)
    if variant.startswith("busylamp"):
        return BusyLamp(a.busylamp, data, d, a.busylamp_config)
    return Kamailio(data, d, children=a.kam_children, shm=a.kam_shm)


def register(srv, d, inf, n, port):
    r = Sipp(os.path.join(d, "register"), os.path.join(HERE, "register.xml"), srv, port,
             ["-m", n, "-r", 500, "-l", 500, "-recv_timeout", 5000], inf=inf, limit=60)
    r.wait()
    st = r.stats()
    if st["ok"] != n:
        raise RuntimeError("only %d of %d callee lines registered; %s" % (st["ok"], n, " | ".join(r.errors_excerpt(3))))


# ---------------------------------------------------------------- cps
def cps_run(variant, a, rate, run):
    tag = "cps-%s-r%d-%d" % (variant, rate, run)
    d = os.path.join(a.work, "runs", tag)
    trunk_port = free_port()
    data = write_data(os.path.join(a.work, "runs", tag + "-data"), a.callee_lines, 0, trunk_port)
    srv = make_server(variant, a, data, tag + "-server")
    calls = max(1, int(rate * a.seconds))
    la = loadavg()
    srv.start()
    uas = caller = None
    try:
        uas_port = free_port()
        register(srv, d, os.path.join(data, "callees.csv"), a.callee_lines, uas_port)
        uas = Sipp(os.path.join(d, "callee"), os.path.join(HERE, "callee.xml"), srv, uas_port,
                   ["-m", calls, "-d", a.ring_ms, "-recv_timeout", 20000], limit=int(a.seconds + 90))
        time.sleep(0.5)
        if variant == "busylamp-line":
            scen, inf, port = "caller_line.xml", "line_calls.csv", free_port()
        else:
            scen, inf, port = "caller_trunk.xml", "trunk_calls.csv", trunk_port
        conc = int(rate * (a.ring_ms + a.talk_ms + 2000) / 1000.0) + 50
        c0, drops0 = srv.cpu(), udp_drops(srv.port)
        t0 = time.time()
        caller = Sipp(os.path.join(d, "caller"), os.path.join(HERE, scen), srv, port,
                      ["-r", rate, "-m", calls, "-l", conc, "-d", a.talk_ms, "-recv_timeout", 20000],
                      inf=os.path.join(data, inf), limit=int(a.seconds + 60))
        caller.wait()
        c1 = srv.cpu()
        wall = time.time() - t0
        uas.wait(15)
        drops = udp_drops(srv.port) - drops0
        alive = srv.alive()
    finally:
        for p in (caller, uas):
            if p:
                p.stop()
        rc = srv.stop()
    cs, us = caller.stats(), uas.stats()
    nbad, first_bad = srv.log_problems()
    setup = cs["rtd"].get("1", [])
    ok = cs["ok"]
    row = dict(variant=variant, server=srv.name, rate=rate, run=run, calls=calls, ok=ok, failed=cs["failed"],
               callee_ok=us["ok"], callee_failed=us["failed"], caller_retrans=cs["retrans"],
               callee_retrans=us["retrans"], caller_unexpected=cs["unexpected"], server_udp_drops=drops,
               caller_elapsed_s=cs["elapsed_s"],
               # calls are offered for calls/rate seconds; the last one then lasts ring + talk
               achieved_per_s=round(ok / max(0.001, cs["elapsed_s"] - (a.ring_ms + a.talk_ms) / 1000.0), 1),
               setup_p50_ms=pct(setup, 50), setup_p95_ms=pct(setup, 95), setup_p99_ms=pct(setup, 99),
               server_cpu_s=round(c1 - c0, 2), server_cpu_us_per_call=round(1e6 * (c1 - c0) / max(1, ok), 1),
               server_cpu_share=round((c1 - c0) / max(0.001, wall), 2),
               caller_sipp_cpu_s=cs["cpu_s"], callee_sipp_cpu_s=us["cpu_s"],
               loadavg_before=la, server_alive_after=alive, server_rc=rc, server_log_problems=nbad,
               ring_ms=a.ring_ms, talk_ms=a.talk_ms, dir=d)
    retrans = row["caller_retrans"] + row["callee_retrans"]
    row["clean"] = (ok == calls and cs["failed"] == 0 and us["failed"] == 0 and us["ok"] == calls
                    and retrans <= 0.01 * calls)
    write_row(os.path.join(a.work, "cps.csv"), row)
    log("%s %d/s run %d: ok %d/%d failed %d (callee %d) retrans %d+%d, server socket drops %d, setup p95 %s ms cpu %.0f us/call%s"
        % (variant, rate, run, ok, calls, cs["failed"], us["failed"], row["caller_retrans"],
           row["callee_retrans"], drops, row["setup_p95_ms"], row["server_cpu_us_per_call"],
           "" if row["clean"] else "  NOT CLEAN"))
    if not row["clean"] or nbad:
        log("  server log problems: %d %s" % (nbad, "".join(first_bad).strip()[:300]))
        for l in caller.errors_excerpt() + uas.errors_excerpt():
            log("  sipp: " + l[:300])
    return row


# ---------------------------------------------------------------- fanout
def read_pcap(path):
    with open(path, "rb") as f:
        gh = f.read(24)
        if len(gh) < 24:
            return
        magic = struct.unpack("<I", gh[:4])[0]
        ns = magic == 0xa1b23c4d
        linktype = struct.unpack("<I", gh[20:24])[0]
        while True:
            h = f.read(16)
            if len(h) < 16:
                break
            sec, frac, incl, _ = struct.unpack("<IIII", h)
            data = f.read(incl)
            ts = sec + frac / (1e9 if ns else 1e6)
            if linktype == 1:
                ip = data[14:]
            elif linktype == 113:
                ip = data[16:]
            else:
                ip = data[4:]
            if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
                continue
            ihl = (ip[0] & 15) * 4
            udp = ip[ihl:]
            sport, dport = struct.unpack(">HH", udp[:4])
            yield ts, sport, dport, udp[8:]


HDR = {}


def header(msg, name, compact):
    for line in msg.split("\r\n\r\n", 1)[0].split("\r\n")[1:]:
        k, _, v = line.partition(":")
        k = k.strip().lower()
        if k == name or k == compact:
            return v.strip()
    return ""


STATE_RX = re.compile(r"<state[^>]*>\s*(\w+)\s*</state>")


def analyse(pcap, srv_port, caller_port, callee_port, watcher_port, watchers):
    """Per call k (calls are one at a time; call k's window runs from its INVITE to the next
    INVITE): for every watcher the first NOTIFY in the window whose body shows a dialog
    early/trying/proceeding (after the INVITE), confirmed (after the callee's 200) and none of
    those (after the BYE). Delays from the INVITE, the 200 and the BYE as the server received
    them."""
    invites = []          # (ts, call-id) of the caller's first INVITE of each call
    byes = {}
    c180, c200 = [], []   # callee -> server, first per callee-leg Call-ID
    seen_callee = set()
    notifies = []         # (ts, sub call-id, cseq, cls)
    notify_200 = []
    ok200 = {}            # (sub call-id, cseq) -> first 200 from the watcher
    for ts, sp, dp, pl in read_pcap(pcap):
        if sp == dp:
            continue      # Kamailio's own PUBLISHes to itself
        m = pl.decode("latin-1")
        first = m.split("\r\n", 1)[0]
        if dp == srv_port and sp == caller_port:
            cid = header(m, "call-id", "i")
            if first.startswith("INVITE ") and cid not in {c for _, c in invites}:
                invites.append((ts, cid))
            elif first.startswith("BYE "):
                byes.setdefault(cid, ts)
        elif dp == srv_port and sp == callee_port and first.startswith("SIP/2.0 "):
            cseq = header(m, "cseq", "")
            cid = header(m, "call-id", "i")
            if cseq.endswith("INVITE"):
                code = first[8:11]
                if code == "180" and (cid, 180) not in seen_callee:
                    seen_callee.add((cid, 180))
                    c180.append(ts)
                elif code == "200" and (cid, 200) not in seen_callee:
                    seen_callee.add((cid, 200))
                    c200.append(ts)
        elif sp == srv_port and dp == watcher_port and first.startswith("NOTIFY "):
            cid = header(m, "call-id", "i")
            cseq = header(m, "cseq", "").split(" ")[0]
            states = set(STATE_RX.findall(m.split("\r\n\r\n", 1)[-1]))
            if "confirmed" in states:
                cls = "confirmed"
            elif states & {"early", "trying", "proceeding"}:
                cls = "early"
            else:
                cls = "idle"
            notifies.append((ts, cid, cseq, cls))
        elif sp == watcher_port and dp == srv_port and first.startswith("SIP/2.0 200"):
            cseq = header(m, "cseq", "")
            if cseq.endswith("NOTIFY"):
                notify_200.append(ts)
                ok200.setdefault((header(m, "call-id", "i"), cseq.split(" ")[0]), ts)
    invites.sort()
    t_first = invites[0][0] if invites else float("inf")
    during = [n for n in notifies if n[0] >= t_first]
    # watchers with a subscription when the calls start: they had their initial NOTIFY
    res = dict(calls_seen=len(invites), subscribed=len({c for ts, c, _, _ in notifies if ts < t_first}),
               notify_sent=len(during), notify_distinct=len({(c, s) for _, c, s, _ in during}),
               notify_200=sum(1 for ts in notify_200 if ts >= t_first))
    res["notify_retrans"] = res["notify_sent"] - res["notify_distinct"]
    # Why NOTIFYs were retransmitted: was the watcher's 200 for the first copy already on the
    # wire (then the server did not take it in time), or not yet (the watcher was late)?
    first_sent, answered_before = {}, 0
    for ts, c, q, _ in during:
        key = (c, q)
        if key not in first_sent:
            first_sent[key] = ts
        elif key in ok200 and ok200[key] < ts:
            answered_before += 1
    res["notify_retrans_after_200"] = answered_before
    lat = [ok200[k] - t for k, t in first_sent.items() if k in ok200]
    res["watcher_200_p50_ms"] = round(pct(lat, 50) * 1000, 2) if lat else float("nan")
    res["watcher_200_p99_ms"] = round(pct(lat, 99) * 1000, 2) if lat else float("nan")
    delays = {"early": [], "confirmed": [], "idle": []}
    bursts = {"early": [], "confirmed": [], "idle": []}
    reached = {"early": [], "confirmed": [], "idle": []}
    for k, (t_inv, cid) in enumerate(invites):
        t_end = invites[k + 1][0] if k + 1 < len(invites) else float("inf")
        trig = {"early": t_inv,
                "confirmed": next((t for t in c200 if t_inv <= t < t_end), None),
                "idle": byes.get(cid)}
        for cls, t0 in trig.items():
            if t0 is None:
                reached[cls].append(0)
                continue
            firsts = {}
            for ts, sub, _, c in notifies:
                if c == cls and t0 <= ts < t_end and sub not in firsts:
                    firsts[sub] = ts
            reached[cls].append(len(firsts))
            if firsts:
                ds = [ts - t0 for ts in firsts.values()]
                delays[cls] += ds
                bursts[cls].append(len(ds) / max(ds))
    for cls in delays:
        ds = sorted(x * 1000 for x in delays[cls])
        res["%s_p50_ms" % cls] = round(pct(ds, 50), 2)
        res["%s_p99_ms" % cls] = round(pct(ds, 99), 2)
        res["%s_max_ms" % cls] = round(ds[-1], 2) if ds else float("nan")
        res["%s_reached_min" % cls] = min(reached[cls]) if reached[cls] else 0
        res["%s_burst_per_s" % cls] = round(statistics.median(bursts[cls]), 1) if bursts[cls] else float("nan")
    allb = bursts["early"] + bursts["confirmed"] + bursts["idle"]
    res["burst_per_s_median"] = round(statistics.median(allb), 1) if allb else float("nan")
    res["burst_per_s_min"] = round(min(allb), 1) if allb else float("nan")
    return res


def fanout_run(variant, a, watchers, run):
    tag = "fanout-%s-w%d-%d" % (variant, watchers, run)
    d = os.path.join(a.work, "runs", tag)
    os.makedirs(d, exist_ok=True)
    trunk_port = free_port()
    data = write_data(os.path.join(a.work, "runs", tag + "-data"), a.callee_lines, watchers, trunk_port)
    srv = make_server(variant, a, data, tag + "-server")
    if watchers >= 5000:
        ring, talk, period, ncalls = a.big_ring_ms, a.big_talk_ms, a.big_period_ms, a.big_calls
    else:
        ring, talk, period, ncalls = a.ring_ms_fanout, a.talk_ms_fanout, a.period_ms, a.fanout_calls
    la = loadavg()
    srv.start()
    procs = []
    tcpd = None
    pcap = os.path.join(d, "lo.pcap")
    try:
        uas_port, wport = free_port(), free_port()
        register(srv, d, os.path.join(data, "fanout_callee.csv"), 1, uas_port)
        limit = int(watchers / a.sub_rate + (ncalls * period + ring + talk) / 1000.0 + 120)
        scen = open(os.path.join(HERE, "watcher.xml")).read().replace("@IDLE_MS@", str(a.idle_ms))
        wscen = os.path.join(d, "watcher.xml")
        open(wscen, "w").write(scen)
        tcpd = subprocess.Popen(["timeout", str(limit + 60), "tcpdump", "-i", "lo", "-n", "-s", "0",
                                 "-B", "131072", "-w", pcap, "udp and port %d" % srv.port],
                                stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "tcpdump.log"), "w"),
                                start_new_session=True)
        time.sleep(1.5)
        wat = Sipp(os.path.join(d, "watchers"), wscen, srv, wport,
                   ["-r", a.sub_rate, "-m", watchers, "-l", watchers + 10, "-recv_timeout", a.idle_ms + 60000],
                   inf=os.path.join(data, "watchers.csv"), limit=limit)
        procs.append(wat)
        # every watcher subscribed and its first NOTIFY answered: wait for the SUBSCRIBE phase
        time.sleep(watchers / float(a.sub_rate) + 4)
        uas = Sipp(os.path.join(d, "callee"), os.path.join(HERE, "callee.xml"), srv, uas_port,
                   ["-m", ncalls, "-d", ring, "-recv_timeout", period + 60000], limit=limit)
        procs.append(uas)
        time.sleep(0.5)
        c0, drops0 = srv.cpu(), udp_drops(srv.port)
        t0 = time.time()
        # one call at a time, a new one every `period` ms
        caller = Sipp(os.path.join(d, "caller"), os.path.join(HERE, "caller_trunk.xml"), srv, trunk_port,
                      ["-r", 1, "-rp", period, "-m", ncalls, "-l", 1, "-d", talk, "-recv_timeout", 60000],
                      inf=os.path.join(data, "fanout_calls.csv"), limit=limit)
        procs.append(caller)
        caller.wait()
        # let the last NOTIFY burst finish: until the capture stops growing for 3 s
        last, quiet_since = -1, time.time()
        deadline = time.time() + a.settle_max
        while time.time() < deadline:
            size = os.path.getsize(pcap) if os.path.exists(pcap) else 0
            if size != last:
                last, quiet_since = size, time.time()
            elif time.time() - quiet_since >= 3:
                break
            time.sleep(0.5)
        c1 = srv.cpu()
        drops = udp_drops(srv.port) - drops0
        window = time.time() - t0
        alive = srv.alive()
        os.killpg(tcpd.pid, signal.SIGINT)
        tcpd.wait(15)
    finally:
        for p in procs:
            p.stop()
        if tcpd and tcpd.poll() is None:
            os.killpg(tcpd.pid, signal.SIGKILL)
            tcpd.wait(5)
        rc = srv.stop()
    drop = re.search(r"(\d+) packets dropped by kernel", open(os.path.join(d, "tcpdump.log")).read())
    cs, ws = caller.stats(), wat.stats()
    res = analyse(pcap, srv.port, trunk_port, uas_port, wport, watchers)
    nbad, first_bad = srv.log_problems()
    row = dict(variant=variant, server=srv.name, watchers=watchers, run=run, calls=ncalls, ring_ms=ring,
               talk_ms=talk, period_ms=period, calls_ok=cs["ok"], calls_failed=cs["failed"],
               watchers_failed=ws["failed"], watcher_retrans=ws["retrans"],
               pcap_dropped=int(drop.group(1)) if drop else -1, server_udp_drops=drops)
    row.update(res)
    row.update(server_cpu_s=round(c1 - c0, 2),
               server_cpu_us_per_notify=round(1e6 * (c1 - c0) / max(1, res["notify_sent"]), 1),
               window_s=round(window, 1), watcher_sipp_cpu_s=ws["cpu_s"], loadavg_before=la,
               server_alive_after=alive, server_rc=rc, server_log_problems=nbad, dir=d)
    write_row(os.path.join(a.work, "fanout.csv"), row)
    log("%s %d watchers run %d: %d subscribed, calls %d/%d, early p50 %s p99 %s ms (reached >= %d), confirmed p50 %s, idle p50 %s;"
        " burst %s NOTIFY/s; NOTIFY sent %d retrans %d (%d after the 200 was on the wire), 200s %d"
        " (NOTIFY->200 p50 %s p99 %s ms); server socket drops %d; cpu %.0f us/NOTIFY"
        % (variant, watchers, run, res["subscribed"], cs["ok"], ncalls, res["early_p50_ms"], res["early_p99_ms"],
           res["early_reached_min"], res["confirmed_p50_ms"], res["idle_p50_ms"], res["burst_per_s_median"],
           res["notify_sent"], res["notify_retrans"], res["notify_retrans_after_200"], res["notify_200"],
           res["watcher_200_p50_ms"], res["watcher_200_p99_ms"], drops, row["server_cpu_us_per_notify"]))
    if cs["failed"] or res["early_reached_min"] < watchers or res["subscribed"] < watchers or nbad:
        log("  server log problems: %d %s" % (nbad, "".join(first_bad).strip()[:300]))
        for l in caller.errors_excerpt() + wat.errors_excerpt(3):
            log("  sipp: " + l[:300])
    if not a.keep_pcap:
        os.remove(pcap)
    return row


# ---------------------------------------------------------------- tables
def med(rows, key, fmt="{:,.0f}"):
    v = []
    for r in rows:
        try:
            x = float(r[key])
        except (ValueError, TypeError):
            continue
        if x == x:
            v.append(x)
    if not v:
        return "n/a"
    m = statistics.median(v)
    if len(v) == 1 or min(v) == max(v):
        return fmt.format(m)
    return "%s (%s..%s)" % (fmt.format(m), fmt.format(min(v)), fmt.format(max(v)))


def truthy(x):
    return x is True or str(x) == "True"


def summary(cps, fan):
    out = []
    if cps:
        out.append("| variant | offered calls/s | clean runs | completed | failed | retrans (caller+callee) "
                   "| INVITE→180 p95 ms | server CPU µs/call | server CPU (cores) | load avg before |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        best = {}
        variants = []
        for r in cps:
            if r["variant"] not in variants:
                variants.append(r["variant"])
        for v in variants:
            for rate in sorted({int(r["rate"]) for r in cps if r["variant"] == v}):
                rr = [r for r in cps if r["variant"] == v and int(r["rate"]) == rate]
                for r in rr:
                    r["_retrans"] = int(r["caller_retrans"]) + int(r["callee_retrans"])
                    r["_failed"] = int(r["failed"]) + int(r["callee_failed"])
                nclean = sum(1 for r in rr if truthy(r["clean"]))
                if nclean == len(rr):
                    best[v] = max(best.get(v, 0), rate)
                out.append("| %s | %s | %d of %d | %s of %s | %s | %s | %s | %s | %s | %s |" % (
                    v, "{:,}".format(rate), nclean, len(rr), med(rr, "ok"), "{:,}".format(int(rr[0]["calls"])),
                    med(rr, "_failed"), med(rr, "_retrans"), med(rr, "setup_p95_ms"),
                    med(rr, "server_cpu_us_per_call"), med(rr, "server_cpu_share", "{:.2f}"),
                    med(rr, "loadavg_before", "{:.2f}")))
        out.append("")
        for v in variants:
            out.append("- %s: highest offered rate clean in every run: %s" % (
                v, ("**%s calls/s**" % "{:,}".format(best[v])) if v in best else "none"))
        if "kamailio" in best:
            for v in variants:
                if v != "kamailio" and v in best:
                    out.append("- %s ÷ Kamailio: %.2f" % (v, best[v] / float(best["kamailio"])))
        out.append("")
    if fan:
        out.append("| server | watchers | runs | calls ok | INVITE→early NOTIFY p50 ms | p99 ms | max ms "
                   "| 200→confirmed p50 ms | BYE→idle p50 ms | NOTIFY/s per burst | watchers reached (min of bursts) "
                   "| NOTIFY retrans | server CPU µs/NOTIFY | load avg before |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        keys = []
        for r in fan:
            k = (r["variant"], int(r["watchers"]))
            if k not in keys:
                keys.append(k)
        for v, w in sorted(keys, key=lambda k: (k[1], k[0])):
            rr = [r for r in fan if r["variant"] == v and int(r["watchers"]) == w]
            out.append("| %s | %s | %d | %s of %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                v, "{:,}".format(w), len(rr), med(rr, "calls_ok"), rr[0]["calls"],
                med(rr, "early_p50_ms", "{:,.1f}"), med(rr, "early_p99_ms", "{:,.1f}"), med(rr, "early_max_ms", "{:,.1f}"),
                med(rr, "confirmed_p50_ms", "{:,.1f}"), med(rr, "idle_p50_ms", "{:,.1f}"),
                med(rr, "burst_per_s_median"), med(rr, "early_reached_min"), med(rr, "notify_retrans"),
                med(rr, "server_cpu_us_per_notify"), med(rr, "loadavg_before", "{:.2f}")))
    return "\n".join(out)


def load_csv(path):
    if not os.path.exists(path):
        return []
    return list(csv.DictReader(open(path)))


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--busylamp")
    ap.add_argument("--busylamp-config")
    ap.add_argument("--work", required=True)
    ap.add_argument("--variants", nargs="+", default=["busylamp-trunk", "busylamp-line", "kamailio"],
                    choices=["busylamp-trunk", "busylamp-line", "kamailio"])
    ap.add_argument("--phases", nargs="+", default=["cps", "fanout"], choices=["cps", "fanout"])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rates", nargs="+", type=int, default=[100, 200, 400, 700, 1000, 1500, 2000, 3000])
    ap.add_argument("--seconds", type=float, default=10, help="cps: calls offered for this long per run")
    ap.add_argument("--callee-lines", type=int, default=100)
    ap.add_argument("--ring-ms", type=int, default=200)
    ap.add_argument("--talk-ms", type=int, default=1000)
    ap.add_argument("--stop-when-dirty", action="store_true",
                    help="cps: a variant stops climbing after a rate with no clean run")
    ap.add_argument("--watchers", nargs="+", type=int, default=[1000, 10000])
    ap.add_argument("--sub-rate", type=int, default=1000)
    ap.add_argument("--fanout-calls", type=int, default=10)
    ap.add_argument("--ring-ms-fanout", type=int, default=1000)
    ap.add_argument("--talk-ms-fanout", type=int, default=1000)
    ap.add_argument("--period-ms", type=int, default=3000)
    ap.add_argument("--big-calls", type=int, default=2)
    ap.add_argument("--big-ring-ms", type=int, default=10000)
    ap.add_argument("--big-talk-ms", type=int, default=10000)
    ap.add_argument("--big-period-ms", type=int, default=30000)
    ap.add_argument("--idle-ms", type=int, default=120000)
    ap.add_argument("--settle-max", type=int, default=40)
    ap.add_argument("--keep-pcap", action="store_true")
    ap.add_argument("--kam-children", type=int, default=2)
    ap.add_argument("--kam-shm", type=int, default=2048)
    ap.add_argument("--summary-only", action="store_true")
    ap.add_argument("--trace-msg", action="store_true", help="SIPp -trace_msg in every run (debugging)")
    a = ap.parse_args()
    global TRACE_MSG
    TRACE_MSG = a.trace_msg
    a.work = os.path.abspath(a.work)
    if any(v.startswith("busylamp") for v in a.variants) and not a.busylamp and not a.summary_only:
        ap.error("--busylamp BIN is needed")
    if a.busylamp:
        a.busylamp = os.path.abspath(a.busylamp)
    os.makedirs(a.work, exist_ok=True)
    if not a.summary_only:
        if "cps" in a.phases:
            dirty = set()
            for rate in a.rates:
                batch = {}
                for run in range(1, a.runs + 1):
                    for v in a.variants:
                        if v in dirty:
                            continue
                        try:
                            batch.setdefault(v, []).append(cps_run(v, a, rate, run))
                        except RuntimeError as e:
                            log("%s %d/s run %d could not run: %s" % (v, rate, run, e))
                            batch.setdefault(v, [])
                for v, rows in batch.items():
                    if a.stop_when_dirty and not any(r["clean"] for r in rows):
                        log("%s: no clean run at %d/s, not climbing further" % (v, rate))
                        dirty.add(v)
                if len(dirty) == len(a.variants):
                    break
        if "fanout" in a.phases:
            fan_variants = [v for v in a.variants if v != "busylamp-line"]
            for w in a.watchers:
                for run in range(1, a.runs + 1):
                    for v in fan_variants:
                        try:
                            fanout_run(v, a, w, run)
                        except RuntimeError as e:
                            log("%s %d watchers run %d could not run: %s" % (v, w, run, e))
    text = summary(load_csv(os.path.join(a.work, "cps.csv")), load_csv(os.path.join(a.work, "fanout.csv")))
    open(os.path.join(a.work, "summary.md"), "w").write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
