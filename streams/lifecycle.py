"""The event state machine (SPEC 4) as plain functions over plain data: no Kafka here.

`apply(state, command)` returns a `Decision`: the next state (or the same one), the command's
outcome, and the facts to announce. States are JSON-ready dicts, replaced, never mutated, so
the agent can assign them to the changelog-backed table as they are. Everything derives from
the command (its `occurredAt` included), never from the clock, so a replay decides the same.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from streams.vocabulary import ErrorCode, EventStatus, error_message

__all__ = ["Command", "Decision", "Fact", "apply", "store_id_for"]

EventState = dict[str, Any]
RECENT_COMMANDS_KEPT = 64  # commandIds remembered per event, for idempotence
_STORE_NAMESPACE = uuid.UUID("5b0f6a0e-4f0c-4a7b-9a53-7f3d1f1e2c10")


@dataclass(frozen=True)
class Command:
    type: str  # Avro record name without namespace, e.g. "PurposeSelected"
    command_id: str
    event_id: str
    user_id: str
    occurred_at: int  # epoch millis
    payload: dict[str, Any]


@dataclass(frozen=True)
class Fact:
    """Something to announce on event-topic: (record name, payload)."""

    type: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Decision:
    state: EventState | None  # the state after the command (None: no such event)
    accepted: bool
    changed: bool = False  # assign `state` to the table
    duplicate: bool = False  # seen this commandId before: no second effect
    code: ErrorCode | None = None
    message: str | None = None
    details: tuple[str, ...] = ()
    facts: tuple[Fact, ...] = field(default_factory=tuple)

    @property
    def version(self) -> int:
        return int(self.state["version"]) if self.state else 0


def store_id_for(user_id: str, store_name: str) -> str:
    """A stable store id when the caller has none (the ERD requires one)."""
    return str(uuid.uuid5(_STORE_NAMESPACE, f"{user_id}:{store_name.strip()}"))


def _reject(state: EventState | None, code: ErrorCode, *details: str) -> Decision:
    return Decision(state, accepted=False, code=code, message=error_message(code),
                    details=tuple(details))


def _accept(state: EventState, cmd: Command, changes: dict[str, Any],
            *facts: Fact) -> Decision:
    recent = [*state.get("recentCommands", []), cmd.command_id][-RECENT_COMMANDS_KEPT:]
    new_state = {
        **state,
        **changes,
        "version": int(state.get("version", 0)) + 1,
        "updatedAt": cmd.occurred_at,
        "recentCommands": recent,
    }
    return Decision(new_state, accepted=True, changed=True, facts=facts)


def _select_purpose(state: EventState | None, cmd: Command) -> Decision:
    if state is not None:
        return _reject(state, ErrorCode.EVENT_003, "event already exists")
    p = cmd.payload
    missing = [name for name in ("storeName", "industry", "address")
               if not str(p.get(name) or "").strip()]
    if missing:
        return _reject(None, ErrorCode.EVENT_002, *missing)
    created = {
        "eventId": cmd.event_id,
        "userId": cmd.user_id,
        "storeId": p.get("storeId") or store_id_for(cmd.user_id, p["storeName"]),
        "status": EventStatus.DRAFT.value,
        "objective": p["objective"],
        "storeName": p["storeName"].strip(),
        "industry": p["industry"].strip(),
        "address": p["address"].strip(),
        "eventName": None,
        "description": None,
        "startDate": None,
        "endDate": None,
        "channels": [],
        "createdAt": cmd.occurred_at,
        "version": 0,
    }
    fact = Fact("EventDraftCreated", {
        "eventDraftId": cmd.event_id,
        "userId": cmd.user_id,
        "objective": p["objective"],
        "createdAt": cmd.occurred_at,
    })
    return _accept(created, cmd, {}, fact)


def _update_draft(state: EventState, cmd: Command) -> Decision:
    if state["status"] != EventStatus.DRAFT:
        return _reject(state, ErrorCode.EVENT_003, f"status is {state['status']}")
    changes = {k: v for k, v in cmd.payload.items() if v is not None}
    for key in ("startDate", "endDate"):
        if isinstance(changes.get(key), date):
            changes[key] = changes[key].isoformat()
    start = changes.get("startDate", state.get("startDate"))
    end = changes.get("endDate", state.get("endDate"))
    if start and end and start > end:  # ISO dates order as strings
        return _reject(state, ErrorCode.EVENT_006, f"{start} > {end}")
    if "channels" in changes:
        changes["channels"] = list(dict.fromkeys(changes["channels"]))  # keep order, drop repeats
    return _accept(state, cmd, changes)


def _discard_draft(state: EventState, cmd: Command) -> Decision:
    if state["status"] != EventStatus.DRAFT:
        return _reject(state, ErrorCode.EVENT_003, f"status is {state['status']}")
    return _accept(state, cmd, {"status": EventStatus.DISCARDED.value})


_HANDLERS: dict[str, Callable[[EventState, Command], Decision]] = {
    "DraftUpdated": _update_draft,
    "DraftDiscarded": _discard_draft,
}


def apply(state: EventState | None, cmd: Command) -> Decision:
    """Decide one command against the event's current state."""
    if state is not None and cmd.command_id in state.get("recentCommands", ()):
        return Decision(state, accepted=True, duplicate=True)
    if cmd.type == "PurposeSelected":
        return _select_purpose(state, cmd)
    # Another user's event answers exactly like a missing one (never reveal it exists).
    if state is None or state["userId"] != cmd.user_id or state["status"] == EventStatus.DISCARDED:
        return _reject(None, ErrorCode.EVENT_005)
    handler = _HANDLERS.get(cmd.type)
    if handler is None:
        raise ValueError(f"no rule for command {cmd.type}")
    return handler(state, cmd)
