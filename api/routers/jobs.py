"""Job status as the shop owner's app polls it: progress, then results or the error."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response

from api.auth import CurrentUser
from api.errors import ApiError
from api.models import COMMON_RESPONSES, ErrorBody, JobView
from api.queries import redis_failed
from api.services import ServicesDep
from sinks.documents import job_status_body
from streams.vocabulary import ErrorCode

router = APIRouter(prefix="/api/events/jobs", tags=["jobs"], responses={
    **COMMON_RESPONSES,
})

@router.get("/{jobId}/status", response_model=JobView, response_model_exclude_none=True,
            responses={404: {"model": ErrorBody, "description": "JOB_001"}})
async def job_status(jobId: uuid.UUID, user: CurrentUser, services: ServicesDep,
                     request: Request) -> Any:
    """PENDING/PROCESSING with a message; COMPLETED with the results; FAILED with the error."""
    use_redis = not redis_failed(request.scope)
    job = await services.queries.job(str(jobId), use_redis)
    if job is None or job["userId"] != user:
        raise ApiError(ErrorCode.JOB_001)
    event = None
    if job["status"] == "COMPLETED":
        found = await services.queries.event(job["eventId"], use_redis)
        event = found[0] if found else None
    return Response(job_status_body(job, event), media_type="application/json")
