"""What bench/calls/bench.py and bench/subscribe/bench.py share: the servers (a fresh BusyLamp
or Kamailio per run, started and stopped by PID), free loopback ports, CPU time and children
from /proc, SIPp's statistics files, and the rows and tables helpers.

The scripts import it with bench/ on sys.path (they insert it themselves, so that
`python3 bench/calls/bench.py` and `python3 bench/subscribe/bench.py` work from any folder).
Loopback only: every socket is 127.0.0.1.
"""
import csv
import glob
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
HOST = "127.0.0.1"
DOMAIN = "sip.busylamp.test"
KAM_CFG = os.path.join(BENCH, "subscribe", "kamailio-blf-auth.cfg")
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


def loadavg_text():
    """The 1-minute load average as /proc/loadavg writes it."""
    return open("/proc/loadavg").read().split()[0]


def loadavg():
    return float(loadavg_text())


def proc_cpu(pid):
    """User + system CPU seconds of one process."""
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


# ---------------------------------------------------------------- servers
class Server:
    """A server process started by a subclass's start() (self.p, self.logs: its open log files,
    self.log_path: the log searched by log_problems). stop() ends it by PID: SIGTERM, after 20 s
    SIGKILL to every process of pids(), then waits until they are gone."""

    problem_rx = None

    def pids(self):
        return [self.p.pid]

    def cpu(self):
        """User + system CPU seconds of every process of the server."""
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
        for f in self.logs:
            f.close()
        self.p = None
        return rc

    def log_problems(self):
        """Lines of the server log at warning level or worse: their count and the first 3."""
        bad = [l for l in open(self.log_path, errors="replace") if re.search(self.problem_rx, l)]
        return len(bad), bad[:3]


class BusyLamp(Server):
    """`busylamp serve --directory DIRECTORY --data DIR/data` on 127.0.0.1 port 0 (UDP, TCP,
    HTTP); the port is read from its standard output."""

    name = "BusyLamp"
    problem_rx = r"\b(warning|error|critical)\b"

    # The load tools simulate thousands of phones from one loopback address: the per-address
    # subscription limit (50,000 by default, a NAT'd office) and request rate limit (2,000/s)
    # would refuse them.
    LOAD_CONFIG = (
        "subscriptions_per_source: 100000000\n"
        "requests_per_source: 100000000\n"
        "request_burst_per_source: 100000000\n"
    )

    def __init__(self, binary, directory, dirpath, config=None):
        self.binary, self.directory, self.dir, self.config = binary, directory, dirpath, config
        subprocess.run(["rm", "-rf", self.dir], check=True)
        os.makedirs(self.dir)
        if self.config is None:
            self.config = os.path.join(self.dir, "bench-config.yaml")
            with open(self.config, "w") as f:
                f.write(self.LOAD_CONFIG)
        self.p = None
        self.domain = DOMAIN
        self.log_path = os.path.join(self.dir, "server.log")

    def start(self):
        out = open(os.path.join(self.dir, "stdout.log"), "w")
        err = open(self.log_path, "w")
        self.logs = [out, err]
        cmd = [self.binary, "serve", "--directory", self.directory, "--data", os.path.join(self.dir, "data"),
               "--sip", "udp:%s:0" % HOST, "--sip", "tcp:%s:0" % HOST, "--http", "%s:0" % HOST]
        if self.config:
            cmd += ["--config", self.config]
        self.cmd = cmd
        t0 = time.time()
        self.p = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
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

    def rss_kb(self):
        with open("/proc/%d/status" % self.p.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


class Kamailio(Server):
    """Kamailio with bench/subscribe/kamailio-blf-auth.cfg on a free 127.0.0.1 port, its
    dbtext tables (the password table from DATA/htable) and runtime files in DIR."""

    name = "Kamailio"
    problem_rx = r"\b(ERROR|CRITICAL|ALERT)\b"

    def __init__(self, data, dirpath, children=2, shm=2048, pkg=16):
        self.data, self.run = data, dirpath
        subprocess.run(["rm", "-rf", self.run], check=True)
        os.makedirs(os.path.join(self.run, "dbtext"))
        os.makedirs(os.path.join(self.run, "run"))
        self.children, self.shm, self.pkg = children, shm, pkg
        self.p = None
        self.log_path = os.path.join(self.run, "server.log")

    def start(self):
        self.port = free_port()
        # Kamailio routes a Request-URI naming itself: the domain is its own address
        self.domain = "%s:%d" % (HOST, self.port)
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
        logf = open(self.log_path, "w")
        self.logs = [logf]
        t0 = time.time()
        self.p = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
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


# ---------------------------------------------------------------- SIPp
def sipp_trace_args(d, rtt_freq):
    """SIPp options writing its statistics, counts, response times, errors and screen to d."""
    return ["-trace_stat", "-stf", os.path.join(d, "stat.csv"), "-fd", "1",
            "-trace_counts", "-trace_rtt", "-rtt_freq", str(rtt_freq),
            "-trace_err", "-error_file", os.path.join(d, "errors.log"),
            "-trace_screen", "-screen_file", os.path.join(d, "screen.log")]


def sipp_stat(d, note=""):
    """SIPp's last statistics row (d/stat.csv) as a dict, and the seconds it covers."""
    try:
        rows = list(csv.reader(open(os.path.join(d, "stat.csv")), delimiter=";"))
    except OSError:
        tail = open(os.path.join(d, "stdout.log"), errors="replace").read()[-600:]
        raise RuntimeError("SIPp wrote no statistics%s: %s" % (note, tail))
    st = dict(zip(rows[0], rows[-1]))
    start = float(st["StartTime"].split("\t")[-1])
    now = float(st["CurrentTime"].split("\t")[-1])
    return st, round(now - start, 3)


def stat_int(st, key):
    """A counter of sipp_stat's row, 0 when SIPp did not write it."""
    return int(st.get(key, 0) or 0)


def sipp_rtd(d):
    """SIPp's response times (d/*_rtt.csv): milliseconds per response-time counter."""
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
    return rtd


def time_cpu_s(timef):
    """User + system seconds from `/usr/bin/time -f "%e %U %S" -o timef`, NaN without it."""
    try:
        e, u, s = open(timef).read().split()[-3:]
        return round(float(u) + float(s), 2)
    except (OSError, ValueError):
        return float("nan")


# ---------------------------------------------------------------- rows and tables
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


def med(rows, key, fmt="{:,.0f}"):
    """The median of rows' key (NaN and non-numbers left out), with the range when they differ."""
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
