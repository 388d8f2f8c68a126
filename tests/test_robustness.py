"""Issue 8, "Unbreakable": slow, idle, vanishing and excess clients against a real server.

Every test drives a fresh server process (so fd and RSS baselines are its own) and checks the worker
from the outside: /proc/PID/fd, VmRSS, and the app's close() counters (tests/apps/robust.py).
The slow ones (1,000 slowloris sockets, 10,000 idle connections) are marked ``slow``; the soak
wrapper is marked ``soak`` (deselect with ``-m "not soak"``).
"""

from __future__ import annotations

import os
import selectors
import socket
import statistics
import subprocess
import sys
import time

import pytest

from tests.conftest import HOST, SERVER_KIND, REPO_ROOT, RawConn, build_request
from tests.robust_util import (SANITIZED, abort, fd_count, raise_nofile, rss, vanish, wait_fds,
                               wait_until, worker_pids)

ROBUST = "tests.apps.robust:app"
MiB = 1 << 20

pytestmark = pytest.mark.skipif(SERVER_KIND != "luath", reason="luath's own limits and /proc checks")


def _probe(port: int, path: str = "/") -> tuple[float, int]:
    """One request on a new connection; (seconds, status)."""
    t0 = time.perf_counter()
    with RawConn(port, timeout=10) as c:
        r = c.request("GET", path, headers={"Connection": "close"})
    return time.perf_counter() - t0, r.status


def _stats(srv, tag: str) -> dict:
    return srv.stats(tag)


def _settle(srv, pid: int, baseline: int, timeout: float = 10.0) -> None:
    """The worker's fd count is back to baseline (a stats request in between is allowed to finish)."""
    n = wait_fds(pid, baseline, timeout)
    assert n <= baseline, f"worker {pid} has {n} fds open, baseline {baseline}: {os.listdir(f'/proc/{pid}/fd')}"


def _fresh(start_server, *extra):
    srv = start_server(ROBUST, "--workers", "1", *extra, fresh=True)
    pid = worker_pids(srv.proc.pid, 1)[0]
    for _ in range(3):  # warm up: imports, buffers, the first connection objects
        _probe(srv.port)
    time.sleep(0.2)
    return srv, pid


# ---------------------------------------------------------------------------------------------
# Connection limit
# ---------------------------------------------------------------------------------------------

def test_limit_concurrency_503_and_closed(start_server):
    srv, pid = _fresh(start_server, "--limit-concurrency", "5")
    base = fd_count(pid)
    held = []
    try:
        for _ in range(5):
            c = RawConn(srv.port)
            assert c.request("GET", "/").status == 200  # accepted and served; stays open (keep-alive)
            held.append(c)
        for _ in range(3):
            with RawConn(srv.port) as extra:
                extra.send(build_request("GET", "/marker", port=srv.port))
                r = extra.read_response()
                assert r.status == 503, r
                assert "close" in r.connection_tokens(), r
                assert r.header("date", "").endswith(" GMT"), r  # an origin server with a clock sends Date
                assert b"MARKER" not in r.body
                closed, rest = extra.wait_closed(5)
                assert closed and rest == b""
        # The limit counts open connections: one leaves, one more gets in.
        held.pop().close()
        assert wait_until(lambda: _probe(srv.port)[1] == 200, 5, 0.1)
        assert all(c.request("GET", "/").status == 200 for c in held)
    finally:
        for c in held:
            c.close()
    _settle(srv, pid, base)


def test_out_of_descriptors_503_without_spinning(tmp_path):
    """At the process's fd limit a new connection gets 503 (a reserved fd is freed to accept it) and
    the worker does not spin on the listener; connections work again once some are closed."""
    import resource

    from tests.conftest import free_port
    port = free_port()
    log = open(tmp_path / "server.log", "wb")
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + (os.pathsep + os.environ["PYTHONPATH"]
                                                         if os.environ.get("PYTHONPATH") else ""))
    proc = subprocess.Popen(
        [sys.executable, "-m", "luath", ROBUST, "--host", HOST, "--port", str(port), "--limit-concurrency", "0"],
        cwd=str(REPO_ROOT), env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64)))
    held = []
    try:
        assert wait_until(lambda: _try_connect(port), 30, 0.05), "server did not start"
        statuses = {}
        for _ in range(80):
            c = RawConn(port, timeout=10)
            c.send(build_request("GET", "/", port=port))
            try:
                st = c.read_response().status
            except Exception as e:  # noqa: BLE001
                st = type(e).__name__
            statuses[st] = statuses.get(st, 0) + 1
            held.append(c)
        assert statuses.get(200, 0) >= 20 and statuses.get(503, 0) >= 10, statuses
        assert set(statuses) <= {200, 503}, statuses

        def cpu_ticks():
            f = open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()
            return int(f[11]) + int(f[12])
        t0 = cpu_ticks()
        time.sleep(1.0)
        assert cpu_ticks() - t0 < 30, "the worker spins while out of descriptors"
        for c in held:
            c.close()
        held.clear()
        assert wait_until(lambda: _probe(port)[1] == 200, 5, 0.1)
        assert proc.poll() is None
    finally:
        for c in held:
            c.close()
        proc.terminate()
        proc.wait(10)
        log.close()


def _try_connect(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=1).close()
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# Timeouts
# ---------------------------------------------------------------------------------------------

def test_keepalive_idle_closed(start_server):
    srv, pid = _fresh(start_server, "--timeout-keep-alive", "1")
    with RawConn(srv.port) as c:
        assert c.request("GET", "/").status == 200
        t0 = time.monotonic()
        closed, extra = c.wait_closed(10)
        took = time.monotonic() - t0
    assert closed and extra == b""
    assert 0.7 <= took <= 4.0, took
    # A new connection that never sends anything is closed by the same timeout.
    with RawConn(srv.port) as c:
        t0 = time.monotonic()
        closed, extra = c.wait_closed(10)
        assert closed and 0.7 <= time.monotonic() - t0 <= 4.0


def test_head_timeout_closes_slowloris(start_server):
    srv, pid = _fresh(start_server, "--timeout-request-head", "1.5", "--timeout-keep-alive", "30")
    base = fd_count(pid)
    with RawConn(srv.port) as c:
        head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        t0 = time.monotonic()
        c.sock.settimeout(0.3)
        closed_at = None
        for i in range(len(head)):  # bounded: one byte per 0.3 s, at most ~30 s
            try:
                c.sock.send(head[i:i + 1])
            except OSError:
                closed_at = time.monotonic()
                break
            try:
                data = c.sock.recv(4096)
                if data == b"":
                    closed_at = time.monotonic()
                    break
            except (socket.timeout, TimeoutError):
                pass
            except ConnectionResetError:
                closed_at = time.monotonic()
                break
        assert closed_at is not None, "a slowloris head was never timed out"
        assert 1.2 <= closed_at - t0 <= 4.5, closed_at - t0
    _settle(srv, pid, base)


def test_write_timeout_closes_a_client_that_stops_reading(start_server):
    srv, pid = _fresh(start_server, "--timeout-write", "1")
    base = fd_count(pid)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((HOST, srv.port))
    try:
        s.sendall(build_request("GET", "/stream?tag=wt&limit=3000", port=srv.port))
        time.sleep(0.3)
        t0 = time.monotonic()
        # The app's iterable is closed once the write has stalled for --timeout-write.
        assert wait_until(lambda: _stats(srv, "wt")["closes"] == 1, 15, 0.25), _stats(srv, "wt")
        took = time.monotonic() - t0
        assert took <= 10, took
        st = _stats(srv, "wt")
        assert st["calls"] == 1 and st["iterated"] < 3000, st
        _settle(srv, pid, base)
    finally:
        abort(s)


# ---------------------------------------------------------------------------------------------
# Vanishing clients
# ---------------------------------------------------------------------------------------------

def _vanish_mid_head(port, i, rst):
    s = socket.create_connection((HOST, port))
    s.sendall(b"GET /marker HTTP/1.1\r\nHost: x\r\nX-Part")
    time.sleep(0.005)
    vanish(s, rst)


def _vanish_mid_upload(port, i, rst, tag):
    s = socket.create_connection((HOST, port))
    s.sendall(build_request("POST", f"/upload?tag={tag}", headers={"Content-Length": str(4 * MiB)}, port=port))
    s.sendall(b"u" * (256 * 1024 + i))
    time.sleep(0.01)
    vanish(s, rst)


def _vanish_mid_download(port, i, rst, tag):
    s = socket.create_connection((HOST, port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.sendall(build_request("GET", f"/stream?tag={tag}&limit=400", port=port))
    got = 0
    s.settimeout(10)
    while got < 100_000 + i * 97:  # bounded by the 10 s socket timeout per recv and the total
        d = s.recv(65536)
        if not d:
            break
        got += len(d)
    vanish(s, rst)


def _vanish_pipelined(port, i, rst, tag):
    s = socket.create_connection((HOST, port))
    one = build_request("GET", f"/sleep?ms=0&tag={tag}", port=port)
    s.sendall(one + one + one[: 10 + i % 20])
    s.settimeout(10)
    got = b""
    while got.count(b"HTTP/1.1 200") < 1:
        d = s.recv(65536)
        if not d:
            break
        got += d
    vanish(s, rst)


def _vanish_app_running(port, i, rst, tag):
    s = socket.create_connection((HOST, port))
    s.sendall(build_request("GET", f"/sleep?ms=120&tag={tag}", port=port))
    time.sleep(0.04)  # the worker has read the request and the app is sleeping (a reset that came
    vanish(s, rst)    # first would discard the request unread: then the app is never called)
    time.sleep(0.1)   # let the app finish before the next one, so each request finds the loop free


STAGES = {
    "mid-head": (_vanish_mid_head, False),
    "mid-upload": (_vanish_mid_upload, True),
    "mid-download": (_vanish_mid_download, True),
    "between-pipelined": (_vanish_pipelined, True),
    "app-running": (_vanish_app_running, True),
}


@pytest.mark.parametrize("stage", list(STAGES))
def test_vanishing_clients(start_server, stage):
    fn, tracked = STAGES[stage]
    srv, pid = _fresh(start_server, "--timeout-request-body", "5")
    base = fd_count(pid)
    rounds, per_round = 5, 20
    rss_after = []
    for r in range(rounds):
        tag = f"{stage}-{r}"
        for i in range(per_round):
            if tracked:
                fn(srv.port, i, i % 2 == 0, tag)
            else:
                fn(srv.port, i, i % 2 == 0)
        # Every connection is gone from the worker, and every app call's iterable was closed.
        _settle(srv, pid, base, timeout=15)
        if tracked:
            assert wait_until(lambda: (lambda st: st["calls"] >= 1 and st["closes"] == st["calls"])(
                _stats(srv, tag)), 15, 0.1), _stats(srv, tag)
            st = _stats(srv, tag)
            if stage == "mid-download":
                assert st["calls"] == per_round, st  # each client had part of its response
            elif stage == "mid-upload":
                # A FIN leaves the sent bytes readable, so those half always reach the app; a reset
                # that arrives before the worker has read the head discards it unread (seen on a
                # loaded machine), so those may never become a call.
                assert per_round // 2 <= st["calls"] <= per_round, st
            elif stage == "app-running":
                assert st["calls"] >= per_round // 2, st  # most were read before the client left
        assert _probe(srv.port)[1] == 200
        assert srv.alive()
        rss_after.append(rss(pid))
    # Flat over the repeated rounds (the first round warms up allocators).
    growth = rss_after[-1] - rss_after[0]
    if not SANITIZED:
        assert growth < 4 * MiB, [x // 1024 for x in rss_after]


# ---------------------------------------------------------------------------------------------
# Slowloris and idle crowds (slow: thousands of sockets)
# ---------------------------------------------------------------------------------------------

def _open_many(port: int, n: int, first: bytes = b"") -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.create_connection((HOST, port), timeout=10)
        if first:
            s.sendall(first)
        s.setblocking(False)
        socks.append(s)
    return socks


@pytest.mark.slow
def test_1000_slowloris_do_not_delay_others(start_server):
    N, head_timeout = 1000, 3.0
    raise_nofile(N + 512)
    srv, pid = _fresh(start_server, "--timeout-request-head", str(head_timeout), "--timeout-keep-alive", "30")
    base = fd_count(pid)
    quiet = sorted(_probe(srv.port)[0] for _ in range(10))
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slowloris: " + b"s" * 200
    sel = selectors.DefaultSelector()
    t_open = time.monotonic()
    socks = _open_many(srv.port, N, head[:1])
    first_byte = {s.fileno(): time.monotonic() for s in socks}
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    pos = 1
    closed: dict[int, float] = {}
    latencies: list[float] = []
    next_byte = time.monotonic() + 1.0
    deadline = t_open + head_timeout + 12
    try:
        while len(closed) < N and time.monotonic() < deadline:  # bounded by the deadline
            now = time.monotonic()
            if now >= next_byte and pos < len(head):
                for s in socks:
                    if s.fileno() not in closed:
                        try:
                            s.send(head[pos:pos + 1])
                        except OSError:
                            pass
                pos += 1
                next_byte = now + 1.0
                if len(closed) == 0:
                    # A normal client, while all the slow ones are connected.
                    latencies.append(_probe(srv.port)[0])
            for key, _ in sel.select(timeout=0.05):
                s = key.fileobj
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    closed[s.fileno()] = time.monotonic()
                    sel.unregister(s)
            if len(closed) == 0 and len(latencies) < 25:
                latencies.append(_probe(srv.port)[0])
    finally:
        sel.close()
        for s in socks:
            s.close()
    assert len(closed) == N, f"{N - len(closed)} slowloris connections were never closed"
    ages = [closed[fd] - first_byte[fd] for fd in closed]
    assert min(ages) >= head_timeout - 0.5, f"closed before the head timeout: {min(ages):.2f}s"
    assert max(ages) <= head_timeout + 5, f"closed late: {max(ages):.2f}s"
    assert len(latencies) >= 5, latencies
    med = statistics.median(latencies)
    print(f"\nslowloris x{N}: closed after {min(ages):.2f}-{max(ages):.2f} s; normal client median "
          f"{med * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms over {len(latencies)} samples")
    # On a shared 2-core box single samples can be delayed by other processes: the median is the
    # claim (< 100 ms), and no sample may come near a head timeout.
    assert med < 0.100, f"median {med * 1000:.1f} ms (quiet median {statistics.median(quiet) * 1000:.1f} ms), " \
                        f"samples {[round(x * 1000) for x in latencies]}"
    assert max(latencies) < 1.0, latencies
    _settle(srv, pid, base, timeout=15)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_10000_idle_keepalive_connections(start_server):
    N = 10_000
    have = raise_nofile(N + 1024)
    if have < N + 256:
        pytest.skip(f"RLIMIT_NOFILE hard limit too low for {N} client sockets ({have})")
    srv, pid = _fresh(start_server, "--timeout-keep-alive", "300", "--limit-concurrency", "0",
                      "--backlog", "4096")
    base_fds = fd_count(pid)
    base_rss = rss(pid)
    req = build_request("GET", "/", port=srv.port)
    socks: list[socket.socket] = []
    try:
        sel = selectors.DefaultSelector()
        pending = 0
        for i in range(N):
            s = socket.create_connection((HOST, srv.port), timeout=15)
            s.sendall(req)
            s.setblocking(False)
            socks.append(s)
            sel.register(s, selectors.EVENT_READ, [b""])
            pending += 1
            # Read answers as they come, so neither side's buffers pile up.
            if i % 200 == 199:
                pending -= _drain_answers(sel, 0)
        pending -= _drain_answers(sel, pending, timeout=60)
        sel.close()
        assert pending == 0, f"{pending} of {N} connections got no answer"
        assert wait_until(lambda: fd_count(pid) >= base_fds + N, 10)
        time.sleep(0.5)
        grown = rss(pid) - base_rss
        # A normal client is still served at once.
        lat = sorted(_probe(srv.port)[0] for _ in range(5))
        print(f"\n10k idle keep-alive: worker RSS +{grown / MiB:.1f} MiB, probe latencies "
              f"{[round(x * 1000, 1) for x in lat]} ms")
        assert lat[2] < 0.25, lat
        assert SANITIZED or grown < 40 * MiB, f"worker RSS grew {grown / MiB:.1f} MiB for {N} idle connections"
        # The idle ones are still open (and can still be used).
        assert fd_count(pid) >= base_fds + N
        for s in socks[:: N // 10]:
            s.setblocking(True)
            s.settimeout(10)
            s.sendall(req)
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
    finally:
        for s in socks:
            s.close()
    _settle(srv, pid, base_fds, timeout=30)


def _drain_answers(sel, want: int, timeout: float = 0.0) -> int:
    """Read responses from registered sockets; return how many completed (one per socket)."""
    done = 0
    deadline = time.monotonic() + timeout
    while True:
        events = sel.select(timeout=0 if timeout == 0 else 0.2)
        for key, _ in events:
            s = key.fileobj
            try:
                data = s.recv(4096)
            except BlockingIOError:
                continue
            key.data[0] += data
            if not data or key.data[0].endswith(b"hello"):
                sel.unregister(s)
                if data:
                    done += 1
        if timeout == 0 and not events:
            return done
        if done >= want and timeout:
            return done
        if time.monotonic() >= deadline:
            return done


# ---------------------------------------------------------------------------------------------
# Soak (a short run of scripts/soak; the long one is run by hand: scripts/soak --seconds 600)
# ---------------------------------------------------------------------------------------------

@pytest.mark.soak
@pytest.mark.timeout(int(os.environ.get("LUATH_SOAK_SECONDS", "60")) + 240)
def test_soak_short():
    seconds = int(os.environ.get("LUATH_SOAK_SECONDS", "60"))
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "soak"), "--seconds", str(seconds)],
                          cwd=str(REPO_ROOT), capture_output=True, text=True, timeout=seconds + 120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "soak: PASS" in out, out[-6000:]
