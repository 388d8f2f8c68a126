"""Listening sockets and worker processes.

All workers inherit one listening socket made here, so a connection queued in the kernel is taken by
whichever worker is free, and none is lost when a worker exits. With one worker the server runs in this
process; with more, this process only supervises: it restarts a worker that dies, and passes SIGINT and
SIGTERM on to the workers for a graceful stop.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time

from .config import Config

log = logging.getLogger("luath.error")


def bind(cfg: Config) -> socket.socket:
    """A non-blocking listening TCP socket on cfg.host:cfg.port (IPv6 when the host is)."""
    infos = socket.getaddrinfo(cfg.host, cfg.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6 and cfg.host in ("::", ""):
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        raise SystemExit(f"luath: cannot listen on {cfg.host}:{cfg.port}: {e.strerror}") from None
    sock.listen(cfg.backlog)
    sock.setblocking(False)
    sock.set_inheritable(True)
    return sock


def raise_nofile_limit() -> None:
    """Raise the soft RLIMIT_NOFILE to the hard limit, so a worker can hold many connections."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ImportError, ValueError, OSError) as e:
        log.debug("cannot raise RLIMIT_NOFILE: %s", e)


def serve(work, cfg: Config) -> None:
    """Run work(sock, multiprocess) in this process or in cfg.workers forked workers."""
    raise_nofile_limit()  # inherited by forked workers
    sock = bind(cfg)
    host, port = sock.getsockname()[:2]
    log.info("luath listening on http://%s:%d (%d worker%s)", host, port, cfg.workers,
             "" if cfg.workers == 1 else "s")
    try:
        if cfg.workers == 1:
            work(sock, False)
        else:
            Supervisor(work, sock, cfg).run()
    finally:
        sock.close()
    log.info("luath stopped")


class Supervisor:
    RESTART_WINDOW = 10.0   # seconds
    MAX_RESTARTS = 10       # crashes within the window before giving up

    def __init__(self, work, sock: socket.socket, cfg: Config):
        self.work = work
        self.sock = sock
        self.cfg = cfg
        self.children: dict[int, int] = {}  # pid -> worker number
        self.stopping = False
        self.crashes: list[float] = []

    def spawn(self, number: int) -> None:
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                self.work(self.sock, True)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            except BaseException:
                log.exception("worker %d failed", number)
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.children[pid] = number
        if self.stopping:  # a stop signal came while forking: this worker never saw it
            os.kill(pid, signal.SIGTERM)

    def _on_signal(self, signum, frame):
        self.stopping = True
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def run(self) -> None:
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for n in range(1, self.cfg.workers + 1):
                self.spawn(n)
            while self.children:
                try:
                    pid, status = os.wait()
                except ChildProcessError:
                    break
                number = self.children.pop(pid, None)
                if number is None or self.stopping:
                    continue
                code = os.waitstatus_to_exitcode(status)
                log.warning("worker %d (pid %d) exited with %s; starting a new one", number, pid, code)
                now = time.monotonic()
                self.crashes = [t for t in self.crashes if now - t < self.RESTART_WINDOW] + [now]
                if len(self.crashes) > self.MAX_RESTARTS:
                    log.error("workers keep crashing (%d exits in %.0f s); giving up",
                              len(self.crashes), self.RESTART_WINDOW)
                    self._on_signal(signal.SIGTERM, None)
                    continue
                time.sleep(min(0.05 * len(self.crashes), 1.0))
                if not self.stopping:
                    self.spawn(number)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
