"""What every command route does: produce, wait for the outcome, answer with it."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse

from api.commands import Outcome
from api.errors import ApiError
from api.metrics import record_phase
from api.models import Accepted
from api.services import Services
from streams.topics import TopicSpec
from streams.vocabulary import ErrorCode

__all__ = ["Dispatched", "dispatch", "event_after", "pending", "start_job"]


@dataclass(frozen=True)
class Dispatched:
    command_id: str
    event_id: str
    outcome: Outcome | None  # None: not decided within the wait


def pending(command_id: str, event_id: str, **extra: Any) -> JSONResponse:
    """202: the command is in the pipeline; its outcome comes later."""
    body = {**Accepted(commandId=command_id, eventId=event_id).model_dump(), **extra}
    return JSONResponse(body, status_code=202)


async def dispatch(services: Services, spec: TopicSpec, event_id: str, user: str,
                   command_type: str, payload: dict[str, Any]) -> Dispatched:
    """Produce one command and wait for its outcome; a rejection is raised as its error."""
    command_id, outcome = await services.commands.submit(
        spec, event_id, user, command_type, payload, services.settings.command_wait_seconds)
    if outcome is not None and not outcome.accepted:
        raise ApiError(outcome.code or ErrorCode.EVENT_003, outcome.message,
                       outcome.details or None)
    return Dispatched(command_id, event_id, outcome)


async def start_job(services: Services, spec: TopicSpec, event_id: str, user: str,
                    command_type: str, payload: dict[str, Any]) -> JSONResponse:
    """Request a job: 202 with its id once the pipeline has accepted it (or is deciding)."""
    job_id = str(uuid.uuid4())
    done = await dispatch(services, spec, event_id, user, command_type,
                          {"jobId": job_id, **payload})
    if done.outcome is None:
        return pending(done.command_id, done.event_id, jobId=job_id)
    return JSONResponse({"jobId": job_id, "status": "PENDING"}, status_code=202)


async def event_after(services: Services, done: Dispatched) -> dict[str, Any] | JSONResponse:
    """The event as the projection holds it once it has the command's effect (or a 202)."""
    if done.outcome is None:
        return pending(done.command_id, done.event_id)
    started = time.perf_counter()
    doc = await services.queries.event_at_least(
        done.event_id, done.outcome.event_version, services.settings.command_wait_seconds)
    record_phase("projection", time.perf_counter() - started)
    if doc is None:
        return pending(done.command_id, done.event_id)
    return doc
