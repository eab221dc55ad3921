"""The projector: the `events` changelog and the outcomes topic into PostgreSQL and Redis.

The changelog table is the source of truth (SPEC 10); both stores are projections of it.
Commit protocol, once per batch (marked in `_project` below):

  1. poll a batch (up to `sink_batch_size` records or `sink_batch_seconds`);
  2. fold it: the newest state per event, every outcome;
  3. write PostgreSQL in one transaction;
  4. write Redis in one pipeline, then announce the outcomes;
  5. commit the batch's offsets.

A store that is down is retried with backoff until it is back (steps 3 and 4), never
skipped, so step 5 only ever follows durable writes to both: at-least-once, and the
version guards make the replay that follows a crash leave the stores as they were.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import psycopg
import psycopg_pool
import redis.exceptions
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from eventpipe.settings import Settings
from sinks.postgres import PostgresSink
from sinks.redis import RedisSink
from streams import metrics
from streams.admin import EVENTS_TABLE
from streams.codec import AvroCodec, DecodeError
from streams.topics import OUTCOME, changelog_topic

__all__ = ["Batch", "Projector"]

log = logging.getLogger(__name__)
PROJECTED_STATUSES = frozenset({"DRAFT", "PUBLISHED", "ENDED"})
# A store that is down or restarting: wait and write again, never skip.
_STORE_ERRORS: tuple[type[BaseException], ...] = (
    OSError, ConnectionError, asyncio.TimeoutError, psycopg.OperationalError,
    psycopg_pool.PoolTimeout, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
)


@dataclass
class Batch:
    states: dict[str, dict[str, Any]] = field(default_factory=dict)  # eventId -> newest
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)  # next offset to read

    def add_state(self, state: dict[str, Any]) -> None:
        seen = self.states.get(state["eventId"])
        if seen is None or seen["version"] < state["version"]:
            self.states[state["eventId"]] = state

    @property
    def upserts(self) -> list[dict[str, Any]]:
        return [s for s in self.states.values() if s["status"] in PROJECTED_STATUSES]

    @property
    def deletes(self) -> list[dict[str, Any]]:
        return [s for s in self.states.values() if s["status"] not in PROJECTED_STATUSES]


def _outcome_record(raw: dict[str, Any]) -> dict[str, Any]:
    decided = raw["decidedAt"]
    return {
        **raw,
        "commandId": str(raw["commandId"]),
        "eventId": str(raw["eventId"]),
        "userId": str(raw["userId"]),
        "decidedAt": int(decided.timestamp() * 1000) if hasattr(decided, "timestamp") else decided,
    }


class Projector:
    def __init__(self, settings: Settings, outcome_codec: AvroCodec) -> None:
        self.settings = settings
        self.changelog = changelog_topic(settings.app_id, EVENTS_TABLE)
        self.outcome_codec = outcome_codec
        self.postgres = PostgresSink(settings.database_url)
        self.redis = RedisSink(settings)
        self.healthy = {"postgres": True, "redis": True}

    async def start(self) -> None:
        # aiokafka binds to the running loop, so the consumer is made here.
        self.consumer = AIOKafkaConsumer(
            self.changelog,
            OUTCOME.name,
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=f"{self.settings.app_id}-projector",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.settings.sink_batch_size,
        )
        await self.postgres.start()
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.postgres.stop()
        await self.redis.stop()

    async def run(self) -> None:
        """Project until cancelled."""
        while True:
            await self.project_once()

    async def project_once(self) -> int:
        """One pass of the commit protocol; returns the number of records consumed."""
        # 1. poll
        polled = await self.consumer.getmany(
            timeout_ms=int(self.settings.sink_batch_seconds * 1000),
            max_records=self.settings.sink_batch_size,
        )
        if not polled:
            return 0
        # 2. fold
        batch = Batch()
        count = 0
        for tp, records in polled.items():
            for record in records:
                self._fold(batch, record)
                count += 1
            batch.offsets[tp] = records[-1].offset + 1
        # 3. PostgreSQL, one transaction
        await self._retry("postgres", self.postgres.write,
                          batch.upserts, [s["eventId"] for s in batch.deletes], batch.outcomes)
        # 4. Redis, one pipeline (outcomes announced last, after the states they describe)
        await self._retry("redis", self.redis.write, batch.upserts, batch.deletes, batch.outcomes)
        # 5. commit, the partitions still ours only: a rebalance (another worker joining or
        # leaving) may have moved some while the batch was written; their new owner reads
        # them again from the last commit, which the version guards make harmless.
        assigned = self.consumer.assignment()
        offsets = {tp: o for tp, o in batch.offsets.items() if tp in assigned}
        try:
            if offsets:
                await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            log.info("offsets not committed, the group rebalanced: %s", exc)
        return count

    def _fold(self, batch: Batch, record: ConsumerRecord) -> None:
        if record.topic == self.changelog:
            if record.value is None:
                return  # a tombstone: we never delete table keys, so nothing to project
            batch.add_state(json.loads(record.value))
            return
        try:
            batch.outcomes.append(_outcome_record(self.outcome_codec.decode(record.value)))
        except DecodeError as exc:
            # Only our own agents write this topic; a bad record is a bug to see, not to stall on.
            log.error("undecodable outcome at %s[%s]@%s: %s",
                      record.topic, record.partition, record.offset, exc)

    async def _retry(self, store: str, write: Any, *args: Any) -> None:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(_STORE_ERRORS),
            wait=wait_exponential(multiplier=0.1, max=5),
            before_sleep=lambda s: self._down(store, s.outcome.exception() if s.outcome else None),
        ):
            with attempt:
                await write(*args)
        self.healthy[store] = True
        metrics.SINK_DOWN.labels(store).set(0)
        metrics.SINK_WRITES.labels(store).inc(len(args[0]) + len(args[-1]))

    def _down(self, store: str, exc: BaseException | None) -> None:
        if self.healthy.get(store):
            log.warning("%s unavailable, retrying until it is back: %s", store, exc)
        self.healthy[store] = False
        metrics.SINK_DOWN.labels(store).set(1)

