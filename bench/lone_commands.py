"""Lone commands at a steady rate against a running worker, each followed hop by hop.

`python -m bench.lone_commands RATE SECONDS`, with the stack's environment (`eventpipe env`)
and a worker running (`eventpipe worker`, its projector in its child): a PurposeSelected for
a new event every 1/RATE s, straight to the purpose topic (no API), then for each command:

1. fetch and decision: the command record's timestamp -> the outcome's `decidedAt` (the
   worker's clock when it decided; the fetch, and any batch in hand before it);
2. delivered: `decidedAt` -> the outcome record's timestamp (the fact, then the state, sent
   and acknowledged before the outcome is sent);
3. outcome seen: the outcome record -> this process's consumer has it;
4. projector: the outcome record -> its announcement on the outcomes channel (the projector's
   fetch, batch, PostgreSQL and Redis writes);

and end to end: the command record -> its announcement (what an API request waits for after
its produce).

Used to find where a lone command waits (bench/ANALYSIS.md, "Lone commands"); the
benchmark's own POST table is `bench/hops.py`, through the API.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from typing import Any

import redis.asyncio as aredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.load import STORE
from sinks.redis import OUTCOME_CHANNEL, announced_outcomes
from streams.codec import register_codecs
from streams.envelope import command_record
from streams.topics import OUTCOME, PURPOSE

HOPS = ("fetch and decision", "delivered", "outcome seen", "projector", "end to end")


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(v for v in values if v == v)
    return ordered[int(q * (len(ordered) - 1))] if ordered else float("nan")


async def measure(rate: int, seconds: float) -> dict[str, dict[str, float]]:
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    codecs = register_codecs(os.environ["SCHEMA_REGISTRY_URL"])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    consumer = AIOKafkaConsumer(OUTCOME.name, bootstrap_servers=bootstrap,
                                auto_offset_reset="latest", fetch_max_wait_ms=10)
    client = aredis.Redis.from_url(os.environ["REDIS_URL"])
    pubsub = client.pubsub()
    await pubsub.subscribe(OUTCOME_CHANNEL)
    await producer.start()
    await consumer.start()
    await asyncio.sleep(2)  # the consumer's partitions assigned, at their ends
    outcomes: dict[str, tuple[float, float, float]] = {}  # decidedAt, record, seen (ms)
    announced: dict[str, float] = {}

    async def read_outcomes() -> None:
        while True:
            for records in (await consumer.getmany(timeout_ms=100)).values():
                seen = time.time() * 1000
                for record in records:
                    outcome = codecs[OUTCOME.name].read(record.value)
                    outcomes[outcome["commandId"]] = (outcome["decidedAt"], record.timestamp,
                                                      seen)

    async def read_announcements() -> None:
        async for message in pubsub.listen():
            if message["type"] == "message":
                seen = time.time() * 1000
                for command_id in announced_outcomes(message["data"]):
                    announced.setdefault(command_id, seen)

    readers = [asyncio.create_task(read_outcomes()), asyncio.create_task(read_announcements())]
    sent: dict[str, Any] = {}
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < seconds:
        await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
        event_id = str(uuid.uuid4())
        record = command_record(PURPOSE, "PurposeSelected", event_id, str(uuid.uuid4()), STORE)
        sent[record["commandId"]] = await producer.send(
            PURPOSE.name, codecs[PURPOSE.name].write(record), key=event_id.encode())
        n += 1
    stamps = {command_id: (await delivery).timestamp for command_id, delivery in sent.items()}
    await asyncio.sleep(3)
    for task in readers:
        task.cancel()
    await producer.stop()
    await consumer.stop()
    await pubsub.aclose()
    await client.aclose()
    hops: dict[str, list[float]] = {hop: [] for hop in HOPS}
    for command_id, command_at in stamps.items():
        if command_id not in outcomes:
            continue
        decided, outcome_at, seen = outcomes[command_id]
        announced_at = announced.get(command_id, float("nan"))
        for hop, ms in zip(HOPS, (decided - command_at, outcome_at - decided, seen - outcome_at,
                                  announced_at - outcome_at, announced_at - command_at),
                           strict=True):
            hops[hop].append(ms)
    return {hop: {"p50": _quantile(v, 0.5), "p95": _quantile(v, 0.95),
                  "p99": _quantile(v, 0.99), "count": len(v)} for hop, v in hops.items()}


def main() -> None:
    rate, seconds = int(sys.argv[1]), float(sys.argv[2])
    for hop, q in asyncio.run(measure(rate, seconds)).items():
        print(f"{hop:20s} p50 {q['p50']:7.1f}  p95 {q['p95']:7.1f}  p99 {q['p99']:7.1f} ms"
              f"  ({q['count']:.0f} commands)")


if __name__ == "__main__":
    main()
