"""python3 -m bench: install peers, start each server pinned to one core,
drive it with wrk pinned to another, account CPU, write results."""
import argparse
import atexit
import datetime as dt
import fnmatch
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench import REPO_ROOT, RESULTS_DIR, VENV_PY
from bench import measure as M
from bench import report, scenarios, servers, setup_env


def log(msg=""):
    print(msg, flush=True)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python3 -m bench", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--skip-install", action="store_true",
                   help="do not run apt-get/pip; use bench/.venv as it is")
    p.add_argument("--no-luath-install", action="store_true",
                   help="install the peers but not luath from the repo")
    p.add_argument("--duration", type=float, default=10, help="seconds per measured wrk run")
    p.add_argument("--warmup", type=float, default=1, help="seconds of unmeasured wrk first")
    p.add_argument("--connections", "-c", type=int, default=50, help="wrk connections")
    p.add_argument("--threads", "-t", type=int, default=1, help="wrk threads")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (A B C A B C ...)")
    p.add_argument("--scenarios", default="plaintext",
                   help="comma list, or 'all': " + ",".join(s.name for s in scenarios.SCENARIOS))
    p.add_argument("--servers", default="*",
                   help="comma list of names/globs: " + ",".join(s.name for s in servers.SERVERS))
    p.add_argument("--exclude", default="", help="comma list of names/globs to leave out")
    p.add_argument("--baseline", default="luath-wsgi", help="server the ratios are relative to")
    p.add_argument("--server-core", type=int, default=0, help="core for the servers")
    p.add_argument("--client-core", default="1", help="core list for wrk")
    p.add_argument("--tls-client", choices=("http_client", "wrk"), default="http_client",
                   help="load generator of the tls scenario: bench/http_client.cpp (its own TLS 1.3 "
                        "records, one send and one recv a request) or wrk, which spends twice its "
                        "plaintext CPU on a TLS request and becomes the bottleneck")
    p.add_argument("--idle-wait", type=float, default=15,
                   help="before each run, wait up to this many seconds for the server core "
                        "to be idle (other work on it inflates 'core CPU'); 0: don't wait")
    p.add_argument("--idle-threshold", type=float, default=10,
                   help="percent busy of the idle server core counted as idle")
    p.add_argument("--results-dir", default=str(RESULTS_DIR))
    p.add_argument("--no-chart", action="store_true")
    p.add_argument("--list", action="store_true", help="list servers and scenarios, then exit")
    return p.parse_args(argv)


def _pick(names, pattern, what):
    if pattern.strip() in ("", "*", "all"):
        return list(names)
    out = []
    for pat in (x.strip() for x in pattern.split(",") if x.strip()):
        hits = [n for n in names if fnmatch.fnmatch(n, pat)]
        if not hits:
            raise SystemExit(f"unknown {what}: {pat} (known: {', '.join(names)})")
        out += [h for h in hits if h not in out]
    return out


def _meta(args) -> dict:
    cpu_model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    git = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    if git:
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True).stdout
        git += "-dirty" if dirty.strip() else ""
    return {
        "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        "git": git or None,
        "cpu_model": cpu_model,
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg": " ".join(open("/proc/loadavg").read().split()[:3]),
        "server_core": args.server_core,
        "client_core": args.client_core,
        "duration": args.duration,
        "warmup": args.warmup,
        "connections": args.connections,
        "threads": args.threads,
        "rounds": args.rounds,
        "baseline": args.baseline,
    }


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _client(scen, args) -> str:
    """The scenario's load generator; --tls-client wrk puts wrk back on the tls scenario."""
    return "wrk" if scen.tls and args.tls_client == "wrk" else scen.client


def run_one(spec, scen, args, rnd) -> dict:
    """Start, check, warm up, measure, stop.  Returns a run dict or raises StartError."""
    conns = scen.connections or args.connections
    srv = servers.Running(spec, scen, str(args.server_core), f"r{rnd}")
    try:
        srv.wait_ready()
        srv.check(scen)
        url = f"{srv.scheme}://127.0.0.1:{srv.port}{scen.path}"
        # what the server core does while the server idles: other work that
        # will also land in the 'core CPU' figure of this run, and the server's
        # own idle CPU (a busy-polling server), told apart by its process time
        # (waits up to --idle-wait seconds for the other work to fall under --idle-threshold)
        deadline = time.monotonic() + args.idle_wait
        while True:
            bg, own = M.idle_sample(srv.pid, args.server_core)
            if bg * 100 <= args.idle_threshold or time.monotonic() >= deadline:
                break
        if args.warmup > 0:
            M.run_wrk(M.wrk_command(url, args.warmup, conns, args.threads, args.client_core,
                                    scen.script, scen.script_args, client=_client(scen, args)), args.warmup)
        if srv.proc.poll() is not None:
            raise servers.StartError(f"died during warm-up: {srv.log_tail()}")
        res = M.measure(url, srv.pid, args.server_core, args.duration, conns, args.threads,
                        args.client_core, scen.script, scen.script_args, client=_client(scen, args))
        if srv.proc.poll() is not None:
            res.setdefault("error", f"server died during the run: {srv.log_tail()}")
        res["core_bg_util"] = bg
        res["server_idle_util"] = own
        res["round"] = rnd
        res["connections"] = conns
        return res
    finally:
        srv.stop()


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.list:
        for s in servers.SERVERS:
            log(f"server   {s.name:15} {s.kind:5} {s.note}")
        for s in scenarios.SCENARIOS:
            log(f"scenario {s.name:15} {s.description}")
        return 0

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    # Ctrl-C must reach us even when started from a shell that ignores SIGINT
    # for background jobs; servers run in their own sessions and are killed
    # by stop_all().
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGHUP, _on_sigterm)
    atexit.register(servers.stop_all)

    ncpu = os.cpu_count() or 1
    if ncpu < 2:
        log("warning: fewer than 2 cores; server and wrk will share a core")

    scen_names = _pick([s.name for s in scenarios.SCENARIOS], args.scenarios, "scenario")
    srv_names = _pick([s.name for s in servers.SERVERS], args.servers, "server")
    if args.exclude:
        drop = set(_pick(srv_names, args.exclude, "server"))
        srv_names = [n for n in srv_names if n not in drop]

    # ---- install
    install = {}
    if not args.skip_install:
        install.update(setup_env.ensure_apt(log))
        err = setup_env.ensure_venv(log)
        if err:
            log(f"ERROR: {err}")
            install["venv"] = err
        else:
            install.update(setup_env.install_all(log, luath=not args.no_luath_install))
    else:
        install.update(setup_env.load_status())
    if not shutil.which("wrk"):
        log("ERROR: wrk is not installed (apt-get install wrk); nothing can be measured")
        return 2
    if not shutil.which("taskset"):
        log("ERROR: taskset is not installed (apt-get install util-linux)")
        return 2

    build_err = servers.build_limit_server(log) if "limit-c" in srv_names else None
    client_err = None
    if any(_client(scenarios.BY_NAME[s], args) == "http_client" for s in scen_names):
        client_err = M.build_http_client(log)

    meta = _meta(args)
    meta["install"] = install
    meta["versions"] = setup_env.versions()
    b0 = M.cpu_core_jiffies(args.server_core)
    time.sleep(1.0)
    b1 = M.cpu_core_jiffies(args.server_core)
    meta["core_idle_busy_pct"] = round(100.0 * (b1[0] - b0[0]) / max(1, b1[1] - b0[1]), 1)
    log(f"core {args.server_core} busy {meta['core_idle_busy_pct']}% before the run "
        f"(other work on it shows up in 'core CPU'); load {meta['loadavg']}")

    results = {"meta": meta, "scenarios": {}}
    stamp = dt.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    interrupted = False
    try:
        for sname in scen_names:
            scen = scenarios.BY_NAME[sname]
            conns = scen.connections or args.connections
            sc = {"description": scen.description, "servers": {},
                  "latency_valid": scen.latency_valid, "server_core": args.server_core,
                  "wrk_example": " ".join(M.wrk_command(
                      ("https" if scen.tls else "http") + "://127.0.0.1:PORT" + scen.path,
                      args.duration, conns,
                      args.threads, args.client_core, scen.script, scen.script_args,
                      client=_client(scen, args)))
                  .replace(str(REPO_ROOT) + "/", "")}
            results["scenarios"][sname] = sc
            specs = [servers.BY_NAME[n] for n in srv_names
                     if servers.BY_NAME[n].supports(scen)]
            for spec in specs:
                entry = {"kind": spec.kind, "note": spec.note, "runs": [], "failed": None}
                reason = servers.available(spec)
                if spec.name == "limit-c" and build_err:
                    reason = build_err
                if client_err and _client(scen, args) == "http_client":
                    reason = reason or f"bench/http_client not built: {client_err}"
                if reason:
                    entry["failed"] = reason
                sc["servers"][spec.name] = entry
            log(f"\n== scenario {sname}: {scen.description} ({conns} connections, "
                f"{args.rounds} rounds x {args.duration:g}s)")
            for rnd in range(1, args.rounds + 1):
                for spec in specs:
                    entry = sc["servers"][spec.name]
                    if entry["failed"]:
                        if rnd == 1:
                            log(f"  [{rnd}] {spec.name:15} SKIPPED: {entry['failed']}")
                        continue
                    try:
                        res = run_one(spec, scen, args, rnd)
                    except servers.StartError as e:
                        reason = str(e)
                        inst = install.get(spec.package) if spec.package else None
                        if inst:
                            reason += f" [install: {inst}]"
                        entry["failed"] = reason
                        log(f"  [{rnd}] {spec.name:15} FAILED: {reason[:400]}")
                        continue
                    entry["runs"].append(res)
                    if res.get("error"):
                        log(f"  [{rnd}] {spec.name:15} ERROR: {res['error'][:300]}")
                    else:
                        errs = res.get("socket_errors", 0) + res.get("non2xx", 0)
                        log(f"  [{rnd}] {spec.name:15} {res['rps']:>11,.0f} req/s  "
                            f"p50 {res['p50_ms']:7.3f} ms  p99 {res['p99_ms']:7.3f} ms  "
                            f"core {res['core_us_per_req']:6.2f} us/req  "
                            f"proc {res['proc_us_per_req']:6.2f} us/req  "
                            f"util {100 * (res['core_util'] or 0):3.0f}%/client {100 * (res['client_util'] or 0):3.0f}%"
                            f"  bg {100 * res['core_bg_util']:3.0f}%"
                            + (f"  idle-spin {100 * res['server_idle_util']:3.0f}%"
                               if res.get("server_idle_util", 0) > M.IDLE_SPIN else "")
                            + (f"  ERRORS {errs}" if errs else ""))
                    time.sleep(0.3)
    except KeyboardInterrupt:
        interrupted = True
        log("\ninterrupted: stopping servers, writing partial results")
    finally:
        servers.stop_all()

    if not any(sc["servers"] for sc in results["scenarios"].values()):
        return 130 if interrupted else 1
    meta["interrupted"] = interrupted
    # latest.* (the README's chart and tables) is the latest complete run of every scenario; a run of
    # some scenarios, or an interrupted one, writes its summary under its own stamp instead
    full = set(scen_names) == {s.name for s in scenarios.SCENARIOS} and not interrupted
    written = report.write_outputs(results, Path(args.results_dir),
                                   stamp, args.baseline, "latest" if full else f"{stamp}-run")
    for p in written:
        log(f"wrote {p.relative_to(REPO_ROOT) if p.is_relative_to(REPO_ROOT) else p}")
    if not args.no_chart:
        png = written[-1].with_suffix(".png")
        py = str(VENV_PY) if VENV_PY.exists() else sys.executable
        r = subprocess.run([py, "-m", "bench.chart", str(written[-1]), str(png)],
                           cwd=str(REPO_ROOT), capture_output=True, text=True)
        if r.returncode == 0:
            log(r.stdout.strip())
        else:
            tail = (r.stdout.strip() or r.stderr.strip()).splitlines()[-1:] or ["?"]
            log(f"chart skipped: {tail[0]}")
    log("")
    log(written[-2].read_text())  # the summary's .md
    return 130 if interrupted else 0
