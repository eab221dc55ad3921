"""Event commands and queries (SPEC 6)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from api.auth import CurrentUser
from api.commands import Outcome
from api.errors import ApiError
from api.models import Accepted, ErrorBody, EventView, PurposeDraft, PurposeRequest
from api.services import ServicesDep
from streams.topics import PURPOSE
from streams.vocabulary import OBJECTIVE_LABELS, ErrorCode, parse_objective

router = APIRouter(prefix="/api/events", tags=["events"], responses={
    401: {"model": ErrorBody, "description": "AUTH_001"},
    422: {"model": ErrorBody, "description": "VALIDATION_ERROR"},
})

EventId = Path(description="the event's UUID")


def _rejected(outcome: Outcome) -> ApiError:
    return ApiError(outcome.code or ErrorCode.EVENT_003, outcome.message, outcome.details)


def _pending(command_id: str, event_id: str) -> JSONResponse:
    body = Accepted(commandId=command_id, eventId=event_id)
    return JSONResponse(body.model_dump(), status_code=202)


@router.post(
    "/purposes",
    status_code=201,
    response_model=PurposeDraft,
    responses={202: {"model": Accepted}, 400: {"model": ErrorBody,
                                              "description": "EVENT_001, EVENT_002"}},
)
async def select_purpose(body: PurposeRequest, user: CurrentUser, services: ServicesDep) -> Any:
    """Step 1 (seed 001): pick an objective; creates a DRAFT through the pipeline."""
    objective = parse_objective(body.objective)
    if objective is None:
        raise ApiError(ErrorCode.EVENT_001, details=[body.objective])
    store = {"storeName": body.storeName, "industry": body.industry, "address": body.address}
    missing = [name for name, value in store.items() if not (value or "").strip()]
    if missing:
        raise ApiError(ErrorCode.EVENT_002, details=missing)
    event_id = str(uuid.uuid4())
    payload = {**store, "objective": objective.value,
               "storeId": str(uuid.UUID(body.storeId)) if body.storeId else None}
    wait = services.settings.command_wait_seconds
    command_id, outcome = await services.commands.submit(
        PURPOSE, event_id, user, "PurposeSelected", payload, wait)
    if outcome is None:
        return _pending(command_id, event_id)
    if not outcome.accepted:
        raise _rejected(outcome)
    doc = await services.queries.event_at_least(event_id, outcome.event_version, wait)
    if doc is None:
        return _pending(command_id, event_id)
    return PurposeDraft(eventDraftId=event_id, objective=OBJECTIVE_LABELS[objective],
                        storeName=doc["storeName"], status=doc["status"])


@router.get("/commands/{commandId}", responses={404: {"model": ErrorBody}})
async def command_outcome(commandId: uuid.UUID, user: CurrentUser,
                          services: ServicesDep) -> dict[str, Any]:
    """The outcome of an accepted command (after a 202)."""
    outcome = await services.waiter.read(str(commandId))
    if outcome is None or outcome.user_id != user:
        raise ApiError("COMMAND_001", "명령을 찾을 수 없습니다 (아직 처리 중일 수 있습니다)",
                       status=404)
    return {
        "commandId": outcome.command_id, "eventId": outcome.event_id,
        "commandType": outcome.command_type, "status": outcome.status,
        "code": outcome.code, "message": outcome.message, "details": outcome.details,
    }


@router.get("/{eventId}", response_model=EventView,
            responses={404: {"model": ErrorBody, "description": "EVENT_005"}})
async def get_event(user: CurrentUser, services: ServicesDep,
                    eventId: uuid.UUID = EventId) -> Any:
    """The event as the projections hold it (Redis, then PostgreSQL)."""
    found = await services.queries.event(str(eventId))
    # Another user's event is as absent as a missing one.
    if found is None or found[0]["userId"] != user:
        raise ApiError(ErrorCode.EVENT_005)
    return found[0]
