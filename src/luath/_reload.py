"""--reload (development): run the server in a child process and restart it when a .py file changes.

The listening socket is bound here once and handed to each server process as an inherited fd, so the
port stays open across restarts (connections made meanwhile wait in the queue). Changes are watched
with watchfiles when it is installed, else by polling the mtimes of *.py files every 0.5 s. A server
that fails to start (a syntax error just saved) is started again on the next change.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time

from . import _logging, _sockets
from .config import Config

log = logging.getLogger("luath.error")

POLL_INTERVAL = 0.5
SKIP_DIRS = {"__pycache__", "node_modules", "site-packages", "venv", ".venv", ".git", ".hg", ".tox", "build"}
CHILD_ENV = "LUATH_RELOAD_CHILD"


def snapshot(dirs: list[str]) -> dict[str, float]:
    """mtime of every *.py file under dirs."""
    out = {}
    for top in dirs:
        for root, subdirs, files in os.walk(top):
            subdirs[:] = [d for d in subdirs if d not in SKIP_DIRS and not d.startswith(".")]
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(root, name)
                    try:
                        out[path] = os.stat(path).st_mtime_ns
                    except OSError:
                        pass
    return out


class Reloader:
    def __init__(self, args):
        self.args = args
        self.dirs = [os.path.abspath(d) for d in (args.reload_dir or [os.getcwd()])]
        self.stop = False
        self.proc: subprocess.Popen | None = None

    def _on_signal(self, signum, frame):
        self.stop = True

    def _start(self, fds: list[int]) -> None:
        from .cli import options_of

        opts = options_of(self.args)
        opts.update(fd=fds, uds=None)
        spec = {"app": self.args.app, "interface": self.args.interface, "factory": self.args.factory,
                "options": opts}
        env = dict(os.environ, **{CHILD_ENV: json.dumps(spec)})
        self.proc = subprocess.Popen([sys.executable, "-c", "from luath._reload import child; child()"],
                                     env=env, pass_fds=fds)

    def _terminate(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(self.args.timeout_graceful_shutdown + 5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def _changes(self):
        """Yield a list of changed paths (maybe empty) about every POLL_INTERVAL seconds."""
        try:
            import watchfiles
        except ImportError:
            watchfiles = None
        if watchfiles is not None:
            for changes in watchfiles.watch(*self.dirs, watch_filter=watchfiles.PythonFilter(),
                                            yield_on_timeout=True, rust_timeout=int(POLL_INTERVAL * 1000),
                                            raise_interrupt=False):
                yield sorted({p for _, p in changes})
            return
        before = snapshot(self.dirs)
        while True:
            time.sleep(POLL_INTERVAL)
            now = snapshot(self.dirs)
            changed = sorted(p for p in set(before) | set(now) if before.get(p) != now.get(p))
            before = now
            yield changed

    def run(self) -> int:
        cfg = Config(host=self.args.host, port=self.args.port, uds=self.args.uds, uds_mode=self.args.uds_mode,
                     fd=self.args.fd, backlog=self.args.backlog)
        _logging.setup(self.args.log_level)
        socks = _sockets.listeners(cfg)
        fds = [s.fileno() for s in socks]
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        log.info("luath reloader watching %s for *.py changes", ", ".join(self.dirs))
        try:
            self._start(fds)
            for changed in self._changes():
                if self.stop:
                    break
                if changed:
                    log.info("%s changed; restarting the server", os.path.relpath(changed[0])
                             + (f" and {len(changed) - 1} more" if len(changed) > 1 else ""))
                    self._terminate()
                    if self.stop:
                        break
                    self._start(fds)
        finally:
            self._terminate()
            for s, h in old.items():
                signal.signal(s, h)
            _sockets.close(socks)
        return 0


def child() -> None:
    """The server process the reloader starts (its settings come in LUATH_RELOAD_CHILD)."""
    from .main import AppLoadError, run

    spec = json.loads(os.environ.pop(CHILD_ENV))
    try:
        run(spec["app"], interface=spec["interface"], factory=spec["factory"], **spec["options"])
    except AppLoadError as e:
        print(f"luath: cannot load {spec['app']!r}: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    except (ValueError, TypeError) as e:
        print(f"luath: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        pass
