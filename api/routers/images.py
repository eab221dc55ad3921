"""Images: generate one per (style, platform), pick one."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from api.auth import CurrentUser
from api.models import (
    EVENT_RESPONSES,
    Accepted,
    ContentGenerationRequest,
    EventView,
    JobAccepted,
)
from api.routers.common import dispatch, event_after, start_job
from api.services import ServicesDep
from streams.topics import IMAGE

router = APIRouter(prefix="/api/events/{eventId}", tags=["images"], responses=EVENT_RESPONSES)


@router.post("/content-generation", status_code=202, response_model=JobAccepted)
async def generate_images(eventId: uuid.UUID, body: ContentGenerationRequest, user: CurrentUser,
                          services: ServicesDep) -> Any:
    """Start an IMAGE_GENERATION job; poll GET /api/events/jobs/{jobId}/status."""
    payload = {"styles": list(dict.fromkeys(body.styles)),
               "platforms": [p.value for p in dict.fromkeys(body.platforms)]}
    return await start_job(services, IMAGE, str(eventId), user, "ImageGenerationRequested",
                           payload)


@router.put("/images/{imageId}/select", response_model=EventView,
            responses={202: {"model": Accepted}})
async def select_image(eventId: uuid.UUID, imageId: uuid.UUID, user: CurrentUser,
                       services: ServicesDep) -> Any:
    """Pick the event's image."""
    done = await dispatch(services, IMAGE, str(eventId), user, "ImageSelected",
                          {"imageId": str(imageId)})
    return await event_after(services, done)
