"""Agents: decode, apply, record, emit. The rules themselves live in `streams.lifecycle`.

One agent per command topic, concurrency 1 (faust-streaming issue 606: concurrency > 1 can
commit past a message still in flight). Whatever cannot be decoded or applied goes to the
DLQ with its reason and the partition moves on; an unreachable registry is waited out.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
from faust.types import EventT
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from streams import lifecycle
from streams.app import Pipeline
from streams.codec import DecodeError, RegistryUnavailable
from streams.lifecycle import Command, Decision
from streams.topics import DLQ, EVENT_TOPIC, OUTCOME, PURPOSE, TopicSpec

__all__ = ["install_agents"]

log = logging.getLogger(__name__)


class DeadLetter(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def to_command(record: dict[str, Any]) -> Command:
    """The decoded envelope as a domain command (logical types back to plain values)."""
    name, payload = record["payload"]
    return Command(
        type=name.rsplit(".", 1)[-1],
        command_id=str(record["commandId"]),
        event_id=str(record["eventId"]),
        user_id=str(record["userId"]),
        occurred_at=int(record["occurredAt"].timestamp() * 1000),
        payload={k: (str(v) if k.endswith("Id") and v is not None else v)
                 for k, v in payload.items()},
    )


class CommandHandler:
    """Handles one message of a command topic from bytes to table, facts and outcome."""

    def __init__(self, pipeline: Pipeline, spec: TopicSpec) -> None:
        self.pipeline = pipeline
        self.spec = spec
        self.codec = pipeline.codec(spec)

    async def handle(self, event: EventT) -> None:
        message = event.message
        try:
            command = await self._decode(message.key, message.value)
            decision = self._decide(command)
        except DeadLetter as exc:
            await self._dead_letter(message, exc.code, exc.message)
            return
        if decision.changed and decision.state is not None:
            # Reassign (never mutate in place): each assignment is one changelog record.
            self.pipeline.events[command.event_id] = decision.state
        await self._emit(command, decision)

    async def _decode(self, key: bytes | None, value: bytes | None) -> Command:
        if not key:
            raise DeadLetter("NULL_KEY", "message has no key; commands are keyed by eventId")
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(RegistryUnavailable),
            wait=wait_exponential(multiplier=0.2, max=10),
            before_sleep=lambda s: log.warning("registry unavailable, retrying: %s",
                                               s.outcome.exception() if s.outcome else ""),
        ):
            with attempt:
                try:
                    record = self.codec.decode(value)
                except DecodeError as exc:
                    raise DeadLetter(exc.code, exc.message) from exc
        try:
            command = to_command(record)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DeadLetter("DECODE_ERROR", f"not a command envelope: {exc}") from exc
        if key.decode("utf-8", "replace") != command.event_id:
            raise DeadLetter("KEY_MISMATCH", f"key {key!r} is not eventId {command.event_id}")
        return command

    def _decide(self, command: Command) -> Decision:
        state = self.pipeline.events.get(command.event_id)
        try:
            return lifecycle.apply(state, command)
        except Exception as exc:  # a rule that cannot apply must not stall the partition
            log.exception("cannot apply %s %s", command.type, command.command_id)
            raise DeadLetter("APPLY_ERROR", f"{type(exc).__name__}: {exc}") from exc

    async def _emit(self, command: Command, decision: Decision) -> None:
        key = command.event_id.encode()
        if not decision.duplicate:
            facts = self.pipeline.topic(EVENT_TOPIC)
            fact_codec = self.pipeline.codec(EVENT_TOPIC)
            for fact in decision.facts:
                value = fact_codec.encode({
                    "messageId": command.command_id,
                    "payload": (f"eventpipe.events.{fact.type}", fact.payload),
                })
                await facts.send(key=key, value=value)
        outcome = {
            "commandId": command.command_id,
            "eventId": command.event_id,
            "userId": command.user_id,
            "commandType": command.type,
            "status": "ACCEPTED" if decision.accepted else "REJECTED",
            "code": decision.code.value if decision.code else None,
            "message": decision.message,
            "details": list(decision.details),
            "eventVersion": decision.version,
            "decidedAt": _now_ms(),
        }
        await self.pipeline.topic(OUTCOME).send(
            key=key, value=self.pipeline.codec(OUTCOME).encode(outcome)
        )

    async def _dead_letter(self, message: Any, code: str, reason: str) -> None:
        log.warning("dead letter %s[%s]@%s: %s %s", message.topic, message.partition,
                    message.offset, code, reason)
        value = self.pipeline.codec(DLQ).encode({
            "topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
            "key": message.key,
            "value": message.value,
            "errorCode": code,
            "errorMessage": reason,
            "failedAt": _now_ms(),
        })
        await self.pipeline.topic(DLQ).send(key=message.key, value=value)


def install_agents(pipeline: Pipeline) -> None:
    purpose = CommandHandler(pipeline, PURPOSE)

    @pipeline.app.agent(pipeline.topic(PURPOSE), name="purpose", concurrency=1)
    async def purpose_agent(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await purpose.handle(event)
