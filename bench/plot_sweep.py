"""Plot CPU time and peak RSS against trace size from bench/sweep.py results (matplotlib: bench venv only).

Usage::

    bench/.venv-hta/bin/python bench/plot_sweep.py bench/results_sweep.json bench/sweep.png
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

SHOWN = ("orjson.loads", "tracekit convert", "tracekit convert --no-parquet", "tracekit info", "tracekit modules",
         "HTA TraceAnalysis")


def main(argv: list[str]) -> int:
    src, out = argv
    with open(src) as fh:
        results = [r for r in json.load(fh)["results"] if r["label"].startswith("v100_large scaled")]
    results.sort(key=lambda r: r["raw_mb"])
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(9, 3.6))
    for name in SHOWN:
        pts = [(r["raw_mb"], r["rows"][name]) for r in results if name in r["rows"]]
        if not pts:
            continue
        xs = [p[0] for p in pts]
        ax_t.plot(xs, [p[1]["cpu"] for p in pts], marker="o", label=name)
        ax_m.plot(xs, [p[1]["rss_mb"] / 1e3 for p in pts], marker="o", label=name)
    xs = [r["raw_mb"] for r in results]
    ax_m.plot(xs, [x / 1e3 for x in xs], "k:", label="1x raw size")
    ax_t.set(xscale="log", yscale="log", xlabel="decompressed trace MB", ylabel="CPU seconds (process)",
             title="time vs size")
    ax_m.set(xscale="log", yscale="log", xlabel="decompressed trace MB", ylabel="peak RSS GB", title="memory vs size")
    ax_m.legend(fontsize=7, loc="upper left")
    for ax in (ax_t, ax_m):
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
