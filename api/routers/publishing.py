"""Publish a ready DRAFT, end a PUBLISHED event."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body

from api.auth import CurrentUser
from api.models import (
    EVENT_RESPONSES,
    Accepted,
    ErrorBody,
    EventView,
    PublishRequest,
    PublishResult,
)
from api.routers.common import dispatch, event_after
from api.services import ServicesDep
from streams.topics import PUBLISH

router = APIRouter(prefix="/api/events/{eventId}", tags=["publishing"], responses={
    **EVENT_RESPONSES,
    202: {"model": Accepted},
    409: {"model": ErrorBody, "description": "EVENT_003, EVENT_004 (details: what is missing)"},
})


@router.post("/publish", response_model=PublishResult,
             responses={400: {"model": ErrorBody, "description": "EVENT_006"}})
async def publish(eventId: uuid.UUID, user: CurrentUser, services: ServicesDep,
                  body: Annotated[PublishRequest | None, Body()] = None) -> Any:
    """Publish to the chosen channels (default: the draft's); distribution follows."""
    channels = [c.value for c in dict.fromkeys(body.channels)] if body and body.channels else None
    done = await dispatch(services, PUBLISH, str(eventId), user, "PublishRequested",
                          {"channels": channels})
    doc = await event_after(services, done)
    if not isinstance(doc, dict):
        return doc
    return {"eventId": doc["eventId"], "status": doc["status"],
            "distributionResults": doc["distributionResults"]}


@router.post("/end", response_model=EventView)
async def end(eventId: uuid.UUID, user: CurrentUser, services: ServicesDep) -> Any:
    """End a PUBLISHED event."""
    done = await dispatch(services, PUBLISH, str(eventId), user, "EventEndRequested",
                          {"reason": None})
    return await event_after(services, done)
