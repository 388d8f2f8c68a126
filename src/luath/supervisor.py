"""Listening sockets and worker processes.

How the socket is shared: this process binds the listening socket(s) once and every worker inherits
the same socket through fork. The kernel keeps one accept queue; whichever worker is free takes the
next connection. A connection queued there belongs to no worker, so a worker that exits (a crash,
--max-requests, a rolling restart, fewer workers) loses nothing that was still waiting: the others,
or its replacement, accept it. It also means a restart never rebinds, so there is no moment where the
port is closed, and it works the same for TCP, unix sockets, an inherited --fd and systemd's sockets.
(SO_REUSEPORT, one socket per worker, would spread load more evenly but drops the connections queued
on the socket of a worker that exits.)

With one worker (and no --max-requests) the server runs in the calling process. Otherwise this
process supervises: it never runs application code itself, and each worker loads the application
after the fork (``load()``), so:

- a worker that dies is replaced (at once, then with growing back-off; after MAX_RESTARTS crashes
  within RESTART_WINDOW seconds the supervisor stops everything and exits 1); a worker that exits 0 by
  itself (it reached --max-requests) is replaced at once;
- SIGINT/SIGTERM: graceful stop; each worker finishes its requests within timeout_graceful_shutdown
  (then it is killed); a second SIGINT/SIGTERM kills the workers at once;
- SIGHUP: rolling restart, one worker at a time: the new worker has loaded the application before the
  old one is told to stop, so capacity never drops and no request fails. When the application was
  given by name ("module:app") the new workers import it afresh: new code is served. When it was given
  as an object (``luath.serve(app)``) the workers are forked with that object, so HUP restarts them
  but cannot reload code. If a new worker fails to start, the reload stops and the old workers stay;
- SIGTTIN / SIGTTOU: one worker more / less;
- SIGUSR1: reopen log files (this process's and, through SIGUSR1 to them, the workers').
"""

from __future__ import annotations

import logging
import os
import select
import signal
import sys
import time
from dataclasses import dataclass

from . import _logconfig, _sockets
from .config import Config

log = logging.getLogger("luath.error")

BOOT_ERROR = 3  # a worker's exit code when it cannot load the application


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


def set_title(title: str) -> None:
    """The process title (ps, top) when setproctitle is installed."""
    try:
        import setproctitle
    except ImportError:
        return
    setproctitle.setproctitle(title)


def bind(cfg: Config):
    """The first listening socket cfg asks for (kept for callers of the old single-socket API)."""
    return _sockets.listeners(cfg)[0]


def serve(load, cfg: Config) -> None:
    """Serve until SIGINT/SIGTERM. load() returns work(socks, multiprocess) and is called in the
    process that serves: this one with a single worker, else each worker after it is forked."""
    raise_nofile_limit()  # inherited by forked workers
    socks = _sockets.listeners(cfg)
    where = ", ".join(_sockets.describe(s, tls=bool(cfg.ssl_certfile)) for s in socks)
    log.info("luath listening on %s (%d worker%s)", where, cfg.workers, "" if cfg.workers == 1 else "s")
    code = 0
    try:
        if not cfg.supervised:
            if cfg.app_name:
                set_title(f"luath: {cfg.app_name}")
            load()(socks, False)
        else:
            if cfg.app_name:
                set_title(f"luath: master [{cfg.app_name}]")
            code = Supervisor(load, socks, cfg).run()
    finally:
        _sockets.close(socks)
    log.info("luath stopped")
    if code:
        raise SystemExit(code)


@dataclass
class _Worker:
    pid: int
    number: int
    ready_fd: int            # the worker writes b"r" here once the application is loaded
    started: float
    ready: bool = False
    waiting: bool = True     # nothing read from ready_fd yet
    retiring: bool = False   # told to stop (rolling restart, fewer workers): not replaced
    kill_at: float = 0.0     # SIGKILL after this time while retiring/stopping


class Supervisor:
    RESTART_WINDOW = 30.0   # seconds
    MAX_RESTARTS = 10       # crashes within the window before giving up
    KILL_GRACE = 5.0        # seconds beyond timeout_graceful_shutdown before a stopping worker is killed
    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR1,
               signal.SIGCHLD)

    def __init__(self, load, socks, cfg: Config):
        self.load = load
        self.socks = socks if isinstance(socks, list) else [socks]
        self.cfg = cfg
        self.target = cfg.workers
        self.workers: dict[int, _Worker] = {}
        self.pending: list[int] = []        # signals received, handled by the loop
        self.stopping = False
        self.exit_code = 0
        self.crashes: list[float] = []
        self.due: dict[int, float] = {}     # worker number -> earliest time to start it again
        self.ever_ready = False
        self.roll_queue: list[int] = []     # old pids a rolling restart still has to replace
        self.roll_new: int | None = None    # the new worker the rolling restart waits for
        self._wake_r = self._wake_w = -1
        self.started = time.monotonic()

    # -- workers
    def spawn(self, number: int) -> int:
        r, w = os.pipe()
        # A SIGINT/SIGTERM sent to the new worker before it has its own handlers must not run the
        # master's (inherited) ones, which would swallow it: blocked across the fork, the child lets it
        # through once its handlers are the default ones (see _child).
        stop_sigs = {signal.SIGINT, signal.SIGTERM}
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, stop_sigs)
        pid = os.fork()
        if pid == 0:
            os.close(r)
            self._child(number, w, old_mask)  # never returns
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        os.close(w)
        self.workers[pid] = _Worker(pid, number, r, time.monotonic())
        log.debug("started worker %d (pid %d)", number, pid)
        return pid

    def _child(self, number: int, ready_w: int, old_mask) -> None:
        code = 0
        try:
            signal.set_wakeup_fd(-1)
            for s in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
                signal.signal(s, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)  # a stop that came meanwhile ends us now
            for s in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
                signal.signal(s, signal.SIG_IGN)
            signal.signal(signal.SIGUSR1, lambda *_: _logconfig.reopen_files())
            for fd in (self._wake_r, self._wake_w, *(w.ready_fd for w in self.workers.values())):
                if fd >= 0:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            self.workers.clear()
            if self.cfg.app_name:
                set_title(f"luath: worker {number} [{self.cfg.app_name}]")
            try:
                work = self.load()
            except Exception as e:  # noqa: BLE001 - reported, and the exit code tells the supervisor
                log.error("worker %d cannot load the application: %s: %s", number, type(e).__name__, e,
                          exc_info=log.isEnabledFor(logging.DEBUG))
                code = BOOT_ERROR
                return
            os.write(ready_w, b"r")
            os.close(ready_w)
            work(self.socks, True)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            log.exception("worker %d failed", number)
            code = 1
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)

    def _signal_workers(self, sig: int, pids=None) -> None:
        for pid in list(self.workers if pids is None else pids):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def retire(self, w: _Worker) -> None:
        w.retiring = True
        w.kill_at = time.monotonic() + self.cfg.timeout_graceful_shutdown + self.KILL_GRACE
        self._signal_workers(signal.SIGTERM, [w.pid])

    def stop(self, code: int = 0) -> None:
        if not self.stopping:
            self.stopping = True
            self.exit_code = self.exit_code or code
            kill_at = time.monotonic() + self.cfg.timeout_graceful_shutdown + self.KILL_GRACE
            for w in self.workers.values():
                w.kill_at = min(w.kill_at, kill_at) if w.retiring else kill_at
        self._signal_workers(signal.SIGTERM)

    # -- signals
    def _on_signal(self, signum, frame):
        self.pending.append(signum)

    def _handle(self, sig: int) -> None:
        if sig in (signal.SIGINT, signal.SIGTERM):
            if self.stopping:
                log.warning("second stop signal: killing the workers")
                self._signal_workers(signal.SIGKILL)
            else:
                log.info("shutting down (%s)", signal.Signals(sig).name)
                self.stop()
        elif self.stopping:
            return
        elif sig == signal.SIGHUP:
            log.info("SIGHUP: restarting the workers one by one")
            self.roll_queue = [w.pid for w in self.workers.values() if not w.retiring and w.pid != self.roll_new]
        elif sig == signal.SIGTTIN:
            self.target += 1
            log.info("SIGTTIN: %d workers", self.target)
        elif sig == signal.SIGTTOU:
            if self.target > 1:
                self.target -= 1
                log.info("SIGTTOU: %d workers", self.target)
        elif sig == signal.SIGUSR1:
            _logconfig.reopen_files()
            self._signal_workers(signal.SIGUSR1)

    # -- the loop
    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            w = self.workers.pop(pid, None)
            if w is None:
                continue
            os.close(w.ready_fd)
            code = os.waitstatus_to_exitcode(status)
            how = f"exit code {code}" if code >= 0 else f"signal {signal.Signals(-code).name}"
            if self.stopping or w.retiring:
                log.debug("worker %d (pid %d) stopped (%s)", w.number, pid, how)
                continue
            if pid == self.roll_new:
                log.error("reload failed: the new worker %d exited (%s) before it was ready; keeping the "
                          "old workers", w.number, how)
                self.roll_new = None
                self.roll_queue = []
                continue
            if code == 0:
                log.info("worker %d (pid %d) exited (max requests); starting a new one", w.number, pid)
                continue
            if code == BOOT_ERROR and (not self.ever_ready or time.monotonic() - self.started < 10.0):
                # cannot load the application, or (ASGI) its lifespan startup failed, at start-up
                log.error("worker %d could not start; stopping", w.number)
                self.stop(BOOT_ERROR)
                continue
            now = time.monotonic()
            self.crashes = [t for t in self.crashes if now - t < self.RESTART_WINDOW] + [now]
            n = len(self.crashes)
            if n > self.MAX_RESTARTS:
                log.error("workers keep crashing (%d exits within %.0f s); giving up", n, self.RESTART_WINDOW)
                self.stop(1)
                continue
            delay = 0.0 if n == 1 else min(0.1 * 2 ** (n - 2), 2.0)
            log.warning("worker %d (pid %d) died (%s); starting a new one%s", w.number, pid, how,
                        f" in {delay:.1f} s" if delay else "")
            self.due[w.number] = now + delay

    def _maintain(self, now: float) -> None:
        if self.stopping:
            return
        live = [w for w in self.workers.values() if not w.retiring]
        for w in live:
            if w.number > self.target:
                log.info("stopping worker %d (pid %d)", w.number, w.pid)
                self.retire(w)
        have = {w.number for w in live}
        for n in range(1, self.target + 1):
            if n not in have and self.due.get(n, 0.0) <= now:
                self.due.pop(n, None)
                self.spawn(n)
        # rolling restart: one old worker at a time, after its replacement is ready
        if self.roll_new is not None:
            new = self.workers.get(self.roll_new)
            if new is None:
                self.roll_new = None
            elif new.ready:
                old = self.workers.get(self.roll_queue.pop(0)) if self.roll_queue else None
                if old is not None and not old.retiring:
                    self.retire(old)
                self.roll_new = None
            elif now - new.started > max(60.0, self.cfg.timeout_graceful_shutdown):
                log.error("reload failed: the new worker %d did not start within %.0f s; keeping the old "
                          "workers", new.number, now - new.started)
                self.retire(new)
                self.roll_new = None
                self.roll_queue = []
        while self.roll_new is None and self.roll_queue:
            old = self.workers.get(self.roll_queue[0])
            if old is None or old.retiring:
                self.roll_queue.pop(0)
                continue
            self.roll_new = self.spawn(old.number)

    def run(self) -> int:
        """Supervise until stopped; the exit code for the process."""
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        old_wakeup = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        old = {s: signal.signal(s, self._on_signal) for s in self.SIGNALS}
        try:
            self._maintain(time.monotonic())
            while self.workers or not self.stopping:
                now = time.monotonic()
                timeout = 0.5
                for t in self.due.values():
                    timeout = min(timeout, max(t - now, 0.0))
                waiting = {w.ready_fd: w for w in self.workers.values() if w.waiting}
                try:
                    readable, _, _ = select.select([self._wake_r, *waiting], [], [], timeout)
                except InterruptedError:
                    readable = []
                for fd in readable:
                    if fd == self._wake_r:
                        try:
                            while os.read(self._wake_r, 512):
                                pass
                        except BlockingIOError:
                            pass
                    else:
                        w = waiting[fd]
                        try:
                            data = os.read(fd, 1)
                        except OSError:
                            data = b""
                        w.waiting = False
                        w.ready = data == b"r"  # else EOF: it died before it was ready
                self._reap()
                for w in waiting.values():
                    if w.ready and w.pid in self.workers:
                        self.ever_ready = True
                while self.pending:
                    self._handle(self.pending.pop(0))
                now = time.monotonic()
                for w in list(self.workers.values()):
                    if w.kill_at and now > w.kill_at:
                        log.warning("worker %d (pid %d) did not stop in time; killing it", w.number, w.pid)
                        self._signal_workers(signal.SIGKILL, [w.pid])
                        w.kill_at = now + 3600
                self._maintain(now)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            signal.set_wakeup_fd(old_wakeup)
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1
        return self.exit_code
