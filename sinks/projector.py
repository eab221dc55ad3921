"""The projector: the `events` changelog and the outcomes topic into PostgreSQL and Redis.

The changelog table is the source of truth; both stores are projections of it. Per batch
(marked in `project_once`): 1. poll; 2. fold to the newest state per event and every
outcome; 3. write PostgreSQL in one statement; 4. write Redis in one pipeline, then announce
the outcomes; 5. commit (at most every `sink_commit_seconds`). A pipeline: while Redis
writes batch n, PostgreSQL writes batch n + 1 and batch n + 2 is folded; each store takes
batches one at a time, in order, and a batch's Redis write follows its PostgreSQL write.

Behind by a backlog, a batch gathers while PostgreSQL writes the one before (an event's
states fold into one write); near the end of its partitions it is written at once, with the
outcomes of its states, which it waits for once (a lone command's state and outcome go in
one write). A store that is down is retried until it is back, never skipped; version guards
make a replay leave the stores as they were (docs/decisions/0008).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson
import psycopg
import psycopg_pool
import redis.exceptions
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from eventpipe.settings import Settings
from sinks.batch import Batch
from sinks.postgres import PostgresSink
from sinks.redis import RedisSink
from streams import metrics
from streams.admin import EVENTS_TABLE
from streams.codec import AvroCodec, DecodeError
from streams.topics import OUTCOME, changelog_topic

__all__ = ["Projector"]

log = logging.getLogger(__name__)
BACKLOG_RECORDS = 50  # this many records behind the batch: it gathers while the last writes
STOP_WRITE_SECONDS = 5.0  # a stop waits this long for the write in flight (a store may be down)
# A store that is down or restarting: wait and write again, never skip.
_STORE_ERRORS: tuple[type[BaseException], ...] = (
    OSError, ConnectionError, asyncio.TimeoutError, psycopg.OperationalError,
    psycopg_pool.PoolTimeout, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
)


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
    def __init__(self, settings: Settings, outcome_codec: AvroCodec,
                 stats: metrics.SinkStats | None = None) -> None:
        self.settings = settings
        self.changelog = changelog_topic(settings.app_id, EVENTS_TABLE)
        self.outcome_codec = outcome_codec
        self.postgres = PostgresSink(settings.database_url)
        self.redis = RedisSink(settings)
        self.healthy = {"postgres": True, "redis": True}
        self.stats = stats or metrics.SinkStats()
        self._written: dict[TopicPartition, int] = {}  # written, not yet committed
        self._committed_at = time.monotonic()
        # The writes in flight: the last batch's PostgreSQL and Redis writes, and the
        # Redis write of the batch before it.
        self._postgres_writing: asyncio.Task[None] | None = None
        self._redis_writing: asyncio.Task[None] | None = None
        self._redis_earlier: asyncio.Task[None] | None = None
        self._stopping = False
        self._running: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # aiokafka binds to the running loop, so the consumer is made here.
        self.consumer = AIOKafkaConsumer(
            self.changelog,
            OUTCOME.name,
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=f"{self.settings.app_id}-projector",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
            max_poll_records=self.settings.sink_batch_size,
            # Partition p of the changelog and of the outcomes to the same projector (both are
            # keyed by eventId): round robin could split them between two projectors, and an
            # outcome be written before the state it names.
            partition_assignment_strategy=(RangePartitionAssignor,),
        )
        await self.postgres.start()
        await self.consumer.start()

    async def stop(self) -> None:
        with contextlib.suppress(*_STORE_ERRORS, KafkaError):
            await self._commit()
        await self.consumer.stop()
        await self.postgres.stop()
        await self.redis.stop()

    async def run(self) -> None:
        """Start, project until cancelled or `stop_soon`, then stop (committing what was
        written)."""
        self._running = asyncio.current_task()
        await self.start()
        try:
            while not self._stopping:
                await self.project_once()
        finally:
            await self._finish_writing()
            await self.stop()

    def stop_soon(self) -> None:
        """End `run` now (cancelled where it waits), or after this pass: a cancellation can
        be lost inside a library's wait (one was, and an orphaned projector ran on for
        minutes), the flag cannot."""
        self._stopping = True
        if self._running is not None:
            self._running.cancel()

    async def project_once(self) -> int:
        """One pass of the commit protocol: the next batch polled and folded while the ones
        before are written, then its own writes started; returns the records consumed."""
        # 1. poll, 2. fold (as the records come)
        polled = await self.consumer.getmany(
            timeout_ms=int(self.settings.sink_batch_seconds * 1000),
            max_records=self.settings.sink_batch_size,
        )
        if not polled:
            await self._written_before()
            await self._commit()  # idle: whatever is written gets committed
            return 0
        batch = Batch()
        count = self._fold_all(batch, polled)
        count += await self._gather(batch, count)
        # One batch at a time in each store, two in flight at most (a store that is down
        # holds the projector, not an ever longer queue): this one's PostgreSQL write
        # follows the last one's and the Redis write of the one before it.
        for writing in (self._postgres_writing, self._redis_earlier):
            if writing is not None:
                await writing
        postgres = asyncio.create_task(self._write_postgres(batch))
        self._postgres_writing, self._redis_earlier = postgres, self._redis_writing
        self._redis_writing = asyncio.create_task(
            self._write_redis(batch, postgres, self._redis_writing))
        return count

    async def _write_postgres(self, batch: Batch) -> None:
        # 3. PostgreSQL, one statement (one transaction)
        await self._retry("postgres", self.postgres.write,
                          batch.upserts, [s["eventId"] for s in batch.deletes], batch.outcomes)

    async def _write_redis(self, batch: Batch, postgres: asyncio.Task[None],
                           redis_before: asyncio.Task[None] | None) -> None:
        await postgres
        if redis_before is not None:
            await redis_before
        # 4. Redis, one pipeline (outcomes announced last, after the states they describe,
        # which both stores now hold)
        await self._retry("redis", self.redis.write, batch.upserts, batch.deletes, batch.outcomes)
        # 5. commit: written batches' offsets, at most every `sink_commit_seconds` (a commit
        # is a broker round trip; what a crash then replays, the version guards absorb).
        self._written.update(batch.offsets)
        if time.monotonic() - self._committed_at >= self.settings.sink_commit_seconds:
            await self._commit()

    async def _written_before(self) -> None:
        """Wait for the batches in flight (the last Redis write waits for all before it);
        a failure other than a store being down (that is retried) ends the projector here."""
        writing = self._redis_writing
        self._postgres_writing = self._redis_writing = self._redis_earlier = None
        if writing is not None:
            await writing

    async def _finish_writing(self) -> None:
        """At a stop: the batches in flight get a few seconds, then are dropped uncommitted
        (a store may be down), and the next projector writes them again."""
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(self._written_before(), STOP_WRITE_SECONDS)

    async def _gather(self, batch: Batch, count: int) -> int:
        """Fold into `batch` what more comes, up to a full batch; returns how many records
        came. Behind by a backlog, it gathers while PostgreSQL writes the batch before (an event's
        states fold into one write, and the larger the stores' latency the larger the
        batch); near the end of its partitions it writes at once, after one short wait for
        the outcomes of its states if some are missing (the worker sends a state's outcome
        right after the state: a lone command's state and outcome then go in one write, the
        one its caller waits for). Nothing more for `sink_batch_seconds` ends it too."""
        size = self.settings.sink_batch_size
        came = 0
        waited_for_outcomes = False
        while count + came < size:
            if self._behind(batch) < BACKLOG_RECORDS:
                if not batch.awaited or waited_for_outcomes:
                    break
                waited_for_outcomes = True
            elif self._postgres_writing is None or self._postgres_writing.done():
                break
            more = await self.consumer.getmany(
                timeout_ms=max(1, int(self.settings.sink_batch_seconds * 1000)),
                max_records=size - count - came)
            if not more:
                break
            came += self._fold_all(batch, more)
        return came

    def _fold_all(self, batch: Batch,
                  polled: dict[TopicPartition, list[ConsumerRecord]]) -> int:
        count = 0
        for tp, records in polled.items():
            for record in records:
                self._fold(batch, record)
            count += len(records)
            batch.offsets[tp] = records[-1].offset + 1
        return count

    def _behind(self, batch: Batch) -> int:
        """Records in the batch's partitions after it, as the last fetch saw their ends (a
        partition a rebalance took meanwhile is no longer this projector's to wait for)."""
        behind = 0
        assigned = self.consumer.assignment()
        for tp, offset in batch.offsets.items():
            if tp not in assigned:
                continue
            end = self.consumer.highwater(tp)
            behind += BACKLOG_RECORDS if end is None else max(0, end - offset)
        return behind

    async def _commit(self) -> None:
        """Commit the written offsets of the partitions still ours: a rebalance (another
        worker joining or leaving) may have moved some while the batch was written; their
        new owner reads them again from the last commit, which the version guards make
        harmless."""
        self._committed_at = time.monotonic()
        if not self._written:
            return
        assigned = self.consumer.assignment()
        offsets = {tp: o for tp, o in self._written.items() if tp in assigned}
        self._written.clear()
        try:
            if offsets:
                await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            log.info("offsets not committed, the group rebalanced: %s", exc)

    def _fold(self, batch: Batch, record: ConsumerRecord) -> None:
        if record.topic == self.changelog:
            if record.value is None:
                return  # a tombstone: we never delete table keys, so nothing to project
            batch.add_state(orjson.loads(record.value))
            return
        try:
            outcome = _outcome_record(self.outcome_codec.read(record.value))
        except DecodeError as exc:
            # Only our processor writes this topic; a bad record is a bug to see, not to stall on.
            log.error("undecodable outcome at %s[%s]@%s: %s",
                      record.topic, record.partition, record.offset, exc)
            return
        batch.add_outcome(outcome)

    async def _retry(self, store: str, write: Any, *args: Any) -> None:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(_STORE_ERRORS),
            wait=wait_exponential(multiplier=0.1, max=5),
            before_sleep=lambda s: self._down(store, s.outcome.exception() if s.outcome else None),
        ):
            with attempt:
                await write(*args)
        self.healthy[store] = True
        self.stats.down(store, False)
        self.stats.written(store, len(args[0]) + len(args[-1]))

    def _down(self, store: str, exc: BaseException | None) -> None:
        if self.healthy.get(store):
            log.warning("%s unavailable, retrying until it is back: %s", store, exc)
        self.healthy[store] = False
        self.stats.down(store, True)

