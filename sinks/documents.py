"""The event as the API shows it, made from an event state in one place: by the projector
for Redis, and by the API's PostgreSQL read path from the state its rows hold
(`sinks.postgres.read_state`) when Redis misses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from streams.vocabulary import OBJECTIVE_LABELS, Objective

__all__ = ["event_document", "image_view", "iso_ms", "job_status_body", "job_view",
           "objective_label"]


def iso_ms(epoch_ms: int | None) -> str | None:
    if epoch_ms is None:
        return None
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds")


def objective_label(code: str) -> str:
    return OBJECTIVE_LABELS[Objective(code)]


def job_view(job: dict[str, Any]) -> dict[str, Any]:
    return {"jobId": job["jobId"], "jobType": job["jobType"], "status": job["status"],
            "progress": job["progress"], "error": job.get("error")}


def image_view(image: dict[str, Any], selected_id: str | None) -> dict[str, Any]:
    return {"imageId": image["imageId"], "imageUrl": image["imageUrl"],
            "style": image["style"], "platform": image["platform"],
            "isSelected": image["imageId"] == selected_id, "jobId": image.get("jobId")}


def event_document(state: dict[str, Any]) -> dict[str, Any]:
    selected_rec = state.get("selectedRecommendationId")
    selected_img = state.get("selectedImageId")
    return {
        "eventId": state["eventId"],
        "userId": state["userId"],
        "storeId": state["storeId"],
        "status": state["status"],
        "objective": objective_label(state["objective"]),
        "storeName": state["storeName"],
        "industry": state["industry"],
        "address": state["address"],
        "eventName": state.get("eventName"),
        "description": state.get("description"),
        "startDate": state.get("startDate"),
        "endDate": state.get("endDate"),
        "channels": list(state.get("channels") or []),
        "recommendations": [
            {**r, "isSelected": r["recommendationId"] == selected_rec}
            for r in state.get("recommendations") or []
        ],
        "images": [image_view(i, selected_img) for i in state.get("images") or []],
        "trendAnalysis": state.get("trendAnalysis"),
        "selectedRecommendationId": selected_rec,
        "selectedImageId": selected_img,
        "selectedImageUrl": state.get("selectedImageUrl"),
        "jobs": [job_view(j) for j in (state.get("jobs") or {}).values()],
        "distributionResults": list(state.get("distributionResults") or []),
        "createdAt": iso_ms(state["createdAt"]),
        "updatedAt": iso_ms(state["updatedAt"]),
    }


RUNNING_MESSAGE = {"AI_RECOMMENDATION": "AI가 분석 중입니다",
                   "IMAGE_GENERATION": "이미지를 생성 중입니다"}
FAILED_MESSAGE = "다시 시도해주세요"


def job_status_body(job: dict[str, Any], event: dict[str, Any] | None) -> bytes:
    """Seed 004's body from the job's projection and, for a COMPLETED job, its event's
    document (None when there is none); built from the projection's fields, so the model
    (which documents it) is not run again. The projector keeps it in the job's Redis hash
    (`doc`), which the fast path (api/fast_reads.py) sends as stored; the route builds it
    when it reads from elsewhere."""
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
