"""Load-generator runs (wrk, or bench/http_client for TLS), wrk output parsing, and CPU
accounting from /proc."""
import os
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Optional

from bench import BENCH_DIR, LUA_DIR, REPO_ROOT, WORK_DIR, build_tool

HZ = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- CPU

def cpu_core_jiffies(core: int) -> tuple:
    """(busy, total) jiffies of one core from /proc/stat.

    busy = user+nice+system+irq+softirq+steal = total - idle - iowait
    (guest time is already included in user)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{core} "):
                v = [int(x) for x in line.split()[1:]]
                user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
                busy = user + nice + system + irq + softirq + steal
                return busy, busy + idle + iowait
    raise RuntimeError(f"cpu{core} not in /proc/stat")


def _session_stats(sid: int):
    """(pid, fields after the command name of /proc/PID/stat) for every process in session `sid`:
    the server and all its workers.  fields[3] is the session; see proc(5)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                data = f.read()
            rest = data[data.rfind(")") + 2:].split()
            if int(rest[3]) == sid:
                yield entry.name, rest
        except (OSError, ValueError, IndexError):
            continue


def session_cpu_ticks(sid: int) -> int:
    """utime+stime (+ cutime+cstime of reaped children) summed over every
    process in session `sid` -- i.e. the server and all its workers/threads."""
    # utime(14) stime(15) cutime(16) cstime(17) are rest[11..14]
    return sum(int(r[11]) + int(r[12]) + int(r[13]) + int(r[14]) for _, r in _session_stats(sid))


# a server using more than this share of its core while idle busy-polls; reports name it
IDLE_SPIN = 0.25


def idle_sample(sid: int, core: int, seconds: float = 0.5) -> tuple:
    """(other, own) utilisation of the server core over `seconds` while the server idles:
    `own` is the server's process tree's CPU (a server that busy-polls shows here), `other`
    the rest of the core's busy time (other work that would also land in 'core CPU')."""
    b0, t0 = cpu_core_jiffies(core)
    p0 = session_cpu_ticks(sid)
    time.sleep(seconds)
    b1, t1 = cpu_core_jiffies(core)
    p1 = session_cpu_ticks(sid)
    total = max(1, t1 - t0)
    own = min(1.0, (p1 - p0) / total)
    return max(0.0, (b1 - b0) / total - own), own


def session_rss_kb(sid: int) -> int:
    """Resident memory (KiB) summed over every process in session `sid`."""
    total = 0
    page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
    for pid, _ in _session_stats(sid):
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * page_kb
        except (OSError, ValueError, IndexError):
            continue
    return total


class RssSampler:
    """Peak of session_rss_kb(sid), sampled every `every` seconds in a thread while in use."""

    def __init__(self, sid: int, every: float = 0.2):
        self.sid, self.every, self.peak = sid, every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while True:
            self.peak = max(self.peak, session_rss_kb(self.sid))
            if self._stop.wait(self.every):
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, session_rss_kb(self.sid))


# ---------------------------------------------------------------- wrk

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> dict:
    r = {"requests": None, "rps": None, "p50_ms": None, "p75_ms": None, "p90_ms": None,
         "p99_ms": None, "socket_errors": 0, "non2xx": 0, "duration_s": None}
    for pct, key in (("50", "p50_ms"), ("75", "p75_ms"), ("90", "p90_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)\s*$", out, re.M)
        if m:
            r[key] = _ms(m.group(1))
    m = re.search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h),", out, re.M)
    if m:
        r["requests"] = int(m.group(1))
        r["duration_s"] = _ms(m.group(2) + m.group(3)) / 1e3
    m = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["socket_errors"] = sum(int(x) for x in m.groups())
        r["socket_error_detail"] = m.group(0)
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    return r


HTTP_CLIENT_SRC = BENCH_DIR / "http_client.cpp"
HTTP_CLIENT_BIN = WORK_DIR / "http_client"


def build_http_client(log=print) -> Optional[str]:
    """Compile bench/http_client.cpp (when older than its sources); returns an error string or None."""
    net = REPO_ROOT / "src" / "core" / "net"
    return build_tool(HTTP_CLIENT_BIN, (HTTP_CLIENT_SRC, net / "tls_record.hpp", net / "tls13_keys.hpp"),
                      ["g++", "-std=c++20", "-O2", "-Wall", "-I", str(REPO_ROOT / "src" / "core"),
                       "-o", str(HTTP_CLIENT_BIN), str(HTTP_CLIENT_SRC), "-lssl", "-lcrypto"], log)


def wrk_command(url: str, duration: float, connections: int, threads: int, core: str,
                script: Optional[str] = None, script_args=(), timeout_s: int = 5,
                client: str = "wrk") -> list:
    """The load generator's command line: wrk, or bench/http_client (one thread, busy-polling its core,
    wrk's output format; no lua scripts)."""
    if client == "http_client":
        if script:
            raise ValueError("http_client runs no wrk scripts")
        return ["taskset", "-c", core, str(HTTP_CLIENT_BIN), "-c", str(connections), "-d", f"{duration:g}",
                "--latency", "--spin", url]
    cmd = ["taskset", "-c", core, "wrk", f"-t{threads}", f"-c{connections}",
           f"-d{duration:g}s", f"--timeout={timeout_s}s", "--latency"]
    if script:
        cmd += ["-s", str(Path(LUA_DIR) / script)]
    cmd.append(url)
    if script and script_args:
        cmd += ["--", *script_args]
    return cmd


def run_wrk(cmd: list, duration: float) -> tuple:
    """Run wrk (or http_client); returns (parsed dict, raw stdout).  Never raises on its failure."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    except subprocess.TimeoutExpired:
        return {"error": "wrk timed out"}, ""
    out = p.stdout + ("\n" + p.stderr if p.stderr.strip() else "")
    parsed = parse_wrk(p.stdout)
    if p.returncode != 0 or parsed["requests"] is None:
        parsed["error"] = f"wrk exit {p.returncode}: {(p.stderr or p.stdout).strip()[-200:]}"
    return parsed, out


def _cores(spec: str) -> list:
    """taskset core list ("1", "1,2", "2-3") -> [ints]."""
    out = []
    for part in str(spec).split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


def measure(url: str, sid: int, server_core: int, duration: float, connections: int,
            threads: int, client_core: str, script=None, script_args=(), client: str = "wrk") -> dict:
    """One measured load-generator run with CPU accounting around it."""
    cmd = wrk_command(url, duration, connections, threads, client_core, script, script_args, client=client)
    client_cores = _cores(client_core)
    busy0, total0 = cpu_core_jiffies(server_core)
    cl0 = [cpu_core_jiffies(c) for c in client_cores]
    proc0 = session_cpu_ticks(sid)
    rss0 = session_rss_kb(sid)
    with RssSampler(sid) as rss:
        parsed, raw = run_wrk(cmd, duration)
    busy1, total1 = cpu_core_jiffies(server_core)
    cl1 = [cpu_core_jiffies(c) for c in client_cores]
    proc1 = session_cpu_ticks(sid)
    res = dict(parsed)
    res["wrk_cmd"] = " ".join(cmd)
    res["core_busy_s"] = (busy1 - busy0) / HZ
    res["core_total_s"] = (total1 - total0) / HZ
    res["core_util"] = (busy1 - busy0) / (total1 - total0) if total1 > total0 else None
    res["proc_cpu_s"] = (proc1 - proc0) / HZ
    res["rss_start_kb"] = rss0  # after the warm-up, before the measured run
    res["rss_peak_kb"] = rss.peak
    cb = sum(b[0] - a[0] for a, b in zip(cl0, cl1))
    ct = sum(b[1] - a[1] for a, b in zip(cl0, cl1))
    res["client_util"] = cb / ct if ct > 0 else None
    n = res.get("requests") or 0
    if n > 0:
        res["core_us_per_req"] = res["core_busy_s"] * 1e6 / n
        res["proc_us_per_req"] = res["proc_cpu_s"] * 1e6 / n
    res["raw"] = raw
    return res
