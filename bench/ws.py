"""WebSocket echo benchmark: messages per second, one worker each, luath against uvicorn (websockets)
and granian, reported as ratios to luath.

    python3 -m bench.ws [--seconds 5] [--connections 50] [--size 32] [--rounds 2] [--servers ...]

The load comes from bench/ws_client.c (epoll, one thread, no library: compiled with gcc on first use):
each connection keeps one text message in flight (send, wait for the echo, send again), no
compression is offered. Servers run from the bench venv (bench/.venv: uvicorn[standard], granian; see
`python3 -m bench setup`); luath from LUATH_PYTHON (default: the bench venv's python). Servers are run
one after the other, interleaved over --rounds, and the ratios use the median of each server's rounds.
"""
import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

from bench import BENCH_DIR, REPO_ROOT, VENV_DIR, WORK_DIR, build_tool

CLIENT_SRC = BENCH_DIR / "ws_client.c"
CLIENT_BIN = WORK_DIR / "ws_client"
APP = "bench.apps.asgi_ws_echo:app"


def server_commands(port: int) -> dict:
    vbin = VENV_DIR / "bin"
    luath_py = os.environ.get("LUATH_PYTHON", str(vbin / "python"))
    return {
        "luath": [luath_py, "-m", "luath", APP, "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                  "--interface", "asgi", "--log-level", "warning"],
        "uvicorn": [str(vbin / "uvicorn"), APP, "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop",
                    "--http", "httptools", "--ws", "websockets", "--workers", "1", "--no-access-log",
                    "--log-level", "warning"],
        "granian": [str(vbin / "granian"), "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
                    "--workers", "1", "--http", "1", "--log-level", "warning", APP],
    }


def build_client() -> None:
    err = build_tool(CLIENT_BIN, (CLIENT_SRC,), ["gcc", "-O2", "-Wall", "-o", str(CLIENT_BIN), str(CLIENT_SRC)])
    if err:
        raise SystemExit(err)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc, timeout=20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def run_one(name: str, args) -> dict:
    port = free_port()
    cmd = server_commands(port)[name]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen(cmd, cwd=str(REPO_ROOT), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_port(port, proc)
        out = subprocess.run([str(CLIENT_BIN), "127.0.0.1", str(port), "/", str(args.connections),
                              str(args.seconds), str(args.size), "1"],
                             capture_output=True, text=True, timeout=args.seconds + 60)
        if out.returncode != 0:
            return {"error": (out.stderr or out.stdout).strip()[-300:]}
        return json.loads(out.stdout)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m bench.ws", description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--size", type=int, default=32, help="message size in bytes (text)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--servers", default="luath,uvicorn,granian")
    args = p.parse_args(argv)
    build_client()
    names = [n for n in args.servers.split(",") if n]
    results: dict = {n: [] for n in names}
    for r in range(args.rounds):
        for n in (names if r % 2 == 0 else names[::-1]):
            res = run_one(n, args)
            print(f"round {r + 1} {n}: {res}", file=sys.stderr)
            if "rate" in res and not res.get("errors"):
                results[n].append(res["rate"])
    med = {n: statistics.median(v) for n, v in results.items() if v}
    base = med.get("luath")
    print(f"WebSocket echo, {args.connections} connections, {args.size}-byte text messages, one worker each; "
          f"median of {args.rounds} rounds of {args.seconds:g} s")
    print(f"{'server':<10} {'msg/s':>10} {'luath / server':>15}")
    for n in names:
        if n not in med:
            print(f"{n:<10} {'failed':>10}")
            continue
        ratio = f"{base / med[n]:.2f}x" if base else "-"
        print(f"{n:<10} {med[n]:>10.0f} {ratio:>15}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
