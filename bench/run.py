"""`eventpipe bench`: every benchmark in order, then bench/RESULTS.md.

Sizes come from options or the environment (BENCH_COMMANDS, BENCH_RATE, BENCH_SECONDS,
BENCH_QUERY_RATE, BENCH_RECOVERY_EVENTS, BENCH_SYSTEMS). The defaults keep `make bench`
within 20 minutes on a 2-core machine; a quick look is `BENCH_COMMANDS=20000 make bench`.

The run's figures go to bench/results.json (`as_data`); bench/RESULTS.md (`bench.report`)
and the charts beside it (`bench.charts`: throughput.png, latency.png, recovery.png) are
both drawn from that file, so `python -m bench.charts` redraws them from it alone.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench.load import plan, preload
from bench.procs import Isolated
from bench.throughput import CeilingRun, FaustRun, QuixRun, SystemResult
from bench.topics import reset_topics
from streams.codec import register_codecs

__all__ = ["RESULTS_JSON", "Options", "Results", "as_data", "main", "throughput"]

console = Console()
PARTITIONS = 2
HERE = Path(__file__).resolve().parent
RESULTS_JSON = HERE / "results.json"


@dataclass
class Options:
    commands: int = int(os.environ.get("BENCH_COMMANDS", 60_000))
    rate: int = int(os.environ.get("BENCH_RATE", 200))
    seconds: int = int(os.environ.get("BENCH_SECONDS", 30))
    query_rate: int = int(os.environ.get("BENCH_QUERY_RATE", 1000))
    recovery_events: int = int(os.environ.get("BENCH_RECOVERY_EVENTS", 200_000))
    only: tuple[str, ...] = ()  # throughput, latency, recovery; empty: all
    # one, task, two, quix, ceiling, faust; empty: all (a subset is for quick comparisons)
    systems: tuple[str, ...] = tuple(s for s in os.environ.get("BENCH_SYSTEMS", "").split(",")
                                     if s)


@dataclass
class Results:
    options: Options
    started: datetime
    systems: list[SystemResult] = field(default_factory=list)
    phases: list[int] = field(default_factory=list)
    latency: dict[str, Any] = field(default_factory=dict)
    recovery: dict[str, Any] = field(default_factory=dict)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console)


def throughput(opts: Options, results: Results) -> None:
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    console.rule("[bold]stream throughput")
    codecs = register_codecs(os.environ["SCHEMA_REGISTRY_URL"])
    phases = plan(opts.commands)
    results.phases = [len(p) for p in phases]
    extra = {"TOPIC_PARTITIONS": str(PARTITIONS), "TABLE_STORE": "rocksdb://"}
    every = {
        "one": lambda: FaustRun(Isolated("one", 1, 6366, extra), workers=1),
        "task": lambda: FaustRun(Isolated("task", 4, 6396, extra), workers=1,
                                 projector="task"),
        "two": lambda: FaustRun(Isolated("two", 2, 6376, extra), workers=2),
        "quix": lambda: QuixRun(Isolated("quix", 3, 6386, extra)),
        "ceiling": CeilingRun,
        "faust": lambda: CeilingRun("bench.faust_noop", "a Faust agent that does nothing"),
    }
    for name, make in every.items():
        if opts.systems and name not in opts.systems:
            continue
        # Each system on topics of its own: the pipeline's topic names are fixed, and a
        # system reading another's outcomes would see its phase end early.
        reset_topics(bootstrap, PARTITIONS)
        system = make()
        total = 0
        for number, phase in enumerate(phases, 1):
            with _progress() as bar:
                task = bar.add_task(f"{system.result.name}, phase {number}: producing",
                                    total=len(phase))
                preload(bootstrap, codecs, phase, lambda i, t=task: bar.update(t, completed=i))
                bar.update(task, completed=len(phase))
            total += len(phase)
            since = datetime.now(UTC)
            console.print(f"phase {number}: {system.result.name} ...", end=" ")
            took = system.run_phase(len(phase), total, since)
            console.print(f"{took.commands} in {took.seconds:.1f} s = "
                          f"{took.commands / took.seconds:,.0f}/s"
                          + (f" [red]did not finish: {took.missing} outcomes or states missing"
                             if took.missing else ""))
        system.finish()
        results.systems.append(system.result)


def latency(opts: Options, results: Results) -> None:
    from bench import latency as measure

    console.rule("[bold]command and query latency")
    reset_topics(os.environ["KAFKA_BOOTSTRAP_SERVERS"], PARTITIONS)
    with console.status(f"POST at {opts.rate}/s, GETs at {opts.query_rate}/s, "
                        f"{opts.seconds} s each ..."):
        results.latency = measure.measure(opts.rate, opts.seconds, opts.query_rate)
    for name in ("command", "bare", "get_event", "get_job", "get_event_overload", "get_list"):
        r = results.latency[name]
        console.print(f"{name}: p50 {r['p50']:.1f} ms, p95 {r['p95']:.1f} ms, "
                      f"p99 {r['p99']:.1f} ms, errors {r['errors']} {r['statuses']}")


def recovery(opts: Options, results: Results) -> None:
    from bench import recovery as measure

    console.rule("[bold]recovery")
    reset_topics(os.environ["KAFKA_BOOTSTRAP_SERVERS"], PARTITIONS)
    with console.status(f"{opts.recovery_events:,} events into the changelog, cold start, "
                        "restart ..."):
        results.recovery = measure.measure(opts.recovery_events)
    r = results.recovery
    console.print(f"cold start {r['cold_seconds']:.1f} s, restart {r['warm_seconds']:.1f} s")


def as_data(results: Results, machine: list[str]) -> dict[str, Any]:
    """One run's figures as plain JSON data (what results.json holds)."""
    return {
        "started": results.started.isoformat(),
        "options": {**asdict(results.options), "only": list(results.options.only),
                    "systems": list(results.options.systems)},
        "machine": machine,
        "phases": results.phases,
        "systems": [{"name": s.name, "peak_rss_mb": s.peak_rss_mb, "statuses": s.statuses,
                     "phases": [asdict(p) for p in s.phases], "commands": s.commands,
                     "seconds": s.seconds, "missing": s.missing,
                     "rate": None if math.isnan(s.rate) else s.rate}
                    for s in results.systems],
        "latency": results.latency,
        "recovery": results.recovery,
    }


def main(opts: Options, folder: Path = HERE) -> Results:
    """Every step asked for, then results.json, RESULTS.md and the charts in `folder`."""
    from bench import charts, report

    results = Results(opts, datetime.now(UTC))
    for name, step in (("throughput", throughput), ("latency", latency),
                       ("recovery", recovery)):
        if not opts.only or name in opts.only:
            step(opts, results)
    data = as_data(results, report.machine())
    saved = folder / RESULTS_JSON.name
    saved.write_text(json.dumps(data, indent=1) + "\n")
    page = report.write(data, folder / report.RESULTS.name)
    drawn = charts.write(data, folder)
    console.print(f"[bold]wrote {saved}, {page}, {', '.join(p.name for p in drawn)}")
    return results
