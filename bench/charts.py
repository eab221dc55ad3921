"""The benchmark's charts, drawn with matplotlib from one run's data (bench/results.json):

- throughput.png: commands per second by system (one bar each; a system whose phases did
  not all finish has none, and says so);
- latency.png: the latency distribution of each request type of the latency step, latency
  (log scale) against percentile: the whole curve where the run kept it
  (`distribution`, bench/loadgen.py), else the percentiles it reported (p50, p95, p99, max);
- recovery.png: seconds until a new command's outcome after a cold start and a restart.

`python -m bench.charts [results.json] [folder]` draws them again from the file alone
(default: bench/results.json, into bench/).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # (after the backend is chosen)
from matplotlib.figure import Figure

__all__ = ["write"]

HERE = Path(__file__).resolve().parent
DPI = 110
LATENCY_LABELS = {
    "command": "POST /api/events/purposes",
    "bare": "GET bare FastAPI route (floor)",
    "get_event": "GET /api/events/{id}",
    "get_job": "GET /api/events/jobs/{jobId}/status",
    "get_event_overload": "GET /api/events/{id} at 2x rate",
    "get_list": "GET /api/events (list)",
}
REPORTED = ((50, "p50"), (95, "p95"), (99, "p99"), (100, "max"))


def _subtitle(data: dict[str, Any]) -> str:
    started = str(data.get("started", ""))[:16].replace("T", " ")
    return f"eventpipe bench, run of {started} UTC" if started else "eventpipe bench"


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, format="png")
    plt.close(fig)
    return path


def throughput(data: dict[str, Any], path: Path) -> Path | None:
    systems = data.get("systems") or []
    if not systems:
        return None
    names = [s["name"] for s in systems]
    rates = [0.0 if s["missing"] else float(s["rate"] or 0.0) for s in systems]
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(systems) + 1.8))
    # (from 1: a log axis has no 0)
    colors = ["#2b6cb0" if n.startswith("eventpipe") else "#a0aec0" for n in names]
    bars = ax.barh(names, [max(r, 1.0) for r in rates], left=1.0, color=colors)
    ax.invert_yaxis()  # in the run's order, ours first
    ax.set_xscale("log")
    ax.set_xlabel("commands per second (log scale)")
    ax.set_title(f"Stream throughput by system\n{_subtitle(data)}", fontsize=10)
    for bar, s in zip(bars, systems, strict=True):
        text = "did not finish" if s["missing"] else f"{s['rate']:,.0f}/s"
        ax.text(max(bar.get_width(), 1.0) * 1.05, bar.get_y() + bar.get_height() / 2, text,
                va="center", fontsize=8)
    ax.set_xlim(1, max([*rates, 10.0]) * 4)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def _curve(result: dict[str, Any]) -> tuple[list[float], list[float]]:
    dist = result.get("distribution") or {}
    if dist.get("percentiles"):
        return list(dist["percentiles"]), list(dist["ms"])
    return [p for p, _ in REPORTED], [result[k] for _, k in REPORTED]


def _nines(percentile: float) -> float:
    """The x of a percentile: -log10 of the fraction above it (p90 1, p99 2, p99.9 3), the
    maximum at 4."""
    return -math.log10(1 - min(percentile, 99.99) / 100)


def latency(data: dict[str, Any], path: Path) -> Path | None:
    results = data.get("latency") or {}
    shown = [(k, label) for k, label in LATENCY_LABELS.items() if k in results]
    if not shown:
        return None
    fig, ax = plt.subplots(figsize=(9, 5))
    for key, label in shown:
        x, y = _curve(results[key])
        # (a latency of 0 cannot be drawn on a log axis)
        ax.plot([_nines(p) for p in x], [max(v, 0.01) for v in y], marker="o", markersize=3,
                label=label)
    ax.set_yscale("log")
    ax.set_xlabel("percentile of requests (the tail spread out: one step per nine)")
    ax.set_ylabel("latency, ms (log scale)")
    ticks = ((0, "0"), (50, "p50"), (90, "p90"), (99, "p99"), (99.9, "p99.9"), (100, "max"))
    ax.set_xticks([_nines(p) for p, _ in ticks])
    ax.set_xticklabels([label for _, label in ticks])
    ax.set_title(f"Latency distribution per request (vegeta, constant rate)\n"
                 f"{_subtitle(data)}", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path)


def recovery(data: dict[str, Any], path: Path) -> Path | None:
    r = data.get("recovery") or {}
    if not r:
        return None
    labels = ["cold start\n(store empty)", "restart\n(store kept)"]
    seconds = [r["cold_seconds"], r["warm_seconds"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    bars = ax.bar(labels, seconds, color=["#c05621", "#2f855a"], width=0.5)
    for bar, value in zip(bars, seconds, strict=True):
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), f"{value:.1f} s",
                ha="center", va="bottom", fontsize=9)
    ax.set_ylabel("seconds until a new command's outcome")
    ax.set_title(f"Recovery of {r['events']:,} event states\n{_subtitle(data)}", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def write(data: dict[str, Any], folder: Path = HERE) -> list[Path]:
    """Draw every chart the data has figures for into `folder`; the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    drawn = (throughput(data, folder / "throughput.png"),
             latency(data, folder / "latency.png"),
             recovery(data, folder / "recovery.png"))
    return [p for p in drawn if p is not None]


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results.json"
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else HERE
    for written in write(json.loads(source.read_text()), target):
        print(written)
