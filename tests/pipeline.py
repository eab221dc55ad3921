"""Driving the pipeline through its topics, as the API and the collaborator workers do."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import psycopg
import redis
from confluent_kafka import Producer

from eventpipe.settings import Settings
from streams.codec import register_codecs
from streams.registry import record_namespace
from streams.topics import TopicSpec


def java_partitioned(settings: Settings) -> dict[str, Any]:
    """librdkafka hashes keys with CRC32 unless told otherwise; the pipeline (aiokafka, Faust)
    and Java clients use murmur2. Every producer of a key must agree, or one event's
    messages land on two partitions and miss its state."""
    return {"bootstrap.servers": settings.kafka_bootstrap_servers, "acks": "all",
            "partitioner": "murmur2_random"}


class Topics:
    """Produces command envelopes with the project's codec; reads outcomes from Redis."""

    def __init__(self, settings: Settings, rds: redis.Redis) -> None:
        self.codecs = register_codecs(settings.schema_registry_url)
        self.producer = Producer(java_partitioned(settings))
        self.rds = rds

    def raw(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        self.producer.produce(topic, key=key, value=value)
        self.producer.flush(10)

    def send(self, spec: TopicSpec, event_id: str, user_id: str, command_type: str,
             payload: dict[str, Any], command_id: str | None = None) -> str:
        command_id = command_id or str(uuid.uuid4())
        value = self.codecs[spec.name].encode({
            "commandId": command_id, "eventId": event_id, "userId": user_id,
            "occurredAt": int(time.time() * 1000),
            "payload": (f"{record_namespace(spec)}.{command_type}", payload),
        })
        self.raw(spec.name, event_id.encode(), value)
        return command_id

    def send_many(self, commands: list[tuple[TopicSpec, str, str, str, dict[str, Any]]]) -> None:
        """Produce many commands with one flush at the end."""
        for spec, event_id, user_id, command_type, payload in commands:
            value = self.codecs[spec.name].encode({
                "commandId": str(uuid.uuid4()), "eventId": event_id, "userId": user_id,
                "occurredAt": int(time.time() * 1000),
                "payload": (f"{record_namespace(spec)}.{command_type}", payload),
            })
            while True:
                try:
                    self.producer.produce(spec.name, key=event_id.encode(), value=value)
                    break
                except BufferError:  # the local queue is full: let it drain
                    self.producer.poll(0.1)
        undelivered = self.producer.flush(60)
        assert undelivered == 0, f"{undelivered} commands not delivered to Kafka"

    def outcome(self, command_id: str, timeout: float = 30.0) -> dict[str, str]:
        """The outcome as the projector recorded it for the API."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.rds.hgetall(f"command:outcome:{command_id}")
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no outcome for command {command_id} within {timeout}s")

    def apply(self, spec: TopicSpec, event_id: str, user_id: str, command_type: str,
              payload: dict[str, Any]) -> dict[str, str]:
        return self.outcome(self.send(spec, event_id, user_id, command_type, payload))

    def event(self, event_id: str) -> dict[str, Any] | None:
        """The event document in Redis."""
        doc = self.rds.hget(f"event:draft:{event_id}", "doc")
        return None if doc is None else json.loads(doc)

    def version(self, event_id: str) -> int | None:
        found = self.rds.hget(f"event:draft:{event_id}", "version")
        return None if found is None else int(found)


def settled(conn: psycopg.Connection, sql: str, args: tuple[Any, ...], expected: int,
            quiet_seconds: float = 60.0, limit_seconds: float = 600.0) -> int:
    """The count `sql` gives once it is `expected`, or once it stopped changing for a while.
    A wait ends on what the test then asserts, never on a neighbour's progress (the states
    settle before their outcomes are projected)."""
    done, last_change = -1, time.monotonic()
    deadline = time.monotonic() + limit_seconds  # a bound on waiting, not a speed test
    while time.monotonic() < deadline:
        now = conn.execute(sql, args).fetchone()[0]
        if now == expected:
            return now
        if now != done:
            done, last_change = now, time.monotonic()
        elif time.monotonic() - last_change > quiet_seconds:
            break
        time.sleep(1)
    return done


def applied_when_settled(conn: psycopg.Connection, user: str, events: int) -> int:
    """Events at their last version (4) once all are, or once no more came for a while."""
    return settled(conn, "SELECT count(*) FROM events WHERE user_id = %s AND version = 4",
                   (user,), events)


def outcomes_when_settled(conn: psycopg.Connection, user: str, commands: int) -> int:
    """The user's projected outcomes once all `commands` are, or once no more came."""
    return settled(conn, "SELECT count(*) FROM command_outcomes WHERE user_id = %s", (user,),
                   commands)
