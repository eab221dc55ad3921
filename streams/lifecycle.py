"""The event state machine as plain functions over plain data: no Kafka here. An event is a
DRAFT, then PUBLISHED, then ENDED; a DRAFT may be discarded.

`apply(state, command)` returns a `Decision`: the next state (or the same one), the command's
outcome, and the facts to announce. States are JSON-ready dicts, replaced, never mutated, so
the agent can assign them to the changelog-backed table as they are. Everything derives from
the command (its `occurredAt` included), never from the clock, so a replay decides the same.

A collaborator's report that cannot apply (a result for a job this event never had) raises
`Inapplicable`: it is not a user's mistake to answer but a message for the dead-letter queue.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from streams.vocabulary import (
    TEXT_LIMITS,
    ErrorCode,
    EventStatus,
    JobStatus,
    JobType,
    error_message,
)

__all__ = [
    "Command",
    "Decision",
    "Fact",
    "Inapplicable",
    "apply",
    "publish_blockers",
    "store_id_for",
]

EventState = dict[str, Any]
RECENT_COMMANDS_KEPT = 64  # commandIds remembered per event, for idempotence
RECOMMENDATIONS_PER_JOB = 3
_STORE_NAMESPACE = uuid.UUID("5b0f6a0e-4f0c-4a7b-9a53-7f3d1f1e2c10")
AI_RECOMMENDATION = JobType.AI_RECOMMENDATION.value
IMAGE_GENERATION = JobType.IMAGE_GENERATION.value
_PENDING, _PROCESSING = JobStatus.PENDING.value, JobStatus.PROCESSING.value
_COMPLETED, _FAILED = JobStatus.COMPLETED.value, JobStatus.FAILED.value
FINISHED_JOB = frozenset({_COMPLETED, _FAILED})


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
    """Something to announce, named by its record (EventCreated, AiJobRequested, ...)."""

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


class Inapplicable(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def store_id_for(user_id: str, store_name: str) -> str:
    """A stable store id when the caller has none (the ERD requires one)."""
    return str(uuid.uuid5(_STORE_NAMESPACE, f"{user_id}:{store_name.strip()}"))


# ------------------------------------------------------------------ outcomes

def _reject(state: EventState | None, code: ErrorCode, *details: str) -> Decision:
    return Decision(state, accepted=False, code=code, message=error_message(code),
                    details=tuple(details))


def _unchanged(state: EventState, cmd: Command) -> Decision:
    """Accepted, but nothing to change (a late or repeated report)."""
    return Decision(state, accepted=True)


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


def _require_draft(state: EventState) -> Decision | None:
    if state["status"] != EventStatus.DRAFT:
        return _reject(state, ErrorCode.EVENT_003, f"status is {state['status']}")
    return None


# ------------------------------------------------------------------ the draft

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
        "recommendations": [],
        "trendAnalysis": None,
        "images": [],
        "jobs": {},
        "selectedRecommendationId": None,
        "selectedImageId": None,
        "selectedImageUrl": None,
        "distributionResults": [],
        "createdAt": cmd.occurred_at,
        "publishedAt": None,
        "endedAt": None,
        "version": 0,
    }
    fact = Fact("EventDraftCreated", {
        "eventDraftId": cmd.event_id,
        "userId": cmd.user_id,
        "objective": p["objective"],
        "createdAt": cmd.occurred_at,
    })
    return _accept(created, cmd, {}, fact)


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _update_draft(state: EventState, cmd: Command) -> Decision:
    if (rejected := _require_draft(state)) is not None:
        return rejected
    changes = {k: _iso(v) for k, v in cmd.payload.items() if v is not None}
    start = changes.get("startDate", state.get("startDate"))
    end = changes.get("endDate", state.get("endDate"))
    if start and end and start > end:  # ISO dates order as strings
        return _reject(state, ErrorCode.EVENT_006, f"{start} > {end}")
    if "channels" in changes:
        changes["channels"] = list(dict.fromkeys(changes["channels"]))  # keep order, no repeats
    return _accept(state, cmd, changes)


def _discard_draft(state: EventState, cmd: Command) -> Decision:
    if (rejected := _require_draft(state)) is not None:
        return rejected
    return _accept(state, cmd, {"status": EventStatus.DISCARDED.value})


# ------------------------------------------------------------------ jobs

def _job(state: EventState, job_id: str, job_type: str) -> dict[str, Any]:
    job = (state.get("jobs") or {}).get(job_id)
    if job is None or job["jobType"] != job_type:
        raise Inapplicable("UNKNOWN_JOB", f"{job_type} job {job_id} is not one of this event's")
    return job


def _with_job(state: EventState, job: dict[str, Any]) -> dict[str, Any]:
    return {"jobs": {**(state.get("jobs") or {}), job["jobId"]: job}}


def _new_job(cmd: Command, job_type: str) -> dict[str, Any]:
    return {"jobId": cmd.payload["jobId"], "jobType": job_type, "status": _PENDING,
            "progress": 0, "error": None, "createdAt": cmd.occurred_at,
            "updatedAt": cmd.occurred_at, "completedAt": None}


def _request_recommendations(state: EventState, cmd: Command) -> Decision:
    if (rejected := _require_draft(state)) is not None:
        return rejected
    job = _new_job(cmd, AI_RECOMMENDATION)
    fact = Fact("AiJobRequested", {
        "jobId": job["jobId"], "eventId": cmd.event_id, "userId": cmd.user_id,
        "objective": state["objective"], "storeName": state["storeName"],
        "industry": state["industry"], "region": state["address"],
        "requestedAt": cmd.occurred_at,
    })
    return _accept(state, cmd, _with_job(state, job), fact)


def _request_images(state: EventState, cmd: Command) -> Decision:
    if (rejected := _require_draft(state)) is not None:
        return rejected
    job = _new_job(cmd, IMAGE_GENERATION)
    fact = Fact("ImageJobRequested", {
        "jobId": job["jobId"], "eventId": cmd.event_id, "userId": cmd.user_id,
        "storeName": state["storeName"], "eventName": state.get("eventName"),
        "description": state.get("description"),
        "styles": list(dict.fromkeys(cmd.payload["styles"])),
        "platforms": list(dict.fromkeys(cmd.payload["platforms"])),
        "requestedAt": cmd.occurred_at,
    })
    return _accept(state, cmd, _with_job(state, job), fact)


def _progress(job_type: str) -> Callable[[EventState, Command], Decision]:
    def handle(state: EventState, cmd: Command) -> Decision:
        job = _job(state, cmd.payload["jobId"], job_type)
        progress = max(0, min(100, int(cmd.payload["progress"])))
        if job["status"] in FINISHED_JOB or progress < job["progress"]:
            return _unchanged(state, cmd)  # never backwards
        job = {**job, "status": _PROCESSING, "progress": progress, "updatedAt": cmd.occurred_at}
        return _accept(state, cmd, _with_job(state, job))
    return handle


def _failed(job_type: str) -> Callable[[EventState, Command], Decision]:
    def handle(state: EventState, cmd: Command) -> Decision:
        job = _job(state, cmd.payload["jobId"], job_type)
        if job["status"] in FINISHED_JOB:
            return _unchanged(state, cmd)
        job = {**job, "status": _FAILED, "error": cmd.payload["error"],
               "updatedAt": cmd.occurred_at, "completedAt": cmd.occurred_at}
        return _accept(state, cmd, _with_job(state, job))
    return handle


def _completed(job: dict[str, Any], cmd: Command) -> dict[str, Any]:
    return {**job, "status": _COMPLETED, "progress": 100, "error": None,
            "updatedAt": cmd.occurred_at, "completedAt": cmd.occurred_at}


def _recommendations_generated(state: EventState, cmd: Command) -> Decision:
    job = _job(state, cmd.payload["jobId"], AI_RECOMMENDATION)
    if job["status"] in FINISHED_JOB or state["status"] != EventStatus.DRAFT:
        return _unchanged(state, cmd)  # too late: timed out, or the event moved on
    items = cmd.payload["recommendations"]
    if len(items) != RECOMMENDATIONS_PER_JOB:
        expected = RECOMMENDATIONS_PER_JOB
        raise Inapplicable("INVALID_RESULT", f"{len(items)} recommendations, not {expected}")
    # A new generation replaces the old set, and with it the old selection.
    return _accept(state, cmd, {
        **_with_job(state, _completed(job, cmd)),
        "recommendations": [dict(r) for r in items],
        "trendAnalysis": dict(cmd.payload["trendAnalysis"]),
        "selectedRecommendationId": None,
    })


def _images_generated(state: EventState, cmd: Command) -> Decision:
    job = _job(state, cmd.payload["jobId"], IMAGE_GENERATION)
    if job["status"] in FINISHED_JOB or state["status"] != EventStatus.DRAFT:
        return _unchanged(state, cmd)
    return _accept(state, cmd, {
        **_with_job(state, _completed(job, cmd)),
        "images": [*state.get("images", []),
                   *({**i, "jobId": job["jobId"]} for i in cmd.payload["images"])],
    })


def _select_recommendation(state: EventState, cmd: Command) -> Decision:
    if (rejected := _require_draft(state)) is not None:
        return rejected
    chosen = next((r for r in state.get("recommendations", [])
                   if r["recommendationId"] == cmd.payload["recommendationId"]), None)
    if chosen is None:
        return _reject(state, ErrorCode.EVENT_005, "recommendationId")
    return _accept(state, cmd, {
        "selectedRecommendationId": chosen["recommendationId"],
        "eventName": cmd.payload.get("eventName") or state.get("eventName") or chosen["title"],
        "description": (cmd.payload.get("description") or state.get("description")
                        or chosen["description"]),
    })


def _select_image(state: EventState, cmd: Command) -> Decision:
    if (rejected := _require_draft(state)) is not None:
        return rejected
    chosen = next((i for i in state.get("images", [])
                   if i["imageId"] == cmd.payload["imageId"]), None)
    if chosen is None:
        return _reject(state, ErrorCode.EVENT_005, "imageId")
    return _accept(state, cmd, {"selectedImageId": chosen["imageId"],
                                "selectedImageUrl": chosen["imageUrl"]})


# ------------------------------------------------------------------ publish and end

def publish_blockers(state: EventState, channels: list[str]) -> list[str]:
    """What a DRAFT still lacks to be published: each missing item by name."""
    missing = []
    if not state.get("objective"):
        missing.append("objective")
    if not state.get("selectedRecommendationId"):
        missing.append("selectedRecommendation")
    if not state.get("selectedImageId"):
        missing.append("selectedImage")
    if not channels:
        missing.append("channels")
    if not state.get("startDate"):
        missing.append("startDate")
    if not state.get("endDate"):
        missing.append("endDate")
    return missing


def _publish(state: EventState, cmd: Command) -> Decision:
    if (rejected := _require_draft(state)) is not None:
        return rejected
    channels = list(dict.fromkeys(cmd.payload.get("channels") or state.get("channels") or []))
    missing = publish_blockers(state, channels)
    if missing:
        return _reject(state, ErrorCode.EVENT_004, *missing)
    if state["startDate"] > state["endDate"]:
        return _reject(state, ErrorCode.EVENT_006, f"{state['startDate']} > {state['endDate']}")
    title = state.get("eventName") or state["storeName"]
    created = Fact("EventCreated", {
        "eventId": cmd.event_id, "userId": cmd.user_id, "title": title,
        "objective": state["objective"], "createdAt": cmd.occurred_at,
    })
    distribute = Fact("DistributionRequested", {
        "eventId": cmd.event_id, "userId": cmd.user_id, "title": title,
        "description": state.get("description"), "imageUrl": state.get("selectedImageUrl"),
        "channels": channels, "startDate": date.fromisoformat(state["startDate"]),
        "endDate": date.fromisoformat(state["endDate"]), "requestedAt": cmd.occurred_at,
    })
    return _accept(state, cmd, {
        "status": EventStatus.PUBLISHED.value,
        "channels": channels,
        "publishedAt": cmd.occurred_at,
        "distributionResults": [{"channel": c, "status": "PENDING", "message": None}
                                for c in channels],
    }, created, distribute)


def _distribution_completed(state: EventState, cmd: Command) -> Decision:
    if state["status"] == EventStatus.DRAFT:
        raise Inapplicable("UNEXPECTED_RESULT", "distribution result for an unpublished event")
    return _accept(state, cmd, {"distributionResults": [dict(r) for r in cmd.payload["results"]]})


def _end(state: EventState, cmd: Command) -> Decision:
    if state["status"] != EventStatus.PUBLISHED:
        return _reject(state, ErrorCode.EVENT_003, f"status is {state['status']}")
    return _accept(state, cmd, {"status": EventStatus.ENDED.value, "endedAt": cmd.occurred_at})


_HANDLERS: dict[str, Callable[[EventState, Command], Decision]] = {
    "DraftUpdated": _update_draft,
    "DraftDiscarded": _discard_draft,
    "RecommendationRequested": _request_recommendations,
    "RecommendationJobProgress": _progress(AI_RECOMMENDATION),
    "RecommendationsGenerated": _recommendations_generated,
    "RecommendationJobFailed": _failed(AI_RECOMMENDATION),
    "RecommendationSelected": _select_recommendation,
    "ImageGenerationRequested": _request_images,
    "ImageJobProgress": _progress(IMAGE_GENERATION),
    "ImagesGenerated": _images_generated,
    "ImageJobFailed": _failed(IMAGE_GENERATION),
    "ImageSelected": _select_image,
    "PublishRequested": _publish,
    "DistributionCompleted": _distribution_completed,
    "EventEndRequested": _end,
}


def _check_text_limits(value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            limit = TEXT_LIMITS.get(key)
            if limit is not None and isinstance(item, str) and len(item) > limit:
                raise Inapplicable("INVALID_TEXT", f"{key} has {len(item)} characters, "
                                                   f"at most {limit}")
            _check_text_limits(item)
    elif isinstance(value, list):
        for item in value:
            _check_text_limits(item)


def apply(state: EventState | None, cmd: Command) -> Decision:
    """Decide one command against the event's current state."""
    if state is not None and cmd.command_id in state.get("recentCommands", ()):
        return Decision(state, accepted=True, duplicate=True)
    _check_text_limits(cmd.payload)
    if cmd.type == "PurposeSelected":
        return _select_purpose(state, cmd)
    handler = _HANDLERS.get(cmd.type)
    if handler is None:
        raise Inapplicable("UNKNOWN_COMMAND", f"no rule for {cmd.type}")
    # Another user's event answers exactly like a missing one (never reveal it exists).
    if state is None or state["userId"] != cmd.user_id or state["status"] == EventStatus.DISCARDED:
        return _reject(None, ErrorCode.EVENT_005)
    return handler(state, cmd)
