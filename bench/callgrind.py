"""python3 -m bench.callgrind: instructions per request of luath's hello apps, under callgrind.

Deterministic counterpart of the wall-clock benchmark: a server runs under
``valgrind --tool=callgrind``; a raw-socket client (this process, one keep-alive
connection, one request in flight, wrk's request bytes) sends WARMUP requests, then
``callgrind_control --zero``, N requests, ``--dump`` (window A), N more requests and
``--dump`` again (window B, 2N requests since A).  Per request = (B - A) / N, per
function, which cancels startup, shutdown, the warmup and the fixed cost of a dump.
If callgrind_control does not work (no ptrace), it falls back to two server runs of
WARMUP+N and WARMUP+2N requests and the difference of their totals at exit.

Every function's exclusive cost goes to one bucket (see ``classify``); the buckets
sum to the total.  Writes bench/results/callgrind.md and .json and appends one line
per run to bench/results/callgrind-history.jsonl (the md shows the change against
the previous run).  The raw callgrind files stay in bench/.work/callgrind/ for
``callgrind_annotate``.
"""
import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from bench import REPO_ROOT, RESULTS_DIR, WORK_DIR

CG_DIR = WORK_DIR / "callgrind"
DEFAULT_PY = REPO_ROOT / ".venv" / "bin" / "python"
HELLO = b"Hello, World!"

BUCKETS = ("parser", "loop/net", "layer", "python", "other")
BUCKET_TITLES = {
    "parser": "parser (luath::http)",
    "loop/net": "loop/net (luath::net, libuv, uvloop, syscalls)",
    "layer": "WSGI/ASGI layer (luath::wsgi/asgi/py)",
    "python": "Python interpreter",
    "other": "other (malloc, memcpy, libstdc++...)",
}

# libc entry points that are (thin wrappers around) the I/O syscalls of the loop.
SYSCALL_FNS = {
    "send", "recv", "sendto", "recvfrom", "sendmsg", "recvmsg", "writev", "readv", "read",
    "write", "__libc_read", "__libc_write", "__write", "__read", "epoll_wait", "epoll_pwait",
    "epoll_ctl", "accept", "accept4", "close", "__close", "shutdown", "poll", "ppoll",
    "clock_gettime", "__clock_gettime", "gettimeofday", "__GI___clock_gettime", "setsockopt",
    "getsockopt", "fcntl", "ioctl", "__libc_send", "__libc_recv", "__libc_sendmsg",
    "__libc_recvmsg", "syscall", "eventfd_write", "eventfd_read",
}


def log(msg=""):
    print(msg, flush=True)


# --------------------------------------------------------------------------- parsing

def parse_callgrind(path):
    """Exclusive and inclusive Ir per (object, function) of one callgrind output file."""
    names = {"ob": {}, "fl": {}, "fn": {}}
    table = {"ob": "ob", "cob": "ob", "fl": "fl", "fi": "fl", "fe": "fl", "cfi": "fl",
             "cfl": "fl", "fn": "fn", "cfn": "fn"}
    ir_index = 0
    self_cost = defaultdict(int)
    incl_calls = defaultdict(int)
    ob = fn = None
    cob = cfn = None
    in_call = False
    comp = re.compile(r"\((\d+)\)\s*(.*)")
    rec_suffix = re.compile(r"'\d+$")

    def resolve(kind, val):
        t = names[table[kind]]
        m = comp.match(val)
        if not m:
            name = val
        elif m.group(2):
            name = t[m.group(1)] = m.group(2)
        else:
            name = t.get(m.group(1), "(" + m.group(1) + ")")
        if table[kind] == "fn":
            name = rec_suffix.sub("", name)  # fn'2: callgrind's recursion levels, merged
        return name

    with open(path, "r", errors="replace") as f:
        for line in f:
            c = line[:1]
            if c.isdigit() or c in "+-*":
                parts = line.split()
                if len(parts) < 2:
                    continue
                try:
                    cost = int(parts[1 + ir_index])
                except (IndexError, ValueError):
                    cost = 0
                if in_call:
                    callee = (cob or ob, cfn)
                    if callee != (ob, fn):  # recursion would count twice in inclusive
                        incl_calls[(ob, fn)] += cost
                    in_call = False
                    cob = cfn = None
                else:
                    self_cost[(ob, fn)] += cost
                continue
            key, sep, val = line.rstrip("\n").partition("=")
            if sep:
                if key == "ob":
                    ob = resolve("ob", val)
                elif key == "fn":
                    fn = resolve("fn", val)
                    cob = cfn = None
                elif key == "cob":
                    cob = resolve("cob", val)
                elif key == "cfn":
                    cfn = resolve("cfn", val)
                elif key in ("fl", "fi", "fe", "cfi", "cfl"):
                    resolve(key, val)
                elif key == "calls":
                    in_call = True
                continue
            if line.startswith("events:"):
                evs = line.split(":", 1)[1].split()
                ir_index = evs.index("Ir") if "Ir" in evs else 0
    incl = {k: self_cost.get(k, 0) + incl_calls.get(k, 0)
            for k in set(self_cost) | set(incl_calls)}
    return dict(self_cost), incl


def symbolizer(path):
    """addr -> demangled name from `nm` of an unstripped object (for the few local symbols
    valgrind leaves as 0x... addresses)."""
    syms = []
    try:
        out = subprocess.run(["nm", "-C", "-S", "--defined-only", str(path)], capture_output=True,
                             text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return lambda a: None
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) == 4 and parts[2] in "tTwW":
            syms.append((int(parts[0], 16), int(parts[1], 16), parts[3]))
    syms.sort()

    def look(addr):
        for start, size, name in syms:
            if start <= addr < start + max(size, 1):
                return name
        return None
    return look


def resolve_addresses(selfc, incl, core_debug):
    """Rename ('..._core...so', '0x...') entries by `nm` of the unstripped _core."""
    if not core_debug:
        return selfc, incl
    look = symbolizer(core_debug)
    def ren(d):
        out = defaultdict(float)
        for (ob, fn), v in d.items():
            if fn and re.fullmatch(r"0x[0-9a-f]+", fn) and "_core" in (ob or ""):
                fn = look(int(fn, 16)) or fn
            out[(ob, fn)] += v
        return dict(out)
    return ren(selfc), ren(incl)


def classify(obj, fn):
    """The bucket of one function, by name first, then by the object it lives in."""
    fn = fn or ""
    base = os.path.basename(obj or "")
    if fn.startswith("luath::http::"):
        return "parser"
    if fn.startswith("luath::net::") or fn.startswith("uv_") or fn.startswith("uv__"):
        return "loop/net"
    if fn.startswith(("luath::wsgi::", "luath::asgi::", "luath::py::", "luath::")):
        return "layer"
    if base.startswith("libuv") or "uvloop" in (obj or ""):
        return "loop/net"
    if base.startswith("libc.so") and fn in SYSCALL_FNS:
        return "loop/net"
    if base.startswith("_core.") and "luath" in (obj or ""):
        return "layer"  # luath's own object: PyInit, std:: templates instantiated there
    if (base.startswith("libpython") or re.match(r"python\d", base)
            or "/lib-dynload/" in (obj or "")
            or fn.startswith(("Py", "_Py", "_py"))):
        return "python"
    return "other"


def short_obj(obj):
    base = os.path.basename(obj or "?")
    return base.split(".cpython-")[0].split(".so")[0] or base


# --------------------------------------------------------------------------- build ids

def _readelf(args, path):
    try:
        return subprocess.run(["readelf", *args, str(path)], capture_output=True,
                              text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def build_id(path):
    m = re.search(r"Build ID:\s*([0-9a-f]+)", _readelf(["-n"], path))
    return m.group(1) if m else None


def has_symtab(path):
    return ".symtab" in _readelf(["-S", "-W"], path)


def debug_dir_for(core_so):
    """luath's installed _core is stripped: link an unstripped build with the same build id
    into DIR/.build-id/xx/yyyy.debug for valgrind's --extra-debuginfo-path.  Returns
    (dir or None, unstripped file or None, note)."""
    if has_symtab(core_so):
        return None, core_so, "installed _core has symbols"
    bid = build_id(core_so)
    if not bid:
        return None, None, "installed _core is stripped and has no build id: luath functions unnamed"
    cands = []
    for pat in ("build/*/_core*.so", "build/*/*/_core*.so", "build/*/*/*/_core*.so",
                "bench/.work/luath-build/_core*.so"):
        cands += sorted(REPO_ROOT.glob(pat))
    for c in cands:
        if c.resolve() != Path(core_so).resolve() and build_id(c) == bid and has_symtab(c):
            d = CG_DIR / "debug"
            link = d / ".build-id" / bid[:2] / (bid[2:] + ".debug")
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(c.resolve())
            return d, c, f"symbols from {c.relative_to(REPO_ROOT)} (build id {bid[:12]})"
    return None, None, ("WARNING: installed _core is stripped and no unstripped build with build id "
                  f"{bid[:12]} was found under build/: luath's functions appear as addresses "
                  "(all counted as 'layer'). Rebuild, e.g. pip install -e . "
                  "--config-settings=install.strip=false")


# --------------------------------------------------------------------------- client

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """One keep-alive connection, one request in flight (like one wrk connection)."""

    def __init__(self, port, timeout=60, body=None, tls=False):
        if body is None:
            self.req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port
        else:  # wrk's upload.lua: a POST with Content-Length
            self.req = (b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                        b"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n"
                        % (port, len(body))) + body
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:  # TLS 1.3 (the server's preferred suite), like wrk's: no verification
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self.sock = ctx.wrap_socket(self.sock)
        self.buf = bytearray()  # appended in place: a 1 MiB body is not copied per recv

    def one(self):
        self.sock.sendall(self.req)
        while True:
            h = self.buf.find(b"\r\n\r\n")
            if h >= 0:
                head = bytes(self.buf[:h])
                m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                if not m:
                    raise RuntimeError("response without content-length: %r" % head[:200])
                end = h + 4 + int(m.group(1))
                while len(self.buf) < end:
                    d = self.sock.recv(max(65536, end - len(self.buf)))
                    if not d:
                        raise RuntimeError("server closed the connection")
                    self.buf += d
                status, body = head.split(b"\r\n", 1)[0], bytes(self.buf[h + 4:end])
                del self.buf[:end]
                return status, body
            d = self.sock.recv(65536)
            if not d:
                raise RuntimeError("server closed the connection")
            self.buf += d

    def run(self, n):
        for _ in range(n):
            self.one()

    def close(self):
        self.sock.close()


# --------------------------------------------------------------------------- server

class Server:
    def __init__(self, py, cfg, out, debug_dir):
        self.port = free_port()
        self.out = out
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
               "--dump-instr=no"]
        if debug_dir:
            cmd.append(f"--extra-debuginfo-path={debug_dir}")
        cmd += [str(py), "-m", "luath", cfg["app"], "--host", "127.0.0.1",
                "--port", str(self.port), "--workers", "1", *cfg["args"]]
        self.cmd = cmd
        env = dict(os.environ, PYTHONHASHSEED="0",
                   PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   **cfg.get("env", {}))
        self.logf = open(str(out) + ".log", "w")
        self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=self.logf,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_up(self, timeout=90):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}); see {self.out}.log")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return time.time() - t0
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"server not up after {timeout}s; see {self.out}.log")

    def control(self, what):
        """callgrind_control --zero / --dump; True on success."""
        try:
            r = subprocess.run(["callgrind_control", what, str(self.proc.pid)],
                               capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return False
        return r.returncode == 0 and "OK" in r.stdout

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.logf.close()


def wait_file(path, timeout=30):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if path.exists() and path.stat().st_size > 0:
            # the dump is written in one go, but let its size settle
            s = path.stat().st_size
            time.sleep(0.2)
            if path.stat().st_size == s:
                return True
        time.sleep(0.1)
    return False


def check_first(client):
    status, body = client.one()
    if not status.startswith(b"HTTP/1.1 200") or not body:
        raise RuntimeError(f"unexpected response: {status!r} {body[:60]!r}")


def measure_window(py, cfg, n, warmup, debug_dir):
    """One server run; windows A (N requests) and B (2N requests) by zero/dump."""
    out = CG_DIR / f"{cfg['name']}.out"
    for old in CG_DIR.glob(f"{cfg['name']}.out*"):
        old.unlink()
    srv = Server(py, cfg, out, debug_dir)
    try:
        up = srv.wait_up()
        c = Client(srv.port, body=cfg.get("body"), tls=cfg.get("tls", False))
        check_first(c)
        c.run(warmup)
        time.sleep(0.2)
        if not srv.control("--zero"):
            return None
        t0 = time.time()
        c.run(n)
        ta = time.time() - t0
        time.sleep(0.3)  # let the last response's after-work finish before the dump
        if not srv.control("--dump"):
            return None
        t0 = time.time()
        c.run(2 * n)
        tb = time.time() - t0
        time.sleep(0.3)
        if not srv.control("--dump"):
            return None
        c.close()
        fa, fb = Path(str(out) + ".1"), Path(str(out) + ".2")
        if not (wait_file(fa) and wait_file(fb)):
            return None
        return {"a": parse_callgrind(fa), "b": parse_callgrind(fb), "method": "window",
                "files": [str(fa), str(fb)], "startup_s": round(up, 1),
                "req_per_s_under_valgrind": round((3 * n) / (ta + tb), 0)}
    finally:
        srv.stop()


def measure_restart(py, cfg, n, warmup, debug_dir):
    """Fallback: two server runs (WARMUP+N, WARMUP+2N requests), totals at exit."""
    res = {}
    for tag, count in (("a", n), ("b", 2 * n)):
        out = CG_DIR / f"{cfg['name']}-{tag}.out"
        if out.exists():
            out.unlink()
        srv = Server(py, cfg, out, debug_dir)
        try:
            srv.wait_up()
            c = Client(srv.port, body=cfg.get("body"), tls=cfg.get("tls", False))
            check_first(c)
            c.run(warmup + count)
            c.close()
            time.sleep(0.3)
        finally:
            srv.stop()
        res[tag] = parse_callgrind(out)
        res.setdefault("files", []).append(str(out))
    res["method"] = "restart"
    return res


# --------------------------------------------------------------------------- analysis

def per_request(res, n, core_debug=None):
    (sa, ia), (sb, ib) = res["a"], res["b"]
    keys = set(sa) | set(sb)
    selfc = {k: (sb.get(k, 0) - sa.get(k, 0)) / n for k in keys}
    ikeys = set(ia) | set(ib)
    incl = {k: (ib.get(k, 0) - ia.get(k, 0)) / n for k in ikeys}
    selfc, incl = resolve_addresses(selfc, incl, core_debug)
    total = sum(selfc.values())
    # recursion (the eval loop calling itself through C) makes inclusive sums exceed the total
    incl = {k: min(v, total) for k, v in incl.items()}
    buckets = {b: 0.0 for b in BUCKETS}
    other_by_obj = defaultdict(float)
    for (ob, fn), v in selfc.items():
        b = classify(ob, fn)
        buckets[b] += v
        if b == "other":
            other_by_obj[short_obj(ob)] += v

    def fmt(items):
        return [{"function": fn or "?", "object": short_obj(ob), "bucket": classify(ob, fn),
                 "self": round(selfc.get((ob, fn), 0), 1),
                 "inclusive": round(incl.get((ob, fn), 0), 1)} for (ob, fn), _ in items]

    top_self = sorted(selfc.items(), key=lambda kv: -kv[1])[:40]
    # leave out the stack everything runs under (main, uv_run, the eval loop...)
    top_incl = sorted(((k, v) for k, v in incl.items() if v < 0.97 * total),
                      key=lambda kv: -kv[1])[:25]
    luath_incl = sorted(((k, v) for k, v in incl.items()
                         if (k[1] or "").startswith("luath::") and v < 0.97 * total),
                        key=lambda kv: -kv[1])[:15]
    return {
        "total": round(total, 1),
        "buckets": {b: round(v, 1) for b, v in buckets.items()},
        "other_by_object": {k: round(v, 1) for k, v in
                            sorted(other_by_obj.items(), key=lambda kv: -kv[1])[:8]},
        "top_exclusive": fmt(top_self),
        "top_inclusive": fmt(top_incl),
        "luath_inclusive": fmt(luath_incl),
        "window_a_total": sum(sa.values()),
        "window_b_total": sum(sb.values()),
    }


# --------------------------------------------------------------------------- report

def git_info():
    def g(*a):
        try:
            return subprocess.run(["git", *a], cwd=REPO_ROOT, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    dirty = bool(g("status", "--porcelain", "--", "src", "CMakeLists.txt"))
    return {"commit": g("rev-parse", "--short", "HEAD"), "src_dirty": dirty}


def py_info(py):
    code = ("import sys, json, luath._core as c\n"
            "try:\n import uvloop; u = uvloop.__version__\nexcept Exception: u = None\n"
            "print(json.dumps({'python': sys.version.split()[0], 'core': c.__file__, 'uvloop': u}))")
    r = subprocess.run([str(py), "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    if r.returncode != 0:
        raise SystemExit(f"{py} cannot import luath._core:\n{r.stderr}")
    return json.loads(r.stdout)


def _n(v):
    return f"{v:,.0f}"


def _delta(cur, prev):
    if prev is None or not prev:
        return ""
    d = cur - prev
    return f"{d:+,.0f} ({d / prev * 100:+.1f}%)"


def _short_fn(fn):
    """luath::net::Connection::on_readable() -> net::Connection::on_readable"""
    fn = re.sub(r"\(anonymous namespace\)::", "", fn)
    depth, out = 0, []
    for ch in fn:  # drop argument lists and template arguments
        if ch in "(<":
            depth += 1
        elif ch in ")>":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out).replace("luath::", "").strip()


def previous_run(history, names):
    """The latest history entry that has any of these configs."""
    for entry in reversed(history):
        if any(n in entry.get("rows", {}) for n in names):
            return entry
    return None


def write_report(meta, rows, results_dir, top_n):
    results_dir.mkdir(parents=True, exist_ok=True)
    hist_path = results_dir / "callgrind-history.jsonl"
    history = []
    if hist_path.exists():
        for line in hist_path.read_text().splitlines():
            try:
                history.append(json.loads(line))
            except ValueError:
                pass
    prev = previous_run(history, list(rows))
    L = []
    L.append("# luath: instructions per request (callgrind)")
    L.append("")
    L.append(f"- date: {meta['date']}  ")
    L.append(f"- commit: {meta['commit']}{' + uncommitted src changes' if meta['src_dirty'] else ''}  ")
    L.append(f"- Python {meta['python']}, uvloop {meta['uvloop'] or 'not installed'}, "
             f"{meta['valgrind']}  ")
    L.append(f"- {meta['requests']} keep-alive `GET /` (wrk's request bytes; the -upload configs: "
             f"`POST /upload` with a 1 MiB body) on one connection, "
             f"after {meta['warmup']} warmup requests; per request = difference of two windows "
             f"(method: {', '.join(sorted(set(r['method'] for r in rows.values())))})  ")
    L.append(f"- {meta['symbols']}  ")
    L.append("- Ir = instructions executed (deterministic; user space only, the kernel's side of "
             "the syscalls is not counted)")
    L.append("")
    hdr = "| config | total Ir/req | " + " | ".join(BUCKET_TITLES[b] for b in BUCKETS) + \
          " | Δ total vs previous run |"
    L.append(hdr)
    L.append("|" + "---|" * (len(BUCKETS) + 3))
    for name, r in rows.items():
        cells = []
        for b in BUCKETS:
            v = r["buckets"][b]
            cells.append(f"{_n(v)} ({v / r['total'] * 100:.0f}%)" if r["total"] else _n(v))
        p = prev["rows"].get(name, {}).get("total") if prev else None
        L.append(f"| {name} | **{_n(r['total'])}** | " + " | ".join(cells) +
                 f" | {_delta(r['total'], p) or '-'} |")
    L.append("")
    if prev:
        L.append(f"Previous run: {prev.get('date')} (commit {prev.get('commit')}"
                 f"{', dirty' if prev.get('src_dirty') else ''}).")
        L.append("")
    L.append("Buckets are exclusive (self) cost, so they sum to the total; a CPython call made "
             "by luath's layer counts as Python. `other` by object: " +
             "; ".join(f"{n}: " + ", ".join(f"{k} {_n(v)}" for k, v in list(r['other_by_object'].items())[:4])
                       for n, r in rows.items()))
    L.append("")
    L.append("Caveats: valgrind counts every iteration of `rep stos`/`rep movs` (glibc's memset/"
             "memcpy for larger sizes) as one instruction, so big memsets weigh more here than in "
             "cycles. `incl` = self + callees, capped at the total (recursion through the eval "
             "loop over-counts it). Syscalls count only their user-space wrapper.")
    L.append("")
    for name, r in rows.items():
        L.append(f"## {name}: top {top_n} functions by exclusive Ir/request")
        L.append("")
        L.append(f"`{meta['commands'][name]}`")
        L.append("")
        L.append("| # | function | object | bucket | self Ir/req | incl Ir/req |")
        L.append("|---|---|---|---|---|---|")
        for i, f in enumerate(r["top_exclusive"][:top_n], 1):
            fn = f["function"].replace("|", "\\|")
            if len(fn) > 110:
                fn = fn[:107] + "..."
            L.append(f"| {i} | `{fn}` | {f['object']} | {f['bucket']} | {_n(f['self'])} | "
                     f"{_n(f['inclusive'])} |")
        L.append("")
        L.append("luath's functions by inclusive Ir/request (with the Python they call): " +
                 "; ".join(f"`{_short_fn(f['function'])}` {_n(f['inclusive'])}"
                           for f in r["luath_inclusive"][:8]))
        L.append("")
    L.append("Raw files: `bench/.work/callgrind/<config>.out.1` (window A) and `.out.2` "
             "(window B); e.g. `callgrind_annotate --threshold=100 --inclusive=yes bench/.work/callgrind/wsgi.out.2`.")
    md = "\n".join(L) + "\n"
    (results_dir / "callgrind.md").write_text(md)
    (results_dir / "callgrind.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    entry = {k: meta[k] for k in ("date", "commit", "src_dirty", "python", "uvloop", "requests")}
    entry["rows"] = {n: {"total": r["total"], "buckets": r["buckets"]} for n, r in rows.items()}
    with open(hist_path, "a") as f:
        f.write(json.dumps(entry) + "\n")
    return md


# --------------------------------------------------------------------------- main

def configs(uvloop_ok, only):
    cs = [{"name": "wsgi", "app": "bench.apps.wsgi_hello:app", "args": ["--interface", "wsgi"]}, {"name": "wsgi-json", "app": "bench.apps.wsgi_hello:json_app", "args": ["--interface", "wsgi"]},
          # the hello app run by a pool of 4 threads (--threads): the cost of the hand-off per request
          {"name": "wsgi-threads4", "app": "bench.apps.wsgi_hello:app", "args": ["--interface", "wsgi", "--threads", "4"]}]
    # response bodies of the 12k and 1m scenarios (one bytes object each, with Content-Length)
    for size in ("12k", "1m"):
        cs.append({"name": f"wsgi-{size}", "app": f"bench.apps.wsgi_hello:app_{size}",
                   "args": ["--interface", "wsgi"], "size": size})
    if uvloop_ok:
        cs.append({"name": "asgi-uvloop", "app": "bench.apps.asgi_hello:app",
                   "args": ["--interface", "asgi", "--loop", "uvloop"]})
    cs.append({"name": "asgi-asyncio", "app": "bench.apps.asgi_hello:app",
               "args": ["--interface", "asgi", "--loop", "asyncio"]})
    # 1 MiB POST bodies read fully by the app (the upload scenario); not in the default set (each
    # request moves 1 MiB under valgrind): --configs asgi-upload,wsgi-upload -n 200 --warmup 50
    upload = b"x" * (1024 * 1024)
    extra = [{"name": "wsgi-upload", "app": "bench.apps.wsgi_hello:upload_app", "body": upload,
              "args": ["--interface", "wsgi"]},
             {"name": "asgi-upload", "app": "bench.apps.asgi_hello:upload_app", "body": upload,
              "args": ["--interface", "asgi", "--loop", "uvloop" if uvloop_ok else "asyncio"]}]
    # TLS 1.3 on the keep-alive connection: luath's own record layer, and OpenSSL's (A/B)
    from bench.servers import tls_cert
    cert, key = tls_cert()
    tls_args = ["--interface", "wsgi", "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]
    cs.append({"name": "wsgi-tls", "app": "bench.apps.wsgi_hello:app", "args": tls_args, "tls": True})
    cs.append({"name": "wsgi-tls-openssl", "app": "bench.apps.wsgi_hello:app", "args": tls_args, "tls": True,
               "env": {"LUATH_TLS_RECORDS": "openssl"}})
    loop = "uvloop" if uvloop_ok else "asyncio"
    for size in ("12k", "1m"):
        cs.append({"name": f"asgi-{size}", "app": f"bench.apps.asgi_hello:app_{size}",
                   "args": ["--interface", "asgi", "--loop", loop], "size": size})
    if only:
        want = set(only.split(","))
        cs += [c for c in extra if c["name"] in want]
        cs = [c for c in cs if c["name"] in want or c["name"].split("-")[0] in want]
    return cs


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python3 -m bench.callgrind", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--python", default=str(DEFAULT_PY),
                   help="interpreter with luath installed (default: %(default)s)")
    p.add_argument("--requests", "-n", type=int, default=2000,
                   help="N: requests per window difference (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=500, help="unmeasured requests first")
    p.add_argument("--configs", default="",
                   help="comma list of config names (wsgi, wsgi-json, wsgi-threads4, wsgi-12k, wsgi-1m, "
                        "wsgi-tls, wsgi-tls-openssl, asgi-uvloop, asgi-asyncio, asgi-12k, asgi-1m) or a prefix "
                        "(wsgi, asgi); default all of those. Only by name: wsgi-upload, asgi-upload (1 MiB POSTs; "
                        "use e.g. -n 200 --warmup 50)")
    p.add_argument("--method", choices=("auto", "window", "restart"), default="auto",
                   help="window: callgrind_control zero/dump in one run; restart: two runs")
    p.add_argument("--top", type=int, default=15, help="functions listed per config in the md")
    p.add_argument("--results-dir", default=str(RESULTS_DIR))
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    for tool in ("valgrind", "callgrind_control", "readelf"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found (apt-get install valgrind binutils)")
    py = Path(args.python)
    CG_DIR.mkdir(parents=True, exist_ok=True)
    info = py_info(py)
    debug_dir, core_debug, sym_note = debug_dir_for(info["core"])
    log(f"python {info['python']}, uvloop {info['uvloop']}; {sym_note}")
    vg = subprocess.run(["valgrind", "--version"], capture_output=True, text=True).stdout.strip()
    rows, commands = {}, {}
    t_all = time.time()
    for cfg in configs(info["uvloop"] is not None, args.configs):
        t0 = time.time()
        res = None
        if args.method in ("auto", "window"):
            res = measure_window(py, cfg, args.requests, args.warmup, debug_dir)
            if res is None:
                if args.method == "window":
                    raise SystemExit("callgrind_control zero/dump failed")
                log("  callgrind_control failed: falling back to two runs")
        if res is None:
            res = measure_restart(py, cfg, args.requests, args.warmup, debug_dir)
        r = per_request(res, args.requests, core_debug)
        r["method"] = res["method"]
        r["files"] = res["files"]
        for k in ("startup_s", "req_per_s_under_valgrind"):
            if k in res:
                r[k] = res[k]
        rows[cfg["name"]] = r
        commands[cfg["name"]] = "python -m luath " + " ".join([cfg["app"], *cfg["args"]])
        log(f"{cfg['name']:14s} {r['total']:10,.0f} Ir/req  " +
            "  ".join(f"{b} {v:,.0f}" for b, v in r["buckets"].items()) +
            f"   [{time.time() - t0:.0f}s]")
    meta = {"date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            **git_info(), "python": info["python"], "uvloop": info["uvloop"],
            "valgrind": vg, "requests": args.requests, "warmup": args.warmup,
            "symbols": sym_note, "commands": commands}
    write_report(meta, rows, Path(args.results_dir), args.top)
    log(f"wrote {Path(args.results_dir) / 'callgrind.md'} and .json  [{time.time() - t_all:.0f}s]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
