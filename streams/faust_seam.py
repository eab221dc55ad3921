"""The one place that reaches into faust-streaming's (and aiokafka's) internals.

The worker keeps Faust for the app, the changelog-backed table, recovery, standbys, the
consumer group and its rebalances, timers and the web port, but takes the command topics'
records off Faust's consumer as the batches aiokafka fetched, before Faust's per-record path
(conductor, Event, stream, ack) sees them; and during a recovery it stores the changelog
records fetched for active partitions in bulk, where Faust's recovery takes them one by one.
Each private use below names the public behaviour it stands for; `tests/test_faust_seam.py`
checks every one against the installed Faust, so an upgrade that renames or reshapes them
fails there first (docs/decisions/0007).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import faust
from aiokafka.errors import IllegalStateError
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streams.metrics import RESTORED_IN_BULK
from streams.table import FetchedChangelogRecord

__all__ = ["BatchHandler", "PipelineApp", "commit_offsets", "not_consuming", "restore_in_bulk"]

# Called with the command topics' records of one fetch, {tp: [aiokafka ConsumerRecord]}.
BatchHandler = Callable[[dict[TP, list[Any]]], Awaitable[None]]


class BatchConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, handing the command topics' records to a batch handler.

    Private: `Consumer._wait_next_records`, the one call of Faust's fetch loop that returns
    what aiokafka's `getmany` fetched, `{tp: [records]}`, before Faust turns each record
    into a message for its streams. The command topics' records are taken out here and the
    rest (changelog records of standby partitions) go on through Faust as before.
    """

    async def _wait_next_records(self, timeout: float) -> tuple[Any, Any]:  # noqa: ASYNC109
        if not self.flow_active:
            # Faust's own first step (a rebalance under way): the generation is read after it,
            # so a fetch that starts once the rebalance is over is not taken for a stale one.
            await self.wait(self.can_resume_flow)
        generation = self.app.consumer_generation_id
        records, active = await super()._wait_next_records(timeout)
        app = self.app
        router = getattr(app, "batch_topics", None)
        if not records or router is None:
            return records, active
        if app.tables.recovery.in_recovery and self.flow_active:
            restore_in_bulk(app, records, active)
        batch = {tp: rs for tp, rs in records.items() if tp.topic in router}
        if batch:
            records = {tp: rs for tp, rs in records.items() if tp.topic not in router}
            if generation == app.consumer_generation_id and self.flow_active:
                await app.batch_handler(batch)
            else:
                await self._read_again(batch)
        return records, active

    async def _read_again(self, batch: dict[TP, list[Any]]) -> None:
        """A rebalance began or ended during the fetch: its command records are not decided
        now, and each partition still ours is sought back to its first one, so they come
        again. Faust's seek to the committed offsets is not enough: a fetch that returns
        after it holds records from there on, and dropped, they would be lost (a chaos run
        lost a partition's backlog, 2,020 commands, that way).
        Public: `Consumer.seek` (aiokafka drops what it buffered of the partition) and
        `assignment`."""
        assigned = self.assignment()
        again = {tp: rs[0].offset for tp, rs in batch.items() if tp in assigned}
        for tp, offset in again.items():
            with contextlib.suppress(IllegalStateError):  # revoked meanwhile: its next owner
                await self.seek(tp, offset)                # reads it from the commit
        self.log.info("a rebalance began during the fetch; %d command records will be read"
                      " again (%s)", sum(map(len, batch.values())),
                      ", ".join(f"{tp.topic}[{tp.partition}]@{o}" for tp, o in again.items()))


    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return BatchConsumerThread(self, loop=self.loop, beacon=self.beacon)


class BatchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, with the app's `fetch_max_wait_ms` for its aiokafka consumer.

    aiokafka keeps one fetch in flight per broker and leaves out of it the partitions whose
    records are still buffered; a command arriving on one of those waits until the fetch in
    flight returns, which the broker holds up to `fetch_max_wait_ms` when nothing else comes.
    Faust fixes that wait at 1,500 ms, and lone commands waited up to that long (a POST's
    p95 of 1.2 s at 200/s).
    Private: `Consumer._new_consumer_thread` (the factory of this thread),
    `AIOKafkaConsumerThread._create_worker_consumer` (builds the aiokafka consumer, not yet
    started) and `AIOKafkaConsumer._fetch_max_wait_ms` (the constructor's argument, handed to
    its fetcher at start).
    """

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        wait = getattr(self.app, "fetch_max_wait_ms", None)
        if wait is not None:
            consumer._fetch_max_wait_ms = wait
        return consumer


class BatchTransport(faust_aiokafka.Transport):
    Consumer = BatchConsumer


class PipelineApp(faust.App):
    """A Faust app whose consumer hands `batch_topics`' records to `batch_handler`.

    Private: `App._new_transport`, the factory Faust calls once for its consumer transport
    (the public `broker` URL picks the driver class and has no way to name a subclass).
    """

    batch_topics: frozenset[str] | None = None
    batch_handler: BatchHandler
    fetch_max_wait_ms: int | None = None  # None: Faust's own (1,500 ms)
    before_stop: Callable[[], Awaitable[None]] | None = None

    def route_batches(self, topics: frozenset[str], handler: BatchHandler,
                      before_stop: Callable[[], Awaitable[None]]) -> None:
        """Hand `topics`' fetched records to `handler`; `before_stop` runs first when the
        app stops, while the consumer can still commit."""
        self.batch_topics = topics
        self.batch_handler = handler
        self.before_stop = before_stop

    async def on_stop(self) -> None:
        if self.before_stop is not None:
            await self.before_stop()
        await super().on_stop()

    def _new_transport(self) -> Any:
        return BatchTransport(self.conf.broker_consumer, self)


def restore_in_bulk(app: faust.App, records: dict[TP, list[Any]],
                    active: set[TP] | None) -> int:
    """Store the fetched changelog records of the partitions being recovered in one write
    per partition, all but the last of each, which goes on through Faust's recovery so that
    it sees its progress and ends as it would; returns how many were stored here.

    Faust's recovery takes each record through its conductor, an Event, a queue and a
    per-record loop; this does what that loop does for a run of records: apply them to the
    table (`Table.apply_changelog_batch`, public) and advance the recovery's offsets.
    Private: `Recovery.active_tps`, `tp_to_table`, `active_offsets` (the partitions being
    recovered, their tables, and the last offset applied to each, which decides when the
    recovery is done) and `flush_buffers` (applies what its loop has buffered, which is
    older than these). Records Faust still holds in its queue are older too: a fetch that
    meets a non-empty queue goes Faust's way, whole.
    """
    recovery = app.tables.recovery
    if not app.tables.changelog_queue.empty():
        return 0
    runs = {tp: rs for tp, rs in records.items()
            if len(rs) > 1 and tp in recovery.active_tps and (active is None or tp in active)}
    if not runs:
        return 0
    recovery.flush_buffers()
    stored = 0
    for tp, rs in runs.items():
        seen = recovery.active_offsets.get(tp)
        run = [r for r in rs[:-1] if seen is None or r.offset > seen]
        if run:
            table = recovery.tp_to_table[tp]
            table.apply_changelog_batch([FetchedChangelogRecord(table, r) for r in run])
            recovery.active_offsets[tp] = run[-1].offset
            stored += len(run)
        records[tp] = rs[-1:]
    RESTORED_IN_BULK.inc(stored)
    return stored


async def commit_offsets(app: faust.App, offsets: Mapping[TP, int]) -> bool:
    """Commit `offsets` for the app's consumer group now; False if the group refused (a
    rebalance took the partitions: their records are read again by the next owner).

    Private: `Consumer._commit`, the driver's commit through the consumer thread, the same
    call Faust's own commit ends in once it has picked offsets from its acks; and
    `Consumer._committed_offset`, Faust's record of what was committed, read by its seeks
    and its commit checks.
    """
    assigned = app.consumer.assignment()
    offsets = {tp: offset for tp, offset in offsets.items() if tp in assigned}
    if not offsets:
        return False
    consumer = app.consumer
    done = await consumer._commit(offsets)
    if done:
        consumer._committed_offset.update(offsets)
    return bool(done)


def not_consuming(app: faust.App) -> str | None:
    """Why the app's consumer is not handing records on right now (None: it is).

    Faust stops its consumer's flow when a rebalance begins (`consumer.flow_active` goes
    false) and resumes it only after the table's recovery (`app.in_recovery`) has caught up
    with the changelog; until then records of the command partitions are not fetched, so a
    command waits. `app.rebalancing` and `app.in_recovery` are the flags Faust itself sets
    in `on_rebalance_start` / `on_rebalance_end` and around its recovery loop.
    """
    if app.rebalancing:
        return "rebalancing"
    if app.in_recovery:
        return "recovering the table"
    if not app.consumer.flow_active:
        return "consumer flow paused"
    return None
