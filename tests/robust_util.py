"""Helpers for the robustness tests and scripts/soak: process facts from /proc, bounded waiting."""

from __future__ import annotations

import os
import resource
import socket
import struct
import time


# Under scripts/sanitize the servers run with ASan, whose quarantine keeps freed memory resident by
# design: RSS-growth checks are skipped there (fd, close() and crash checks still apply).
SANITIZED = "asan" in os.environ.get("LD_PRELOAD", "")


def children(pid: int) -> list[int]:
    """Direct child processes of pid (the workers of a multi-worker server)."""
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except FileNotFoundError:
        pass
    return sorted(set(out))


def worker_pids(proc_pid: int, workers: int, timeout: float = 15.0) -> list[int]:
    """The worker processes: the server process itself with one worker, else its children."""
    if workers == 1:
        return [proc_pid]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = children(proc_pid)
        if len(kids) >= workers:
            return kids
        time.sleep(0.05)
    raise AssertionError(f"server {proc_pid} has {children(proc_pid)} as workers, expected {workers}")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def socket_fd_count(pid: int) -> int:
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                n += 1
        except FileNotFoundError:
            pass
    return n


def rss(pid: int) -> int:
    """Resident set size in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def wait_until(pred, timeout: float, interval: float = 0.05) -> bool:
    """Poll pred() until it is true or timeout seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def wait_fds(pid: int, target: int, timeout: float = 10.0) -> int:
    """Wait until pid has at most target open fds; return the last count."""
    last = [fd_count(pid)]

    def ok():
        last[0] = fd_count(pid)
        return last[0] <= target

    wait_until(ok, timeout)
    return last[0]


def raise_nofile(want: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE towards want (up to the hard limit); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    cap = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < cap:
        resource.setrlimit(resource.RLIMIT_NOFILE, (cap, hard))
        soft = cap
    return soft


def abort(sock: socket.socket) -> None:
    """Close with a reset (SO_LINGER 0): the client vanishes without a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def vanish(sock: socket.socket, rst: bool) -> None:
    if rst:
        abort(sock)
    else:
        sock.close()
