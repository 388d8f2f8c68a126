"""Server definitions, start/stop, readiness and the pre-flight body check.

Every server runs ONE worker, pinned to the server core with taskset, in its
own session (so the whole process tree can be killed and its CPU summed).
"""
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from bench import BENCH_DIR, REPO_ROOT, VENV_DIR, VENV_PY, WORK_DIR, build_tool
from bench.scenarios import Scenario

VBIN = VENV_DIR / "bin"
LIMIT_BIN = WORK_DIR / "limit_server"
NGINX_DIR = WORK_DIR / "nginx"
LOG_DIR = WORK_DIR / "logs"

REF_SCENARIOS = {"plaintext", "pipeline", "c1000"}
LIMIT_SCENARIOS = REF_SCENARIOS | {"12k", "1m"}  # it serves a fixed body: no JSON
NGINX_SCENARIOS = LIMIT_SCENARIOS | {"json"}


def _target(kind: str, scenario: Scenario) -> str:
    return f"bench.apps.{kind}_hello:{scenario.callable}"


@dataclass
class ServerSpec:
    name: str
    kind: str                      # "ref", "wsgi" or "asgi"
    package: Optional[str]         # pip distribution it comes from (None: system)
    command: Callable[[int, Scenario], list]
    scenarios: Optional[set] = None  # None: all scenarios
    note: str = ""
    # TLS scenarios: the extra arguments for (certfile, keyfile); None: the server is not run there
    tls_args: Optional[Callable[[str, str], list]] = None
    plain: bool = False            # serves plain HTTP even in a TLS scenario (the no-TLS reference)

    def supports(self, scenario: Scenario) -> bool:
        if scenario.tls and self.tls_args is None and not self.plain:
            return False
        return self.scenarios is None or scenario.name in self.scenarios

    def uses_tls(self, scenario: Scenario) -> bool:
        return scenario.tls and not self.plain


def _py(*args):
    return [str(VENV_PY), *args]


def _luath_tls(cert: str, key: str) -> list:
    return ["--ssl-certfile", cert, "--ssl-keyfile", key]


def _granian_tls(cert: str, key: str) -> list:
    return ["--ssl-certificate", cert, "--ssl-keyfile", key]


def _uvicorn_tls(cert: str, key: str) -> list:
    return ["--ssl-certfile", cert, "--ssl-keyfile", key]


SERVERS = [
    ServerSpec("limit-c", "ref", None,
               lambda p, s: [str(LIMIT_BIN), str(p), "127.0.0.1", str(s.body_bytes)],
               scenarios=LIMIT_SCENARIOS,
               note="bench/limit_server.c: libuv, no parser, no Python"),
    ServerSpec("nginx", "ref", None,
               lambda p, s: ["nginx", "-p", str(NGINX_DIR), "-e", str(NGINX_DIR / "error.log"),
                             "-c", str(NGINX_DIR / f"nginx-{p}.conf")],
               scenarios=NGINX_SCENARIOS, note="nginx-light, 1 worker, return 200"),
    ServerSpec("luath-wsgi", "wsgi", "luath",
               lambda p, s: _py("-m", "luath", _target("wsgi", s), "--host", "127.0.0.1",
                                "--port", str(p), "--workers", "1"),
               tls_args=_luath_tls),
    ServerSpec("luath-asgi", "asgi", "luath",
               lambda p, s: _py("-m", "luath", _target("asgi", s), "--host", "127.0.0.1",
                                "--port", str(p), "--workers", "1", "--interface", "asgi"),
               tls_args=_luath_tls),
    ServerSpec("luath-plain", "wsgi", "luath",
               lambda p, s: _py("-m", "luath", _target("wsgi", s), "--host", "127.0.0.1",
                                "--port", str(p), "--workers", "1"),
               scenarios={"tls"}, plain=True,
               note="luath-wsgi over plain HTTP: the no-TLS reference of the tls scenario"),
    ServerSpec("bjoern", "wsgi", "bjoern",
               lambda p, s: _py(str(BENCH_DIR / "launch_bjoern.py"), _target("wsgi", s),
                                "127.0.0.1", str(p))),
    ServerSpec("fastpysgi", "wsgi", "fastpysgi",
               lambda p, s: _py(str(BENCH_DIR / "launch_fastpysgi.py"), _target("wsgi", s),
                                "127.0.0.1", str(p))),
    ServerSpec("fastpysgi-asgi", "asgi", "fastpysgi",
               lambda p, s: _py(str(BENCH_DIR / "launch_fastpysgi.py"), _target("asgi", s),
                                "127.0.0.1", str(p))),
    ServerSpec("freastal-wsgi", "wsgi", "freastal",
               lambda p, s: _py(str(BENCH_DIR / "launch_freastal.py"), "wsgi",
                                _target("wsgi", s), "127.0.0.1", str(p))),
    ServerSpec("freastal-asgi", "asgi", "freastal",
               lambda p, s: _py(str(BENCH_DIR / "launch_freastal.py"), "asgi",
                                _target("asgi", s), "127.0.0.1", str(p))),
    ServerSpec("granian-wsgi", "wsgi", "granian",
               lambda p, s: [str(VBIN / "granian"), "--interface", "wsgi", "--host", "127.0.0.1",
                             "--port", str(p), "--workers", "1", "--http", "1", "--no-ws",
                             "--log-level", "warning", _target("wsgi", s)],
               tls_args=_granian_tls),
    ServerSpec("granian-asgi", "asgi", "granian",
               lambda p, s: [str(VBIN / "granian"), "--interface", "asgi", "--host", "127.0.0.1",
                             "--port", str(p), "--workers", "1", "--http", "1", "--no-ws",
                             "--log-level", "warning", _target("asgi", s)],
               tls_args=_granian_tls),
    ServerSpec("uvicorn", "asgi", "uvicorn",
               lambda p, s: [str(VBIN / "uvicorn"), _target("asgi", s), "--host", "127.0.0.1",
                             "--port", str(p), "--loop", "uvloop", "--http", "httptools",
                             "--workers", "1", "--no-access-log", "--log-level", "warning"],
               tls_args=_uvicorn_tls),
    ServerSpec("gunicorn-sync", "wsgi", "gunicorn",
               lambda p, s: [str(VBIN / "gunicorn"), "-w", "1", "-k", "sync",
                             "-b", f"127.0.0.1:{p}", "--log-level", "warning",
                             _target("wsgi", s)],
               note="sync worker: no keep-alive, one connection at a time"),
]

BY_NAME = {s.name: s for s in SERVERS}


# ---------------------------------------------------------------- preparation

def build_limit_server(log=print) -> Optional[str]:
    """Compile bench/limit_server.c; returns an error string or None."""
    src = BENCH_DIR / "limit_server.c"
    return build_tool(LIMIT_BIN, (src,), ["gcc", "-O2", "-Wall", "-o", str(LIMIT_BIN), str(src), "-luv"], log)


def write_nginx_config(port: int) -> Path:
    (NGINX_DIR / "tmp").mkdir(parents=True, exist_ok=True)
    www = NGINX_DIR / "www"
    www.mkdir(exist_ok=True)
    for name, size in (("12k", 12 * 1024), ("1m", 1024 * 1024)):
        f = www / name
        if not f.exists() or f.stat().st_size != size:
            f.write_bytes(b"x" * size)
    for stale in NGINX_DIR.glob("nginx-*.conf"):
        stale.unlink(missing_ok=True)
    d, t = NGINX_DIR, NGINX_DIR / "tmp"
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = f"""# generated by bench/servers.py -- do not edit
{user}worker_processes 1;
daemon off;
pid {d}/nginx-{port}.pid;
error_log {d}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    default_type text/plain;
    sendfile on;
    tcp_nopush off;
    tcp_nodelay on;
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    client_body_temp_path {t}/client;
    proxy_temp_path {t}/proxy;
    fastcgi_temp_path {t}/fastcgi;
    uwsgi_temp_path {t}/uwsgi;
    scgi_temp_path {t}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location = / {{ return 200 "Hello, World!"; }}
        location = /json {{ default_type application/json;
                            return 200 '{{"message": "Hello, World!"}}'; }}
        location = /12k {{ default_type application/octet-stream; alias {www}/12k; }}
        location = /1m {{ default_type application/octet-stream; alias {www}/1m; }}
    }}
}}
"""
    path = NGINX_DIR / f"nginx-{port}.conf"
    path.write_text(conf)
    return path


TLS_DIR = WORK_DIR / "tls"


def tls_cert() -> tuple:
    """(certfile, keyfile): a self-signed P-256 certificate for 127.0.0.1/localhost, made with
    `openssl req` under bench/.work/tls/ the first time (the key is PKCS#8, which granian needs)."""
    cert, key = TLS_DIR / "cert.pem", TLS_DIR / "key.pem"
    if cert.exists() and key.exists():
        r = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-checkend", "86400"],
                           capture_output=True)
        if r.returncode == 0:
            return str(cert), str(key)
    TLS_DIR.mkdir(parents=True, exist_ok=True)
    cmd = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
           "-nodes", "-days", "30", "-subj", "/CN=localhost",
           "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
           "-keyout", str(key), "-out", str(cert)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise StartError(f"cannot make the bench certificate: {e}")
    if r.returncode != 0:
        raise StartError("openssl req failed: " + (r.stderr.strip().splitlines() or ["?"])[-1])
    return str(cert), str(key)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- running

_LIVE: set = set()


class StartError(Exception):
    pass


class Running:
    """One started server.  Use stop() (or stop_all()) to end it."""

    def __init__(self, spec: ServerSpec, scenario: Scenario, core: str, tag: str):
        self.spec = spec
        self.tls = spec.uses_tls(scenario)
        self.scheme = "https" if self.tls else "http"
        self.port = free_port()
        if spec.name == "nginx":
            write_nginx_config(self.port)
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"{spec.name}-{scenario.name}-{tag}.log"
        self.cmd = ["taskset", "-c", core, *spec.command(self.port, scenario)]
        if self.tls:
            self.cmd += spec.tls_args(*tls_cert())
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"]
                                              if env.get("PYTHONPATH") else "")
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        self._log = open(self.log_path, "wb")
        self._log.write(("$ " + " ".join(self.cmd) + "\n").encode())
        self._log.flush()
        try:
            self.proc = subprocess.Popen(self.cmd, cwd=str(REPO_ROOT), env=env,
                                         stdin=subprocess.DEVNULL, stdout=self._log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as e:
            self._log.close()
            raise StartError(f"cannot exec: {e}")
        _LIVE.add(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, n: int = 6) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()[1:]
        except OSError:
            return ""
        lines = [l for l in lines if l.strip()]
        return " | ".join(l.strip()[:200] for l in lines[-n:])

    def wait_ready(self, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                raise StartError(f"exited with status {rc} before listening: {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise StartError(f"not listening after {timeout:.0f}s: {self.log_tail()}")

    def check(self, scenario: Scenario):
        """Pre-flight: one request over http.client; raises StartError on mismatch."""
        try:
            if self.tls:
                import ssl

                ctx = ssl.create_default_context(cafile=tls_cert()[0])  # self-signed: its own CA
                conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=15, context=ctx)
            else:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
            headers = {}
            if scenario.check_body is not None:
                headers["Content-Type"] = "application/octet-stream"
            conn.request(scenario.check_method, scenario.path, body=scenario.check_body,
                         headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
        except Exception as e:  # noqa: BLE001 - any failure is a result to report
            raise StartError(f"pre-flight {scenario.check_method} {scenario.path} failed: "
                             f"{type(e).__name__}: {e} {self.log_tail(3)}")
        if resp.status != 200:
            raise StartError(f"pre-flight got HTTP {resp.status}: {body[:80]!r}")
        err = scenario.check(body)
        if err:
            raise StartError(f"pre-flight: {err}")

    def stop(self, timeout: float = 5.0):
        if self not in _LIVE:
            return
        _LIVE.discard(self)
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
                # the leader is gone; make sure its children (gunicorn worker,
                # nginx worker) are too
                _wait_group_gone(self.proc.pid, wait)
                break
            except subprocess.TimeoutExpired:
                continue
        try:
            self.proc.wait(1)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _wait_group_gone(pgid: int, timeout: float):
    deadline = time.monotonic() + timeout
    while _group_alive(pgid):
        if time.monotonic() > deadline:
            raise subprocess.TimeoutExpired("process group", timeout)
        time.sleep(0.05)


def stop_all():
    for r in list(_LIVE):
        try:
            r.stop(timeout=3.0)
        except Exception as e:  # noqa: BLE001
            print(f"warning: could not stop {r.spec.name} (pid {r.pid}): {e}", file=sys.stderr)


def available(spec: ServerSpec) -> Optional[str]:
    """Cheap check before starting; returns a reason it cannot run, or None."""
    if spec.name == "limit-c" and not LIMIT_BIN.exists():
        return "limit_server not built"
    if spec.name == "nginx" and not shutil.which("nginx"):
        return "nginx not installed"
    if spec.kind != "ref" and not VENV_PY.exists():
        return "bench/.venv missing (run without --skip-install)"
    return None
