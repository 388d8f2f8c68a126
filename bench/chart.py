"""PNG chart from a results JSON: horizontal bars of server-core CPU us/request
per server (lower is better), labelled with req/s.  Run with the venv python:

    bench/.venv/bin/python -m bench.chart bench/results/latest.json bench/results/latest.png
"""
import json
import sys


def main(src: str, dst: str) -> int:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no chart")
        return 2
    data = json.load(open(src))
    baseline = data["meta"].get("baseline")
    scen = [(n, sc) for n, sc in data["scenarios"].items()
            if any(d.get("summary") for d in sc["servers"].values())]
    if not scen:
        print("no results to chart")
        return 1
    heights = [max(2.0, 0.4 * sum(1 for d in sc["servers"].values() if d.get("summary")) + 1.2)
               for _, sc in scen]
    fig, axes = plt.subplots(len(scen), 1, figsize=(10, sum(heights)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, (name, sc) in zip(axes[:, 0], scen):
        rows = [(n, d["summary"]) for n, d in sc["servers"].items() if d.get("summary")]
        rows = [r for r in rows if r[1].get("core_us_per_req") is not None]
        rows.sort(key=lambda r: -r[1]["core_us_per_req"])   # best at the top
        names = [n for n, _ in rows]
        cpu = [s["core_us_per_req"] for _, s in rows]
        lo = [s["core_us_per_req"] - s["core_us_per_req_min"] for _, s in rows]
        hi = [s["core_us_per_req_max"] - s["core_us_per_req"] for _, s in rows]
        colors = []
        for n in names:
            kind = sc["servers"][n].get("kind")
            colors.append("#d62728" if n == baseline else
                          "#7f7f7f" if kind == "ref" else "#1f77b4")
        bars = ax.barh(names, cpu, xerr=[lo, hi], color=colors, capsize=3,
                       label="server-core CPU (bar, min-max)")
        proc = [s.get("proc_us_per_req") for _, s in rows]
        ax.plot(proc, names, "kD", markersize=4, label="process CPU (diamond)")
        xmax = max([s["core_us_per_req_max"] for _, s in rows] + [p for p in proc if p])
        xmin = min(cpu + [p for p in proc if p])
        log = xmin > 0 and xmax / xmin > 15
        for b, (_, s) in zip(bars, rows):
            right = max(s["core_us_per_req_max"], s.get("proc_us_per_req") or 0)
            ax.text(right * 1.08 if log else right + xmax * 0.02,
                    b.get_y() + b.get_height() / 2,
                    f"{s['core_us_per_req']:.1f} us (proc {s.get('proc_us_per_req', 0):.1f})"
                    f"  |  {s['rps']:,.0f} req/s",
                    va="center", fontsize=8)
        ax.legend(loc="upper right", fontsize=7, framealpha=0.9)
        if log:
            ax.set_xscale("log")
            ax.set_xlim(xmin * 0.5, xmax * 12)
        else:
            ax.set_xlim(0, xmax * 1.6)
        bgs = sorted(r["core_bg_util"] for d in sc["servers"].values()
                     for r in d.get("runs", []) if r.get("core_bg_util") is not None)
        title = f"{name}: {sc['description']}"
        if bgs and bgs[len(bgs) // 2] > 0.05:
            title += (f"\n(server core shared with other work: idle-core busy median "
                      f"{100 * bgs[len(bgs) // 2]:.0f}%, so bars are inflated; diamonds are not)")
        elif bgs and bgs[-1] > 0.25:
            title += (f"\n(some runs shared the server core with other work, idle-core busy up to "
                      f"{100 * bgs[-1]:.0f}%: their max whiskers are inflated; diamonds are not)")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("server-core CPU microseconds per request (lower is better)"
                      + (", log scale" if log else ""))
        ax.grid(axis="x", alpha=0.3)
    m = data["meta"]
    # Figure fractions from inches: the default y=0.98 puts the title an inch into a 50-inch figure,
    # over the first panel's title.
    total = sum(heights)
    fig.suptitle(f"luath bench {m['date']}: 1 worker on core {m['server_core']}, "
                 f"wrk -c{m['connections']} on core {m['client_core']}, "
                 f"median of {m['rounds']} rounds", fontsize=10, y=1 - 0.12 / total, va="top")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.25 / total))
    fig.savefig(dst, dpi=110)
    print(f"wrote {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
