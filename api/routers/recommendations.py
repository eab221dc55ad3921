"""AI recommendations: ask for three, pick one."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body

from api.auth import CurrentUser
from api.models import (
    EVENT_RESPONSES,
    Accepted,
    EventView,
    JobAccepted,
    RecommendationRequest,
    SelectRecommendationRequest,
)
from api.routers.common import dispatch, event_after, start_job
from api.services import ServicesDep
from streams.topics import RECOMMENDATION

router = APIRouter(prefix="/api/events/{eventId}", tags=["recommendations"],
                   responses=EVENT_RESPONSES)


@router.post("/ai-recommendations", status_code=202, response_model=JobAccepted)
async def request_recommendations(
    eventId: uuid.UUID, user: CurrentUser, services: ServicesDep,
    _body: Annotated[RecommendationRequest | None, Body()] = None,
) -> Any:
    """Start an AI_RECOMMENDATION job (the draft's objective and store are used); poll
    GET /api/events/jobs/{jobId}/status."""
    return await start_job(services, RECOMMENDATION, str(eventId), user,
                           "RecommendationRequested", {})


@router.put("/recommendations", response_model=EventView, responses={202: {"model": Accepted}})
async def select_recommendation(eventId: uuid.UUID, body: SelectRecommendationRequest,
                                user: CurrentUser, services: ServicesDep) -> Any:
    """Pick one of the three, optionally renaming and describing the event."""
    payload = {"recommendationId": str(body.recommendationId), "eventName": body.eventName,
               "description": body.description}
    done = await dispatch(services, RECOMMENDATION, str(eventId), user,
                          "RecommendationSelected", payload)
    return await event_after(services, done)
