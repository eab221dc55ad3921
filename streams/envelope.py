"""The records on the topics, built and read in one place: the command envelope every
producer of commands sends (API, job timer, collaborators, benchmark), its reading as a
`Command`, the outcome and facts that announce a decision, and the dead letter. No Kafka or
Faust in it, so the processor, the API, the workers and the Quix benchmark share it."""

from __future__ import annotations

import time
import uuid
from typing import Any

from streams.lifecycle import Command, Decision, Fact
from streams.registry import record_namespace
from streams.topics import AI_JOB, CONTENT_JOB, DISTRIBUTION_JOB, EVENT_TOPIC, TopicSpec
from streams.vocabulary import OutcomeStatus

__all__ = [
    "FACT_TOPICS",
    "MAX_COMMAND_BYTES",
    "MAX_KEY_BYTES",
    "command_record",
    "dead_letter_record",
    "fact_record",
    "has_nul",
    "now_ms",
    "outcome_record",
    "to_command",
]

# What the processor accepts as a command; a dead letter keeps at most this much of one.
MAX_COMMAND_BYTES = 256 * 1024
MAX_KEY_BYTES = 1024  # keys are eventIds (36 bytes)

# Where each fact of the lifecycle goes; event-topic's facts travel in its envelope.
FACT_TOPICS: dict[str, TopicSpec] = {
    "EventDraftCreated": EVENT_TOPIC,
    "EventCreated": EVENT_TOPIC,
    "AiJobRequested": AI_JOB,
    "ImageJobRequested": CONTENT_JOB,
    "DistributionRequested": DISTRIBUTION_JOB,
}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def command_record(spec: TopicSpec, command_type: str, event_id: str, user_id: str,
                   payload: dict[str, Any], command_id: str | None = None,
                   occurred_at_ms: int | None = None) -> dict[str, Any]:
    """The envelope of one command on `spec`'s topic: a new commandId unless the producer
    derives one (a job's report, a timeout), stamped now unless told when."""
    return {
        "commandId": command_id or str(uuid.uuid4()),
        "eventId": event_id,
        "userId": user_id,
        "occurredAt": now_ms() if occurred_at_ms is None else occurred_at_ms,
        "payload": (f"{record_namespace(spec)}.{command_type}", payload),
    }


def dead_letter_record(topic: str, partition: int, offset: int, key: bytes | None,
                       value: bytes | None, code: str,
                       reason: str) -> tuple[bytes | None, dict[str, Any]]:
    """The DLQ's key and record for a message that cannot be applied, kept byte for byte
    up to the command limits (a bigger one is cut, and the reason says so)."""
    if len(key or b"") > MAX_KEY_BYTES or len(value or b"") > MAX_COMMAND_BYTES:
        reason += (f" (DLQ keeps the first {MAX_KEY_BYTES} bytes of the key and"
                   f" {MAX_COMMAND_BYTES} of the value; they had {len(key or b'')} and"
                   f" {len(value or b'')})")
        key = key[:MAX_KEY_BYTES] if key is not None else None
        value = value[:MAX_COMMAND_BYTES] if value is not None else None
    return key, {"topic": topic, "partition": partition, "offset": offset, "key": key,
                 "value": value, "errorCode": code, "errorMessage": reason,
                 "failedAt": now_ms()}


def _plain(value: Any) -> Any:
    """Avro logical values back to the JSON-ready values the state keeps (dates stay dates)."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def to_command(record: dict[str, Any]) -> Command:
    """The envelope as a domain command, decoded by `AvroCodec.read` (uuids as strings,
    timestamps as epoch millis) or by `decode` (as Python's uuids and datetimes)."""
    name, payload = record["payload"]
    occurred_at = record["occurredAt"]
    if isinstance(occurred_at, int):  # read plain: nothing to convert
        return Command(type=name.rsplit(".", 1)[-1], command_id=record["commandId"],
                       event_id=record["eventId"], user_id=record["userId"],
                       occurred_at=occurred_at, payload=payload)
    return Command(
        type=name.rsplit(".", 1)[-1],
        command_id=str(record["commandId"]),
        event_id=str(record["eventId"]),
        user_id=str(record["userId"]),
        occurred_at=int(occurred_at.timestamp() * 1000),
        payload=_plain(payload),
    )


def has_nul(value: Any) -> bool:
    """Whether any text in it holds NUL, which PostgreSQL text cannot store."""
    # Plain loops and exact types: run for every command, twice as fast as any() over
    # generators with isinstance (decoded Avro holds only plain str, dict and list).
    kind = type(value)
    if kind is str:
        return "\x00" in value
    if kind is dict:
        for item in value.values():
            if has_nul(item):
                return True
    elif kind is list:
        for item in value:
            if has_nul(item):
                return True
    return False


def fact_record(fact: Fact, command_id: str) -> tuple[TopicSpec, dict[str, Any]]:
    """The topic a fact goes to and its record there."""
    spec = FACT_TOPICS[fact.type]
    if spec is EVENT_TOPIC:
        return spec, {"messageId": command_id,
                      "payload": (f"eventpipe.events.{fact.type}", fact.payload)}
    return spec, fact.payload


def outcome_record(command: Command, decision: Decision, decided_at_ms: int) -> dict[str, Any]:
    """The outcome topic's record of a decision."""
    return {
        "commandId": command.command_id,
        "eventId": command.event_id,
        "userId": command.user_id,
        "commandType": command.type,
        "status": (OutcomeStatus.ACCEPTED if decision.accepted else OutcomeStatus.REJECTED).value,
        "code": decision.code.value if decision.code else None,
        "message": decision.message,
        "details": list(decision.details),
        "eventVersion": decision.version,
        "decidedAt": decided_at_ms,
    }
