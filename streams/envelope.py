"""From a decoded command envelope to the domain's `Command`, with no Kafka or Faust in it,
so the agents, the API and the benchmark's Quix topology share one reading of it."""

from __future__ import annotations

import uuid
from typing import Any

from streams.lifecycle import Command

__all__ = ["has_nul", "to_command"]


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
    """The decoded envelope as a domain command."""
    name, payload = record["payload"]
    return Command(
        type=name.rsplit(".", 1)[-1],
        command_id=str(record["commandId"]),
        event_id=str(record["eventId"]),
        user_id=str(record["userId"]),
        occurred_at=int(record["occurredAt"].timestamp() * 1000),
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
