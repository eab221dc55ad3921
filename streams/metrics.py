"""The worker's Prometheus metrics, served by the Faust web server at /metrics."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

__all__ = ["BATCH_RECORDS", "BATCH_SECONDS", "CONSUMER_LAG", "DEAD_LETTERS", "FORWARDED",
           "MESSAGES_IN", "MESSAGES_OUT", "REJECTIONS", "RESTORED_IN_BULK", "SinkStats"]

MESSAGES_IN = Counter("eventpipe_messages_in_total", "Messages consumed", ["topic"])
MESSAGES_OUT = Counter("eventpipe_messages_out_total", "Messages produced", ["topic"])
REJECTIONS = Counter("eventpipe_rejections_total", "Commands rejected", ["code"])
DEAD_LETTERS = Counter("eventpipe_dead_letters_total", "Messages sent to the DLQ", ["code"])
FORWARDED = Counter("eventpipe_forwarded_total",
                    "Commands found on another partition than their key's, forwarded there",
                    ["topic"])
BATCH_SECONDS = Histogram(
    "eventpipe_batch_seconds", "Time to decide, deliver and commit one fetched batch",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
BATCH_RECORDS = Histogram(
    "eventpipe_batch_records", "Command records in one fetched batch",
    buckets=(1, 10, 100, 1000, 5000, 10000, 20000),
)
RESTORED_IN_BULK = Counter(
    "eventpipe_changelog_restored_in_bulk_total",
    "Changelog records a recovery stored in bulk (the rest went through Faust's recovery loop)")
CONSUMER_LAG = Gauge("eventpipe_consumer_lag", "Messages behind the high watermark",
                     ["topic", "partition"])


class SinkStats:
    """The projector's figures (records written per store, store down), in shared memory:
    the projector may run in a child process of the worker (streams/worker.py), and the
    worker's /metrics reads them from there. One writer, the projector."""

    STORES = ("postgres", "redis")

    def __init__(self) -> None:
        # [records written, down] per store; spawn's shared memory passes to the child.
        self.values: Any = multiprocessing.get_context("spawn").RawArray(
            "d", 2 * len(self.STORES))

    def _at(self, store: str) -> int:
        return 2 * self.STORES.index(store)

    def written(self, store: str, records: int) -> None:
        self.values[self._at(store)] += records

    def down(self, store: str, down: bool) -> None:
        self.values[self._at(store) + 1] = float(down)

    def records(self, store: str) -> float:
        return self.values[self._at(store)]

    def is_down(self, store: str) -> float:
        return self.values[self._at(store) + 1]

    def expose(self) -> None:
        """Serve these figures in this process's /metrics."""
        REGISTRY.register(_SinkCollector(self))


class _SinkCollector:
    def __init__(self, stats: SinkStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Any]:
        written = CounterMetricFamily("eventpipe_sink_records", "Records projected",
                                      labels=["store"])
        down = GaugeMetricFamily("eventpipe_sink_down",
                                 "1 while a store is failing and being retried",
                                 labels=["store"])
        for store in self.stats.STORES:
            written.add_metric([store], self.stats.records(store))
            down.add_metric([store], self.stats.is_down(store))
        yield written
        yield down
