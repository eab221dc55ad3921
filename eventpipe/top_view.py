"""`eventpipe top`'s screen: rich tables drawn from two samples (`eventpipe.top`), with a
sparkline of the last minute where a trend matters and a bar for each partition's lag."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict, deque

from rich.bar import Bar
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from eventpipe.settings import Settings
from eventpipe.top import Figures, Probe, Sample
from streams.topics import OUTCOME

__all__ = ["View", "run_top"]

HISTORY = 60  # samples a sparkline shows (a minute at the default interval)
JOB_STATUSES = ("PENDING", "PROCESSING", "COMPLETED", "FAILED")
_BLOCKS = "▁▂▃▄▅▆▇█"
UP, DOWN = Text("up", style="bold green"), Text("down", style="bold red")


def sparkline(values: deque[float] | list[float]) -> str:
    if not values:
        return ""
    top = max(values)
    if top <= 0:
        return _BLOCKS[0] * len(values)
    return "".join(_BLOCKS[min(7, int(v / top * 7.999))] for v in values)


def _n(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", expand=False)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    return table


class View:
    """Keeps the history behind the sparklines; `render` draws one frame."""

    def __init__(self, worker_url: str, api_url: str) -> None:
        self.worker_url = worker_url
        self.api_url = api_url
        self.history: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=HISTORY))

    def _trend(self, key: str, value: float) -> str:
        self.history[key].append(value)
        return sparkline(self.history[key])

    def render(self, figures: Figures) -> RenderableType:
        now = figures.now
        return Group(
            Text(f"eventpipe top   {time.strftime('%H:%M:%S')}   "
                 f"(every {figures.seconds:.1f} s)" if figures.before else "eventpipe top"),
            self._services(now),
            self._commands(figures),
            self._outcomes(figures),
            self._lag(now),
            self._api(figures),
            self._jobs(now),
        )

    def _services(self, now: Sample) -> Table:
        table = _table("Services", "service", "state", "detail")
        table.add_row("worker", UP if now.worker else DOWN, self.worker_url)
        ready = now.ready or {}
        failing = [n for n, c in ready.get("checks", {}).items() if c.get("status") != "UP"]
        table.add_row("api", UP if now.api else DOWN,
                      f"{self.api_url}  ready: {ready.get('status', '-')}"
                      + (f" ({', '.join(failing)} failing)" if failing else ""))
        for name, up in now.services.items():
            table.add_row(name, UP if up else DOWN, "")
        for store, down in (now.worker.by("eventpipe_sink_down", "store").items()
                            if now.worker else ()):
            table.add_row(f"projector -> {store}", DOWN if down else UP, "as the projector sees it")
        return table

    def _commands(self, figures: Figures) -> Table:
        table = _table("Commands in (worker)", "topic", "per s", "total", "last minute")
        if figures.now.worker is None:
            table.add_row("worker", DOWN, "", "")
            return table
        totals = figures.now.worker.by("eventpipe_messages_in_total", "topic")
        rates = figures.rates("worker", "eventpipe_messages_in_total", "topic")
        for topic in sorted(totals):
            rate = rates.get(topic, 0.0)
            table.add_row(topic, _n(rate), _n(totals[topic]), self._trend(f"in:{topic}", rate))
        return table

    def _outcomes(self, figures: Figures) -> Table:
        table = _table("Outcomes and dead letters (worker)", "what", "per s", "total",
                       "last minute")
        worker = figures.now.worker
        if worker is None:
            table.add_row("worker", DOWN, "", "")
            return table
        rejections = worker.by("eventpipe_rejections_total", "code")
        outcomes = worker.by("eventpipe_messages_out_total", "topic").get(OUTCOME.name, 0.0)
        out_rate = figures.rates("worker", "eventpipe_messages_out_total", "topic").get(
            OUTCOME.name, 0.0)
        rejected_rates = figures.rates("worker", "eventpipe_rejections_total", "code")
        rejected_rate = sum(rejected_rates.values())
        accepted_rate = max(0.0, out_rate - rejected_rate)
        table.add_row("accepted", _n(accepted_rate), _n(outcomes - sum(rejections.values())),
                      self._trend("accepted", accepted_rate))
        table.add_row("rejected", _n(rejected_rate), _n(sum(rejections.values())),
                      self._trend("rejected", rejected_rate))
        for code in sorted(rejections):
            table.add_row(f"  rejected {code}", _n(rejected_rates.get(code, 0.0)),
                          _n(rejections[code]), "")
        letters = worker.by("eventpipe_dead_letters_total", "code")
        letter_rates = figures.rates("worker", "eventpipe_dead_letters_total", "code")
        dlq_rate = sum(letter_rates.values())
        table.add_row("DLQ", _n(dlq_rate), _n(sum(letters.values())),
                      self._trend("dlq", dlq_rate))
        for code in sorted(letters):
            table.add_row(f"  DLQ {code}", _n(letter_rates.get(code, 0.0)), _n(letters[code]),
                          "")
        return table

    def _lag(self, now: Sample) -> Table | Text:
        table = _table("Consumer lag (broker: end offset - committed)", "group / partition",
                       "committed", "end", "lag", "")
        if now.lag is None:
            table.add_row("broker", DOWN, "", "", "")
            return table
        for group, partitions in now.lag.items():
            total = sum(p.lag for p in partitions)
            table.add_row(Text(group, style="bold"), "", "", _n(total),
                          self._trend(f"lag:{group}", total))
            widest = max((p.lag for p in partitions), default=0)
            for p in partitions:
                table.add_row(f"  {p.topic}[{p.partition}]",
                              "-" if p.committed is None else _n(p.committed), _n(p.end),
                              _n(p.lag), Bar(max(1, widest), 0, p.lag, width=20))
        return table

    def _api(self, figures: Figures) -> Table:
        table = _table("API", "route", "per s", "p99 ms", "total", "last minute")
        api = figures.now.api
        if api is None:
            table.add_row("api", DOWN, "", "", "")
            return table
        totals = api.series("eventpipe_api_requests_total", "method", "route")
        previous = (figures.before.api.series("eventpipe_api_requests_total", "method", "route")
                    if figures.before and figures.before.api else None)
        p99 = figures.p99()
        all_rate = 0.0
        for key in sorted(totals):
            rate = 0.0
            if previous is not None:
                before = previous.get(key, 0.0)
                rate = (totals[key] - before if totals[key] >= before
                        else totals[key]) / figures.seconds
            all_rate += rate
            q = p99.get(key)
            table.add_row(" ".join(key), _n(rate), "-" if q is None else f"{q * 1000:.1f}",
                          _n(totals[key]), "")
        table.add_row(Text("all routes", style="bold"), _n(all_rate), "", "",
                      self._trend("api", all_rate))
        return table

    def _jobs(self, now: Sample) -> Table:
        table = _table("Jobs (PostgreSQL)", "type", *JOB_STATUSES)
        if now.jobs is None:
            table.add_row("postgres", DOWN, *[""] * (len(JOB_STATUSES) - 1))
            return table
        for job_type in sorted({t for t, _ in now.jobs}):
            table.add_row(job_type, *(_n(now.jobs.get((job_type, s), 0)) for s in JOB_STATUSES))
        return table


async def _frames(probe: Probe, view: View, interval: float, once: bool,
                  console: Console) -> None:
    before = await probe.sample()
    if once:
        await asyncio.sleep(interval)  # two samples, so the rates are rates
        console.print(view.render(Figures(await probe.sample(), before)))
        return
    with Live(view.render(Figures(before, None)), console=console, auto_refresh=False,
              screen=False) as live:
        while True:
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - before.at)))
            now = await probe.sample()
            live.update(view.render(Figures(now, before)), refresh=True)
            before = now


async def _top(settings: Settings, worker_url: str, api_url: str, interval: float,
               once: bool, console: Console) -> None:
    probe = Probe(settings, worker_url, api_url)
    try:
        await _frames(probe, View(worker_url, api_url), interval, once, console)
    finally:
        await probe.close()


def run_top(settings: Settings, worker_url: str, api_url: str, interval: float = 1.0,
            once: bool = False, console: Console | None = None) -> None:
    # The clients' own log lines (aiokafka's "Unable connect") would tear the screen; what
    # is down is on the screen already.
    logging.basicConfig(handlers=[logging.NullHandler()], force=True)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_top(settings, worker_url, api_url, interval, once,
                         console or Console()))
