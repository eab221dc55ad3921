"""bench/RESULTS.md from one run's figures: machine, versions, sizes, figures, ratios.

The run writes its figures to bench/results.json (`bench.run.as_data`); this page and the
charts (`bench.charts`) are both drawn from that data. The analysis (profiles, what moved
each figure, what limits a missed target) is kept in bench/ANALYSIS.md by hand and appended
as it is.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.procs import ROOT

__all__ = ["machine", "write"]

RESULTS = ROOT / "bench" / "RESULTS.md"
ANALYSIS = ROOT / "bench" / "ANALYSIS.md"


def _cmd(*argv: str) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine() -> list[str]:
    """The run's machine and versions, as the page's lines (kept in results.json)."""
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    quix = _cmd(str(ROOT / "bench/.venv-quix/bin/python"), "-c",
                "import quixstreams, confluent_kafka as c; "
                "print(quixstreams.__version__, c.version()[0])")
    return [
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; commit "
        f"{_cmd('git', '-C', str(ROOT), 'rev-parse', '--short', 'HEAD')}",
        f"- machine: {os.cpu_count()} CPUs ({cpu}), {int(mem) // 1024} MiB RAM, "
        f"{platform.system()} {platform.release()}; load average at the end "
        f"{os.getloadavg()[0]:.1f} (other developers' tests share the machine)",
        f"- Python {platform.python_version()}; faust-streaming {version('faust-streaming')}, "
        f"aiokafka {version('aiokafka')}, fastavro {version('fastavro')}, "
        f"psycopg {version('psycopg')}, redis-py {version('redis')}, "
        f"rocksdict {version('rocksdict')}, fastapi {version('fastapi')}, "
        f"uvicorn {version('uvicorn')}; Quix Streams, its confluent-kafka: {quix}",
        f"- Kafka: {_kafka_version()}; PostgreSQL: {_cmd('psql', '--version')}; "
        f"Redis: {_cmd('redis-server', '--version')[:40]}",
    ]


def _kafka_version() -> str:
    """The broker that runs: the Kafka jar on its classpath (the downloads may hold several)."""
    pid_file = Path(os.environ.get("STACK_DIR", ROOT / ".stack")) / "run" / "kafka.pid"
    try:
        cmdline = Path(f"/proc/{int(pid_file.read_text())}/cmdline").read_bytes().decode()
    except (OSError, ValueError):
        return "not this stack's (see KAFKA_BOOTSTRAP_SERVERS)"
    found = re.search(r"kafka-([0-9][0-9.]*)/libs", cmdline)
    return f"Apache Kafka {found.group(1)}" if found else "unknown"


def _throughput(data: dict[str, Any]) -> list[str]:
    systems, phases = data.get("systems") or [], data.get("phases") or []
    if not systems:
        return []
    ours = systems[0]
    lines = ["## 1. Stream throughput", "",
             f"{sum(phases):,} commands in three phases "
             f"({', '.join(map(str, phases))}), topics of 2 partitions, RocksDB stores.",
             "",
             "| system | " + " | ".join(f"phase {i + 1} s" for i in range(len(phases)))
             + " | commands/s | vs one eventpipe worker | peak RSS MiB "
             "| projected events by status |",
             "|---|" + "---|" * len(phases) + "---|---|---|---|"]
    for s in systems:
        cells = " | ".join(f"{p['seconds']:.1f}" + (f" (did not finish: {p['missing']} "
                                                     "outcomes or states missing)"
                                                     if p["missing"] else "")
                           for p in s["phases"])
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(s["statuses"].items())) or "-"
        rate = "-" if s["missing"] else f"{s['rate']:,.0f}"
        ratio = "-" if s["missing"] or ours["missing"] else f"{s['rate'] / ours['rate']:.2f}"
        lines.append(f"| {s['name']} | {cells} | {rate} | {ratio} | "
                     f"{s['peak_rss_mb']:.0f} | {statuses} |")
    lines.append("")
    for peer, target in (("Quix Streams", 5.0), ("aiokafka consume", 0.2),
                         ("a Faust agent", None)):
        other = next((s for s in systems if s["name"].startswith(peer)), None)
        if other is None or ours["missing"] or other["missing"] or not other["rate"]:
            continue
        ratio = ours["rate"] / other["rate"]
        goal = "" if target is None else (
            f" (target >= {target:g}: {'met' if ratio >= target else 'missed'})")
        lines.append(f"- {ours['name']} / {other['name']}: {ratio:.2f}{goal}")
    return [*lines, "", "![commands per second by system](throughput.png)", ""]


# (key, label, rate: "rate" or "query_rate", times the rate, short: the overload's length)
LATENCY_ROWS = (
    ("command", "POST /api/events/purposes (201 with the DRAFT)", "rate", 1, False),
    ("bare", "GET a bare FastAPI route (the floor)", "query_rate", 1, False),
    ("get_event", "GET /api/events/{id}", "query_rate", 1, False),
    ("get_job", "GET /api/events/jobs/{jobId}/status", "query_rate", 1, False),
    ("get_event_overload", "GET /api/events/{id}, twice the rate", "query_rate", 2, True),
    ("get_list", "GET /api/events (list, PostgreSQL)", "query_rate", 1, True),
)


def _latency(data: dict[str, Any]) -> list[str]:
    r = data.get("latency") or {}
    if not r:
        return []
    o = data["options"]
    short = r.get("overload_seconds", o["seconds"])
    lines = ["## 2-3. Command and query latency", "",
             "Load from vegeta (compiled, open loop) in its own process; the bare FastAPI "
             "route is the floor, under the same load in the same run.", "",
             "| request | rate asked | achieved | requests | p50 ms | p95 ms | p99 ms | max ms "
             "| errors | statuses |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, label, rate_key, times, is_short in LATENCY_ROWS:
        if name not in r:
            continue
        x = r[name]
        rate, seconds = times * o[rate_key], short if is_short else o["seconds"]
        lines.append(f"| {label} | {rate}/s for {seconds} s | {x['achieved_rate']:.0f}/s | "
                     f"{x['requests']} | {x['p50']:.1f} | {x['p95']:.1f} | {x['p99']:.1f} | "
                     f"{x['max']:.0f} | {x['errors']} | {x['statuses']} |")
    if "bare" in r:
        floor = r["bare"]["p99"]
        lines += ["", "p99 against the bare route's: " + ", ".join(
            f"{name} {r[name]['p99'] / floor:.1f}x" for name in ("get_event", "get_job")
            if name in r) + "."]
    lines += ["", "![latency distribution per request](latency.png)"]
    rss = r.get("peak_rss_mb")
    if rss:
        lines += ["", f"Peak RSS in this run: worker {rss['worker']:.0f} MiB, "
                  f"API {rss['api']:.0f} MiB."]
    return [*lines, "", *_hops(r.get("hops"), o["rate"])]


def _hops(hops: dict[str, Any] | None, rate: int) -> list[str]:
    if not hops or not hops["hops"]:
        return []
    lines = [f"POST /api/events/purposes at {rate}/s, hop by hop ({hops['traced']} of "
             f"{hops['answered']} 201s traced; bench/hops.py says how each hop is measured; "
             "produce overlaps the worker's decision):", "",
             "| hop | p50 ms | p95 ms |", "|---|---|---|"]
    lines += [f"| {hop} | {x['p50']:.1f} | {x['p95']:.1f} |" for hop, x in hops["hops"].items()]
    return [*lines, ""]


def _recovery(data: dict[str, Any]) -> list[str]:
    r = data.get("recovery") or {}
    if not r:
        return []
    return ["## 4. Recovery", "",
            f"{r['events']:,} event states in the changelog (written in {r['fill_seconds']:.0f} s),"
            f" RocksDB store of {r['store_mb']:.0f} MiB after the first start.", "",
            "| start | seconds until a new command's outcome | peak RSS MiB |", "|---|---|---|",
            f"| cold (store empty: restores everything from the changelog) | "
            f"{r['cold_seconds']:.1f} | {r['cold_peak_rss_mb']:.0f} |",
            f"| restart (store kept) | {r['warm_seconds']:.1f} | {r['warm_peak_rss_mb']:.0f} |",
            "", "![recovery time](recovery.png)", ""]


def render(data: dict[str, Any]) -> str:
    """The page for one run's data (bench/results.json), ANALYSIS.md appended."""
    o = data["options"]
    lines = ["# Benchmark results", "",
             "Written by `make bench` (`eventpipe bench`) from one run; the figures below are "
             "this run's (`bench/results.json`, which the charts are drawn from too). The "
             "machine is shared and noisy: compare the systems by their ratios within the "
             "run, not across runs.", "", *data["machine"],
             f"- sizes: BENCH_COMMANDS={o['commands']}, BENCH_RATE={o['rate']}, "
             f"BENCH_SECONDS={o['seconds']}, BENCH_QUERY_RATE={o['query_rate']}, "
             f"BENCH_RECOVERY_EVENTS={o['recovery_events']}", "",
             *_throughput(data), *_latency(data), *_recovery(data)]
    if ANALYSIS.exists():
        lines += [ANALYSIS.read_text()]
    return "\n".join(lines) + "\n"


def write(data: dict[str, Any], path: Path = RESULTS) -> Path:
    path.write_text(render(data))
    return path
