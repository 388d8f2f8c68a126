"""python3 -m bench.ab: a paired A/B of two servers in one scenario, for a ratio between them.

The full benchmark runs each server once per round, ~10-40 s apart, and this VM's speed moves by a third
within minutes, so a ratio of two of its medians carries that drift. Here both servers run for the whole
A/B (pinned to the same core; the idle one costs nothing), and the load alternates between them in
short runs, A then B, many times: each pair is measured within a few seconds, and the median of the
per-pair ratios is the figure (with its quartiles, and the bootstrap 95% interval of the median).

    python3 -m bench.ab --scenario tls --a luath-plain --b luath-wsgi --pairs 40 --duration 2

Writes bench/results/<date>-ab-<scenario>-<a>-<b>.md and .json.
"""
import argparse
import datetime as dt
import json
import random
import statistics
from pathlib import Path

from bench import RESULTS_DIR
from bench import measure as M
from bench import scenarios, servers


def _interval(values: list, n: int = 2000) -> tuple:
    rnd = random.Random(1)
    meds = sorted(statistics.median(rnd.choices(values, k=len(values))) for _ in range(n))
    return meds[int(0.025 * n)], meds[int(0.975 * n) - 1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m bench.ab", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="tls")
    p.add_argument("--a", default="luath-plain", help="server A (the denominator: ratio = B / A)")
    p.add_argument("--b", default="luath-wsgi", help="server B")
    p.add_argument("--pairs", type=int, default=40)
    p.add_argument("--duration", type=float, default=2.0, help="seconds per measured run")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of unmeasured load on each first")
    p.add_argument("--connections", "-c", type=int, default=50)
    p.add_argument("--server-core", type=int, default=0)
    p.add_argument("--client-core", default="1")
    p.add_argument("--results-dir", default=str(RESULTS_DIR))
    args = p.parse_args(argv)

    scen = scenarios.BY_NAME[args.scenario]
    client = scen.client
    if client == "http_client":
        err = M.build_http_client()
        if err:
            raise SystemExit(err)
    specs = [servers.BY_NAME[args.a], servers.BY_NAME[args.b]]
    started = []
    try:
        for spec in specs:
            srv = servers.Running(spec, scen, str(args.server_core), "ab")
            started.append(srv)
            srv.wait_ready()
            srv.check(scen)
        urls = [f"{s.scheme}://127.0.0.1:{s.port}{scen.path}" for s in started]

        def run(i: int, seconds: float) -> dict:
            return M.measure(urls[i], started[i].pid, args.server_core, seconds, args.connections, 1,
                             args.client_core, scen.script, scen.script_args, client=client)

        for i in (0, 1):
            run(i, args.warmup)
        pairs = []
        for k in range(args.pairs):
            a, b = run(0, args.duration), run(1, args.duration)
            if a.get("error") or b.get("error"):
                raise SystemExit(f"pair {k}: {a.get('error') or b.get('error')}")
            pair = {"a_rps": a["rps"], "b_rps": b["rps"], "a_us": a["core_us_per_req"], "b_us": b["core_us_per_req"],
                    "a_util": a["core_util"], "b_util": b["core_util"],
                    "a_errors": a["socket_errors"] + a["non2xx"], "b_errors": b["socket_errors"] + b["non2xx"]}
            pair["rps_ratio"] = pair["b_rps"] / pair["a_rps"]
            pair["cpu_ratio"] = pair["a_us"] / pair["b_us"]
            pairs.append(pair)
            print(f"{k:3} {args.a} {pair['a_rps']:9,.0f} req/s {pair['a_us']:6.2f} us  {args.b} "
                  f"{pair['b_rps']:9,.0f} req/s {pair['b_us']:6.2f} us  B/A {pair['rps_ratio']:.3f}", flush=True)
    finally:
        for s in started:
            s.stop()

    def stats(key: str) -> dict:
        v = [p[key] for p in pairs]
        q = statistics.quantiles(v, n=4)
        lo, hi = _interval(v)
        return {"median": statistics.median(v), "q1": q[0], "q3": q[2], "ci95": [lo, hi]}

    out = {"date": dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S"), "scenario": args.scenario, "a": args.a,
           "b": args.b, "client": client, "connections": args.connections, "duration": args.duration,
           "rps_ratio": stats("rps_ratio"), "cpu_ratio": stats("cpu_ratio"), "pairs": pairs,
           "errors": sum(p["a_errors"] + p["b_errors"] for p in pairs)}
    r, c = out["rps_ratio"], out["cpu_ratio"]
    summary = (f"{args.b} / {args.a}, {args.scenario}, {len(pairs)} pairs of {args.duration:g} s "
               f"({client}, {args.connections} connections): req/s ratio median {r['median']:.3f} "
               f"[quartiles {r['q1']:.3f}-{r['q3']:.3f}, 95% interval of the median {r['ci95'][0]:.3f}-"
               f"{r['ci95'][1]:.3f}]; CPU/request ratio (A/B) median {c['median']:.3f} "
               f"[{c['q1']:.3f}-{c['q3']:.3f}]; errors {out['errors']}")
    print(summary)
    stamp = dt.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    Path(args.results_dir).mkdir(parents=True, exist_ok=True)
    base = Path(args.results_dir) / f"{stamp}-ab-{args.scenario}-{args.a}-{args.b}"
    base.with_suffix(".json").write_text(json.dumps(out, indent=1))
    rows = "\n".join(f"| {k} | {p['a_rps']:,.0f} | {p['a_us']:.2f} | {p['b_rps']:,.0f} | {p['b_us']:.2f} | "
                     f"{p['rps_ratio']:.3f} |" for k, p in enumerate(pairs))
    base.with_suffix(".md").write_text(
        f"# A/B {out['date']}: {args.b} against {args.a}\n\n{summary}\n\n"
        f"| pair | {args.a} req/s | core us/req | {args.b} req/s | core us/req | B/A req/s |\n"
        f"|---|---:|---:|---:|---:|---:|\n{rows}\n")
    print(f"wrote {base}.md and .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
