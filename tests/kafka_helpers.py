"""Reading topics back in tests with confluent-kafka, a client this project did not write."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from eventpipe.settings import Settings
from streams.registry import registry_client


def _consumer(settings: Settings) -> Consumer:
    return Consumer({
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "group.id": f"test-reader-{uuid.uuid4()}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    consumer = _consumer(settings)
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in meta.partitions}
    finally:
        consumer.close()


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    timestamp: int  # epoch millis, as the producer (or broker) stamped it
    key: bytes | None
    value: bytes | None


def window_start() -> int:
    """Where a test's window of records (`since_ms` below) begins: now, on the records'
    clock (epoch millis). No margin before it: a second's margin took in the dead letters
    of the test before."""
    return time.time_ns() // 1_000_000


def read_records(settings: Settings, topic: str, since_ms: int,
                 timeout: float = 120.0) -> list[Record]:
    """Every record of `topic` written since `since_ms`, each partition in offset order, read
    up to the end offsets the topic had when called: nothing written before is missed,
    however slow the broker is to hand it over (an empty poll is not the end)."""
    consumer = _consumer(settings)
    found: list[Record] = []
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in meta.partitions}
        starts = consumer.offsets_for_times(
            [TopicPartition(topic, p, since_ms) for p in meta.partitions], timeout=10)
        todo = {tp.partition for tp in starts if 0 <= tp.offset < ends[tp.partition]}
        consumer.assign([tp for tp in starts if tp.partition in todo])
        deadline = time.monotonic() + timeout  # a bound on waiting, not a speed test
        while todo:
            assert time.monotonic() < deadline, f"{topic}: end offsets {ends} not reached"
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            if msg.offset() < ends[msg.partition()]:
                found.append(Record(msg.partition(), msg.offset(), msg.timestamp()[1],
                                    msg.key(), msg.value()))
            if msg.offset() + 1 >= ends[msg.partition()]:
                todo.discard(msg.partition())
        return found
    finally:
        consumer.close()


def read_avro(settings: Settings, topic: str, since_ms: int,
              match: Callable[[bytes | None, dict[str, Any]], bool],
              timeout: float = 120.0) -> list[tuple[bytes | None, dict[str, Any]]]:
    """Messages of `topic` written since `since_ms` that `match`, decoded with the schema the
    registry holds for each message's id (confluent-kafka's AvroDeserializer), read to the
    end offsets the topic had when called (call it once what it looks for was delivered:
    e.g. after the command's outcome, which the processor sends after its facts)."""
    deserialize = AvroDeserializer(registry_client(settings.schema_registry_url))
    found: list[tuple[bytes | None, dict[str, Any]]] = []
    for record in read_records(settings, topic, since_ms, timeout):
        value = deserialize(record.value, SerializationContext(topic, MessageField.VALUE))
        if match(record.key, value):
            found.append((record.key, value))
    return found


def read_to_end(settings: Settings, topic: str, since_ms: int,
                timeout: float = 120.0) -> list[tuple[int, bytes | None, bytes | None]]:
    """Every record of `topic` written since `since_ms`, as (partition, key, value), read up
    to the end offsets the topic had when called (see `read_records`)."""
    return [(r.partition, r.key, r.value) for r in read_records(settings, topic, since_ms,
                                                                timeout)]
