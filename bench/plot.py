"""The throughput plot of ``make bench``: rows/s against concurrency, one panel per latency.

Each panel has a line per contender (the plain loop, the job, the job with the naive synchronous
UDF, ...) and the ideal, concurrency / latency (every request slot busy all the time). Needs
matplotlib (``pip install -e '.[bench]'``); without it :func:`plot_throughput` says so and returns
None.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TypedDict


class Point(TypedDict):
    """One measured throughput: contender, latency (s), concurrency, steady-state rows/s."""

    contender: str
    latency: float
    concurrency: int
    rows_per_s: float


_STYLE = {  # contender -> (marker, line style)
    "plain asyncio+openai loop": ("o", "-"),
    "loop, aiohttp transport": ("s", "-"),
    "Flink job (ML_PREDICT)": ("^", "-"),
    "Flink job, 'async' = 'false'": ("v", "-"),
}


def plot_throughput(points: Iterable[Point], path: Path, title: str) -> Path | None:
    """Writes the PNG to ``path``; its path, or None without matplotlib or points."""
    points = list(points)
    if not points:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("# no plot: matplotlib is not installed (pip install -e '.[bench]')",
              file=sys.stderr)
        return None
    latencies = sorted({p["latency"] for p in points})
    figure, axes = plt.subplots(1, len(latencies), figsize=(4.2 * len(latencies) + 1, 5.0),
                                squeeze=False, sharey=True)
    for axis, latency in zip(axes[0], latencies, strict=True):
        here = [p for p in points if p["latency"] == latency]
        concurrencies = sorted({p["concurrency"] for p in here})
        ideal = concurrencies if len(concurrencies) > 1 else [
            concurrencies[0] / 1.5, concurrencies[0], concurrencies[0] * 1.5]
        axis.plot(ideal, [c / latency for c in ideal], color="grey",
                  linestyle="--", label="ideal (concurrency / latency)")
        for contender in dict.fromkeys(p["contender"] for p in here):
            series = sorted((p["concurrency"], p["rows_per_s"]) for p in here
                            if p["contender"] == contender)
            marker, style = _STYLE.get(contender, ("x", ":"))
            axis.plot([c for c, _ in series], [r for _, r in series], marker=marker,
                      linestyle=style, label=contender)
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xticks(concurrencies, [str(c) for c in concurrencies])
        if len(concurrencies) == 1:
            axis.set_xlim(concurrencies[0] / 2, concurrencies[0] * 2)
        axis.set_title(f"{latency * 1000:.0f} ms latency")
        axis.set_xlabel("requests in flight (max-concurrent-operations)")
        axis.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("rows/s (steady state)")
    handles: dict[str, object] = {}
    for axis in axes[0]:  # every contender once, whichever panel has it
        for handle, label in zip(*axis.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    figure.legend(list(handles.values()), list(handles), loc="lower center",
                  ncol=min(len(handles), 3), fontsize="small")
    figure.suptitle(title, fontsize="medium")
    rows = -(-len(handles) // 3)
    figure.tight_layout(rect=(0, 0.04 + 0.045 * rows, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
