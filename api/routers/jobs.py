"""Job status as the shop owner's app polls it: progress, then results or the error."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from api.auth import CurrentUser
from api.errors import ApiError
from api.models import COMMON_RESPONSES, ErrorBody, JobView
from api.queries import redis_failed
from api.services import ServicesDep
from streams.vocabulary import ErrorCode

router = APIRouter(prefix="/api/events/jobs", tags=["jobs"], responses={
    **COMMON_RESPONSES,
})

RUNNING_MESSAGE = {"AI_RECOMMENDATION": "AI가 분석 중입니다",
                   "IMAGE_GENERATION": "이미지를 생성 중입니다"}
FAILED_MESSAGE = "다시 시도해주세요"


def job_status_body(job: dict[str, Any], event: dict[str, Any] | None) -> bytes:
    """Seed 004's body from the job's projection and, for a COMPLETED job, its event's
    document (None when there is none); built from the projection's fields, so the model
    (which documents it) is not run again. Shared with the fast path (api/fast_reads.py)."""
    body: dict[str, Any] = {k: job[k] for k in ("jobId", "jobType", "status", "progress")}
    if job["status"] in ("PENDING", "PROCESSING"):
        body["message"] = RUNNING_MESSAGE[job["jobType"]]
    elif job["status"] == "FAILED":
        body["error"] = job["error"] or "작업 실패"
        body["message"] = FAILED_MESSAGE
    else:
        doc = event or {"recommendations": [], "images": []}
        if job["jobType"] == "AI_RECOMMENDATION":
            body["recommendations"] = doc["recommendations"]
            if doc.get("trendAnalysis") is not None:
                body["trendAnalysis"] = doc["trendAnalysis"]
        else:
            body["images"] = [i for i in doc["images"] if i.get("jobId") == job["jobId"]]
    return orjson.dumps(body)


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
