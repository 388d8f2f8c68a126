"""Summaries, markdown tables and JSON output."""
import json
import statistics
from pathlib import Path
from typing import Optional

from bench import targets
from bench.measure import IDLE_SPIN


def _vals(runs, key):
    return [r[key] for r in runs if r.get(key) is not None and not r.get("error")]


def summarize(runs: list) -> Optional[dict]:
    ok = [r for r in runs if not r.get("error") and r.get("requests")]
    if not ok:
        return None
    s = {"rounds": len(ok)}
    for key in ("rps", "p50_ms", "p99_ms", "core_us_per_req", "proc_us_per_req", "core_util",
                "client_util", "core_bg_util", "server_idle_util", "rss_start_kb", "rss_peak_kb"):
        v = _vals(ok, key)
        if v:
            s[key] = statistics.median(v)
            s[key + "_min"] = min(v)
            s[key + "_max"] = max(v)
    s["errors"] = sum(r.get("socket_errors", 0) for r in ok)
    s["non2xx"] = sum(r.get("non2xx", 0) for r in ok)
    s["requests"] = sum(r.get("requests", 0) for r in ok)
    return s


def _lat(ms):
    if ms is None:
        return "-"
    if ms < 1:
        return f"{ms * 1000:.0f} us"
    if ms < 100:
        return f"{ms:.2f} ms"
    return f"{ms:.0f} ms"


def _pct(x):
    return "-" if x is None else f"{100 * x:.0f}%"


def _rps(x):
    return f"{x:,.0f}"


def _ratio(a, b):
    if a is None or b in (None, 0):
        return "-"
    return f"{a / b:.2f}x"


def scenario_table(name: str, sc: dict, baseline: str) -> str:
    servers = sc["servers"]
    lat_ok = sc.get("latency_valid", True)
    summ = {n: summarize(d.get("runs", [])) for n, d in servers.items()}
    base = summ.get(baseline)
    ok = sorted((n for n in servers if summ[n]), key=lambda n: -summ[n]["rps"])
    lines = [f"### {name}: {sc['description']}", ""]
    wrk = sc.get("wrk_example")
    if wrk:
        lines += [f"`{wrk}`", ""]
    lines += [
        f"| server | req/s median [min-max] | p50 | p99 | core CPU us/req | process CPU us/req "
        f"| req/s vs {baseline} | CPU/req vs {baseline} (core / process) | core busy srv/client | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in ok:
        s = summ[n]
        rng = f"{_rps(s['rps'])} [{_rps(s['rps_min'])}-{_rps(s['rps_max'])}]"
        core = s.get("core_us_per_req")
        proc = s.get("proc_us_per_req")
        errs = s["errors"] + s["non2xx"]
        err_txt = "0" if not errs else (f"{s['errors']} sock, {s['non2xx']} non-2xx")
        label = f"**{n}**" if n == baseline else n
        if servers[n].get("kind") == "ref":
            label += " (ref)"
        if s.get("core_util") is not None and s["core_util"] < 0.5:
            label += " [server core <50% busy: stalled?]"
        p50, p99 = (_lat(s.get("p50_ms")), _lat(s.get("p99_ms"))) if lat_ok else ("n/a", "n/a")
        lines.append(
            f"| {label} | {rng} | {p50} | {p99} "
            f"| {core:.2f} | {proc:.2f} "
            f"| {_ratio(s['rps'], base['rps']) if base else '-'} "
            f"| {_ratio(core, base.get('core_us_per_req')) if base else '-'} / "
            f"{_ratio(proc, base.get('proc_us_per_req')) if base else '-'} "
            f"| {_pct(s.get('core_util'))}/{_pct(s.get('client_util'))} | {err_txt} |")
    bgs = [r.get("core_bg_util") for d in servers.values() for r in d.get("runs", [])
           if r.get("core_bg_util") is not None]
    if bgs and (statistics.median(bgs) > 0.05 or max(bgs) > 0.25):
        lines += ["", f"**Warning: core {sc.get('server_core', 0)} was busy with other work before "
                      f"the runs (server idle): median {100 * statistics.median(bgs):.0f}%, "
                      f"max {100 * max(bgs):.0f}%. 'core CPU' is inflated by that; "
                      f"'process CPU' is the robust figure for this scenario.**"]
    for n in ok:
        own = summ[n].get("server_idle_util_max", 0)
        if own > IDLE_SPIN:
            lines += ["", f"_{n} used {100 * own:.0f}% of its core while idle (busy polling): its CPU "
                          f"figures include that spin._"]
    failed = [(n, d) for n, d in servers.items() if not summ[n]]
    if failed:
        lines += ["", "Not measured:", ""]
        for n, d in failed:
            reason = d.get("failed") or next((r.get("error") for r in d.get("runs", [])
                                              if r.get("error")), "no successful run")
            lines.append(f"- **{n}**: {reason}")
    if not lat_ok:
        lines += ["", "_Latency is n/a: wrk does not measure per-request latency "
                      "meaningfully when pipelining._"]
    if not base:
        lines += ["", f"_Baseline `{baseline}` has no result in this run, so the ratio "
                      f"columns are empty (choose another with `--baseline`)._"]
    lines.append("")
    return "\n".join(lines)


LEGEND = """\
- **req/s**: wrk `Requests/sec`, median over rounds, [min-max] across rounds.
- **p50 / p99**: wrk `--latency` percentiles (median over rounds).
- **core CPU us/req**: busy time of the server core (cpu{sc} in /proc/stat:
  user+nice+system+irq+softirq+steal) during the wrk run / requests completed.
  Includes kernel network work done on that core and anything else that ran there.
- **process CPU us/req**: utime+stime of the server's whole process tree
  (/proc/PID/stat, all processes of its session, threads included) / requests.
- **vs BASE**: req/s ratio (>1: faster than BASE) and CPU-per-request ratios, core and
  process (>1: costs more CPU per request than BASE).
- **bg** (JSON `core_bg_util`): server-core utilisation by other work over 0.5 s with the
  server idle, just before each run (the server's own idle CPU, JSON `server_idle_util`, is
  subtracted and reported apart: a busy-polling server); a warning is printed under the table
  when it exceeds 5%.
- **core busy srv/client**: utilisation of the server core and of the load generator's core
  during the run; wrk near 100% means the load generator, not the server, was the limit.
- **load generator**: wrk, except in the tls scenario: bench/http_client.cpp (its own TLS 1.3
  records, one send and one recv a request), since wrk spends about twice its plaintext CPU on a
  TLS request and was the limit there (`--tls-client wrk` puts wrk back). http_client busy-polls,
  so its core always shows 100%: there the server core's figure tells whether the server was
  the limit.
- (ref): reference servers with no Python (bench/limit_server.c, nginx).
- Absolute numbers are noisy (shared 2-core machine); only ratios within one run count.
"""


def meta_block(meta: dict) -> str:
    v = meta.get("versions", {})
    vers = ", ".join(f"{k} {x}" for k, x in v.items() if x) or "-"
    notinst = [k for k, x in v.items() if not x]
    lines = []
    if meta.get("interrupted"):
        lines.append("- **INTERRUPTED: partial results**")
    lines += [
        f"- date: {meta['date']}  git: {meta.get('git') or '-'}",
        f"- machine: {meta.get('cpu_model', '?')}, {meta.get('nproc')} cores, "
        f"kernel {meta.get('kernel')}, Python {meta.get('python')}",
        f"- server pinned to core {meta['server_core']}, the load generator to core "
        f"{meta['client_core']}; 1 worker each; wrk -t{meta['threads']} -c{meta['connections']} "
        f"-d{meta['duration']:g}s, warm-up {meta['warmup']:g}s, {meta['rounds']} interleaved rounds",
        f"- load average at start: {meta.get('loadavg')}",
        f"- versions: {vers}",
    ]
    if notinst:
        lines.append(f"- not installed: {', '.join(notinst)}")
    inst = {k: x for k, x in (meta.get("install") or {}).items() if x}
    for k, x in inst.items():
        lines.append(f"- install failure, {k}: {x}")
    return "\n".join(lines)


def write_outputs(results: dict, results_dir: Path, stamp: str, baseline: str, summary: str = "latest") -> list:
    """Each scenario's {stamp}-{scenario}.md/.json, then the run's summary {summary}.md/.json (last)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    written = []
    meta = results["meta"]
    legend = LEGEND.replace("{sc}", str(meta["server_core"])).replace("BASE", baseline)
    # strip bulky wrk stdout from the summary JSON but keep it in the raw one
    for sname, sc in results["scenarios"].items():
        for d in sc["servers"].values():
            d["summary"] = summarize(d.get("runs", []))
        md = [f"# luath benchmark: {sname}", "", meta_block(meta), "",
              scenario_table(sname, sc, baseline), legend]
        p = results_dir / f"{stamp}-{sname}.md"
        p.write_text("\n".join(md))
        written.append(p)
        pj = results_dir / f"{stamp}-{sname}.json"
        pj.write_text(json.dumps({"meta": meta, "scenario": sname, **sc}, indent=1))
        written.append(pj)
    title = "latest run" if summary == "latest" else f"run {stamp}"
    parts = [f"# luath benchmark: {title}", "", meta_block(meta), "", targets.table(results)]
    for sname, sc in results["scenarios"].items():
        parts.append(scenario_table(sname, sc, baseline))
    parts.append(legend)
    latest = results_dir / f"{summary}.md"
    latest.write_text("\n".join(parts))
    written.append(latest)
    lj = results_dir / f"{summary}.json"
    lj.write_text(json.dumps(results, indent=1))
    written.append(lj)
    return written
