"""Fixtures and raw-socket HTTP helpers for the luath end-to-end suite.

Servers are real processes listening on 127.0.0.1:

    python -m luath tests.apps.<module>:<app> --host 127.0.0.1 --port N [extra...]

started with cwd = repository root.  ``start_server(app_spec, *extra)`` returns
a running ``Server``; servers are cached per (app_spec, extra) for the whole
session and restarted transparently when one has died (the fixture that
handed it out reports the death as a test error, see ``server`` below).

Self-check mode: ``LUATH_TEST_SERVER=gunicorn`` runs the same suite against
gunicorn (gthread worker) to validate the tests' own logic.  Options luath has
and gunicorn does not are translated when possible and dropped otherwise, so
some tests are expected to fail in that mode.  The default is luath.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
SERVER_KIND = os.environ.get("LUATH_TEST_SERVER", "luath")
BASIC = "tests.apps.basic:app"
VALIDATED = "tests.apps.basic:validated_app"

# Timeouts are generous on purpose: the suite must be reliable on a loaded 2-core box.
IO_TIMEOUT = 15.0
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0

collect_ignore = ["cpp"]  # tests/cpp belongs to the C++ unit tests


def pytest_configure(config):
    config.addinivalue_line("markers", "heavy: large transfers (64 MiB / 100 MiB); still run in CI")


# ---------------------------------------------------------------------------------------------
# Server processes
# ---------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


_GUNICORN_MAP = {
    "--workers": "--workers",
    "--max-request-line": "--limit-request-line",
    "--max-headers": "--limit-request-fields",
    "--max-field-size": "--limit-request-field_size",
    "--timeout-keep-alive": "--keep-alive",
    "--log-level": "--log-level",
}


def _command(app_spec: str, port: int, extra: tuple[str, ...]) -> list[str]:
    if SERVER_KIND == "luath":
        return [sys.executable, "-m", "luath", app_spec, "--host", HOST, "--port", str(port), *extra]
    if SERVER_KIND == "gunicorn":
        exe = os.environ.get("LUATH_TEST_GUNICORN") or shutil.which("gunicorn") \
            or str(Path(sys.executable).with_name("gunicorn"))
        args = [exe, "-b", f"{HOST}:{port}", "-k", "gthread", "--threads", "8", "-w", "1",
                "--graceful-timeout", "2"]
        it = iter(extra)
        for opt in it:
            val = next(it)
            if opt in _GUNICORN_MAP:
                args += [_GUNICORN_MAP[opt], val]
        return args + [app_spec]
    raise RuntimeError(f"unknown LUATH_TEST_SERVER={SERVER_KIND!r}")


@dataclass
class Server:
    app_spec: str
    extra: tuple[str, ...]
    port: int
    proc: subprocess.Popen
    stderr_path: Path
    stdout_path: Path
    _files: list = field(default_factory=list)

    @property
    def host(self) -> str:
        return HOST

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_size(self) -> int:
        try:
            return self.stderr_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, offset: int) -> str:
        with open(self.stderr_path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    def wait_for_log(self, needle: str, offset: int = 0, timeout: float = 10.0) -> str:
        """Poll the server's stderr until ``needle`` appears after ``offset``; return the text."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_since(offset)
            if needle in text:
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} did not appear in the server's stderr within {timeout}s; "
                                     f"stderr since offset:\n{text[-4000:]}")
            time.sleep(0.05)

    def connect(self, timeout: float = IO_TIMEOUT) -> "RawConn":
        return RawConn(self.port, timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
        # Workers of a multi-process server live in the session (process group) this suite started;
        # make sure none outlives its supervisor.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for f in self._files:
            f.close()

    # ---- conveniences over the basic app ----
    def stats(self, tag: str = "") -> dict:
        """GET /__stats of tests.apps.basic (module-level counters in the worker)."""
        with self.connect() as c:
            r = c.request("GET", f"/__stats?tag={tag}", headers={"Connection": "close"})
        assert r.status == 200, r
        return json.loads(r.body)


def _start_process(app_spec: str, extra: tuple[str, ...], logdir: Path, seq: int) -> Server:
    last_err = None
    for _attempt in range(3):
        port = free_port()
        stem = f"{seq:03d}-{app_spec.replace(':', '_')}-{port}"
        err_path = logdir / f"{stem}.stderr.log"
        out_path = logdir / f"{stem}.stdout.log"
        err_f = open(err_path, "wb")
        out_f = open(out_path, "wb")
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        proc = subprocess.Popen(_command(app_spec, port, extra), cwd=str(REPO_ROOT), env=env,
                                stdin=subprocess.DEVNULL, stdout=out_f, stderr=err_f,
                                start_new_session=True)
        srv = Server(app_spec, extra, port, proc, err_path, out_path, [err_f, out_f])
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                with socket.create_connection((HOST, port), timeout=1.0):
                    return srv
            except OSError:
                time.sleep(0.05)
        srv.stop()
        last_err = (f"server {app_spec} {extra} did not start (exit={proc.poll()}); "
                    f"stderr:\n{srv.stderr_text()[-4000:]}")
        if "address already in use" not in srv.stderr_text().lower():
            break
    raise RuntimeError(last_err)


class ServerPool:
    def __init__(self, logdir: Path):
        self.logdir = logdir
        self.cached: dict[tuple, Server] = {}
        self.all: list[Server] = []
        self.seq = 0

    def start(self, app_spec: str, *extra: str, fresh: bool = False) -> Server:
        key = (app_spec, tuple(extra))
        if not fresh:
            srv = self.cached.get(key)
            if srv is not None and srv.alive():
                return srv
        self.seq += 1
        srv = _start_process(app_spec, tuple(extra), self.logdir, self.seq)
        self.all.append(srv)
        if not fresh:
            self.cached[key] = srv
        return srv

    def stop_all(self) -> None:
        for srv in self.all:
            srv.stop()


@pytest.fixture(scope="session")
def server_pool(tmp_path_factory):
    pool = ServerPool(tmp_path_factory.mktemp("server-logs"))
    yield pool
    pool.stop_all()


@pytest.fixture
def start_server(server_pool):
    """Factory: start_server(app_spec, *extra, fresh=False) -> Server.

    Every server handed out must still be alive when the test ends; a server
    that died during a test is reported as an error of that test.
    """
    handed: list[Server] = []

    def start(app_spec: str, *extra: str, fresh: bool = False) -> Server:
        srv = server_pool.start(app_spec, *extra, fresh=fresh)
        handed.append(srv)
        return srv

    yield start
    dead = [s for s in handed if not s.alive()]
    if dead:
        s = dead[0]
        pytest.fail(f"server {s.app_spec} {s.extra} died during the test (exit code {s.proc.returncode}); "
                    f"stderr tail:\n{s.stderr_text()[-3000:]}", pytrace=False)


@pytest.fixture
def server(start_server) -> Server:
    """The basic test app, one worker, default limits."""
    return start_server(BASIC, "--workers", "1")


# ---------------------------------------------------------------------------------------------
# Raw HTTP client
# ---------------------------------------------------------------------------------------------

class ConnectionClosed(Exception):
    """The peer closed the connection before a complete response head arrived."""


class ConnectionResetBeforeResponse(AssertionError):
    pass


@dataclass
class Response:
    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    raw_head: bytes
    framing: str            # "none" | "length" | "chunked" | "close"
    complete: bool          # False when the peer closed before the framing said the body ended
    trailers: list[tuple[str, str]] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        found = [v for k, v in self.headers if k.lower() == name]
        return found[-1] if found else default

    def header_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def has_header(self, name: str) -> bool:
        return any(k.lower() == name.lower() for k, _ in self.headers)

    def connection_tokens(self) -> set[str]:
        toks = set()
        for v in self.header_all("connection"):
            toks.update(t.strip().lower() for t in v.split(","))
        return toks

    def json(self):
        return json.loads(self.body)

    def __repr__(self) -> str:
        b = self.body if len(self.body) <= 300 else self.body[:300] + b"..."
        return (f"<Response {self.version} {self.status} {self.reason!r} headers={self.headers!r} "
                f"framing={self.framing} complete={self.complete} body={b!r}>")


class RawConn:
    """A plain TCP connection with an HTTP/1.x response reader."""

    def __init__(self, port: int, host: str = HOST, timeout: float = IO_TIMEOUT):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.reset = False
        self.port = port

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    @property
    def local_port(self) -> int:
        return self.sock.getsockname()[1]

    def silent_for(self, seconds: float) -> bytes:
        """What arrives within `seconds` (b"" when the server says nothing); the timeout is left at
        `seconds`, callers set their own next."""
        self.sock.settimeout(seconds)
        try:
            return self.sock.recv(100)
        except (TimeoutError, OSError):
            return b""

    def settimeout(self, t: float) -> None:
        self.sock.settimeout(t)

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self, n: int = 65536) -> bool:
        """Receive more bytes into the buffer; False on EOF/reset."""
        if self.eof:
            return False
        try:
            data = self.sock.recv(n)
        except ConnectionResetError:
            self.eof = True
            self.reset = True
            return False
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _take(self, n: int) -> bytes:
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_line(self, limit: int = 1 << 20) -> bytes | None:
        """Read one CRLF-terminated line (returned without CRLF); None on EOF first."""
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = self._take(i + 2)
                return line[:-2]
            if len(self.buf) > limit:
                raise AssertionError(f"line longer than {limit} bytes: {bytes(self.buf[:200])!r}...")
            if not self._fill():
                return None

    def read_exact(self, n: int) -> tuple[bytes, bool]:
        while len(self.buf) < n:
            if not self._fill(max(65536, n - len(self.buf))):
                return self._take(len(self.buf)), False
        return self._take(n), True

    def read_to_eof(self, limit: int | None = None) -> bytes:
        while self._fill():
            if limit is not None and len(self.buf) > limit:
                break
        return self._take(len(self.buf))

    def read_head(self) -> tuple[bytes, str, int, str, list[tuple[str, str]]]:
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                head = self._take(i + 4)
                break
            if len(self.buf) > 1 << 20:
                raise AssertionError("response head larger than 1 MiB")
            if not self._fill():
                if self.reset:
                    raise ConnectionResetBeforeResponse(
                        f"connection reset by the server before a complete response head "
                        f"(got {bytes(self.buf)!r}); the server closed without draining/lingering")
                raise ConnectionClosed(f"connection closed before a complete response head; got {bytes(self.buf)!r}")
        lines = head[:-4].split(b"\r\n")
        status_line = lines[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        assert len(parts) >= 2 and parts[0].startswith("HTTP/1."), f"bad status line {status_line!r}"
        version = parts[0]
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        for ln in lines[1:]:
            assert b":" in ln, f"bad response header line {ln!r} in head {head!r}"
            k, v = ln.split(b":", 1)
            headers.append((k.decode("latin-1"), v.strip(b" \t").decode("latin-1")))
        return head, version, status, reason, headers

    def read_response(self, method: str = "GET", *, allow_incomplete: bool = False,
                      keep_interim: bool = False) -> Response:
        """Read one complete response (1xx interim responses are skipped unless keep_interim)."""
        while True:
            head, version, status, reason, headers = self.read_head()
            resp = Response(version, status, reason, headers, b"", head, "none", True)
            if 100 <= status < 200:
                if keep_interim:
                    return resp
                continue
            break
        te = ",".join(resp.header_all("transfer-encoding")).lower()
        cl = resp.header_all("content-length")
        if method.upper() == "HEAD" or status in (204, 304):
            resp.framing = "none"
            return resp
        if te:
            codings = [c.strip() for c in te.split(",") if c.strip()]
            assert codings[-1] == "chunked", f"response transfer-encoding {te!r} is not chunked-last"
            resp.framing = "chunked"
            self._read_chunked(resp)
        elif cl:
            assert len(set(cl)) == 1, f"several different Content-Length values in response: {cl}"
            n = int(cl[0])
            resp.framing = "length"
            resp.body, resp.complete = self.read_exact(n)
        else:
            resp.framing = "close"
            resp.body = self.read_to_eof()
            resp.complete = True
        if not resp.complete and not allow_incomplete:
            raise AssertionError(f"incomplete response (peer closed mid-body): {resp!r}")
        return resp

    def _read_chunked(self, resp: Response) -> None:
        body = bytearray()
        while True:
            line = self.read_line()
            if line is None:
                resp.complete = False
                break
            size_s = line.split(b";", 1)[0].strip()
            assert size_s and all(c in b"0123456789abcdefABCDEF" for c in size_s), \
                f"bad chunk size line in response: {line!r}"
            size = int(size_s, 16)
            if size == 0:
                while True:
                    t = self.read_line()
                    if t is None:
                        resp.complete = False
                        break
                    if t == b"":
                        break
                    k, _, v = t.partition(b":")
                    resp.trailers.append((k.decode("latin-1"), v.strip().decode("latin-1")))
                break
            data, ok = self.read_exact(size + 2)
            if not ok or data[-2:] != b"\r\n":
                body += data[:size]
                resp.complete = False
                break
            resp.chunks.append(data[:-2])
            body += data[:-2]
        resp.body = bytes(body)

    def request(self, method: str, target: str, body: bytes = b"", headers: dict | list | None = None,
                version: str = "HTTP/1.1", host: str | None = "default") -> Response:
        self.send(build_request(method, target, body, headers, version, host, self.port))
        return self.read_response(method)

    def wait_closed(self, timeout: float = 10.0) -> tuple[bool, bytes]:
        """Wait until the server closes; return (closed, extra bytes received meanwhile)."""
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        extra = bytearray(self.buf)
        self.buf.clear()
        try:
            while not self.eof:
                try:
                    data = self.sock.recv(65536)
                except ConnectionResetError:
                    self.eof = self.reset = True
                    break
                if not data:
                    self.eof = True
                    break
                extra += data
        except (socket.timeout, TimeoutError):
            return False, bytes(extra)
        finally:
            self.sock.settimeout(old)
        return True, bytes(extra)

    def is_open_after(self, wait: float = 0.3) -> bool:
        """True if nothing (no EOF) arrives within ``wait`` seconds (peer keeps the connection open)."""
        old = self.sock.gettimeout()
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(1, socket.MSG_PEEK)
            return bool(data)
        except (socket.timeout, TimeoutError):
            return True
        except ConnectionResetError:
            return False
        finally:
            self.sock.settimeout(old)


def build_request(method: str, target: str, body: bytes = b"", headers: dict | list | None = None,
                  version: str = "HTTP/1.1", host: str | None = "default", port: int | None = None) -> bytes:
    """Build a request. A Host header is added unless host=None; Content-Length is added for a body
    unless the caller supplied Content-Length or Transfer-Encoding."""
    if isinstance(headers, dict):
        hdrs = list(headers.items())
    else:
        hdrs = list(headers or [])
    names = {k.lower() for k, _ in hdrs}
    out = [f"{method} {target} {version}"]
    if host is not None and "host" not in names:
        out.append(f"Host: {HOST}:{port}" if host == "default" else f"Host: {host}")
    for k, v in hdrs:
        out.append(f"{k}: {v}")
    if body and "content-length" not in names and "transfer-encoding" not in names:
        out.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + body


def chunked(*pieces: bytes, ext: str = "", trailers: str = "") -> bytes:
    out = b""
    for p in pieces:
        out += b"%x%s\r\n%s\r\n" % (len(p), ext.encode(), p)
    return out + b"0\r\n" + trailers.encode() + b"\r\n"


def read_proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM of a process in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":", 1)
                out[k] = int(v.split()[0]) * 1024
    return out
