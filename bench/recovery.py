"""Recovery: a worker whose RocksDB store holds N events is restarted; how long until it
applies a new command again.

The N states are written straight into the table's changelog (one realistic published
event's state, with its ids made unique), as the worker's own assignments would have left
them, on the partition the worker would have used. The worker starts once and restores them
all from the changelog into RocksDB (the cold start, also reported), is stopped, and is
started again: the figure is from that start until the outcome of a command produced just
before it appears on the outcomes topic. The projector is off here: the changelog it would
project is not what is measured.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bench.load import STORE, envelope, lifecycle
from bench.procs import Isolated, Proc
from streams import lifecycle as rules
from streams.codec import AvroCodec, register_codecs
from streams.topics import OUTCOME, PURPOSE, changelog_topic

__all__ = ["measure"]

PARTITIONS = 2


def _template() -> dict[str, Any]:
    """A realistic event state: a whole lifecycle applied by the rules."""
    from streams.envelope import to_command  # the processor's own envelope-to-command step

    codecs = register_codecs(os.environ["SCHEMA_REGISTRY_URL"])
    state = None
    drafts, jobs, publishing = lifecycle(0)
    for planned in (*drafts, *jobs, *publishing[:2]):
        cmd = to_command(codecs[planned.spec.name].decode(envelope(planned, codecs)))
        state = rules.apply(state, cmd).state
    assert state is not None and state["status"] == "PUBLISHED"
    return state


def _fill(bootstrap: str, topic: str, events: int) -> None:
    text = json.dumps(_template())
    old = json.loads(text)["eventId"]
    partitioner = DefaultPartitioner()
    parts = list(range(PARTITIONS))
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50,
                         "batch.num.messages": 10000, "queue.buffering.max.messages": 500000})
    for _ in range(events):
        event_id = str(uuid.uuid4())
        partition = partitioner(event_id.encode(), parts, parts)  # as the command topics
        value = text.replace(old, event_id).encode()
        while True:
            try:
                producer.produce(topic, key=json.dumps(event_id).encode(), value=value,
                                 partition=partition)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(300)


def _probe(bootstrap: str, codecs: dict[str, AvroCodec]) -> str:
    """Produce one new PurposeSelected; returns its commandId."""
    from bench.load import Planned

    planned = Planned(PURPOSE, str(uuid.uuid4()), str(uuid.uuid4()), "PurposeSelected", STORE)
    value = envelope(planned, codecs)
    command_id = str(codecs[PURPOSE.name].decode(value)["commandId"])
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    producer.produce(PURPOSE.name, key=planned.event_id.encode(), value=value)
    producer.flush(30)
    return command_id


def _outcome_consumer(bootstrap: str) -> Consumer:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4()}",
                         "enable.auto.commit": False})
    ends = []
    for p in range(PARTITIONS):
        _, high = consumer.get_watermark_offsets(TopicPartition(OUTCOME.name, p), timeout=30)
        ends.append(TopicPartition(OUTCOME.name, p, high))
    consumer.assign(ends)
    return consumer


def _wait_outcome(consumer: Consumer, codec: AvroCodec, command_id: str,
                  timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = consumer.poll(0.05)
        if msg is not None and not msg.error() and \
                str(codec.decode(msg.value())["commandId"]) == command_id:
            return time.monotonic()
    raise TimeoutError(f"no outcome for {command_id} within {timeout:.0f} s")


def measure(events: int) -> dict[str, Any]:
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    iso = Isolated("recovery", 5, 6406, {"TABLE_STORE": "rocksdb://",
                                         "TOPIC_PARTITIONS": str(PARTITIONS),
                                         "WORKER_PROJECTOR": "off"})
    iso.reset_stores()
    env = iso.env()
    topic = changelog_topic(env["APP_ID"], "events")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, PARTITIONS, 1,
                                           config={"cleanup.policy": "compact"})]).values():
        f.result()
    started = time.monotonic()
    _fill(bootstrap, topic, events)
    fill_seconds = time.monotonic() - started
    codecs = register_codecs(os.environ["SCHEMA_REGISTRY_URL"])
    outcomes = _outcome_consumer(bootstrap)
    result: dict[str, Any] = {"events": events, "fill_seconds": fill_seconds}
    for name in ("cold", "warm"):
        command_id = _probe(bootstrap, codecs)
        worker = Proc(f"recovery-worker-{name}", ["-m", "eventpipe.cli", "worker"], env).start()
        try:
            seen = _wait_outcome(outcomes, codecs[OUTCOME.name], command_id, 1200)
            result[f"{name}_seconds"] = seen - worker.started
            result[f"{name}_peak_rss_mb"] = worker.peak_rss_mb()
        finally:
            worker.stop(60)
    outcomes.close()
    result["store_mb"] = sum(f.stat().st_size for f in Path(env["DATA_DIR"]).rglob("*")
                             if f.is_file()) / 2**20
    return result
