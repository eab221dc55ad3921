"""The event as the API shows it, made from an event state in one place: by the projector
for Redis, and by the API's PostgreSQL read path from the state its rows hold
(`sinks.postgres.read_state`) when Redis misses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from streams.vocabulary import OBJECTIVE_LABELS, Objective

__all__ = ["event_document", "image_view", "iso_ms", "job_view", "objective_label"]


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
