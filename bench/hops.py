"""Where a POST /api/events/purposes spends its time, hop by hop, from one run's requests.

Each 201 is followed through the records it caused, all stamped by one machine's clock:

1. API in: the request sent (vegeta) -> the command record created (its Kafka timestamp,
   set by the API's producer at send).
2. produce: send -> acks=all (the API's Server-Timing `produce`).
3. worker fetch and decision: the command record -> the outcome's `decidedAt` (the worker's
   clock as it decided: its fetch, and the batch in hand before it).
4. facts delivered: `decidedAt` -> the state's changelog record (a batch's facts are sent and
   acknowledged before its states).
5. state delivered: the changelog record -> the outcome record (a batch's outcomes are sent
   once its states are acknowledged).
6. projector write: the outcome record -> its announcement on pub/sub (poll, linger,
   PostgreSQL, Redis, PUBLISH), seen by a subscriber in this process.
7. wake-up and answer: the announcement -> the answer received (the API's wake-up, its
   outcome read, the response).

Kafka timestamps are milliseconds, so hops shorter than that read as 0 or 1 ms.
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import threading
import time
from datetime import datetime
from functools import cache
from typing import Any

import redis
from confluent_kafka import Consumer, TopicPartition

from sinks.redis import announced_outcomes
from streams.codec import AvroCodec, register_codecs
from streams.topics import OUTCOME

__all__ = ["HOPS", "Announcements", "hop_table"]


@cache
def _outcome_codec() -> AvroCodec:
    return register_codecs(os.environ["SCHEMA_REGISTRY_URL"])[OUTCOME.name]

HOPS = ("API in", "produce (acks=all)", "worker fetch and decision", "facts delivered",
        "state delivered", "projector write", "wake-up and answer")


class Announcements:
    """Subscribes to the projector's outcome channel; when each commandId was announced."""

    def __init__(self, redis_url: str, channel: str) -> None:
        self.seen: dict[str, float] = {}
        self._client = redis.Redis.from_url(redis_url, decode_responses=True)
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(channel)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Announcements:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._pubsub.close()
        self._client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self._pubsub.get_message(timeout=0.1)
            if message is not None:
                now = time.time()
                for command_id in announced_outcomes(message["data"]):
                    self.seen.setdefault(command_id, now)

    def event_of(self, command_id: str) -> str | None:
        return self._client.hget(f"command:outcome:{command_id}", "eventId")


def _first_timestamps(bootstrap: str, topic: str, wanted: set[str],
                      decided: dict[str, float] | None = None) -> dict[str, float]:
    """Seconds since the epoch of the first record per key (an eventId) in `wanted`; with
    `decided`, also each first outcome's `decidedAt` into it."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"hops-{time.time_ns()}",
                         "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        found: dict[str, float] = {}
        done: set[int] = {p for p, end in ends.items() if end == 0}
        while len(done) < len(ends):
            for record in consumer.consume(1000, timeout=1.0):
                if record.error():
                    continue
                key = (record.key() or b"").decode().strip('"')
                if key in wanted and key not in found:
                    found[key] = record.timestamp()[1] / 1000
                    if decided is not None:
                        decided[key] = _outcome_codec().read(record.value())["decidedAt"] / 1000
                if record.offset() + 1 >= ends[record.partition()]:
                    done.add(record.partition())
        return found
    finally:
        consumer.close()


def _stamp(rfc3339: str) -> float:
    # vegeta writes nanoseconds; datetime takes microseconds
    head, _, frac = rfc3339.rstrip("Z").partition(".")
    return datetime.fromisoformat(head + "+00:00").timestamp() + float(f"0.{frac or 0}")


def _server_timing(header: list[str] | None) -> dict[str, float]:
    phases: dict[str, float] = {}
    for part in ",".join(header or []).split(","):
        name, _, dur = part.strip().partition(";dur=")
        if dur:
            phases[name] = float(dur) / 1000
    return phases


def hop_table(requests: list[dict[str, Any]], announced: Announcements, bootstrap: str,
              command_topic: str, changelog: str, outcome_topic: str) -> dict[str, Any]:
    """Median and p95 of each hop over the run's 201s, in ms, and how many were traced."""
    answered: dict[str, dict[str, Any]] = {}
    for r in requests:
        if r["code"] == 201:
            event_id = json.loads(base64.b64decode(r["body"]))["eventDraftId"]
            answered[event_id] = r
    wanted = set(answered)
    commands = _first_timestamps(bootstrap, command_topic, wanted)
    states = _first_timestamps(bootstrap, changelog, wanted)
    decisions: dict[str, float] = {}
    outcomes = _first_timestamps(bootstrap, outcome_topic, wanted, decisions)
    by_event = {announced.event_of(c): t for c, t in list(announced.seen.items())}
    hops: dict[str, list[float]] = {h: [] for h in HOPS}
    traced = 0
    for event_id, r in answered.items():
        stamps = (commands.get(event_id), decisions.get(event_id), states.get(event_id),
                  outcomes.get(event_id), by_event.get(event_id))
        if None in stamps:
            continue
        command, decision, state, outcome, woke = stamps
        sent = _stamp(r["timestamp"])
        phases = _server_timing(r["headers"].get("Server-Timing"))
        traced += 1
        for hop, seconds in zip(HOPS, (
                command - sent, phases.get("produce", float("nan")), decision - command,
                state - decision, outcome - state, woke - outcome,
                sent + r["latency"] / 1e9 - woke), strict=True):
            hops[hop].append(seconds * 1000)
    table = {}
    for hop, values in hops.items():
        values = sorted(v for v in values if v == v)  # NaN: no Server-Timing
        if values:
            table[hop] = {"p50": statistics.median(values),
                          "p95": values[min(len(values) - 1, int(0.95 * len(values)))]}
    return {"answered": len(answered), "traced": traced, "hops": table}
