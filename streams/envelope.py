"""Between the envelopes on the topics and the domain: a decoded command envelope to a
`Command`, and a decision to the outcome and fact records that announce it. No Kafka or Faust
in it, so the agents, the API and the benchmark's Quix topology share one reading of it."""

from __future__ import annotations

import uuid
from typing import Any

from streams.lifecycle import Command, Decision, Fact
from streams.topics import AI_JOB, CONTENT_JOB, DISTRIBUTION_JOB, EVENT_TOPIC, TopicSpec

__all__ = ["FACT_TOPICS", "fact_record", "has_nul", "outcome_record", "to_command"]

# Where each fact of the lifecycle goes; event-topic's facts travel in its envelope.
FACT_TOPICS: dict[str, TopicSpec] = {
    "EventDraftCreated": EVENT_TOPIC,
    "EventCreated": EVENT_TOPIC,
    "AiJobRequested": AI_JOB,
    "ImageJobRequested": CONTENT_JOB,
    "DistributionRequested": DISTRIBUTION_JOB,
}


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
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(v) for v in value.values())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
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
        "status": "ACCEPTED" if decision.accepted else "REJECTED",
        "code": decision.code.value if decision.code else None,
        "message": decision.message,
        "details": list(decision.details),
        "eventVersion": decision.version,
        "decidedAt": decided_at_ms,
    }
