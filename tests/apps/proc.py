"""Helpers for the operations tests: start luath processes, a tiny HTTP client over TCP or a unix
socket, a background client loop, and process-tree inspection. Every wait is bounded in time."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def env(**extra) -> dict:
    e = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    e["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    for k in [k for k in e if k.startswith("LUATH_") or k in ("LISTEN_FDS", "LISTEN_PID")]:
        del e[k]
    e.update(extra)
    return e


class Proc:
    """A server process in its own session; stderr and stdout go to files."""

    def __init__(self, args: list[str], tmp: Path, cwd=None, pass_fds=(), name="server", **envvars):
        self.err_path = tmp / f"{name}.stderr"
        self.out_path = tmp / f"{name}.stdout"
        self._err = open(self.err_path, "wb")
        self._out = open(self.out_path, "wb")
        self.proc = subprocess.Popen(args, cwd=str(cwd or REPO_ROOT), env=env(**envvars), stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=self._err, start_new_session=True,
                                     pass_fds=pass_fds)
        self.pid = self.proc.pid

    def stderr(self) -> str:
        return self.err_path.read_text("utf-8", "replace")

    def stdout(self) -> str:
        return self.out_path.read_text("utf-8", "replace")

    def signal(self, sig) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"process {self.pid} still running after {timeout}s; stderr:\n"
                                 f"{self.stderr()[-3000:]}") from None

    def wait_log(self, needle: str, timeout: float = 15.0, stdout: bool = False) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.stdout() if stdout else self.stderr()
            if needle in text:
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not logged within {timeout}s:\n{text[-3000:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._err.close()
        self._out.close()


def luath(*args: str) -> list[str]:
    return [sys.executable, "-m", "luath", *args]


def get_via_proxy(port: int, path: str, headers: dict | None = None,
                  client_addr: str = "127.0.0.2") -> tuple[int, bytes, int]:
    """GET through a proxy (nginx) on 127.0.0.1:port from client_addr, so the client's address differs
    from the proxy's own: (status, body, the client's own port)."""
    s = socket.socket()
    s.settimeout(10)
    s.bind((client_addr, 0))
    s.connect(("127.0.0.1", port))
    with s:
        client_port = s.getsockname()[1]
        req = f"GET {path} HTTP/1.1\r\nHost: app.example:{port}\r\nConnection: close\r\n"
        req += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        s.sendall((req + "\r\n").encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head:
        raise ConnectionError("no response")
    return int(head.split(b" ")[1]), body, client_port


def request(addr, path: str = "/", headers: dict | None = None, timeout: float = 10.0,
            method: str = "GET") -> tuple[int, bytes]:
    """One request on a new connection (Connection: close); addr is (host, port) or a unix socket path."""
    if isinstance(addr, str):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(addr)
        host = "localhost"
    else:
        s = socket.create_connection(addr, timeout=timeout)
        host = f"{addr[0]}:{addr[1]}" if ":" not in addr[0] else f"[{addr[0]}]:{addr[1]}"
    with s:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        data = bytearray()
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, sep, body = bytes(data).partition(b"\r\n\r\n")
    if not sep:
        raise ConnectionError(f"incomplete response: {bytes(data)!r}")
    status = int(head.split(b" ", 2)[1])
    hl = head.lower()
    if b"transfer-encoding: chunked" in hl:
        out, rest = bytearray(), body
        while True:
            size_line, _, rest = rest.partition(b"\r\n")
            n = int(size_line.split(b";")[0], 16)
            if n == 0:
                break
            out += rest[:n]
            rest = rest[n + 2:]
        body = bytes(out)
    elif b"content-length:" in hl:
        n = int(hl.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
        if len(body) != n:
            raise ConnectionError(f"short body: {len(body)} of {n}")
    return status, body


def wait_serving(addr, proc: Proc | None = None, timeout: float = 20.0, path: str = "/") -> bytes:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.proc.returncode}:\n{proc.stderr()[-3000:]}")
        try:
            status, body = request(addr, path, timeout=2.0)
            if status == 200:
                return body
        except OSError as e:
            last = e
        time.sleep(0.05)
    raise AssertionError(f"server at {addr} not serving within {timeout}s ({last!r})"
                         + (f"; stderr:\n{proc.stderr()[-3000:]}" if proc else ""))


class Load:
    """Client threads sending requests in a loop (a new connection each) until stop()."""

    def __init__(self, addr, threads: int = 4, path: str = "/", duration_limit: float = 60.0):
        self.addr = addr
        self.path = path
        self.ok = 0
        self.failures: list[tuple[float, str]] = []
        self.bodies: list[tuple[float, bytes]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._limit = time.monotonic() + duration_limit
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for t in self._threads:
            t.start()

    def _run(self):
        while not self._stop.is_set() and time.monotonic() < self._limit:
            t = time.monotonic()
            try:
                status, body = request(self.addr, self.path, timeout=10.0)
                if status != 200:
                    raise ConnectionError(f"status {status}")
                with self._lock:
                    self.ok += 1
                    self.bodies.append((t, body))
            except Exception as e:  # noqa: BLE001 - every failure is recorded
                with self._lock:
                    self.failures.append((t, repr(e)))
                time.sleep(0.01)

    def count(self) -> int:
        with self._lock:
            return self.ok

    def wait_more(self, n: int, timeout: float = 15.0) -> None:
        """Until n more requests succeeded."""
        target = self.count() + n
        deadline = time.monotonic() + timeout
        while self.count() < target:
            if time.monotonic() > deadline:
                raise AssertionError(f"load made no progress: {self.count()} ok, failures {self.failures[-5:]}")
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)


def children(pid: int) -> set[int]:
    """Live (non-zombie) child processes of pid."""
    out = set()
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    rest = f.read().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            if int(rest[1]) == pid and rest[0] != "Z":
                out.add(int(d))
    return out


def wait_children(pid: int, n: int, timeout: float = 20.0, exclude=()) -> set[int]:
    deadline = time.monotonic() + timeout
    while True:
        kids = children(pid) - set(exclude)
        if len(kids) == n:
            return kids
        if time.monotonic() > deadline:
            raise AssertionError(f"{pid} has children {children(pid)}, expected {n} (excluding {exclude})")
        time.sleep(0.02)
