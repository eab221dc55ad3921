"""Agents: decode, apply, record, emit. The rules themselves live in `streams.lifecycle`.

One agent per command topic, concurrency 1 (faust-streaming issue 606: concurrency > 1 can
commit past a message still in flight). Whatever cannot be decoded or applied goes to the
DLQ with its reason and the partition moves on; an unreachable registry is waited out.
What an agent decides goes to the outbox (streams/outbox.py), which stores, sends and acks
it in batches under a backlog and at once otherwise.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
from faust.types import EventT
from faust.web import Request, Response, View
from prometheus_client import generate_latest
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from streams import lifecycle, metrics
from streams.app import Pipeline
from streams.codec import DecodeError, RegistryUnavailable
from streams.envelope import FACT_TOPICS, fact_record, has_nul, outcome_record, to_command
from streams.gaps import InOrder, StallGuard
from streams.lifecycle import Command, Decision, Inapplicable
from streams.timeouts import fail_overdue_jobs
from streams.topics import (
    COMMAND_TOPICS,
    DLQ,
    OUTCOME,
    TopicSpec,
)

__all__ = ["install_agents"]

log = logging.getLogger(__name__)

# A command is a few KB at most (a job's results): a bigger one is poison. The DLQ keeps at
# most this much of a message, so its record stays under the producer's 1 MB request limit.
MAX_COMMAND_BYTES = 256 * 1024
MAX_KEY_BYTES = 1024  # keys are eventIds (36 bytes)
STALL_CHECK_SECONDS = 5.0  # see streams/gaps.py


class DeadLetter(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class CommandHandler:
    """Handles one message of a command topic from bytes to table, facts and outcome."""

    def __init__(self, pipeline: Pipeline, spec: TopicSpec) -> None:
        self.pipeline = pipeline
        self.spec = spec
        self.in_order = InOrder(pipeline.app)
        self.codec = pipeline.codec(spec)
        # Label lookups once, not per message.
        self._in = metrics.MESSAGES_IN.labels(spec.name)
        self._seconds = metrics.PROCESSING_SECONDS.labels(spec.name)
        self._out = {s.name: metrics.MESSAGES_OUT.labels(s.name)
                     for s in (*FACT_TOPICS.values(), OUTCOME, DLQ)}
        self._lag: dict[int, Any] = {}  # partition -> its CONSUMER_LAG child

    async def handle(self, event: EventT) -> int | None:
        """Decide one command into the outbox; returns its partition's lag after it, or
        None when the record was skipped (not to be acked)."""
        message = event.message
        if not await self.in_order.admit(message):
            return None  # records before it were dropped by Faust: they come again, then this
        started = time.perf_counter()
        self._in.inc()
        try:
            command = await self._decode(message.key, message.value)
            decision = self._decide(command)
        except DeadLetter as exc:
            self._dead_letter(message, exc.code, exc.message)
        else:
            if (decision.changed or decision.duplicate) and decision.state is not None:
                # Reassign (never mutate in place): each assignment is one changelog record.
                # A duplicate re-asserts the state it found: after a kill -9 a RocksDB store
                # can hold a state whose changelog record never left the producer, and the
                # replayed command is the only chance to put it in the changelog (and the
                # projections). Staged in the same step as decided: the next command of this
                # event, in any agent, decides from this state.
                self.pipeline.events.stage(command.event_id, decision.state, message.partition)
                self.pipeline.open_jobs.track(command.event_id, decision.state)
            self._emit(command, decision)
        self._seconds.observe(time.perf_counter() - started)
        highwater = self.pipeline.app.consumer.highwater(message.tp)
        if highwater is None:
            return 0
        behind = max(0, highwater - message.offset - 1)
        lag = self._lag.get(message.partition)
        if lag is None:
            lag = self._lag[message.partition] = metrics.CONSUMER_LAG.labels(
                message.topic, message.partition)
        lag.set(behind)
        return behind

    async def _decode(self, key: bytes | None, value: bytes | None) -> Command:
        if not key:
            raise DeadLetter("NULL_KEY", "message has no key; commands are keyed by eventId")
        if len(key) > MAX_KEY_BYTES or len(value or b"") > MAX_COMMAND_BYTES:
            raise DeadLetter("TOO_LARGE", f"key {len(key)} bytes, value {len(value or b'')}"
                             f" bytes; a command is at most {MAX_COMMAND_BYTES} bytes")
        try:
            record = self._read(value)
        except RegistryUnavailable:
            # A writer schema not seen yet, and the registry not answering: wait it out (set
            # up only here, not per message: tenacity's set-up is not free).
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(RegistryUnavailable),
                wait=wait_exponential(multiplier=0.2, max=10),
                before_sleep=lambda s: log.warning("registry unavailable, retrying: %s",
                                                   s.outcome.exception() if s.outcome else ""),
            ):
                with attempt:
                    record = self._read(value)
        try:
            command = to_command(record)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DeadLetter("DECODE_ERROR", f"not a command envelope: {exc}") from exc
        if key.decode("utf-8", "replace") != command.event_id:
            raise DeadLetter("KEY_MISMATCH", f"key {key!r} is not eventId {command.event_id}")
        if has_nul(command.payload):
            # Such a state would stop the projector: PostgreSQL text cannot hold NUL.
            raise DeadLetter("INVALID_TEXT", "a text field holds a NUL character")
        return command

    def _read(self, value: bytes | None) -> dict[str, Any]:
        try:
            return self.codec.decode(value)
        except DecodeError as exc:
            raise DeadLetter(exc.code, exc.message) from exc

    def _decide(self, command: Command) -> Decision:
        state = self.pipeline.events.read(command.event_id)
        try:
            return lifecycle.apply(state, command)
        except Inapplicable as exc:
            raise DeadLetter(exc.code, exc.message) from exc
        except Exception as exc:  # a rule that cannot apply must not stall the partition
            log.exception("cannot apply %s %s", command.type, command.command_id)
            raise DeadLetter("APPLY_ERROR", f"{type(exc).__name__}: {exc}") from exc

    def _emit(self, command: Command, decision: Decision) -> None:
        key = command.event_id.encode()
        if not decision.duplicate:
            for fact in decision.facts:
                self._send(*fact_record(fact, command.command_id), key)
        if decision.code is not None:
            metrics.REJECTIONS.labels(decision.code.value).inc()
        self._send(OUTCOME, outcome_record(command, decision, _now_ms()), key)

    def _send(self, spec: TopicSpec, value: dict[str, Any], key: bytes | None) -> None:
        self.pipeline.outbox.send(spec.name, key, self.pipeline.codec(spec).encode(value))
        self._out[spec.name].inc()

    def _dead_letter(self, message: Any, code: str, reason: str) -> None:
        log.warning("dead letter %s[%s]@%s: %s %s", message.topic, message.partition,
                    message.offset, code, reason)
        metrics.DEAD_LETTERS.labels(code).inc()
        key, value = message.key, message.value
        if len(key or b"") > MAX_KEY_BYTES or len(value or b"") > MAX_COMMAND_BYTES:
            reason += (f" (DLQ keeps the first {MAX_KEY_BYTES} bytes of the key and"
                       f" {MAX_COMMAND_BYTES} of the value; they had {len(key or b'')} and"
                       f" {len(value or b'')})")
            key = key[:MAX_KEY_BYTES] if key is not None else None
            value = value[:MAX_COMMAND_BYTES] if value is not None else None
        self._send(DLQ, {
            "topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
            "key": key,
            "value": value,
            "errorCode": code,
            "errorMessage": reason,
            "failedAt": _now_ms(),
        }, key)


def install_agents(pipeline: Pipeline) -> None:
    app = pipeline.app
    outbox = pipeline.outbox
    for spec in COMMAND_TOPICS:
        handler = CommandHandler(pipeline, spec)

        async def agent(stream: faust.StreamT, handler: CommandHandler = handler) -> None:
            commands = stream.noack()  # the outbox acks, once a command's records are sent
            async for event in commands.events():
                lag = await handler.handle(event)
                if lag is not None and outbox.hold(commands, event, lag):
                    await outbox.flush()

        app.agent(pipeline.topic(spec), name=spec.name.split(".")[1], concurrency=1)(agent)

    @app.timer(pipeline.settings.worker_batch_seconds / 2)
    async def flush_overdue() -> None:
        # A held batch whose partitions went quiet (or moved) is not left waiting.
        if outbox.overdue():
            await outbox.flush()

    timeout_ms = int(pipeline.settings.job_timeout_seconds * 1000)

    @pipeline.events.on_recover
    async def reindex_open_jobs() -> None:
        # The table now holds this worker's partitions; the timer rebuilds the index on its
        # next tick, outside Faust's recovery (a scan here held up the partitions' resume).
        pipeline.open_jobs.stale = True

    stalls = StallGuard(app, {spec.name for spec in COMMAND_TOPICS})

    @app.timer(STALL_CHECK_SECONDS)
    async def stall_guard() -> None:
        await stalls.check()

    @app.timer(pipeline.settings.job_timeout_check_seconds)
    async def job_timer() -> None:
        if pipeline.open_jobs.stale:
            await outbox.flush()  # the index is rebuilt from the store
            pipeline.open_jobs.rebuild(pipeline.events.items())
            log.info("%d events with unfinished jobs", len(pipeline.open_jobs))
        sent = await fail_overdue_jobs(pipeline, timeout_ms)
        if sent:
            log.info("reported %d overdue jobs as failed", sent)

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            # aiohttp takes the bare media type; Prometheus reads text format 0.0.4 by default.
            return self.bytes(generate_latest(), content_type="text/plain")
