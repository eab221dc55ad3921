"""The command processor: one writer per event, batches end to end.

Faust's consumer hands it each fetch of the four command topics (streams/faust_seam.py).
They are co-partitioned by eventId, so this loop is the only writer of partition p of every
command topic, of the `events` table and of its changelog (docs/decisions/0001). A batch is
decided in order per partition by `lifecycle.apply` (0002), then delivered: facts, dead
letters and forwards; the newest state per event to the changelog; the store; the outcomes;
the commit (0003, 0004). A crash replays the batch, and a replayed command whose state
reached the changelog is a duplicate by commandId.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import faust
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from faust.types import TP
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from streams import lifecycle, metrics
from streams.codec import AvroCodec, DecodeError, RegistryUnavailable
from streams.envelope import (
    FACT_TOPICS,
    MAX_COMMAND_BYTES,
    MAX_KEY_BYTES,
    dead_letter_record,
    fact_record,
    has_nul,
    now_ms,
    outcome_record,
    to_command,
)
from streams.faust_seam import commit_offsets
from streams.lifecycle import Command, Inapplicable
from streams.partitioner import partition_of
from streams.table import ChangelogRecord, ChangelogWrite, EventsTable
from streams.timeouts import OpenJobs
from streams.topics import COMMAND_TOPICS, DLQ, OUTCOME
from streams.vocabulary import ErrorCode

__all__ = ["CommandProcessor", "in_decision_order"]

log = logging.getLogger(__name__)

_timestamp = attrgetter("timestamp")
_TOPIC_RANK = {spec.name: rank for rank, spec in enumerate(COMMAND_TOPICS)}


def in_decision_order(lists: list[list[Any]]) -> Iterable[Any]:
    """One partition's records of one fetch, a list per topic, in the order they are
    decided: across topics by timestamp, each topic in offset order, and records of two
    topics with one timestamp in the topics' order (purpose, recommendation, image,
    publish), not in the order the fetch listed the topics, so that a replay of the fetch
    decides them as the first pass did."""
    if len(lists) == 1:
        return lists[0]
    ranked = sorted(lists, key=lambda records: _TOPIC_RANK.get(records[0].topic, len(_TOPIC_RANK)))
    return heapq.merge(*ranked, key=_timestamp)  # stable: a tie goes to the earlier list


def _forever(error: type[Exception], what: str, first_wait: float) -> AsyncRetrying:
    """Retry on `error` until it succeeds, with exponential backoff up to 10 s, logging."""
    return AsyncRetrying(
        retry=retry_if_exception_type(error),
        wait=wait_exponential(multiplier=first_wait, max=10),
        before_sleep=lambda s: log.warning("%s: %s", what,
                                           s.outcome.exception() if s.outcome else ""),
    )


class DeadLetter(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass
class Batch:
    """What one fetch decided, by (topic, partition), in decision order."""

    announce: dict[tuple[str, int], list[tuple[bytes | None, bytes]]] = field(
        default_factory=lambda: defaultdict(list))  # facts, dead letters, forwards
    states: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    outcomes: dict[int, list[tuple[bytes, bytes]]] = field(
        default_factory=lambda: defaultdict(list))
    ends: dict[TP, int] = field(default_factory=dict)  # the offset to commit per partition
    records: int = 0


class CommandProcessor:
    def __init__(self, app: faust.App, events: EventsTable, codecs: dict[str, AvroCodec],
                 open_jobs: OpenJobs, bootstrap_servers: str, partitions: int) -> None:
        self.app = app
        self.bootstrap_servers = bootstrap_servers
        self.partitions = partitions  # of a command topic Faust has no metadata for yet
        self.events = events
        self.codecs = codecs
        self.open_jobs = open_jobs
        self.producer: AIOKafkaProducer | None = None
        self._started = asyncio.Event()
        self._current: asyncio.Future[None] | None = None
        # The last batch's offset commit (step 5), in flight while the next fetch is decided.
        self._commit: asyncio.Future[bool] | None = None
        self._closing = False
        self._next: dict[TP, int] = {}  # per partition, the offset after the last handled
        self._partitions: dict[str, int] = {}
        self._codec_out = {name: codecs[name] for name in (OUTCOME.name, DLQ.name)}
        # Label lookups once, not per message.
        self._in = {s.name: metrics.MESSAGES_IN.labels(s.name) for s in COMMAND_TOPICS}
        self._out = {s.name: metrics.MESSAGES_OUT.labels(s.name)
                     for s in (*FACT_TOPICS.values(), OUTCOME, DLQ, *COMMAND_TOPICS)}
        self._lag: dict[TP, Any] = {}
        self._rejected = {code: metrics.REJECTIONS.labels(code.value) for code in ErrorCode}

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            acks="all",
            linger_ms=0,
            # A batch of states (a few KiB each, with their child rows) in few requests.
            max_batch_size=1024 * 1024,
            max_request_size=4 * 1024 * 1024,
            enable_idempotence=False,
        )
        await self.producer.start()
        self._started.set()

    @property
    def ready(self) -> bool:
        """Started (its producer up) and not stopping: a batch handed to it is decided."""
        return self._started.is_set() and not self._closing

    async def stop(self) -> None:
        self._closing = True
        await self.drain()
        if self.producer is not None:
            await self.producer.stop()

    async def send_command(self, topic: str, key: bytes, value: bytes) -> None:
        """Produce a command of our own (the job timer's) and wait for the broker."""
        await self._started.wait()
        assert self.producer is not None
        await self.producer.send_and_wait(topic, value, key=key)
        self._out[topic].inc()

    async def drain(self) -> None:
        """Wait for the batch in hand and its commit (a rebalance calls this before
        partitions move, and a stop before the consumer goes)."""
        await self._decided()
        await self._committed()

    async def _decided(self) -> None:
        if self._current is not None and not self._current.done():
            await asyncio.wait([self._current])

    async def _committed(self) -> None:
        """Wait for the previous batch's offset commit."""
        commit, self._commit = self._commit, None
        if commit is not None:
            await commit

    def on_revoked(self, revoked: set[TP]) -> None:
        for tp in revoked:
            self._next.pop(tp, None)

    async def handle(self, records: dict[TP, list[Any]]) -> None:
        """One fetch, from the seam. Shielded: Faust cancels its fetcher at a rebalance or
        a stop, and a batch stops only between its steps' deliveries, never halfway."""
        await self._decided()
        await self._started.wait()
        if self._closing:
            return  # not committed: read again by the next run
        self._current = asyncio.ensure_future(self._process(records))
        await asyncio.shield(self._current)

    # ------------------------------------------------------------ deciding

    async def _process(self, fetched: dict[TP, list[Any]]) -> None:
        started = time.perf_counter()
        batch = Batch()
        by_partition: dict[int, list[list[Any]]] = defaultdict(list)
        for tp, records in fetched.items():
            first = self._next.get(tp)
            if first is not None and records[0].offset < first:
                records = [r for r in records if r.offset >= first]  # read again after a seek
            if records:
                by_partition[tp.partition].append(records)
                batch.ends[tp] = records[-1].offset + 1
                self._in[tp.topic].inc(len(records))
                batch.records += len(records)
        for lists in by_partition.values():
            for record in in_decision_order(lists):
                try:
                    self._decide(record, batch)
                except RegistryUnavailable:
                    await self._registry_answers(record)
                    self._decide(record, batch)
        if not batch.ends:
            return
        await self._deliver(batch)
        # 5. The commit runs while the next fetch is read and decided; that batch's states
        #    wait for it (`_deliver`), so nothing of a batch reaches the changelog before
        #    the batch ahead of it is committed, and a crash replays no more than before.
        self._commit = asyncio.ensure_future(commit_offsets(self.app, batch.ends))
        self._next.update(batch.ends)
        self._observe(batch, time.perf_counter() - started)

    def _decide(self, record: Any, batch: Batch) -> None:
        """Decide one record into the batch (RegistryUnavailable: nothing was added)."""
        try:
            command = self._command(record)
            if command is None:
                self._forward(record, batch)
                return
            staged = batch.states.get(command.event_id)
            state = staged[1] if staged is not None else self.events.read(command.event_id)
            decision = self._apply(state, command)
        except DeadLetter as exc:
            self._dead_letter(record, exc.code, exc.message, batch)
            return
        key = record.key
        partition = record.partition
        if decision.changed and decision.state is not None:
            batch.states[command.event_id] = (partition, decision.state)
        if not decision.duplicate:
            for fact in decision.facts:
                spec, value = fact_record(fact, command.command_id)
                batch.announce[spec.name, partition].append(
                    (key, self.codecs[spec.name].write(value)))
        if decision.code is not None:
            self._rejected[decision.code].inc()
        batch.outcomes[partition].append(
            (key, self._codec_out[OUTCOME.name].write(outcome_record(command, decision,
                                                                      now_ms()))))

    def _command(self, record: Any) -> Command | None:
        """The record as a command; None when it sits on another partition than its key's
        (a producer with another partitioner): it is forwarded there."""
        key, value = record.key, record.value
        if not key:
            raise DeadLetter("NULL_KEY", "message has no key; commands are keyed by eventId")
        if len(key) > MAX_KEY_BYTES or len(value or b"") > MAX_COMMAND_BYTES:
            raise DeadLetter("TOO_LARGE", f"key {len(key)} bytes, value {len(value or b'')}"
                             f" bytes; a command is at most {MAX_COMMAND_BYTES} bytes")
        try:
            decoded = self.codecs[record.topic].read(value)
        except DecodeError as exc:
            raise DeadLetter(exc.code, exc.message) from exc
        try:
            command = to_command(decoded)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DeadLetter("DECODE_ERROR", f"not a command envelope: {exc}") from exc
        if key.decode("utf-8", "replace") != command.event_id:
            raise DeadLetter("KEY_MISMATCH", f"key {key!r} is not eventId {command.event_id}")
        if has_nul(command.payload):
            # Such a state would stop the projector: PostgreSQL text cannot hold NUL.
            raise DeadLetter("INVALID_TEXT", "a text field holds a NUL character")
        if partition_of(key, self._partition_count(record.topic)) != record.partition:
            return None
        return command

    async def _registry_answers(self, record: Any) -> None:
        """A writer schema not seen yet and the registry away: wait it out (once it answers,
        the codec keeps the schema), never dead-letter."""
        async for attempt in _forever(RegistryUnavailable, "registry unavailable", 0.2):
            with attempt:
                try:
                    self.codecs[record.topic].read(record.value)
                except DecodeError:
                    return  # the registry answered: the record is poison, decided as such

    def _apply(self, state: dict[str, Any] | None, command: Command) -> lifecycle.Decision:
        try:
            return lifecycle.apply(state, command)
        except Inapplicable as exc:
            raise DeadLetter(exc.code, exc.message) from exc
        except Exception as exc:  # a rule that cannot apply must not stall the partition
            log.exception("cannot apply %s %s", command.type, command.command_id)
            raise DeadLetter("APPLY_ERROR", f"{type(exc).__name__}: {exc}") from exc

    def _partition_count(self, topic: str) -> int:
        count = self._partitions.get(topic)
        if count is None:
            count = self.app.consumer.topic_partitions(topic) or self.partitions
            self._partitions[topic] = count
        return count

    def _forward(self, record: Any, batch: Batch) -> None:
        """Re-produce it, bytes unchanged, to its key's partition (docs/decisions/0005)."""
        right = partition_of(record.key, self._partition_count(record.topic))
        log.warning("%s[%s]@%s: key %r belongs on partition %s (its producer does not hash"
                    " keys with murmur2); forwarded there", record.topic, record.partition,
                    record.offset, record.key, right)
        metrics.FORWARDED.labels(record.topic).inc()
        batch.announce[record.topic, right].append((record.key, record.value))

    def _dead_letter(self, record: Any, code: str, reason: str, batch: Batch) -> None:
        log.warning("dead letter %s[%s]@%s: %s %s", record.topic, record.partition,
                    record.offset, code, reason)
        metrics.DEAD_LETTERS.labels(code).inc()
        key, letter = dead_letter_record(record.topic, record.partition, record.offset,
                                         record.key, record.value, code, reason)
        batch.announce[DLQ.name, record.partition].append(
            (key, self._codec_out[DLQ.name].write(letter)))

    # ------------------------------------------------------------ delivering

    async def _deliver(self, batch: Batch) -> None:
        # 1. What the states will imply downstream goes first: a replay after a crash
        #    between here and the states re-decides (and re-sends) it.
        await self._step([(topic, partition, records)
                          for (topic, partition), records in batch.announce.items()])
        # The batch before is committed before this one's states go out, so a crash
        # replays at most that batch (every state of it in the changelog: duplicates,
        # which announce only their outcomes) and this one, as before the overlap.
        await self._committed()
        # 2. + 3. The newest state per event, once; the store only once the broker has it.
        if batch.states:
            changelog = self.events.changelog_topic.get_topic_name()
            by_partition: dict[int, list[tuple[str, dict[str, Any], bytes, bytes]]] = \
                defaultdict(list)
            for event_id, (partition, state) in batch.states.items():
                by_partition[partition].append((event_id, state,
                                                *self.events.encode(event_id, state)))
            sent = await self._step([(changelog, partition, [(k, v) for _, _, k, v in entries])
                                     for partition, entries in by_partition.items()])
            writes: list[ChangelogWrite] = []
            for (partition, entries), futures in zip(by_partition.items(), sent, strict=True):
                offsets = await self._offsets(futures)
                writes.extend(
                    ChangelogWrite(event_id, state,
                                   ChangelogRecord(changelog, partition, offset, k, v))
                    for (event_id, state, k, v), offset in zip(entries, offsets, strict=True))
            self.events.write_delivered(writes)
            for write in writes:
                self.open_jobs.track(write.key, write.value)
        # 4. The outcomes, once the states they name are in the changelog.
        await self._step([(OUTCOME.name, partition, records)
                          for partition, records in batch.outcomes.items()])
        for (topic, _), records in batch.announce.items():
            self._out[topic].inc(len(records))
        self._out[OUTCOME.name].inc(sum(map(len, batch.outcomes.values())))

    async def _step(self, sends: list[tuple[str, int, list[tuple[bytes | None, bytes]]]]
                    ) -> list[list[tuple[int, asyncio.Future[Any]]]]:
        """One step of the protocol: send, and wait until the broker has all of it. A broker
        away longer than the producer waits (its batches expire) fails the step, which is
        sent again whole, until it goes through: a record sent twice is a duplicate the
        protocol already allows, a batch given up would be a loss."""
        async for attempt in _forever(KafkaError, "delivery failed, sending again", 0.5):
            with attempt:
                sent = [await self._send(topic, partition, records)
                        for topic, partition, records in sends]
                await self._delivered(sent)
        return sent

    async def _send(self, topic: str, partition: int,
                    records: list[tuple[bytes | None, bytes]]
                    ) -> list[tuple[int, asyncio.Future[Any]]]:
        """Hand records to the producer in as few batches as fit; [(count, delivery)]."""
        assert self.producer is not None
        sent: list[tuple[int, asyncio.Future[Any]]] = []
        builder, count = self.producer.create_batch(), 0
        for key, value in records:
            while builder.append(key=key, value=value, timestamp=None) is None:
                if not count:
                    raise ValueError(f"a record of {len(value)} bytes does not fit a batch")
                sent.append((count, await self.producer.send_batch(builder, topic,
                                                                   partition=partition)))
                builder, count = self.producer.create_batch(), 0
            count += 1
        if count:
            sent.append((count, await self.producer.send_batch(builder, topic,
                                                               partition=partition)))
        return sent

    @staticmethod
    async def _delivered(sent: list[list[tuple[int, asyncio.Future[Any]]]]) -> None:
        futures = [future for batches in sent for _, future in batches]
        if futures:
            await asyncio.gather(*futures)

    @staticmethod
    async def _offsets(sent: list[tuple[int, asyncio.Future[Any]]]) -> list[int]:
        offsets: list[int] = []
        for count, future in sent:
            base = (await future).offset
            offsets.extend(range(base, base + count))
        return offsets

    def _observe(self, batch: Batch, seconds: float) -> None:
        metrics.BATCH_SECONDS.observe(seconds)
        metrics.BATCH_RECORDS.observe(batch.records)
        consumer = self.app.consumer
        for tp, end in batch.ends.items():
            highwater = consumer.highwater(tp)
            gauge = self._lag.get(tp)
            if gauge is None:
                gauge = self._lag[tp] = metrics.CONSUMER_LAG.labels(tp.topic, tp.partition)
            gauge.set(max(0, (highwater or end) - end))
