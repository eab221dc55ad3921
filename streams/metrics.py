"""The worker's Prometheus metrics, served by the Faust web server at /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["CONSUMER_LAG", "DEAD_LETTERS", "MESSAGES_IN", "MESSAGES_OUT", "PROCESSING_SECONDS",
           "REJECTIONS", "SINK_DOWN", "SINK_WRITES"]

MESSAGES_IN = Counter("eventpipe_messages_in_total", "Messages consumed", ["topic"])
MESSAGES_OUT = Counter("eventpipe_messages_out_total", "Messages produced", ["topic"])
REJECTIONS = Counter("eventpipe_rejections_total", "Commands rejected", ["code"])
DEAD_LETTERS = Counter("eventpipe_dead_letters_total", "Messages sent to the DLQ", ["code"])
PROCESSING_SECONDS = Histogram(
    "eventpipe_processing_seconds", "Time to handle one message", ["topic"],
    buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0),
)
CONSUMER_LAG = Gauge("eventpipe_consumer_lag", "Messages behind the high watermark",
                     ["topic", "partition"])
SINK_WRITES = Counter("eventpipe_sink_records_total", "Records projected", ["store"])
SINK_DOWN = Gauge("eventpipe_sink_down", "1 while a store is failing and being retried",
                  ["store"])
