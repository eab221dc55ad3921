"""Events: create a draft, read, list, edit, discard."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from api.auth import CurrentUser
from api.errors import ApiError
from api.models import (
    COMMON_RESPONSES,
    Accepted,
    ErrorBody,
    EventPage,
    EventView,
    ListableStatus,
    PatchEventRequest,
    PurposeDraft,
    PurposeRequest,
)
from api.queries import redis_failed
from api.routers.common import dispatch, event_after, pending
from api.services import ServicesDep
from streams.topics import PURPOSE
from streams.vocabulary import OBJECTIVE_LABELS, ErrorCode, parse_objective

router = APIRouter(prefix="/api/events", tags=["events"], responses={
    **COMMON_RESPONSES,
})
_NOT_FOUND = {404: {"model": ErrorBody, "description": "EVENT_005"}}
_WRONG_STATE = {409: {"model": ErrorBody, "description": "EVENT_003"}}


@router.post("/purposes", status_code=201, response_model=PurposeDraft, responses={
    202: {"model": Accepted}, 400: {"model": ErrorBody, "description": "EVENT_001, EVENT_002"}})
async def select_purpose(body: PurposeRequest, user: CurrentUser, services: ServicesDep) -> Any:
    """Step 1: pick an objective; creates a DRAFT through the pipeline."""
    objective = parse_objective(body.objective)
    if objective is None:
        raise ApiError(ErrorCode.EVENT_001, details=[body.objective])
    store = {"storeName": body.storeName, "industry": body.industry, "address": body.address}
    missing = [name for name, value in store.items() if not (value or "").strip()]
    if missing:
        raise ApiError(ErrorCode.EVENT_002, details=missing)
    payload = {**store, "objective": objective.value,
               "storeId": str(body.storeId) if body.storeId else None}
    done = await dispatch(services, PURPOSE, str(uuid.uuid4()), user, "PurposeSelected", payload)
    if done.outcome is None:
        return pending(done.command_id, done.event_id)
    # Accepted means a new DRAFT of exactly this store (the rules strip the names): the
    # answer needs no read. The projector writes the state before it records the outcome,
    # in both stores, so a GET after this 201 finds the draft.
    return PurposeDraft(eventDraftId=done.event_id, objective=OBJECTIVE_LABELS[objective],
                        storeName=(body.storeName or "").strip(), status="DRAFT")


@router.get("", response_model=EventPage)
async def list_events(
    user: CurrentUser, services: ServicesDep,
    status: Annotated[ListableStatus | None, Query(description="only this status")] = None,
    page: Annotated[int, Query(ge=0, le=100_000, description="0-based")] = 0,
    size: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Any:
    """The caller's events, newest first (from PostgreSQL)."""
    items, total = await services.queries.events_of(user, status, page, size)
    return {"items": items, "page": page, "size": size, "total": total}


@router.get("/{eventId}", response_model=EventView, responses=_NOT_FOUND)
async def get_event(eventId: uuid.UUID, user: CurrentUser, services: ServicesDep,
                    request: Request) -> Any:
    """The event as the projections hold it (Redis, then PostgreSQL)."""
    # Mostly answered by api/fast_reads.py before FastAPI; this is every other case.
    doc = await services.queries.event_json(str(eventId), user,
                                            not redis_failed(request.scope))
    # Another user's event is as absent as a missing one.
    if doc is None:
        raise ApiError(ErrorCode.EVENT_005)
    # The stored JSON as it is (response_model documents it; a Response skips re-validation).
    return Response(doc, media_type="application/json")


@router.patch("/{eventId}", response_model=EventView, responses={
    202: {"model": Accepted}, 400: {"model": ErrorBody, "description": "EVENT_006"},
    **_NOT_FOUND, **_WRONG_STATE})
async def edit_draft(eventId: uuid.UUID, body: PatchEventRequest, user: CurrentUser,
                     services: ServicesDep) -> Any:
    """Edit a DRAFT: name, description, dates, channels."""
    if body.startDate and body.endDate and body.startDate > body.endDate:
        raise ApiError(ErrorCode.EVENT_006, details=[f"{body.startDate} > {body.endDate}"])
    payload = body.model_dump(include={"eventName", "description", "startDate", "endDate",
                                       "channels"})
    done = await dispatch(services, PURPOSE, str(eventId), user, "DraftUpdated", payload)
    return await event_after(services, done)


@router.delete("/{eventId}", status_code=204, response_class=Response, response_model=None,
               responses={202: {"model": Accepted}, **_NOT_FOUND, **_WRONG_STATE})
async def discard_draft(eventId: uuid.UUID, user: CurrentUser, services: ServicesDep) -> Any:
    """Throw a DRAFT away: it leaves both stores; its jobs' history stays."""
    done = await dispatch(services, PURPOSE, str(eventId), user, "DraftDiscarded",
                          {"reason": None})
    wait = services.settings.command_wait_seconds
    if done.outcome is None or not await services.queries.event_gone(done.event_id, wait):
        return pending(done.command_id, done.event_id)
    return Response(status_code=204)
