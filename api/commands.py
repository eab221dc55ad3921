"""Commands: produce with acks=all, then wait a short while for the pipeline's outcome.

Read-your-writes the Confluent way, without its leaks: a future per commandId is registered
before producing and always removed when the request leaves, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.errors import ApiError
from api.metrics import record_phase
from sinks.redis import OUTCOME_CHANNEL, announced_outcomes, outcome_key
from streams.codec import AvroCodec
from streams.envelope import command_record, has_nul
from streams.topics import TopicSpec
from streams.vocabulary import ErrorCode

__all__ = ["CommandBus", "Outcome", "OutcomeWaiter"]

log = logging.getLogger(__name__)
# PostgreSQL down or unreachable, as the pool reports it.
STORE_ERRORS = (psycopg.OperationalError, PoolTimeout)


@dataclass(frozen=True)
class Outcome:
    command_id: str
    event_id: str
    user_id: str
    command_type: str
    status: str  # ACCEPTED | REJECTED
    code: str | None
    message: str | None
    details: list[Any]
    event_version: int

    @property
    def accepted(self) -> bool:
        return self.status == "ACCEPTED"


def _from_hash(command_id: str, h: dict[str, str]) -> Outcome:
    """An outcome as the projector keeps it in Redis (`command:outcome:{commandId}`)."""
    return Outcome(command_id, h["eventId"], h["userId"], h["commandType"], h["status"],
                   h["code"] or None, h["message"] or None, json.loads(h["details"]),
                   int(h["eventVersion"]))


class OutcomeWaiter:
    """Listens to the projector's announcements and wakes the requests waiting for them."""

    def __init__(self, redis: Redis, pool: AsyncConnectionPool) -> None:
        self._redis = redis
        self._pool = pool
        # commandId -> its waiter; the result is the outcome, read for all of an
        # announcement's waiters in one pipeline (None: read it yourself).
        self._waiting: dict[str, asyncio.Future[Outcome | None]] = {}
        # Completed (and replaced) by every announcement: what a read waiting for the
        # projection to catch up waits on.
        self._batch: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="outcome-listener")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self) -> None:
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(OUTCOME_CHANNEL)
                    async for message in pubsub.listen():
                        self._wake(message["data"])
                        batch, self._batch = self._batch, None
                        if batch is not None and not batch.done():
                            batch.set_result(None)
            except (RedisError, OSError) as exc:
                # Waiters fall back to reading the outcome key when their time is up.
                log.warning("outcome listener lost Redis (%s); reconnecting", exc)
                await asyncio.sleep(0.5)

    def _wake(self, message: str) -> None:
        """Hand each waiting request its outcome, which the announcement carries (no read
        of it in Redis). One it cannot read leaves its waiters to read theirs when their
        wait ends."""
        if not self._waiting:
            return
        try:
            outcomes = announced_outcomes(message)
        except ValueError as exc:
            log.warning("unreadable announcement (%s); its waiters read their outcomes", exc)
            return
        for command_id, h in outcomes.items():
            future = self._waiting.get(command_id)
            if future is None or future.done():
                continue
            try:
                future.set_result(_from_hash(command_id, h))
            except (KeyError, TypeError, ValueError):  # malformed: its request reads it again
                future.set_result(None)

    async def next_batch(self, seconds: float) -> None:
        """Return at the projector's next announcement, or after `seconds`."""
        if self._batch is None or self._batch.done():
            self._batch = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            # shield: a waiter's timeout must not cancel the future the others share
            await asyncio.wait_for(asyncio.shield(self._batch), seconds)

    @contextlib.contextmanager
    def expecting(self, command_id: str) -> Any:
        future: asyncio.Future[Outcome | None] = asyncio.get_running_loop().create_future()
        self._waiting[command_id] = future
        try:
            yield future
        finally:
            self._waiting.pop(command_id, None)

    async def read(self, command_id: str) -> Outcome | None:
        """The recorded outcome: Redis first, PostgreSQL when Redis misses or is down."""
        try:
            h = await self._redis.hgetall(outcome_key(command_id))
        except (RedisError, OSError):
            h = {}
        if h:
            return _from_hash(command_id, h)
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute("SELECT * FROM command_outcomes WHERE command_id = %s",
                              (command_id,))
            row = await cur.fetchone()
        if row is None:
            return None
        return Outcome(command_id, str(row["event_id"]), str(row["user_id"]),
                       row["command_type"], row["status"], row["code"], row["message"],
                       row["details"], row["event_version"])


class CommandBus:
    def __init__(self, producer: AIOKafkaProducer, codecs: dict[str, AvroCodec],
                 waiter: OutcomeWaiter, produce_seconds: float) -> None:
        self.producer = producer
        self.codecs = codecs
        self.waiter = waiter
        self.produce_seconds = produce_seconds

    async def submit(self, spec: TopicSpec, event_id: str, user_id: str, command_type: str,
                     payload: dict[str, Any], wait_seconds: float) -> tuple[str, Outcome | None]:
        """Produce one command; returns its id and its outcome if it came within the wait."""
        if has_nul(payload):
            # PostgreSQL text cannot hold NUL: the pipeline would only dead-letter it.
            raise ApiError(ErrorCode.VALIDATION_ERROR, details=["text must not contain U+0000"])
        envelope = command_record(spec, command_type, event_id, user_id, payload)
        command_id = envelope["commandId"]
        value = self.codecs[spec.name].encode(envelope)
        started = time.perf_counter()
        with self.waiter.expecting(command_id) as announced:
            await self._produce(spec.name, value, event_id.encode())
            acked = time.perf_counter()
            record_phase("produce", acked - started)
            outcome = None
            with contextlib.suppress(TimeoutError):
                outcome = await asyncio.wait_for(announced, wait_seconds)
            woken = time.perf_counter()
            record_phase("outcome", woken - acked)
        try:
            return command_id, outcome or await self.waiter.read(command_id)
        except STORE_ERRORS as exc:
            # The command is in Kafka and will be applied: a 503 would invite a retry, and a
            # retried command is a second command. Only its outcome cannot be read yet.
            log.warning("outcome of %s not readable (%s); answering 202", command_id, exc)
            return command_id, None
        finally:
            record_phase("read", time.perf_counter() - woken)

    async def _produce(self, topic: str, value: bytes, key: bytes) -> None:
        """Send and wait for acks=all, at most `produce_seconds` (then 503 + Retry-After).

        The producer's own request timeout can add up twice (a request in flight when the
        broker went away, then the batch's expiry), so the request's deadline is kept here.
        """
        try:
            async with asyncio.timeout(self.produce_seconds):
                await self.producer.send_and_wait(topic, value=value, key=key)
        except TimeoutError as exc:
            raise KafkaTimeoutError(f"no acknowledgement within {self.produce_seconds} s") from exc
